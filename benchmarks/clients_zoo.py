"""benchmarks/clients.py's world: client setups, their copies, innocents and references
(`build_setup`), the references given per K (`references`) and the scoring (`score`).
No flags here, so tests and other scripts can import it."""

from __future__ import annotations

import dataclasses
import os

from benchmarks import client_models as cm

ALPHA = 1e-3
USEFUL = 0.85  # a copy below 0.85 x the base's test accuracy is reported, not a theft
PRUNE_RATES = (0.3, 0.5, 0.7, 0.9)
CHEAP_EPOCHS = 3

# setup -> (architecture, recipe, the recipe of the "other recipe" innocent).
SETUPS = {
  "avgcnn": ("avgcnn", cm.Recipe("adam", 1e-3, 40, 32), cm.Recipe("sgd", 0.05, 30, 64, 5e-4, True)),
  "bncnn": ("bncnn", cm.Recipe("sgd", 0.05, 30, 64, 5e-4, True), cm.Recipe("adam", 1e-3, 20, 32)),
  "mlp": ("mlp", cm.Recipe("rmsprop", 1e-3, 30, 64), cm.Recipe("adam", 1e-3, 40, 32)),
}
# setup -> the architecture of its "wider model" innocent.
WIDER = {"avgcnn": "avgcnn_wide", "bncnn": "avgcnn_wide", "mlp": "avgcnn"}


@dataclasses.dataclass(frozen=True)
class Profile:
  """What a client setup costs on one dataset: its recipes and the attack / helper runs."""

  setups: dict  # setup -> (architecture, recipe, the "other recipe" innocent's recipe)
  finetune_epochs: int  # the thief's fine-tuning of a pruned copy
  cheap_epochs: int  # the 4 short runs (a tenth of a full run)
  simple_epochs: dict  # ucfp.simple_references' epochs per kind (linear, mlp, cnn)
  blackbox_train: int | None  # train images the scikit-learn innocents fit on (None: all)
  # Data halves and the black boxes' subset from a seeded permutation. The CIFAR-10
  # image folder lists its train images class by class (the first 5,000 all class 0),
  # so taking them in order gave half-data models 5 classes and the black boxes 2.
  # Digits' train split is already mixed (each half holds 63-82 images of every
  # class), and keeps its order so that its committed results stay reproducible.
  permute: bool = False
  # setup -> the thief's fine-tuning rate as a fraction of the owner's (default 1). The
  # CIFAR-10 BatchNorm CNN's SGD at 0.05, constant for 2 epochs, left every pruned copy
  # at 0.38-0.48 test accuracy (base 0.600), below the 0.85 x base floor of a useful
  # copy: a thief would not stop there; a tenth of the rate, as `finetune-all` uses.
  thief_lr_scale: dict = dataclasses.field(default_factory=dict)

  @property
  def default_recipe(self) -> dict:
    """Each architecture's recipe, for the cross-architecture innocents."""
    rec = {a: r for a, r, _ in self.setups.values()}
    return rec | {"avgcnn_wide": rec["avgcnn"]}


# CIFAR-10 (32x32x3, 50,000 train images): the same models and optimisers, sized for a
# 2-core CPU (epochs a tenth to a fifth of digits', larger batches; the BatchNorm CNN at
# width 16: at 32 one epoch took 128 s here, the avg-pool CNN's 17 s).
CIFAR_SETUPS = {
  "avgcnn": ("avgcnn", cm.Recipe("adam", 1e-3, 8, 64), cm.Recipe("sgd", 0.05, 6, 128, 5e-4, True)),
  "bncnn": ("bncnn16", cm.Recipe("sgd", 0.05, 6, 128, 5e-4, True), cm.Recipe("adam", 1e-3, 4, 64)),
  "mlp": ("mlp", cm.Recipe("rmsprop", 1e-3, 8, 128), cm.Recipe("adam", 1e-3, 8, 64)),
}
PROFILES = {
  (8, 8, 1): Profile(SETUPS, 10, CHEAP_EPOCHS, {"linear": 40, "mlp": 40, "cnn": 40}, None),
  # The simple CNN 1 epoch: its 3 epochs of 50,000 images took > 19 min here. The linear
  # model and the MLP (seconds an epoch) 3: at 1 the linear model reached 0.248 test
  # accuracy and the MLP client's fingerprints followed a logistic regression (0.337)
  # at 0.31-0.46 at every K (benchmarks/results/clients-cifar10.md, README).
  (32, 32, 3): Profile(
    CIFAR_SETUPS,
    2,
    1,
    {"linear": 3, "mlp": 3, "cnn": 1},
    10_000,
    permute=True,
    thief_lr_scale={"bncnn": 0.1},
  ),
}


def profile_of(data) -> Profile:
  """The Profile of `data`'s image shape, or a ValueError naming the shapes supported."""
  shape = tuple(data.info.image_shape)
  if shape not in PROFILES:
    raise ValueError(f"client setups: image shape {shape} is not one of {list(PROFILES)}")
  return PROFILES[shape]


@dataclasses.dataclass
class Entry:
  name: str
  kind: str  # base | pruned | derived | innocent | reference
  predict: object  # images (n, H, W, C) -> labels (n,) or logits (n, K)
  test_accuracy: float
  model: object = None  # ucfp.Model for white-box entries


def subsets(n: int, permute: bool):
  """({"full", "a", "b"}: train indices, (n,) the order the black boxes' subset is taken
  in): halves and order from a seeded permutation, or in the data's order."""
  import numpy as np

  from ucfp.evaluation.data import split_halves

  if not permute:
    return {"full": np.arange(n), "a": np.arange(n // 2), "b": np.arange(n // 2, n)}, np.arange(n)
  a, b = split_halves(n, seed=0)
  return {"full": np.arange(n), "a": a, "b": b}, np.random.default_rng(0).permutation(n)


def user_runs(
  setup: str, data, cache: cm.Cache, epochs: int, seeds, prefix: str, parts: int = 1
) -> list:
  """ucfp.Models `<prefix>-<arch>-s<seed>`: runs of `setup`'s own recipe with `epochs`
  epochs, one per seed, cached under the key `build_setup` gives its runs (so `cheap`,
  3 epochs on digits, restores build_setup's short runs). On all the training data,
  or with `parts` > 1 the i-th run on the (i mod parts)-th of `parts` disjoint parts of
  it (a fixed permutation, seed 77)."""
  import numpy as np

  import ucfp

  arch, recipe, _ = profile_of(data).setups[setup]
  rec = dataclasses.replace(recipe, epochs=epochs)
  chunks = np.array_split(np.random.default_rng(77).permutation(len(data.train_x)), parts)
  out = []
  for i, s in enumerate(seeds):
    name = f"{prefix}-{arch}-s{s}"
    idx = np.sort(chunks[i % parts])
    v = cache.get_or_fit(
      (
        setup,
        name,
        arch,
        dataclasses.asdict(rec),
        s,
        "full" if parts == 1 else f"{prefix}-{i % parts}",
        "",
      ),
      lambda s=s, idx=idx: cm.fit(arch, rec, data.train_x[idx], data.train_y[idx], s),
    )
    out.append(ucfp.Model(cm.apply_fn(arch), v, name))
  return out


def build_setup(setup: str, data, cache: cm.Cache, max_k: int = 4) -> dict[str, list[Entry]]:
  """Trains (or restores) one client setup's base, copies, innocents and max(4, max_k)
  references of the user's architecture (plus an MLP and a linear model, `references`).
  The owner's surrogates: `surrogate` (pruned at 0.8) and `surrogate_more` (0.3)."""
  import numpy as np

  import ucfp
  from ucfp.core import prune
  from ucfp.evaluation.blackbox import fit_blackbox
  from ucfp.evaluation.models import accuracy

  prof = profile_of(data)
  arch, recipe, other = prof.setups[setup]
  x, y, tx, ty = data.train_x, data.train_y, data.test_x, data.test_y
  halves, order = subsets(len(x), prof.permute)

  def model(name, a, variables):
    fn, jfn = cm.apply_fn(a), cm.jit_apply(a)
    return ucfp.Model(fn, variables, name), lambda im: jfn(variables, im)

  def trained(kind, name, a, rec, seed, idx="full", **kw):
    sel = halves[idx]
    ykey = kw.pop("labels", None)
    labels = y[sel] if ykey is None else ykey[sel]
    kidx = f"perm-{idx}" if prof.permute and idx != "full" else idx
    v = cache.get_or_fit(
      (setup, name, a, dataclasses.asdict(rec), seed, kidx, kw.pop("tag", "")),
      lambda: cm.fit(a, rec, x[sel], labels, seed, **kw),
    )
    m, f = model(name, a, v)
    return Entry(name, kind, f, cm.accuracy(a, v, tx, ty), m)

  out = {"base": [], "pruned": [], "derived": [], "innocent": [], "reference": []}
  base = trained("base", f"base-{arch}", arch, recipe, 0)
  out["base"].append(base)
  bv = base.model.variables
  # The thief fine-tunes a pruned copy with the owner's recipe for 10 epochs on digits
  # (2 on CIFAR-10), at a constant rate (scaled by the profile's thief_lr_scale); the
  # owner's surrogates below are fine-tuned the same way.
  ft = dataclasses.replace(
    recipe,
    epochs=prof.finetune_epochs,
    cosine=False,
    learning_rate=recipe.learning_rate * prof.thief_lr_scale.get(setup, 1.0),
  )
  for rate in PRUNE_RATES:
    masks = prune.global_magnitude_masks(bv, rate)
    pv = prune.apply_masks(bv, masks)
    out["pruned"].append(
      trained("pruned", f"pruned-{rate}", arch, ft, 7, init=pv, masks=masks, tag=f"prune{rate}")
    )
  # The owner's own copies (rc/ltrc surrogates), pruned and fine-tuned like a thief
  # would, with other data orders than any evaluated copy: 0.8 (seed 77, `surrogate`)
  # and a lightly pruned 0.3 (seed 78, `surrogate_more`, the `sur2` lever).
  for key, rate, seed, tag in (("surrogate", 0.8, 77, "sur"), ("surrogate_more", 0.3, 78, "sur03")):
    masks = prune.global_magnitude_masks(bv, rate)
    init = prune.apply_masks(bv, masks)
    out[key] = [
      trained("surrogate", f"surrogate-{rate}", arch, ft, seed, init=init, masks=masks, tag=tag)
    ]
  qv = cm.quantize(bv, 8)
  m, f = model("quant-int8", arch, qv)
  out["derived"].append(Entry("quant-int8", "derived", f, cm.accuracy(arch, qv, tx, ty), m))
  ft10 = dataclasses.replace(ft, learning_rate=recipe.learning_rate / 10)
  out["derived"].append(trained("derived", "finetune-all", arch, ft10, 8, init=bv, tag="ft"))
  soft = cm.soft_labels(arch, bv, x, 4.0)
  hard = cm.hard_labels(arch, bv, x)
  for a in (arch, "mlp" if arch != "mlp" else "avgcnn"):
    r = prof.default_recipe[a]
    out["derived"].append(trained("derived", f"distill-{a}", a, r, 9, labels=soft, tag="kd"))
    out["derived"].append(
      trained("derived", f"extract-{a}-half_b", a, r, 10, idx="b", labels=hard, tag="ex")
    )
  for s in (101, 102, 103):
    out["innocent"].append(trained("innocent", f"{arch}-s{s}", arch, recipe, s))
  out["innocent"].append(trained("innocent", f"{arch}-s104-half_b", arch, recipe, 104, idx="b"))
  out["innocent"].append(trained("innocent", f"{arch}-s105-other-recipe", arch, other, 105))
  others = [a for a, _, _ in prof.setups.values() if a != arch] + [WIDER[setup]]
  for i, a in enumerate(others):
    rec = prof.default_recipe[a]
    out["innocent"].append(trained("innocent", f"{a}-s{106 + i}", a, rec, 106 + i))
  n_bb = len(x) if prof.blackbox_train is None else prof.blackbox_train
  for bb, s in (("sk_mlp", 121), ("sk_logreg", 122)):
    f = fit_blackbox(bb, s, x[order[:n_bb]], y[order[:n_bb]])
    acc = float(np.mean(f(tx) == ty))
    out["innocent"].append(Entry(f"{bb}-s{s}", "innocent", f, acc))
  more = [1010 + i for i in range(max(0, max_k - 4))]
  for s in [1001, 1002, 1003, 1004, *more]:
    out["reference"].append(trained("reference", f"ref-{arch}-s{s}", arch, recipe, s))
  # Cheap references: 4 short runs (about a tenth of a full run: 3 epochs on digits) of
  # the user's own recipe with other seeds; what every model learns first is what
  # fingerprints that transfer to innocents exploit (benchmarks/results/clients-digits-r3.md).
  cheap = dataclasses.replace(recipe, epochs=prof.cheap_epochs)
  out["cheap"] = [
    trained("reference", f"cheap-{arch}-s{s}", arch, cheap, s) for s in range(3001, 3005)
  ]
  # A mixed set the user could choose instead: theirs and ucfp.simple_references' linear
  # model, MLP and small CNN, trained on the same data (see `references`).
  # One call per kind (its own epochs); seeds 2001, 2002, 2003 as one call would give.
  simple = [
    m
    for i, kind in enumerate(("linear", "mlp", "cnn"))
    for m in ucfp.simple_references(
      x,
      y,
      seed=2001 + i,
      epochs=prof.simple_epochs[kind],
      kinds=(kind,),
      cache_dir=os.path.join(cache.folder, "simple"),
    )
  ]
  out["simple"] = [
    Entry(m.name, "reference", None, accuracy(m.apply_fn, m.variables, tx, ty), m) for m in simple
  ]
  return out


def surrogates(zoo, rates) -> list:
  """The owner's surrogates (ucfp.Models) of prune `rates` (config.robust.surrogates;
  empty: the 0.8 one, what the `_surrogate` levers of client_methods pass)."""
  by_rate = {
    e.name.removeprefix("surrogate-"): e.model
    for k in ("surrogate", "surrogate_more")
    for e in zoo[k]
  }
  missing = [r for r in rates if f"{r}" not in by_rate]
  if missing:
    raise ValueError(f"client surrogates: rates {missing} not among {sorted(by_rate)}")
  return [by_rate[f"{r}"] for r in rates] or [by_rate["0.8"]]


def references(zoo, k: int, mix: str) -> list:
  """k reference models: the first k of the user's architecture (`same`), or for
  `mixed` k = 1: the user's; k = 2: + `ucfp.simple_references`' linear model; k >= 4:
  k - 2 of the user's, the linear model and the MLP. (Measured before: 1 of the user's
  with a linear model, an MLP and a small CNN at k = 4 left T higher on avgcnn, 0.33-0.37
  against 0.18-0.26, so the CNN was dropped.) `cheap`: the `mixed` set plus the 4 short
  runs of the user's recipe (those alone at k = 0); `cheap_cnn`: `cheap` plus
  `ucfp.simple_references`' small CNN; `own` (configs/own.py's recipe): the first k of
  the user's architecture plus ucfp's helpers, all of `ucfp.simple_references` and the 4
  short runs, so that k counts only the user's own full-length references."""
  if mix == "own":
    return [e.model for e in zoo["reference"][:k]] + [e.model for e in zoo["simple"] + zoo["cheap"]]
  if mix == "cheap_cnn":
    return references(zoo, k, "cheap") + [
      e.model for e in zoo["simple"] if e.name.split("-")[0] == "cnn"
    ]
  if mix == "cheap":
    return references(zoo, k, "mixed") + [e.model for e in zoo["cheap"]]
  if mix == "same" or k == 0:
    return [e.model for e in zoo["reference"][:k]]
  own = 1 if k <= 2 else k - 2
  return [e.model for e in zoo["reference"][:own]] + [e.model for e in zoo["simple"][: k - own]]


def score(fps, zoo) -> dict:
  """Match rates, R, T, US, false alarms and detections (null rate from the innocents),
  the innocents' spread and the target classes each follows."""
  import numpy as np

  import ucfp
  from ucfp.core.scoring import binomial_p_value, predict_labels

  n = len(fps)
  x, y = np.asarray(fps.x), np.asarray(fps.y)
  # (N,) bool per scored model: does it give the fingerprint's label (ucfp.match_rate's test)
  hits = {
    e.name: predict_labels(e.predict, x, fps.num_classes, int(y.max()) + 1) == y
    for k in zoo
    for e in zoo[k]
    if k not in ("reference", "simple", "surrogate", "surrogate_more", "cheap")
  }
  match = {name: float(h.mean()) for name, h in hits.items()}
  inn = [e.name for e in zoo["innocent"]]

  def derived_at(rate: float, null: float) -> tuple[float, bool]:
    """(p-value, judged derived) of a match rate: ucfp.verify's test on the matches."""
    p = binomial_p_value(round(rate * n), n, null)
    return p, p < ALPHA

  alarms = [
    name
    for name in inn
    if derived_at(match[name], ucfp.null_rate_upper_bound([match[o] for o in inn if o != name], n))[
      1
    ]
  ]
  null = ucfp.null_rate_upper_bound([match[o] for o in inn], n)
  derived = {}
  floor = USEFUL * zoo["base"][0].test_accuracy
  for e in zoo["pruned"] + zoo["derived"]:
    p, hit = derived_at(match[e.name], null)
    derived[e.name] = {
      "match_rate": match[e.name],
      "p_value": p,
      "detected": hit,
      "useful": e.test_accuracy >= floor,
    }
  pruned = [e.name for e in zoo["pruned"] if derived[e.name]["useful"]]
  # NaN when every pruned copy fell below the usefulness floor (the table shows nan)
  r = sum(match[name] for name in pruned) / len(pruned) if pruned else float("nan")
  t = sum(match[name] for name in inn) / len(inn)
  rates = np.array([match[name] for name in inn])
  # innocent -> the target classes it follows on at least half of their fingerprints
  blocks = {
    name: [int(c) for c in np.unique(y) if hits[name][y == c].mean() >= 0.5] for name in inn
  }
  return {
    "robustness": r,
    "transferability": t,
    "uniqueness_score": r - t,
    "max_innocent": max(match[name] for name in inn),
    "null_rate": null,
    # Between-innocent spread of the match rate against the binomial's sd at T: the
    # binomial null treats the N fingerprints as independent trials.
    "innocent_sd": float(rates.std(ddof=1)),
    "binomial_sd": float(np.sqrt(t * (1 - t) / n)),
    "innocent_classes": blocks,
    "false_alarms": alarms,
    "derived": derived,
    "match_rate": match,
  }


def select_heldout(margins, votes, candidates_y, y):
  """(N,) candidate indices: per class, fewest held-out votes first, then the smallest
  base margin (misclassified candidates last): `ucfp.core.select.fewest_votes`."""
  from ucfp.core.select import fewest_votes

  return fewest_votes(margins, votes, candidates_y, y)
