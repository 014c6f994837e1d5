"""`fingerprint`: generate C-, RC- or LTRC-examples for a model (Wang et al., IJCAI 2021)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ucfp.core import progress, prune
from ucfp.core.fingerprints import Fingerprints
from ucfp.core.resume import Checkpoints, run_id
from ucfp.core.scoring import predict_labels
from ucfp.core.select import (
  across_classes,
  base_margins,
  candidate_labels,
  class_cap,
  lowest_margin,
  votes_key,
)
from ucfp.core.sharding import example_sharding, place
from ucfp.core.spec import GenSpec  # noqa: F401 - re-exported
from ucfp.core.step import (  # noqa: F401 - re-exported: the step's public names
  GroupedStep,
  chunked_value_and_grad,
  compiled_step,
  generation_step,
  make_optimizer,
  min_margin_fn,
  objective,
)
from ucfp.core.types import Model
from ucfp.core.validate import owner_copies, validate_generation


def balanced_labels(n: int, num_classes: int, key: jax.Array) -> np.ndarray:
  """(n,) labels with every class count within one of n / K, in random order."""
  return np.asarray(jax.random.permutation(key, jnp.arange(n) % num_classes), np.int32)


def initial_noise(key, n: int, shape, init: str, sigma: float) -> jax.Array:
  """(n, H, W, C) starting images: uniform on [0, 1] or clipped N(0.5, sigma^2)."""
  if init == "uniform":
    return jax.random.uniform(key, (n, *shape), jnp.float32)
  return jnp.clip(0.5 + sigma * jax.random.normal(key, (n, *shape), jnp.float32), 0.0, 1.0)


def check_starts(starts, shape, init: str) -> np.ndarray | None:
  """`starts` as float32 (M, H, W, C) for `config.init='data'`, else None; ValueError
  (before any compute) when they are missing, unused, or not images in [0, 1]."""
  if init != "data":
    if starts is not None:
      raise ValueError(
        f"starts= is read only with config.init='data' (config.init={init!r}); "
        "set --config.init=data or drop starts"
      )
    return None
  if starts is None:
    raise ValueError(
      "config.init='data' needs the owner's images: pass starts=(M, H, W, C) images in "
      "[0, 1], e.g. the training images"
    )
  a = np.asarray(starts, np.float32)
  if a.ndim != 4 or a.shape[1:] != tuple(shape) or len(a) == 0:
    raise ValueError(f"starts must be (M, {', '.join(map(str, shape))}) images; got {a.shape}")
  if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
    raise ValueError("starts must hold finite pixel values in [0, 1]")
  return a


def data_starts(key, model: Model, pool: np.ndarray, y: np.ndarray, batch: int = 1024):
  """(N, H, W, C) starting images for targets y (N,): for each i, a uniformly drawn
  image of `pool` (M, H, W, C) that `model` classifies as a class other than y[i].

  An example started from an image the model already puts in its target class would
  be one every accurate model agrees with; one started from another class's image has
  to be moved across the model's own boundary, where other models disagree."""
  apply = jax.jit(model.apply_fn)
  pred = np.concatenate(
    [
      np.asarray(apply(model.variables, pool[i : i + batch])).argmax(-1)
      for i in range(0, len(pool), batch)
    ]
  )
  x0 = np.empty((len(y), *pool.shape[1:]), np.float32)
  for c in np.unique(y):
    where = np.flatnonzero(y == c)
    cand = np.flatnonzero(pred != c)
    if len(cand) == 0:
      raise ValueError(
        f"config.init='data': the model classifies every one of the {len(pool)} starts "
        f"images as class {int(c)}, a target label; pass images of other classes"
      )
    pick = jax.random.choice(jax.random.fold_in(key, int(c)), len(cand), (len(where),))
    x0[where] = pool[cand[np.asarray(pick)]]
  return jnp.asarray(x0)


def variables_hash(variables) -> str:
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(variables):
    h.update(np.asarray(leaf).tobytes())
  return h.hexdigest()[:16]


def _num_classes(model: Model, shape, field: str) -> int:
  try:
    out = jax.eval_shape(
      model.apply_fn, model.variables, jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    )
  except Exception as e:  # noqa: BLE001 - shape errors come in many types
    raise ValueError(
      f"config.image_shape={tuple(shape)} does not fit {field} {model.name!r} "
      f"(image shape or channel count mismatch): {type(e).__name__}: {str(e)[:200]}"
    ) from e
  if len(out.shape) != 2 or out.shape[0] != 2:
    raise ValueError(
      f"{field} {model.name!r} returned shape {out.shape}; expected (batch, K) logits"
    )
  return int(out.shape[1])


def _check_classes(models: Sequence[Model], shape, k: int, field: str) -> None:
  for m in models:
    if _num_classes(m, shape, field) != k:
      raise ValueError(f"{field} {m.name!r} does not have the base model's {k} classes")


def _no_kernels_error(model: Model, method: str) -> ValueError:
  leaves = jax.tree_util.tree_leaves_with_path(model.variables)
  shown = ", ".join(f"{jax.tree_util.keystr(p)} {tuple(np.shape(v))}" for p, v in leaves[:6])
  more = f" and {len(leaves) - 6} more" if len(leaves) > 6 else ""
  return ValueError(
    f"model {model.name!r} has no prunable kernels for config.method={method!r} to prune and "
    f"perturb: by default these are leaves named {', '.join(prune.KERNEL_NAMES)} with ndim >= 2 "
    f"(a trailing .value, as in an nnx.State, is seen through), and its leaves are {shown}{more}; "
    "rename them, or select them with ucfp.fingerprint(..., prunable=lambda path, leaf: ...), "
    "e.g. prunable=lambda path, leaf: leaf.ndim >= 2"
  )


# Below this many reference models, or with all of one architecture, fingerprints of
# models ucfp did not train transferred to innocents (benchmarks/results/clients-digits.md).
MIN_REFERENCES = 4
# Below this many of the model's own architecture (1 full-length run of the user's
# training + 4 short ones, configs/own.py's recipe) innocents of the same family still
# followed the fingerprints: over 3 digits client models and 3 generation keys the goal
# was met in 3 of 9 runs with K = 0 full-length runs, with 7 false alarms in 90 innocent
# tests, against 18 of 27 with K = 1, 2, 4 (1 alarm in 90 at K = 1; clients-digits-keys.md).
MIN_OWN_ARCHITECTURE = 5


def architecture(variables) -> str:
  """One architecture = one pytree structure with the same leaf shapes."""
  return str(jax.tree.map(jnp.shape, variables))


def reference_warning(reference: Sequence[Model], model: Model | None = None) -> str | None:
  """Why the reference models may be too few or too alike to trust the reference term,
  or None. With `model`, also too few of the model's own architecture."""
  problems = []
  if len(reference) < MIN_REFERENCES:
    problems.append(f"only {len(reference)} reference model(s) (< {MIN_REFERENCES})")
  shapes = [architecture(r.variables) for r in reference]
  if len(reference) > 1 and len(set(shapes)) == 1:
    problems.append("all of one architecture")
  if model is not None:
    own = shapes.count(architecture(model.variables))
    if own < MIN_OWN_ARCHITECTURE:
      problems.append(
        f"{own} of the model's own architecture (< {MIN_OWN_ARCHITECTURE}: a full-length "
        "run of your training and 4 short ones)"
      )
  if not problems:
    return None
  return (
    f"ucfp.fingerprint: {' and '.join(problems)}: measured on models ucfp did not train "
    "(benchmarks/results/clients-digits.md), such references leave fingerprints that "
    "independently trained models still follow; use configs/own.py with your K >= 1 "
    "full-length references (ucfp.train_references), ucfp.simple_references(x, y) for "
    "other architectures, and 4 short runs (a tenth of the epochs) of your own training: "
    "so, on 3 digits client models over 3 generation keys, US >= 0.85 at T <= 0.10 with "
    "no false alarm in 18 of 27 runs with K = 1, 2 or 4, in 3 of 9 with K = 0, and T "
    "fell as K grew "
    "(benchmarks/results/clients-digits-keys.md)"
  )


def fingerprint(
  model: Model,
  config,
  *,
  key: jax.Array,
  reference: Sequence[Model] = (),
  surrogates: Sequence[Model] = (),
  validators: Sequence[Model] = (),
  labels: np.ndarray | None = None,
  image_shape: Sequence[int] | None = None,
  prunable: prune.Prunable | None = None,
  checkpoint_dir: str | None = None,
  starts: np.ndarray | None = None,
) -> Fingerprints:
  """Generates characteristic examples of `model`.

  Args:
    model: the owner's model (`apply_fn(variables, x) -> logits`).
    config: a ucfp config; only the generation fields and `image_shape` are read.
    key: PRNG key; the same key gives identical fingerprints.
    reference: the owner's independently trained models, for `ltrc.term='reference'`.
    surrogates: the owner's own derived (pruned, fine-tuned) copies of `model`, for
      `config.robust.surrogates` (rc and ltrc; ignored by c).
    validators: more of the owner's derived copies, held out of the objective, for
      `config.robust.validators` (rc and ltrc, with `oversample` > 1): per class the
      candidates most of them still put in their class are kept first.
    labels: (N,) target labels in [0, K); balanced over classes if None (and chosen
      among the candidates with `config.class_cap > 1`, which takes no labels).
    image_shape: overrides `config.image_shape` (e.g. for an image folder).
    prunable: `prunable(path, leaf) -> bool` over `jax.tree_util` key paths of
      `model.variables`: the conv and dense kernels that variants (rc, ltrc) prune and
      perturb. Default `ucfp.core.prune.is_prunable`: leaves named `kernel`, `w` or
      `weight` with ndim >= 2, also behind an NNX `.value`.
    checkpoint_dir: where to checkpoint the run every `config.checkpoint_every` steps
      (None or `checkpoint_every=0`: no checkpoints), in a subfolder named by a hash
      of everything that determines the result (`ucfp.core.resume.run_id`). A rerun
      with the same inputs resumes from the latest checkpoint and gives bit-identical
      fingerprints; the subfolder is removed once the fingerprints are complete.
    starts: (M, H, W, C) images in [0, 1] of the owner's (e.g. the training images),
      read only with `config.init='data'`: each example starts from one that `model`
      classifies as a class other than the example's target (`data_starts`).

  Returns:
    :class:`Fingerprints` with x (N, H, W, C) in [0, 1] and y (N,). With
    `config.oversample = m > 1`, m * N candidates are generated (labels repeated m
    times) and N kept by `ucfp.core.select.lowest_margin` (with validators,
    `fewest_votes`: their misses first).

  Raises:
    ValueError: a bad config field, labels, image shape or `prunable`, or no prunable
      kernels for rc / ltrc (before any compute).
    FloatingPointError: a NaN loss (naming the step).
  """
  shape = validate_generation(config, image_shape)
  pool = check_starts(starts, shape, config.init)
  n = int(config.num_fingerprints)
  over = int(config.get("oversample", 1))
  cap = float(config.get("class_cap", 1.0))  # > 1: kept across classes (validated above)
  spec = GenSpec.from_config(config, num_examples=n * over)
  k = _num_classes(model, shape, "model")
  flags = prune.leaf_flags(model.variables, prunable)
  if spec.method != "c" and not any(flags):
    raise _no_kernels_error(model, spec.method)
  spec = dataclasses.replace(spec, variant=dataclasses.replace(spec.variant, kernels=flags))
  if spec.term == "reference":
    if not reference:
      raise ValueError(
        "config.ltrc.term='reference' needs the owner's reference models: pass reference=[...]"
      )
    _check_classes(reference, shape, k, "reference model")
    why = reference_warning(reference, model)
    if why is not None:
      warnings.warn(why, UserWarning, stacklevel=2)
  use_sur, use_val = owner_copies(config, spec.method, surrogates, validators, over)
  if use_sur:
    _check_classes(surrogates, shape, k, "surrogate model")
  if use_val:
    _check_classes(validators, shape, k, "validator model")
  k_init, k_labels, k_steps = jax.random.split(key, 3)
  if labels is None:
    y = balanced_labels(n, k, k_labels)
  elif cap > 1:
    raise ValueError(
      f"labels: config.class_cap={cap!r} chooses the labels among the "
      "candidates; pass labels=None, or set class_cap = 1 to keep the labels given"
    )
  else:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
      raise ValueError(f"labels must be ({n},) integers in [0, {k}); got shape {y.shape}")
    y = y.astype(np.int32)
  y_out, y = y, candidate_labels(y, over)  # generation runs on over * n candidates
  n = len(y)
  ref_fns = tuple(r.apply_fn for r in reference) if spec.term == "reference" else ()
  ref_vars = tuple(r.variables for r in reference) if spec.term == "reference" else ()
  sur_fns = tuple(m.apply_fn for m in surrogates) if use_sur else ()
  sur_vars = tuple(m.variables for m in surrogates) if use_sur else ()
  sorted_abs = (
    prune.sorted_magnitudes(model.variables, flags)
    if spec.method != "c" and spec.variant.mask == "magnitude"
    else None
  )
  if pool is None:
    x0 = initial_noise(k_init, n, shape, config.init, float(config.init_sigma))
  else:
    x0 = data_starts(k_init, model, pool, y)
  variables = model.variables
  y_dev = jnp.asarray(y)
  sh = example_sharding(n) if config.shard else None
  if sh is not None:
    x0, y_dev = place((x0, y_dev), sh.examples)
    variables, ref_vars, sur_vars, sorted_abs = place(
      (variables, ref_vars, sur_vars, sorted_abs), sh.replicated
    )
  state = (jnp.copy(x0), make_optimizer(spec).init(x0))
  step = compiled_step(spec, model.apply_fn, ref_fns, sur_fns)
  args = (x0, y_dev, variables, ref_vars, sur_vars, sorted_abs)
  min_margin = functools.partial(min_margin_fn(model.apply_fn), variables, y=y_dev)
  start, losses, first = time.perf_counter(), [], 0
  ckpt = None
  if checkpoint_dir is not None and config.checkpoint_every > 0:
    used = (reference if ref_fns else (), surrogates if sur_fns else ())
    run = run_id(config, shape, model, *used, key, y, flags, None if pool is None else x0)
    ckpt = Checkpoints(checkpoint_dir, run, int(config.checkpoint_every), int(config.steps))
    restored = ckpt.restore(state, None if sh is None else sh.replicated)
    if restored is not None:
      first, state, losses = restored
      progress.note(f"  resuming generation at step {first}/{config.steps} ({ckpt.directory})")
  bar = progress.bar(
    total=int(config.steps),
    initial=first,
    desc=f"generating {len(y_out)} {spec.method} fingerprints"
    + (f" ({n} candidates)" if over > 1 else ""),
  )
  completed = False
  try:
    state, steps_run, margin = _run_steps(
      step, state, args, k_steps, min_margin, config, first, losses, ckpt, bar
    )
    completed = True
  finally:
    bar.close()
    if ckpt is not None:
      ckpt.close(completed)
  x = np.asarray(state[0])
  if over > 1:
    m = base_margins(model.apply_fn, model.variables, x, y)
    # each validator that does not give the target votes against it
    misses = np.zeros(len(y), np.int64)
    for v in validators if use_val else ():
      misses += np.asarray(predict_labels(v, x, k)) != y
    rank = votes_key(m, misses)
    if cap > 1:  # across classes; the labels are the kept candidates'
      keep = np.sort(across_classes(rank, y, len(y_out), class_cap(cap, len(y_out), k)))
      y_out = y[keep]
    else:
      keep = lowest_margin(rank, y, y_out)
    x, margin = x[keep], float(m[keep].min())
  seconds = time.perf_counter() - start
  meta = {
    "method": spec.method,
    "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
    "model": model.name,
    "model_hash": variables_hash(model.variables),
    "num_classes": k,
    "reference": [r.name for r in reference] if ref_fns else [],
    "surrogates": [m.name for m in surrogates] if sur_fns else [],
    "validators": [m.name for m in validators] if use_val else [],
    "oversample": over,
    "steps_run": steps_run,
    "resumed_from": first,
    "final_loss": float(losses[-1]),
    "min_margin": margin,
    "seconds": seconds,
    "batching": spec.batching,
    "devices": 1 if sh is None else sh.num_devices,
  }
  return Fingerprints(x, y_out, meta)


def _run_steps(step, state, args, k_steps, min_margin, config, first, losses, ckpt, bar):
  """Steps `first` .. T-1 of generation (T = config.steps), or until early stopping.

  Step t uses the key `fold_in(k_steps, t)`. Every 10 steps and at the last: stops on a
  NaN/inf loss (naming the step), reads the base model's minimum margin when early
  stopping needs it (and at the last step, for the report), and updates the progress
  bar. `losses` (the losses of the steps before `first`) is extended in place;
  `ckpt` (or None) saves the state every `checkpoint_every` steps.

  Returns:
    (the final state, the number of steps run in all, the last minimum margin read).
  """
  steps, margin, steps_run = int(config.steps), float("nan"), first
  for t in range(first, steps):
    state, loss = step(state, *args, jax.random.fold_in(k_steps, t))
    losses.append(loss)
    steps_run = t + 1
    if t % 10 == 9 or t == steps - 1:
      recent = np.asarray(jnp.stack(losses[-10:]))
      if not np.all(np.isfinite(recent)):
        bad = t - len(recent) + 1 + int(np.argmin(np.isfinite(recent)))
        raise FloatingPointError(f"fingerprint: loss is NaN/inf at step {bad}")
      bar.set_postfix(loss=float(recent[-1]), refresh=False)
      bar.update(steps_run - bar.n)
      if config.early_stop or t == steps - 1:  # read by early stop and the report
        margin = float(min_margin(state[0]))
        if config.early_stop and margin >= config.early_stop_margin:
          break
    if ckpt is not None:
      ckpt.save(steps_run, state, losses)
  return state, steps_run, margin
