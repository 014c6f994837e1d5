"""report.md: the main job's report as markdown, linking the figures of `figures.py`.

DIR/report.md            summary, the models table, the figures with a caption each
DIR/figures/<name>.png   figures.NAMES (a contract: notebooks read these paths)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ucfp.core.io import atomic_write_bytes
from ucfp.evaluation import figures

TITLES = {
  "match_rates": "Match rate per model",
  "match_vs_prune": "Match rate vs pruning rate",
  "roc": "ROC: derived copies vs innocents",
  "fingerprints": "Fingerprints",
  "spectrum": "Spectrum of the fingerprints vs the initial noise",
}
CAPTIONS = {
  "match_rates": "Every model's fraction of fingerprints classified as their label, grouped "
  "by kind; the dashed line is the match rate from which `verify` judges a suspect derived "
  "(alpha = 1e-3, null rate = 95% upper bound on the innocents' mean match rate).",
  "match_vs_prune": "Match rate of the magnitude-pruned, fine-tuned copies against their "
  "pruning rate (the paper's robustness figure), with the innocents' mean match rate (dotted) "
  "and the verify threshold (dashed).",
  "roc": "The match rate as a score separating the derived copies (pruned and other derived) "
  "from the innocents, with its AUC; the star is the verify threshold's operating point.",
  "fingerprints": "Fingerprint images with the label each was generated for.",
  "spectrum": "Mean magnitude of the 2-D Fourier transform (log scale) of the fingerprints "
  "and of uniform noise like their starting points, and the radial profiles; LTRC's "
  "high-pass filter removes frequencies below its radius from every update.",
}


def _yes(flag: bool) -> str:
  return "**yes**" if flag else "no"


def has_mistakes_set(report: Mapping) -> bool:
  """Whether the report evaluated a mistakes set (its columns and summary apply)."""
  return "uniqueness_score" in report.get("mistakes", {})


def mistakes_match(report: Mapping, kind: str, e: Mapping) -> float | None:
  """A table row's match rate on the mistakes set (None where the row has none)."""
  return (
    report["mistakes"]["base"]["match_rate"] if kind == "base" else e.get("mistakes_match_rate")
  )


def combined_counts(report: Mapping) -> tuple[int, int, int, int]:
  """(useful derived copies judged derived by both sets together, useful copies,
  innocents judged derived, innocents)."""
  copies = [e for k in ("pruned", "derived") for e in report.get(k, []) if e.get("useful", True)]
  inn = report["unassociated"]
  hits = sum(e["combined"]["derived"] for e in copies)
  return hits, len(copies), sum(e["combined"]["derived"] for e in inn), len(inn)


def _kinds_table(report: Mapping) -> list[str]:
  both = has_mistakes_set(report)
  lines = [
    "| model | kind | test acc | match | p-value | derived |"
    + (" mistakes | both |" if both else ""),
    "|---|---|---|---|---|---|" + ("---|---|" if both else ""),
  ]
  for kind, e in figures.model_entries(report):
    p = f"{e['p_value']:.2g}" if "p_value" in e else ""
    d = _yes(e["derived"]) if "derived" in e else ""
    row = f"| {e['name']} | {kind if e.get('useful', True) else f'{kind} (not useful)'} | "
    row += f"{e['test_accuracy']:.4f} | {e['match_rate']:.2f} | {p} | {d} |"
    if both:
      m, c = mistakes_match(report, kind, e), e.get("combined")
      row += f" {'' if m is None else f'{m:.2f}'} | {'' if c is None else _yes(c['derived'])} |"
    lines.append(row)
  return lines


def _mistakes_lines(report: Mapping) -> list[str]:
  """The mistakes set's summary bullet (or why there is none)."""
  m = report.get("mistakes", {})
  if "skipped" in m:
    return [f"- No mistakes set: {m['skipped']}"]
  if not has_mistakes_set(report):
    return []
  hits, copies, alarms, innocents = combined_counts(report)
  return [
    f"- Mistakes set (`{os.path.basename(m['fingerprints'])}`, {m['num_fingerprints']} of the "
    f"base's mistakes on its training images that no reference model shares): R = "
    f"{m['robustness']:.3f}, T = {m['transferability']:.3f}. Both sets, each at alpha / 2 "
    f"(`ucfp.verify`'s default with this report; column *both*): "
    f"{hits} of {copies} derived copies, {alarms} of {innocents} innocents flagged."
  ]


def markdown(report: Mapping, figure_paths: Mapping[str, str]) -> str:
  """report.md's text. figure_paths: name -> path relative to report.md (figures.NAMES order)."""
  base = report["base"]
  n = int(report["num_fingerprints"])
  lines = [
    f"# ucfp report: {report['method']} fingerprints on {report['dataset']}",
    "",
    f"{n} `{report['method']}` fingerprints of the base model `{base['name']}` (test accuracy "
    f"{base['test_accuracy']:.4f}), saved in `{os.path.basename(report.get('fingerprints', ''))}`"
    "; every number below is also in `report.json`.",
    "",
  ]
  if "uniqueness_score" in report:
    null = figures.null_rate(report)
    thr = figures.decision_threshold(n, null)
    verdict = f"match rate >= {thr:.2f}" if thr is not None else "no match rate (null rate 1)"
    innocents = report["unassociated"]
    copies = report["pruned"] + report.get("derived", [])
    derived = [e for e in copies if e.get("useful", True)]  # the others are no theft
    lines += [
      f"- Robustness R = **{report['robustness']:.3f}** (mean match rate of "
      f"{len(report['pruned'])} pruned copies)",
      f"- Transferability T = **{report['transferability']:.3f}** (mean match rate of "
      f"{len(innocents)} innocents)",
      f"- Uniqueness Score US = R - T = **{report['uniqueness_score']:.3f}**",
      f"- `verify` at alpha = 1e-3 with null rate {null:.3f} (95% upper bound on the "
      f"innocents' mean match rate) judges a suspect derived at a {verdict}.",
      f"- Leave-one-out verdicts (each model against the other innocents' null rate): "
      f"{sum(e['derived'] for e in derived)} of {len(derived)} derived copies flagged"
      + (
        f" ({len(copies) - len(derived)} not useful, no theft)"
        if len(copies) > len(derived)
        else ""
      )
      + ", "
      f"{sum(e['derived'] for e in innocents)} of {len(innocents)} innocents flagged.",
      *_mistakes_lines(report),
      "",
      *_kinds_table(report),
      "",
    ]
    if report.get("reference"):
      lines += [
        "Reference models are the owner's, used by the low-transferability term during "
        "generation: their low match rates are by construction, not evidence.",
        "",
      ]
  else:
    lines += ["Evaluation was off (`config.evaluate=False`): no match rates.", ""]
  if figure_paths:
    lines += ["## Figures", ""]
  for name, rel in figure_paths.items():
    lines += [f"### {TITLES[name]}", "", f"![{TITLES[name]}]({rel})", "", CAPTIONS[name], ""]
  seconds = report.get("seconds", {})
  if seconds:
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    lines += [f"Seconds: {parts}.", ""]
  return "\n".join(lines)


def write_report(report: Mapping, x: np.ndarray, y: np.ndarray, workdir: str):
  """Writes workdir/figures/<name>.png and workdir/report.md (atomically).

  x: (N, H, W, C) fingerprints in [0, 1]; y: (N,) labels. Returns (report.md path,
  name -> figure path).
  """
  paths = figures.report_figures(report, x, y, os.path.join(workdir, "figures"))
  rel = {name: f"figures/{os.path.basename(p)}" for name, p in paths.items()}
  md_path = os.path.join(workdir, "report.md")
  atomic_write_bytes(md_path, markdown(report, rel).encode())
  return md_path, paths
