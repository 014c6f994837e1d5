"""Fingerprint quality of C, RC, the paper's LTRC and ucfp's LTRC on one zoo.

    python benchmarks/quality.py --config=configs/ltrc.py[:digits] [--workdir=ucfp-work]

The zoo is extended (config.zoo.extended) with channel-pruned, int8-quantised
and fine-tuned-on-other-data copies, and a scikit-learn MLP queried as a
label-only black box. For each method: robustness R (over the magnitude-pruned
copies, as in the paper), transferability T, Uniqueness Score, ROC AUC and
TPR at 1% FPR of the match rate as a derived-vs-innocent score (all derived
copies), misses and false
alarms of `verify` (alpha = 1e-3; null rate = 95% upper bound of the other
innocents' mean match rate, leave-one-out), seconds, and every model's match rate
and p-value. Writes benchmarks/results/quality-<dataset>.json and .md.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks.common import write_results  # noqa: E402
from ucfp.data import load_dataset  # noqa: E402
from ucfp.generation import fingerprint  # noqa: E402
from ucfp.pipeline import evaluate  # noqa: E402
from ucfp.zoo import build_zoo  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltrc.py", "config[:preset]")
_WORKDIR = flags.DEFINE_string("workdir", "ucfp-work", "work directory (model cache)")
_METHODS = flags.DEFINE_list("methods", None, "subset of methods to run (default: all)")
_EXTENDED = flags.DEFINE_bool(
  "extended",
  True,
  "add channel-pruned, int8, fine-tuned-on-other-data copies and a "
  "scikit-learn black-box innocent to the zoo (config.zoo.extended)",
)

# name -> (description, config overrides). "ucfp" is configs/ltrc.py as shipped.
METHODS = {
  "c": ("C-examples (paper)", {"method": "c"}),
  "rc": ("RC-examples (paper)", {"method": "rc"}),
  "ltrc_paper": (
    "LTRC-examples (paper: RC + high-pass filter)",
    {"method": "ltrc", "ltrc.term": "none"},
  ),
  "ucfp": ("ucfp LTRC (+ reference-model term)", {}),
  # Ablations of ucfp's recipe (the levers), each one change:
  "ucfp_3refs": (
    "ablation: 3 reference models (1 of the base architecture) instead of 7",
    {"_references": ("cnn_small-s1001", "mlp-s1002", "lenet-s1003")},
  ),
  "ucfp_no_highpass": ("ablation: no high-pass filter (radius 0)", {"ltrc.radius": 0.0}),
  "ucfp_weight1": ("ablation: reference-term weight 1 instead of 3", {"ltrc.weight": 1.0}),
  "ucfp_uint8": (
    "ablation: ucfp fingerprints rounded to uint8 (as an API receives them)",
    {"_uint8": True},
  ),
}


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
  return c


def roc_auc(pos, neg) -> float:
  """P(score of a derived model > score of an innocent), ties count half."""
  pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
  return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def tpr_at_fpr(pos, neg, fpr=0.01) -> float:
  """Largest TPR at a threshold whose FPR on the innocents is <= fpr."""
  best = 0.0
  for thr in sorted(set(pos) | set(neg) | {1.01}):
    if np.mean(np.asarray(neg) >= thr) <= fpr:
      best = max(best, float(np.mean(np.asarray(pos) >= thr)))
  return best


def score_method(fps, zoo, seconds) -> dict:
  rep = evaluate(fps, zoo)
  derived = rep["pruned"] + rep.get("derived", [])
  pos = [e["match_rate"] for e in derived]
  neg = [e["match_rate"] for e in rep["unassociated"]]
  per_model = {}
  for kind in ("pruned", "derived", "unassociated"):
    for e in rep.get(kind, []):
      per_model[e["name"]] = {
        "kind": kind,
        "test_accuracy": e["test_accuracy"],
        "match_rate": e["match_rate"],
        "p_value": e["p_value"],
        "derived": e["derived"],
      }
  return {
    "robustness": rep["robustness"],
    "transferability": rep["transferability"],
    "uniqueness_score": rep["uniqueness_score"],
    "auc": roc_auc(pos, neg),
    "tpr_at_1pct_fpr": tpr_at_fpr(pos, neg),
    "misses": sum(not e["derived"] for e in derived),
    "false_alarms": sum(e["derived"] for e in rep["unassociated"]),
    "seconds": seconds,
    "steps_run": fps.meta["steps_run"],
    "per_model": per_model,
  }


def markdown(dataset, results, descriptions) -> str:
  lines = [
    f"# Fingerprint quality: {dataset}\n",
    "| method | R | T | US | AUC | TPR@1%FPR | misses | false alarms | seconds |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    lines.append(
      f"| {name}: {descriptions[name]} | {r['robustness']:.3f} | {r['transferability']:.3f} | "
      f"**{r['uniqueness_score']:.3f}** | {r['auc']:.3f} | {r['tpr_at_1pct_fpr']:.2f} | "
      f"{r['misses']} | {r['false_alarms']} | {r['seconds']:.1f} |"
    )
  names = list(next(iter(results.values()))["per_model"])
  lines += [
    "",
    "Match rate per model:",
    "",
    "| model | kind | test acc | " + " | ".join(results) + " |",
    "|---|---|---|" + "---|" * len(results),
  ]
  for m in names:
    first = next(iter(results.values()))["per_model"][m]
    cells = " | ".join(f"{r['per_model'][m]['match_rate']:.2f}" for r in results.values())
    lines.append(f"| {m} | {first['kind']} | {first['test_accuracy']:.4f} | {cells} |")
  return "\n".join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  config.zoo.extended = _EXTENDED.value
  data = load_dataset(config.dataset, cache_dir=os.path.join(_WORKDIR.value, "data"))
  zoo = build_zoo(config, data, _WORKDIR.value)
  names = _METHODS.value or list(METHODS)
  results, cache = {}, {}
  for name in names:
    desc, overrides = METHODS[name]
    cfg = _override(config, overrides)
    refs = [m.model for m in zoo.reference]
    if "_references" in overrides:
      refs = [m for m in refs if m.name.split("-", 1)[1] in overrides["_references"]]
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 0x5EED)
    t = time.perf_counter()
    if overrides.get("_uint8") and "ucfp" in cache:
      fps, seconds = cache["ucfp"][0].quantized(), cache["ucfp"][1]
    else:
      fps = fingerprint(
        zoo.base.model, cfg, key=key, reference=refs, image_shape=data.info.image_shape
      )
      fps = fps.quantized() if overrides.get("_uint8") else fps
      seconds = time.perf_counter() - t
    cache[name] = (fps, seconds)
    results[name] = score_method(fps, zoo, seconds)
    r = results[name]
    print(
      f"{name}: R {r['robustness']:.3f} T {r['transferability']:.3f} "
      f"US {r['uniqueness_score']:.3f} ({r['seconds']:.1f} s)",
      flush=True,
    )
  best = max(
    (n for n in results if not METHODS[n][0].startswith("ablation")),
    key=lambda n: results[n]["uniqueness_score"],
  )
  dataset = config.dataset.split(":")[0]
  md = markdown(config.dataset, results, {n: METHODS[n][0] for n in results})
  md += f"\n\nBest: **{best}**.\n"
  paths = write_results(
    f"quality-{dataset}",
    {
      "dataset": config.dataset,
      "num_fingerprints": config.num_fingerprints,
      "methods": results,
      "best": best,
      "descriptions": {n: METHODS[n][0] for n in results},
      "zoo": {m.name: {"kind": m.kind, "test_accuracy": m.test_accuracy} for m in zoo.all()},
    },
    md,
  )
  print(md)
  print("wrote", *paths)


if __name__ == "__main__":
  app.run(main)
