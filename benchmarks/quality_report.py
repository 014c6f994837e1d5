"""Scores and tables of benchmarks/quality.py: per-method R, T, US, ROC AUC, TPR at 1%
FPR, misses and false alarms, the markdown report, and its figures.

    python benchmarks/quality_report.py benchmarks/results/quality-<tag>.json

draws the figures of an existing results file into quality-<tag>-figures/ and prints
each method's ROC AUC over all useful derived copies, the weight copies and the students,
and the misses and false alarms of the fingerprint sets tested together (COMBINED).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import provenance  # noqa: E402
from ucfp.core import scoring  # noqa: E402
from ucfp.core.io import atomic_write_bytes  # noqa: E402
from ucfp.evaluation import figures  # noqa: E402
from ucfp.pipeline import evaluate  # noqa: E402

# The methods of the paper's figure (and ucfp's default); ablations are left out.
FIGURE_METHODS = ("c", "rc", "ltrc_paper", "ucfp")


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


def is_student(entry: dict) -> bool:
  """A per_model entry of a copy trained from scratch on the base's outputs (distilled,
  extracted), which inherits none of its weights."""
  return entry.get("attack", "").split(":")[0] in ("distill", "extract")


def auc_split(per_model: dict) -> dict:
  """ROC AUC of the match rate, useful derived copies vs innocents: over all of them,
  over the copies that inherit the base's weights (pruned, fine-tuned, quantised, ...),
  and over the students alone (nan where a group is empty)."""
  neg = [e["match_rate"] for e in per_model.values() if e["kind"] == "unassociated"]
  pos = [e for e in per_model.values() if e["kind"] != "unassociated" and e.get("useful", True)]
  groups = {
    "auc": pos,
    "auc_weight_copies": [e for e in pos if not is_student(e)],
    "auc_students": [e for e in pos if is_student(e)],
  }
  return {
    k: roc_auc([e["match_rate"] for e in g], neg) if g and neg else float("nan")
    for k, g in groups.items()
  }


def robustness_split(per_model: dict) -> dict:
  """R over every useful derived copy (pruned and every other attack), beside the paper's
  R over the pruned copies, and the Uniqueness Score with it (R_all - T)."""
  rates = [
    e["match_rate"]
    for e in per_model.values()
    if e["kind"] != "unassociated" and e.get("useful", True)
  ]
  innocents = [e["match_rate"] for e in per_model.values() if e["kind"] == "unassociated"]
  r_all = float(np.mean(rates)) if rates else float("nan")
  t = float(np.mean(innocents)) if innocents else float("nan")
  return {"robustness_all": r_all, "uniqueness_score_all": r_all - t}


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
        **({"rate": e["rate"]} if "rate" in e else {}),
      }
  return {
    "robustness": rep["robustness"],
    "transferability": rep["transferability"],
    "uniqueness_score": rep["uniqueness_score"],
    **robustness_split(per_model),
    **auc_split(per_model),
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
    "| method | R | T | US | R / US over every attack | AUC | AUC weight copies / students | "
    "TPR@1%FPR | misses | false alarms | seconds |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    lines.append(
      f"| {name}: {descriptions[name]} | {r['robustness']:.3f} | {r['transferability']:.3f} | "
      f"**{r['uniqueness_score']:.3f}** | {r['robustness_all']:.3f} / "
      f"{r['uniqueness_score_all']:.3f} | {r['auc']:.3f} | {r['auc_weight_copies']:.3f} / "
      f"{r['auc_students']:.3f} | {r['tpr_at_1pct_fpr']:.2f} | "
      f"{r['misses']} | {r['false_alarms']} | {r['seconds']:.1f} |"
    )
  lines += [
    "",
    "R (as in the paper): the mean match rate of the magnitude-pruned copies; R over every "
    "attack: of every useful derived copy (a copy below 0.85x the base's test accuracy is "
    "left out), and US = that R - T. "
    "AUC: the match rate as a score of every useful derived copy vs the innocents; weight "
    "copies: the copies that inherit the base's weights (pruned, fine-tuned, quantised, new "
    "head, adversarially fine-tuned); students: distilled and extracted copies, trained "
    "from scratch on the base's outputs.",
  ]
  names = list(next(iter(results.values()))["per_model"])
  lines += [
    "",
    "Per attack kind: useful copies detected / useful copies of all copies, and the lowest "
    "match rate among the useful ones (a copy below 0.85x the base's test accuracy is not "
    "useful: neither a hit nor a miss):",
    "",
    kind_table(results),
  ]
  both = combined_results(results)
  if both:
    lines += [
      "",
      "Fingerprint sets tested together (a suspect is derived when any set's p-value is "
      "below alpha / the number of sets; misses and false alarms over the same models):",
      "",
      kind_table(both),
      "",
      *(
        f"{n}: {r['misses']} misses, {r['false_alarms']} false alarms, ROC AUC of -log p "
        f"{r['auc']:.3f}."
        for n, r in both.items()
      ),
    ]
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


# Attack kinds of the per-kind summary, by the attack spec's name (pruned copies of the
# paper's protocol have no spec: pruning).
ATTACK_KINDS = {
  "pruning": ("prune_global", "prune_layer", "prune_channel", "fine_prune"),
  "fine-tuning": ("finetune_all", "finetune_last", "wash"),
  "new head": ("new_head",),
  "quantisation / noise": ("quant", "noise"),
  "adversarial fine-tuning": ("advtrain",),
  "distillation": ("distill",),
  "extraction": ("extract",),
}


def attack_kind(entry: dict) -> str | None:
  """The ATTACK_KINDS key of a per_model entry (`other` for an attack it does not list);
  None for an innocent."""
  if entry["kind"] == "unassociated":
    return None
  name = entry.get("attack", "prune_global").split(":")[0]
  return next((k for k, names in ATTACK_KINDS.items() if name in names), "other")


def kind_table(results: dict) -> str:
  """Per method (rows) and attack kind (columns): useful copies detected by `verify` /
  useful copies, and the lowest match rate among them; innocents: false alarms and the
  highest match rate."""
  per_model = next(iter(results.values()))["per_model"]
  kinds = [
    k for k in (*ATTACK_KINDS, "other") if any(attack_kind(e) == k for e in per_model.values())
  ]
  lines = [
    "| method | " + " | ".join(kinds) + " | innocents: false alarms, highest |",
    "|---|" + "---|" * (len(kinds) + 1),
  ]
  for name, r in results.items():
    cells = []
    for k in kinds:
      es = [e for e in r["per_model"].values() if attack_kind(e) == k]
      useful = [e for e in es if e.get("useful", True)]
      low = ""
      if useful and all("match_rate" in e for e in useful):
        low = f", {min(e['match_rate'] for e in useful):.2f}"
      cells.append(f"{sum(e['derived'] for e in useful)}/{len(useful)} of {len(es)}{low}")
    inn = [e for e in r["per_model"].values() if attack_kind(e) is None]
    rates = [e["match_rate"] for e in inn if "match_rate" in e]
    top = f", {max(rates):.2f}" if rates else ""
    cells.append(f"{sum(e['derived'] for e in inn)} of {len(inn)}{top}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


# Fingerprint sets a suspect is tested against together (each at alpha / len): ucfp's
# examples for the copies that inherit the base's weights, the base's own mistakes for
# its students.
COMBINED = {"ucfp+mistakes": ("ucfp", "mistakes")}


def combine(results: dict, names, alpha: float = 1e-3) -> dict:
  """One verdict per model from several methods' results (Bonferroni): derived when any
  set's p-value is below alpha / len(names). Returns {"per_model": {name: {kind, useful,
  attack, p_value (the smallest, times len(names), at most 1), derived}}, "misses",
  "false_alarms", "auc"} over the models every set scored; auc: ROC AUC of -log p,
  useful copies vs innocents."""
  sets = [results[n]["per_model"] for n in names]
  common = [m for m in sets[0] if all(m in s for s in sets)]
  per_model = {}
  for m in common:
    e = sets[0][m]
    p = scoring.combined_p_value([s[m]["p_value"] for s in sets])
    keep = {k: e[k] for k in ("kind", "attack", "useful") if k in e}
    per_model[m] = {**keep, "p_value": p, "derived": bool(p < alpha)}
  inn = [e for e in per_model.values() if e["kind"] == "unassociated"]
  thefts = [e for e in per_model.values() if e["kind"] != "unassociated" and e.get("useful", True)]
  score = lambda es: [-np.log(max(e["p_value"], 1e-300)) for e in es]
  return {
    "per_model": per_model,
    "auc": roc_auc(score(thefts), score(inn)) if thefts and inn else float("nan"),
    "misses": sum(not e["derived"] for e in thefts),
    "false_alarms": sum(e["derived"] for e in inn),
  }


def combined_results(results: dict) -> dict:
  """combine() for each COMBINED entry whose methods all ran."""
  return {
    name: combine(results, parts)
    for name, parts in COMBINED.items()
    if all(p in results for p in parts)
  }


def zoo_table(zoo) -> str:
  rows = [
    f"| {m.name} | {m.kind} | {m.test_accuracy:.4f} | {m.built_seconds:.0f} |" for m in zoo.all()
  ]
  return "| model | kind | test acc | train seconds |\n|---|---|---|---|\n" + "\n".join(rows)


def _as_report(result: dict, n: int) -> dict:
  """One method's results as a report dict of `ucfp.evaluation.figures`."""
  rep = {"num_fingerprints": n, "pruned": [], "derived": [], "unassociated": []}
  for name, e in result["per_model"].items():
    entry = {"name": name, **e}
    if e["kind"] == "pruned" and "rate" not in entry:  # results from before rates were kept
      entry["rate"] = float(name.rsplit("-", 1)[1])
    rep[e["kind"]].append(entry)
  return rep


def write_figures(json_path: str) -> list[str]:
  """Draws a quality results file's figures into quality-<tag>-figures/ beside it, and a
  report.md there: match rate vs pruning rate and ROC per method (FIGURE_METHODS), and
  every model's match rate under the best method. Returns the paths written."""
  q = json.load(open(json_path))
  folder = json_path[: -len(".json")] + "-figures"
  results, n, best = q["methods"], int(q["num_fingerprints"]), q["best"]
  tag = os.path.basename(json_path)[len("quality-") : -len(".json")]
  methods = [m for m in FIGURE_METHODS if m in results] or list(results)
  reps = {m: _as_report(results[m], n) for m in set(methods) | {best}}
  path = {k: os.path.join(folder, f"{k}.png") for k in ("match_vs_prune", "roc", "match_rates")}
  figures.match_vs_prune_figure(
    {m: figures.prune_curve(reps[m]) for m in methods},
    path["match_vs_prune"],
    title=f"Robustness to pruning: {tag}",
  )
  figures.roc_figure(
    {m: figures.roc_scores(reps[m]) for m in methods},
    path["roc"],
    title=f"Derived copies vs innocents: {tag}",
  )
  figures.match_rates_figure(
    reps[best], path["match_rates"], title=f"Match rate per model: {best} on {tag}"
  )
  prov = provenance()
  md = "\n".join(
    [
      f"# Fingerprint quality figures: {q['dataset']}",
      "",
      f"From `{os.path.basename(json_path)}` (command `{q['command']}`, commit "
      f"`{q['commit']}`); methods: {', '.join(methods)}. Drawn by `{prov['command']}` at "
      f"commit `{prov['commit']}`.",
      "",
      "![match rate vs pruning rate](match_vs_prune.png)",
      "",
      "Match rate of the magnitude-pruned, fine-tuned copies against their pruning rate, one "
      "line per method (the paper's robustness figure), with each method's innocents' mean "
      "match rate dotted.",
      "",
      "![ROC](roc.png)",
      "",
      "The match rate as a score of derived copies (pruned and other derived) vs innocents, "
      "one ROC curve per method (overlapping curves have the same AUC).",
      "",
      "![match rate per model](match_rates.png)",
      "",
      f"Every model's match rate under `{best}`, the best method; the dashed line is where "
      "`verify` (alpha = 1e-3, null rate = 95% upper bound on the innocents' mean) flips.",
      "",
    ]
  )
  md_path = os.path.join(folder, "report.md")
  atomic_write_bytes(md_path, md.encode())
  return [*path.values(), md_path]


if __name__ == "__main__":
  for arg in sys.argv[1:]:
    print("wrote", *write_figures(arg))
    results = json.load(open(arg))["methods"]
    for name, r in results.items():
      scores = {**robustness_split(r["per_model"]), **auc_split(r["per_model"])}
      split = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
      print(f"{name}: {split}")
    for name, r in combined_results(results).items():
      print(f"{name}: {r['misses']} misses, {r['false_alarms']} false alarms, auc {r['auc']:.3f}")
