"""benchmarks/clients.py's methods: the paper's, ucfp's default, and one row per lever."""

from __future__ import annotations

import re

from configs import c, ltrc, own, rc

# configs/own.py's recipe before 2026-12-06, pinned (the references' `prob` penalty,
# surrogate weight 1, margin selection per class, no validators), for the rows built on it.
_OWN_PREV = {
  "_config": own,
  "_refs": "own",
  "_surrogate": True,
  "ltrc.ref_loss": "prob",
  "robust.surrogate_weight": 1.0,
  "robust.validators": (),
  "class_cap": 1.0,
}
# ... with the references' margin hinge (benchmarks/results/clients-digits-own-margin.md)
_OWN_MARGIN = {
  **_OWN_PREV,
  "ltrc.ref_loss": "margin",
  "ltrc.ref_kappa": 6.0,
  "ltrc.weight": 1.0,
  "robust.surrogate_weight": 3.0,
}

# name -> (description, config overrides). Overrides starting with "_" are handled by
# `method_config`; "ucfp" is configs/ltrc.py as shipped.
METHODS = {
  "c": ("C-examples (paper)", {"_config": c}),
  "rc": ("RC-examples (paper)", {"_config": rc}),
  "ltrc_paper": (
    "LTRC-examples (paper: RC + high-pass filter, no reference term)",
    {"ltrc.term": "none", "_paper_radius": True},
  ),
  "ucfp": ("ucfp default (configs/ltrc.py)", {}),
  "ucfp_before": ("ucfp default before 2026-12-08 (noise starts, cross-entropy)", {}),
  "ucfp_w10": ("ucfp, reference weight 10", {"ltrc.weight": 10.0}),
  "ucfp_comp": ("ucfp, complement reference loss", {"ltrc.ref_loss": "complement"}),
  "ucfp_mixed": ("ucfp, mixed references", {"_refs": "mixed"}),
  "ucfp_mixed_w10": ("ucfp, mixed references, weight 10", {"_refs": "mixed", "ltrc.weight": 10.0}),
  "ucfp_mixed_comp": (
    "ucfp, mixed references, complement reference loss",
    {"_refs": "mixed", "ltrc.ref_loss": "complement"},
  ),
  "ucfp_mixed_w10_sur": (
    "ucfp, mixed references, weight 10, + the owner's own 0.8-pruned fine-tuned copy as surrogate",
    {"_refs": "mixed", "ltrc.weight": 10.0, "_surrogate": True},
  ),
  "ucfp_mixed_w30": ("ucfp, mixed references, weight 30", {"_refs": "mixed", "ltrc.weight": 30.0}),
  "ucfp_mixed_w10_s100": (
    "ucfp, mixed references, weight 10, 100 steps",
    {"_refs": "mixed", "ltrc.weight": 10.0, "steps": 100},
  ),
  "ucfp_mixed_w10_rn1": (
    "ucfp, mixed references perturbed (noise 0.1), weight 10",
    {"_refs": "mixed", "ltrc.weight": 10.0, "ltrc.ref_noise": 0.1},
  ),
  "ucfp_cheap": (
    "ucfp_mixed_w10_sur + 4 cheap references: short runs (3 epochs) of the user's own recipe",
    {"_refs": "cheap", "ltrc.weight": 10.0, "_surrogate": True},
  ),
  "ucfp_cheap_data": (
    "ucfp_cheap, examples started from training images of another class (init=data)",
    {"_refs": "cheap", "ltrc.weight": 10.0, "_surrogate": True, "init": "data"},
  ),
  "ucfp_cheap_data_cnn": (
    "ucfp_cheap_data + ucfp.simple_references' small CNN as one more reference",
    {"_refs": "cheap_cnn", "ltrc.weight": 10.0, "_surrogate": True, "init": "data"},
  ),
  "ucfp_cheap_data_sel3": (
    "ucfp_cheap_data, 3x candidates, the lowest base-margin third kept (oversample=3)",
    {"_refs": "cheap", "ltrc.weight": 10.0, "_surrogate": True, "init": "data", "oversample": 3},
  ),
  "ucfp_own": (
    "ucfp's recipe for own models (configs/own.py, oversample 5): the user's K references"
    " + ucfp.simple_references (3) + 4 short runs; selection across classes (class_cap 2)",
    {"_config": own, "_refs": "own", "_surrogate": True},
  ),
  "ucfp_own_prev": ("configs/own.py before 2026-12-06 (prob penalty, no validators)", _OWN_PREV),
  "ucfp_own_pval": (
    "ucfp_own_prev with the owner's 0.5- and 0.9-pruned copies as validators (prob penalty):"
    " configs/own.py from 2026-12-06 to 2026-12-07 (N / K per class), pinned",
    {**_OWN_PREV, "robust.validators": (0.5, 0.9)},
  ),
  # The anchor variant, 2026-12-06 (benchmarks/results/clients-digits-own-val.md and
  # clients-cifar10-mlp-own-val.md, run as `ucfp_own` while configs/own.py was it).
  "ucfp_own_val": (
    "ucfp_own with the anchor penalty, surrogate weight 3 and the owner's 0.5- and"
    " 0.9-pruned copies as validators",
    {
      **_OWN_PREV,
      "ltrc.ref_loss": "anchor",
      "robust.surrogate_weight": 3.0,
      "robust.validators": (0.5, 0.9),
    },
  ),
  "ucfp_own_margin": (
    "ucfp_own_prev with the references' margin hinge (ltrc.ref_loss margin, ref_kappa 6,"
    " weight 1) and surrogate weight 3",
    _OWN_MARGIN,
  ),
  "ucfp_own_margin_sw5": (
    "ucfp_own_margin with surrogate weight 5",
    {**_OWN_MARGIN, "robust.surrogate_weight": 5.0},
  ),
  "ucfp_own_o3": (
    "ucfp_own_prev with oversample=3 (lowest-margin third kept)",
    {**_OWN_PREV, "oversample": 3},
  ),
  "ucfp_own_cheap_cnn": (
    "ucfp_own_prev with the references of ucfp_cheap_data_cnn (K counts the simple ones)",
    {**_OWN_PREV, "_refs": "cheap_cnn"},
  ),
  "ucfp_data": ("ucfp, examples started from training images (init=data)", {"init": "data"}),
  "ucfp_mixed_w10_sur_data": (
    "ucfp_mixed_w10_sur, examples started from training images (init=data)",
    {"_refs": "mixed", "ltrc.weight": 10.0, "_surrogate": True, "init": "data"},
  ),
  # Levers measured on the avgcnn setup only (benchmarks/results/clients-digits-levers.md):
  "rc_m1": ("RC, margin loss kappa 1", {"_config": rc, "loss": "margin", "kappa": 1.0}),
  "c_m1": ("C, margin loss kappa 1", {"_config": c, "loss": "margin", "kappa": 1.0}),
  "ucfp_m1": ("ucfp, margin loss kappa 1", {"loss": "margin", "kappa": 1.0}),
  "ucfp_m3": ("ucfp, margin loss kappa 3", {"loss": "margin", "kappa": 3.0}),
  "ucfp_max": ("ucfp, reference term max over references", {"ltrc.reduce": "max"}),
  "ucfp_gauss": ("ucfp, gaussian init", {"init": "gaussian"}),
  "ucfp_rn3": ("ucfp, references perturbed (noise 0.3)", {"ltrc.ref_noise": 0.3}),
  "ucfp_rn3_w10": (
    "ucfp, references perturbed (noise 0.3), weight 10",
    {"ltrc.ref_noise": 0.3, "ltrc.weight": 10.0},
  ),
  "ucfp_b2": ("ucfp, L-inf budget 0.2 around the noise", {"budget": 0.2}),
  "ucfp_b3": ("ucfp, L-inf budget 0.3 around the noise", {"budget": 0.3}),
  "ucfp_r1": ("ucfp, high-pass radius 1", {"ltrc.radius": 1.0}),
  "ucfp_r15": ("ucfp, high-pass radius 1.5", {"ltrc.radius": 1.5}),
  "mistakes": (
    "the base's own mistakes on its training images that no reference shares "
    "(ucfp.mistake_fingerprints; configs/own.py's references): for the students",
    {"_refs": "own", "_mistakes": True},
  ),
  "ucfp_p05": ("ucfp, variants pruned at U[0, 0.5]", {"robust.prune_rate": (0.0, 0.5)}),
  "ucfp_nomask": ("ucfp, variants: weight noise only", {"robust.mask": "none"}),
}


def uses_surrogate(method: str) -> bool:
  """Whether `method` passes the owner's own pruned, fine-tuned copy as a surrogate."""
  return METHODS[method][1].get("_surrogate", False)


def uses_mistakes(method: str) -> bool:
  """Whether `method` takes ucfp.mistake_fingerprints (its config only names the run)."""
  return METHODS[method][1].get("_mistakes", False)


def refs_of(method: str) -> str:
  """`same` (K of the user's architecture), `mixed`, `cheap`, `cheap_cnn` or `own` (see
  benchmarks/clients_zoo.py's `references`)."""
  return METHODS[method][1].get("_refs", "same")


def method_config(method: str, image_shape, k: int, n: int):
  """The config of `method` with k reference models. With k = 0 the reference term is
  off (`ucfp.fingerprint` needs references for it); None for a `mixed` method at k = 0
  (the same run as its `same` twin)."""
  if method not in METHODS:
    raise ValueError(f"--methods: {method!r} is not one of {', '.join(METHODS)}")
  drop = ("_refs", "_surrogate", "_mistakes")
  over = {k_: v for k_, v in METHODS[method][1].items() if k_ not in drop}
  if k == 0 and refs_of(method) == "mixed":
    return None
  module = over.pop("_config", ltrc)
  if module is ltrc and method != "ucfp":  # rows measured on configs/ltrc.py before
    over = {**ltrc.PAPER_START, **over}  # 2026-12-08 keep its starts and loss
  preset = "digits" if tuple(image_shape) == (8, 8, 1) else "cifar10"
  config = module.get_config(preset)
  config.unlock()
  config.num_fingerprints = n
  if over.pop("_paper_radius", False):
    config.ltrc.radius = ltrc.paper_radius(image_shape)
  for key, value in over.items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  config.robust.surrogates = ()  # clients give no surrogates
  cheap = refs_of(method) in ("cheap", "cheap_cnn", "own")  # has its 4 short runs at k = 0 too
  if config.method == "ltrc" and config.ltrc.term == "reference" and k == 0 and not cheap:
    config.ltrc.term = "none"
  config.checkpoint_every = 0
  config.lock()
  return config


_TOKEN = re.compile(r"(refm|ancm|aw|sw|w|s|b)(\d+)")
_FIELDS = {
  "refm": "ref_kappa",
  "ancm": "ref_kappa",
  "aw": "anchor_weight",
  "w": "weight",
  "sw": "robust.surrogate_weight",
  "s": "steps",
  "b": "budget",
}
_HINGES = {"refm": "margin", "ancm": "anchor_margin"}  # the ref_loss a kappa token picks


def lever_overrides(lever: str) -> dict | None:
  """Config overrides of configs/own.py an objective lever names, or None if it names none.

  `max` -> the reference term's maximum; otherwise `_`-joined tokens `refm<kappa>` (the
  references' margin hinge), `anc` (the anchor penalty: each reference keeps reading the
  start image's class), `prob` (the `prob` penalty, configs/own.py's), `ancm<kappa>` (the anchor's hinge, until the reference reads
  it by kappa), `aw<weight>` (the anchor penalty beside the `prob` one), `w<weight>`,
  `sw<surrogate weight>`, `s<steps>`,
  `b<L-inf budget around the start image>`; a number with a leading 0 reads as a
  decimal fraction (`w05` = 0.5, `b01` = 0.1, `b005` = 0.05).
  """
  if lever == "max":
    return {"reduce": "max"}
  out = {}
  for token in lever.split("_"):
    if token in ("anc", "prob"):
      out["ref_loss"] = "anchor" if token == "anc" else "prob"
      continue
    m = _TOKEN.fullmatch(token)
    if not m:
      return None
    kind, digits = m.groups()
    value = float(f"0.{digits[1:]}") if digits.startswith("0") else float(digits)
    if kind in _HINGES:
      out["ref_loss"] = _HINGES[kind]
    out[_FIELDS[kind]] = int(value) if kind == "s" else value
  return out


# clients_selection's selection modifiers ("+"-joined): `global` ranks the candidates
# across classes, not per class; `cap<n>` does so with at most n fingerprints of one class.
CAP = re.compile(r"cap(\d+)")


def is_selection(bit: str) -> bool:
  """Whether a "+"-joined lever part is a selection modifier (`global`, `cap<n>`)."""
  return bit == "global" or CAP.fullmatch(bit) is not None
