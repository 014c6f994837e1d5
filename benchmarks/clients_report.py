"""The markdown tables of benchmarks/clients.py's results."""

from __future__ import annotations

from benchmarks.client_methods import METHODS

STUDENTS = ("distill", "extract")


def missed_copies(run: dict) -> list:
  """The useful pruned, int8 and fine-tuned copies (not the students) a run missed."""
  return [
    d
    for d, v in run["derived"].items()
    if v["useful"] and not v["detected"] and not d.startswith(STUDENTS)
  ]


def _row(setup: str, name: str, run: dict) -> str:
  useful = {d: v for d, v in run["derived"].items() if v["useful"]}
  missed = missed_copies(run)
  students = ", ".join(
    f"{d} {v['match_rate']:.2f}{'' if v['detected'] else ' (missed)'}"
    for d, v in useful.items()
    if d.startswith(STUDENTS)
  )
  method, k = name.split("/K=")
  return (
    f"| {setup} | {method} | {k} | {run['robustness']:.3f} | {run['transferability']:.3f} | "
    f"**{run['uniqueness_score']:.3f}** | {run['max_innocent']:.2f} | {len(run['false_alarms'])} | "
    f"{', '.join(missed) or 'none'} | {students} |"
  )


def markdown(out: dict, dataset: str) -> str:
  """Per setup, method and K: R, T, US, the largest innocent match, false alarms, the
  missed pruned / quantised / fine-tuned copies, and the students' match rates."""
  lines = [
    f"# Client models: {dataset}",
    "",
    "Models ucfp did not train (benchmarks/client_models.py: the user's own Flax modules",
    "and plain optax loops), each with its derived copies, innocents and K reference",
    "models of the user's choosing. R: mean match of the useful pruned copies; T: mean",
    "match of the innocents; false alarms: innocents judged derived with the null rate",
    "from the other innocents (leave-one-out Clopper-Pearson bound, alpha 1e-3); missed:",
    "useful pruned / int8 / fine-tuned copies not detected (null rate from all",
    "innocents). Students (distilled, label-extracted) are listed with their match rate.",
    "",
    "| setup | method | K | R | T | US | max innocent | false alarms | missed copies | students |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for setup, res in out["setups"].items():
    by_method: dict[str, list[str]] = {}
    for name in res["runs"]:
      by_method.setdefault(name.split("/K=")[0], []).append(name)
    for names in by_method.values():
      runs = [res["runs"][n] for n in names]
      if len(runs) > 1 and all(r == runs[0] for r in runs):  # K does not enter (no term)
        method = names[0].split("/K=")[0]
        lines.append(_row(setup, f"{method}/K=any", runs[0]))
        continue
      lines += [_row(setup, n, res["runs"][n]) for n in names]
  skipped = [
    (s, n, why) for s, res in out["setups"].items() for n, why in res.get("skipped", {}).items()
  ]
  if skipped:
    lines += ["", "Not run:", ""] + [f"- {s} {n}: {why}" for s, n, why in skipped]
  lines += ["", "## Models", ""]
  for setup, res in out["setups"].items():
    accs = ", ".join(f"{n} {a:.3f}" for n, a in res["test_accuracy"].items())
    lines.append(f"- **{setup}** (trained in {res['train_seconds']:.0f} s): {accs}")
  used = sorted({n.split("/K=")[0] for r in out["setups"].values() for n in r["runs"]})
  lines += ["", "## Methods", ""] + [f"- `{m}`: {METHODS[m][0]}" for m in used]
  lines += ["", f"Total {out['total_seconds'] / 60:.1f} min."]
  if not out.get("complete", True):
    lines += ["", f"Partial run: only {', '.join(out['setups'])} measured so far."]
  return "\n".join(lines)


def label_shares(labels, num_classes: int):
  """(num_classes,) share of each label among (N,) labels."""
  import numpy as np

  return np.bincount(np.asarray(labels), minlength=num_classes) / len(labels)


def sink_markdown(out: dict, tag: str) -> str:
  """The table of benchmarks/clients_sink.py's results."""
  lines = [
    f"# Client models: {tag}, the labels innocents read on the fingerprints",
    "",
    "configs/own.py's fingerprints per reference penalty (`ltrc.ref_loss`). Per innocent:",
    "match rate, the target classes it follows (>= half of their fingerprints), its most",
    "common label on the fingerprints (`sink`) and that label's share. Set sink: the",
    "label most given over all innocents (mean share). Null rate from the innocents",
    "(leave-one-out), alpha 1e-3.",
    "",
    "| setup | K | ref_loss | R | T | US | set sink (share) | false alarms | per innocent:"
    " match, follows, sink (share) |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in out["rows"]:
    per = "; ".join(
      f"{name} {v['match_rate']:.2f} {v['follows']} {v['sink']} ({v['sink_share']:.2f})"
      for name, v in r["innocents"].items()
    )
    lines.append(
      f"| {r['setup']} | {r['k']} | {r['ref_loss']} | {r['robustness']:.3f} |"
      f" {r['transferability']:.3f} | {r['uniqueness_score']:.3f} | {r['set_sink']}"
      f" ({r['set_sink_share']:.2f}) | {', '.join(r['false_alarms']) or 'none'} | {per} |"
    )
  lines += ["", f"Total: {out['total_seconds'] / 60:.1f} min."]
  return "\n".join(lines)
