"""Scores and tables of benchmarks/quality.py: per-method R, T, US, ROC AUC, TPR at 1%
FPR, misses and false alarms, and the markdown report."""

from __future__ import annotations

import numpy as np

from ucfp.pipeline import evaluate


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
  # a copy that lost the base's accuracy is no theft: neither a positive nor a miss
  thefts = [e for e in derived if e.get("useful", True)]
  pos = [e["match_rate"] for e in thefts]
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
        **({"attack": e["attack"], "useful": e["useful"]} if "attack" in e else {}),
      }
  return {
    "robustness": rep["robustness"],
    "transferability": rep["transferability"],
    "uniqueness_score": rep["uniqueness_score"],
    "auc": roc_auc(pos, neg),
    "tpr_at_1pct_fpr": tpr_at_fpr(pos, neg),
    "misses": sum(not e["derived"] for e in thefts),
    "not_useful": sorted(e["name"] for e in derived if not e.get("useful", True)),
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
    kind = first["kind"] + ("" if first.get("useful", True) else " (not useful)")
    lines.append(f"| {m} | {kind} | {first['test_accuracy']:.4f} | {cells} |")
  return "\n".join(lines)


def zoo_table(zoo) -> str:
  rows = [
    f"| {m.name} | {m.kind} | {m.test_accuracy:.4f} | {m.built_seconds:.0f} |" for m in zoo.all()
  ]
  return "| model | kind | test acc | train seconds |\n|---|---|---|---|\n" + "\n".join(rows)
