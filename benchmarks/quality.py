"""Fingerprint quality of C, RC, the paper's LTRC and ucfp's LTRC on one zoo.

    python benchmarks/quality.py --config=configs/ltrc.py[:digits] [--workdir=ucfp-work]
    python benchmarks/quality.py --config=configs/ltrc.py:cifar10 \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.tar.gz --tag=cifar10
    python benchmarks/quality.py --threat_model --methods=ucfp --tag=digits-attacks
    python benchmarks/quality.py --config=configs/ltrc.py:cifar10 --threat_model \
      --threat_base=lenet --config.dataset=imagefolder:../shared/data/cifar10-jpeg.tar.gz \
      --methods=c,rc,ltrc_paper,ucfp,mistakes --tag=cifar10-lenet-threat

The zoo is extended (config.zoo.extended) with channel-pruned, int8-quantised
and fine-tuned-on-other-data copies, and a scikit-learn MLP queried as a
label-only black box; `--threat_model` adds every attack of THREAT_ATTACKS
(pruning, fine-tuning, washing, new heads, quantisation, noise, distillation,
extraction, adversarial training; on CIFAR-10 one strength per family,
THREAT_ATTACKS_BY_DATASET) and, for digits and CIFAR-10 (an image folder of 32x32x3
images counts as CIFAR-10), the >= 20 THREAT_INNOCENTS (`--threat_base`: another base
of THREAT_BASES, with its references, attacks and innocents). A
derived copy below 0.85 x the base's test accuracy is listed as not useful: neither
a positive nor a miss. For each method: robustness R (over the magnitude-pruned
copies, as in the paper), transferability T, Uniqueness Score, ROC AUC and
TPR at 1% FPR of the match rate as a derived-vs-innocent score (all useful derived
copies), misses and false
alarms of `verify` (alpha = 1e-3; null rate = 95% upper bound of the other
innocents' mean match rate, leave-one-out), seconds, and every model's match rate
and p-value. Writes benchmarks/results/quality-<tag>.json, .md, -figures/. The methods
(and ablation rows), attacks and innocents are tables in benchmarks/quality_methods.py.

Resumable: every model is cached in the work directory, and so is every method's
fingerprint set (under a hash of its config, base model and references), so an
interrupted run picks up where it stopped. `total_seconds` sums the recorded
training times of every model and the generation times of every method: the
cost of the whole benchmark from an empty cache, however many runs it took.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks.common import write_results  # noqa: E402
from benchmarks.quality_cache import cache_path  # noqa: E402
from benchmarks.quality_methods import (  # noqa: E402
  METHODS,
  THREAT_BASES,
  apply_threat_model,
  perturbed_pool,
)
from benchmarks.quality_report import (  # noqa: E402
  combined_results,
  markdown,
  score_method,
  write_figures,
  zoo_table,
)
from configs.base import get_config as base_config  # noqa: E402
from configs.ltrc import paper_radius  # noqa: E402
from ucfp.core import progress  # noqa: E402
from ucfp.core.fingerprints import Fingerprints  # noqa: E402
from ucfp.core.generation import fingerprint  # noqa: E402
from ucfp.core.mistakes import mistake_fingerprints  # noqa: E402
from ucfp.evaluation.checks import validate_config  # noqa: E402
from ucfp.evaluation.data import load_dataset  # noqa: E402
from ucfp.evaluation.zoo import build_surrogates, build_zoo, restore_zoo  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltrc.py", "config[:preset]")
_WORKDIR = flags.DEFINE_string("workdir", "ucfp-work", "work directory (model cache)")
_METHODS = flags.DEFINE_list("methods", None, "subset of methods to run (default: all)")
_SKIP = flags.DEFINE_list("skip", [], "methods to leave out")
_TAG = flags.DEFINE_string("tag", None, "results name quality-<tag> (default: the dataset name)")
_EXTENDED = flags.DEFINE_bool(
  "extended",
  True,
  "add channel-pruned, int8, fine-tuned-on-other-data copies and a "
  "scikit-learn black-box innocent to the zoo (config.zoo.extended)",
)

_THREAT = flags.DEFINE_bool(
  "threat_model",
  False,
  "the threat model of issue #17: every attack of THREAT_ATTACKS (THREAT_ATTACKS_BY_DATASET "
  "where it has the dataset; unless --config.zoo.attacks gives some) and, where "
  "THREAT_INNOCENTS has the dataset, its >= 20 innocents",
)

_THREAT_BASE = flags.DEFINE_enum(
  "threat_base",
  None,
  list(THREAT_BASES),
  "with --threat_model: another base of THREAT_BASES (its model, references, attacks and "
  "innocents replace the config's), e.g. lenet: every attack on CIFAR-10 in < 3 h on 2 cores",
)

_CACHED_ONLY = flags.DEFINE_bool(
  "cached_only",
  False,
  "score the zoo as far as --workdir has it cached, training nothing (a build in progress; "
  "the owner's references and surrogates must be complete); the results say what is missing",
)

_KEY = flags.DEFINE_integer(
  "key",
  0,
  "generation key: 0 the config seed's (default); N > 0 folds N into it: the same zoo, "
  "other fingerprints (the spread of a method over keys)",
  lower_bound=0,
)

# RC's variant pruning range (the same in every preset), used by the paper's methods.
RC_PRUNE_RATE = tuple(base_config().robust.prune_rate)
# The surrogates that the ucfp_surrogates ablation switches on where the default has none.
SURROGATE_ABLATION = (0.8,)


def _is_ablation(name: str) -> bool:
  return METHODS[name][0].startswith("ablation")


def _override(config, overrides):
  c = config.copy_and_resolve_references()
  for key, value in overrides.items():
    if key.startswith("_"):  # benchmark-level options, not config fields
      continue
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  if overrides.get("_paper_variants"):  # RC's variants, as the paper's methods use them
    c.robust.prune_rate = RC_PRUNE_RATE
    c.robust.surrogates = ()
  if overrides.get("_surrogate_toggle"):
    c.robust.surrogates = () if c.robust.surrogates else SURROGATE_ABLATION
  if overrides.get("_prune_toggle"):
    is_rc = tuple(c.robust.prune_rate) == RC_PRUNE_RATE
    c.robust.prune_rate = (0.0, 0.5) if is_rc else RC_PRUNE_RATE
  if overrides.get("_highpass") == "paper":
    c.ltrc.radius = paper_radius(c.image_shape)
  elif overrides.get("_highpass") == "toggle":
    c.ltrc.radius = 0.0 if c.ltrc.radius > 0 else paper_radius(c.image_shape)
  if "_step_scale" in overrides:
    c.step_size = c.step_size * overrides["_step_scale"]
  if "_steps_scale" in overrides:
    c.steps = max(1, round(c.steps * overrides["_steps_scale"]))
  return c


def _references(zoo, base_arch: str, base_refs: float | None):
  """The owner's references, keeping `base_refs` of the base architecture's (a count,
  or a fraction if < 1; all if None) and all of the other architectures'."""
  refs = [m.model for m in zoo.reference]
  if base_refs is None:
    return refs
  same = [i for i, m in enumerate(refs) if m.name.split("-")[1] == base_arch]
  keep = int(base_refs) if base_refs >= 1 else max(1, round(base_refs * len(same)))
  return [m for i, m in enumerate(refs) if i not in same or same.index(i) < keep]


def _surrogates(zoo, cfg, config, data):
  """The method's surrogate models and the seconds to train those the zoo lacks (an
  ablation's surrogates differ from the default's)."""
  if cfg.method == "c":
    return [], 0.0
  if not cfg.robust.surrogates and not cfg.robust.surrogate_attacks:
    return [], 0.0
  same = ("surrogates", "surrogate_attacks")
  if all(tuple(cfg.robust[k]) == tuple(config.robust[k]) for k in same):
    return [m.model for m in zoo.surrogate], 0.0
  extra = build_surrogates(cfg, data, _WORKDIR.value)
  return [m.model for m in extra], sum(m.built_seconds for m in extra)


def generate_cached(
  workdir, cfg, zoo, refs, image_shape, surs=(), starts=None
) -> tuple[Fingerprints, float]:
  """Restores the method's fingerprints from the work directory, or generates and saves them.
  `starts`: the training images, read by methods with `init='data'`."""
  path = cache_path(workdir, cfg, zoo.base, refs, surs, key=_KEY.value)
  if os.path.exists(path):
    fps = Fingerprints.load(path)
    return fps, float(fps.meta["seconds"])
  key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0x5EED)
  if _KEY.value:
    key = jax.random.fold_in(key, _KEY.value)
  t = time.perf_counter()
  fps = fingerprint(
    zoo.base.model,
    cfg,
    key=key,
    reference=refs,
    surrogates=surs,
    image_shape=image_shape,
    checkpoint_dir=os.path.join(workdir, "generation"),  # an interrupted method resumes
    starts=starts if cfg.init == "data" else None,
  )
  seconds = time.perf_counter() - t
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Fingerprints(fps.x, fps.y, {**fps.meta, "seconds": seconds}).save(path)
  return fps, seconds


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  progress.show_progress()
  config = _CONFIG.value
  config.zoo.extended = _EXTENDED.value
  if _THREAT_BASE.value and not _THREAT.value:
    raise app.UsageError("--threat_base needs --threat_model")
  if _THREAT.value:
    try:
      apply_threat_model(config, _THREAT_BASE.value)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
  validate_config(config)
  data = load_dataset(config.dataset, cache_dir=os.path.join(_WORKDIR.value, "data"))
  missing = []
  if _CACHED_ONLY.value:
    zoo, missing = restore_zoo(config, data, _WORKDIR.value)
    owner = [j.name for j in missing if j.kind in ("reference", "surrogate")]
    if owner:  # the fingerprints themselves would differ from the complete run's
      raise app.UsageError(f"--cached_only: the owner's {owner} are not built yet")
  else:
    zoo = build_zoo(config, data, _WORKDIR.value)
  names = [n for n in (_METHODS.value or list(METHODS)) if n not in _SKIP.value]
  results, cache, skipped = {}, {}, {}
  for name in progress.bar(names, desc="methods", unit="method"):
    desc, overrides = METHODS[name]
    cfg = _override(config, overrides)
    refs = _references(zoo, config.model, overrides.get("_base_refs"))
    if overrides.get("_mistakes"):  # no generation: the base's own mistakes
      t = time.perf_counter()
      images, labels = data.train_x, data.train_y
      if overrides["_mistakes"] == "perturbed":
        images, labels = perturbed_pool(images, labels)
      try:
        fps = mistake_fingerprints(
          zoo.base.model, images, labels, reference=refs, num=cfg.num_fingerprints
        )
      except ValueError as e:  # a base that fits its training set has too few
        skipped[name] = str(e)
        progress.note(f"{name}: skipped: {e}")
        continue
      seconds, sur_seconds = time.perf_counter() - t, 0.0
    else:
      surs, sur_seconds = _surrogates(zoo, cfg, config, data)
      fps, seconds = generate_cached(
        _WORKDIR.value, cfg, zoo, refs, data.info.image_shape, surs, data.train_x
      )
    seconds += sur_seconds
    if overrides.get("_uint8"):  # the same fingerprints as ucfp, rounded: no new generation
      fps, seconds = fps.quantized(), (0.0 if "ucfp" in cache else seconds)
    cache[name] = seconds
    results[name] = score_method(fps, zoo, seconds)
    r = results[name]
    progress.note(
      f"{name}: R {r['robustness']:.3f} T {r['transferability']:.3f} "
      f"US {r['uniqueness_score']:.3f} misses {r['misses']} false alarms {r['false_alarms']} "
      f"({r['seconds']:.1f} s)"
    )
  if not results:
    raise SystemExit(f"no method ran: {skipped}")
  results = {n: results[n] for n in METHODS if n in results}  # table order, however run
  best = max(
    (n for n in results if not _is_ablation(n)),
    key=lambda n: results[n]["uniqueness_score"],
  )
  tag = _TAG.value or config.dataset.split(":")[0]
  model_seconds = sum(m.built_seconds for m in zoo.all())
  total = model_seconds + sum(cache.values())
  md = markdown(config.dataset, results, {n: METHODS[n][0] for n in results})
  if _KEY.value:  # under the title
    title, rest = md.split("\n\n", 1)
    md = f"{title}\n\nGeneration key {_KEY.value} (folded into the config seed's).\n\n{rest}"
  if missing:  # under the title
    title, rest = md.split("\n\n", 1)
    md = (
      f"{title}\n\n**Partial** (`--cached_only`): {len(missing)} models of this zoo were not "
      f"built yet and are left out: {', '.join(j.name for j in missing)}.\n\n{rest}"
    )
  if skipped:
    md += "\n\nNot run:\n\n" + "\n".join(f"- {n}: {why}" for n, why in skipped.items())
  ablation_seconds = sum(v for n, v in cache.items() if _is_ablation(n))
  md += (
    f"\n\nBest: **{best}**.\n\nCost from an empty cache: {total / 60:.1f} min "
    f"({model_seconds / 60:.1f} min training {len(zoo.all())} models, "
    f"{sum(cache.values()) / 60:.1f} min generating, of which {ablation_seconds / 60:.1f} min "
    f"for the ablation rows). Without the ablations: {(total - ablation_seconds) / 60:.1f} min."
    "\n\n" + zoo_table(zoo)
  )
  paths = write_results(
    f"quality-{tag}",
    {
      "dataset": config.dataset,
      "num_fingerprints": config.num_fingerprints,
      "key": _KEY.value,
      "methods": results,
      "combined": combined_results(results),
      "best": best,
      "descriptions": {n: METHODS[n][0] for n in results},
      "zoo": {
        m.name: {"kind": m.kind, "test_accuracy": m.test_accuracy, "train_seconds": m.built_seconds}
        for m in zoo.all()
      },
      "skipped": skipped,
      "complete": not missing,
      "missing": [j.name for j in missing],
      "model_seconds": model_seconds,
      "total_seconds": total,
      "ablation_seconds": ablation_seconds,
    },
    md,
  )
  paths = [*paths, *write_figures(paths[0])]
  print(md)
  print("wrote", *paths)


if __name__ == "__main__":
  app.run(main)
