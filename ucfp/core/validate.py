"""Validation of the generation fields (`ucfp.fingerprint`), before any compute.

Each error is a ValueError that names the field (`config.<field>`) and what is allowed.
"""

from __future__ import annotations

from ucfp.core.objectives import LOSSES, REDUCTIONS, REF_LOSSES
from ucfp.core.spectral import check_radius
from ucfp.core.variants import BATCHINGS, MASKS, NOISE_KINDS

METHODS = ("c", "rc", "ltrc")
OPTIMIZERS = ("sign", "adam", "sgd")
INITS = ("uniform", "gaussian", "data")
TERMS = ("none", "spectral", "reference")


def _choice(value, allowed, field):
  if value not in allowed:
    raise ValueError(f"config.{field}={value!r} is not one of {', '.join(allowed)}")


def positive_int(value, field):
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f"config.{field}={value!r} must be a positive integer")


def number(value, field, low=None, high=None, low_open=False):
  ok = isinstance(value, int | float) and not isinstance(value, bool)
  ok = ok and (low is None or (value > low if low_open else value >= low))
  ok = ok and (high is None or value <= high)
  if not ok:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"<= {high}"
    raise ValueError(
      f"config.{field}={value!r} must be a number {lo}{' and ' if lo and hi else ''}{hi}"
    )


def check_image_shape(shape, field: str = "config.image_shape") -> tuple[int, int, int]:
  try:
    shape = tuple(int(s) for s in shape)
  except (TypeError, ValueError):
    shape = ()
  if len(shape) != 3 or min(shape) <= 0:
    raise ValueError(f"{field}={shape!r} must be (H, W, C) with positive sizes")
  return shape


def are_prune_rates(rates) -> bool:
  """Whether rates is a tuple or list of numbers in (0, 1) (booleans are not numbers)."""
  return isinstance(rates, tuple | list) and all(
    isinstance(v, int | float) and not isinstance(v, bool) and 0.0 < v < 1.0 for v in rates
  )


def _prune_rates(rates, field: str) -> None:
  """A ValueError naming `config.<field>` unless rates is a tuple of numbers in (0, 1)."""
  if not are_prune_rates(rates):
    raise ValueError(f"config.{field}={rates!r} must be a tuple of prune rates in (0, 1), or ()")


def validate_generation(config, image_shape=None) -> tuple[int, int, int]:
  """Checks the fields `ucfp.fingerprint` reads; returns the image shape."""
  _choice(config.method, METHODS, "method")
  shape = check_image_shape(image_shape if image_shape is not None else config.image_shape)
  positive_int(config.num_fingerprints, "num_fingerprints")
  positive_int(config.get("oversample", 1), "oversample")
  number(config.get("class_cap", 1.0), "class_cap", 1)
  if config.get("class_cap", 1.0) > 1 and int(config.get("oversample", 1)) < 2:
    raise ValueError(
      f"config.class_cap={config.class_cap!r} ranks oversampled candidates across classes: "
      f"set config.oversample >= 2 (got {config.get('oversample', 1)!r}), or class_cap = 1"
    )
  positive_int(config.steps, "steps")
  number(config.step_size, "step_size", 0, low_open=True)
  _choice(config.optimizer, OPTIMIZERS, "optimizer")
  _choice(config.loss, LOSSES, "loss")
  number(config.kappa, "kappa", 0)
  _choice(config.init, INITS, "init")
  number(config.init_sigma, "init_sigma", 0)
  number(config.early_stop_margin, "early_stop_margin")
  every = config.checkpoint_every
  if isinstance(every, bool) or not isinstance(every, int) or every < 0:
    raise ValueError(
      f"config.checkpoint_every={every!r} must be a non-negative integer (0: no checkpoints)"
    )
  if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
    raise ValueError(f"config.seed={config.seed!r} must be a non-negative integer")
  for flag in ("early_stop", "shard"):
    if not isinstance(config[flag], bool):
      raise ValueError(f"config.{flag}={config[flag]!r} must be true or false")
  r = config.robust
  positive_int(r.num_variants, "robust.num_variants")
  number(r.noise_bound, "robust.noise_bound", 0)
  _choice(r.noise_kind, NOISE_KINDS, "robust.noise_kind")
  _choice(r.mask, MASKS, "robust.mask")
  _choice(r.batching, BATCHINGS, "robust.batching")
  if isinstance(r.chunk, bool) or not isinstance(r.chunk, int) or r.chunk < 0:
    raise ValueError(f"config.robust.chunk={r.chunk!r} must be a non-negative integer (0: auto)")
  rate = tuple(r.prune_rate) if isinstance(r.prune_rate, tuple | list) else ()
  if not (
    len(rate) == 2
    and all(isinstance(v, int | float) for v in rate)
    and 0.0 <= rate[0] <= rate[1] < 1.0
  ):
    raise ValueError(
      f"config.robust.prune_rate={r.prune_rate!r} must be a (low, high) pair with 0 <= low <= high < 1"
    )
  _prune_rates(r.surrogates, "robust.surrogates")
  number(r.surrogate_weight, "robust.surrogate_weight", 0)
  val = r.get("validators", ())
  _prune_rates(val, "robust.validators")
  if len(val) and int(config.get("oversample", 1)) < 2:
    raise ValueError(
      f"config.robust.validators={tuple(val)!r} choose among oversampled candidates: "
      f"set config.oversample >= 2 (got {config.get('oversample', 1)!r}), or validators = ()"
    )
  if not isinstance(r.get("surrogate_attacks", ""), str):
    raise ValueError(
      f"config.robust.surrogate_attacks={r.surrogate_attacks!r} must be a string of attack specs"
    )
  number(config.ltrc.radius, "ltrc.radius", 0)
  check_radius(config.ltrc.radius, shape)
  _choice(config.ltrc.term, TERMS, "ltrc.term")
  number(config.ltrc.weight, "ltrc.weight", 0)
  _choice(config.ltrc.reduce, REDUCTIONS, "ltrc.reduce")
  _choice(config.ltrc.get("ref_loss", "prob"), REF_LOSSES, "ltrc.ref_loss")
  number(config.ltrc.get("ref_noise", 0.0), "ltrc.ref_noise", 0)
  number(config.ltrc.get("ref_kappa", 0.0), "ltrc.ref_kappa", 0)
  number(config.ltrc.get("anchor_weight", 0.0), "ltrc.anchor_weight", 0)
  number(config.get("budget", 0.0), "budget", 0)
  return shape


def owner_copies(config, method: str, surrogates, validators, over: int) -> tuple[bool, bool]:
  """(use the surrogates, use the validators): rc and ltrc use what the config asks for
  or what is given; a ValueError (before any compute) when the config asks for copies
  not given, or validators come without oversampled candidates to choose among."""
  r = config.robust
  wanted = len(r.surrogates) > 0 or bool(r.get("surrogate_attacks"))
  use_sur = method != "c" and (wanted or len(surrogates) > 0)
  if use_sur and not surrogates:
    field = (
      f"config.robust.surrogates={tuple(r.surrogates)}"
      if len(r.surrogates)
      else f"config.robust.surrogate_attacks={r.surrogate_attacks!r}"
    )
    raise ValueError(
      f"{field} needs the owner's derived copies of the model: pass surrogates=[...] "
      "(build_zoo trains them)"
    )
  use_val = method != "c" and (len(r.get("validators", ())) > 0 or len(validators) > 0)
  if use_val and not validators:
    raise ValueError(
      f"config.robust.validators={tuple(r.validators)} needs the owner's held-out derived "
      "copies of the model: pass validators=[...] (build_zoo trains them)"
    )
  if use_val and over < 2:
    raise ValueError(
      f"validators choose among oversampled candidates: set config.oversample >= 2 (got {over})"
    )
  return use_sur, use_val
