"""The report's figures as PNG files: pure functions of a report dict and fingerprints.

Drawn with matplotlib's object API (`Figure` + `FigureCanvasAgg`), never pyplot, so
rendering is headless and leaves a user's matplotlib state (backend, open figures,
rcParams) untouched. Every file is written whole or not at all (`ucfp.core.io`).

A report dict is `report.json`'s (see `ucfp.pipeline.evaluate`): `num_fingerprints`,
`base`, `reference`, `pruned`, `derived`, `unassociated` (lists of `name`,
`match_rate`, and `rate` for pruned copies), `config`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from sklearn.metrics import roc_auc_score, roc_curve

from ucfp.core import scoring
from ucfp.core.io import atomic_write_bytes
from ucfp.core.spectral import frequency_radius

# The main job's figures, written as DIR/figures/<name>.png (a contract: notebooks read them).
NAMES = ("match_rates", "match_vs_prune", "roc", "fingerprints", "spectrum")
ALPHA = 1e-3  # the significance level of `verify` that the figures mark
KINDS = ("base", "reference", "surrogate", "validator", "pruned", "derived", "unassociated")
KIND_LABELS = {
  "base": "base (the owner's model)",
  "reference": "reference (owner's, used in generation)",
  "surrogate": "surrogate (owner's pruned copy)",
  "validator": "validator (owner's held-out pruned copy)",
  "pruned": "pruned + fine-tuned copies",
  "derived": "other derived copies",
  "unassociated": "innocents (independent models)",
}
NOT_USEFUL_LABEL = "not useful: below 0.85x the base's accuracy"
KIND_COLORS = {
  "base": "#222222",
  "reference": "#999999",
  "surrogate": "#bbbbbb",
  "validator": "#dddddd",
  "pruned": "#1f77b4",
  "derived": "#17becf",
  "unassociated": "#d62728",
}
DPI = 110


def _new(width: float, height: float, **kw) -> Figure:
  fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kw)
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=DPI)
  atomic_write_bytes(path, buf.getvalue())
  return path


def null_rate(report: Mapping) -> float:
  """The 95% upper bound on the innocents' mean match rate (all of them): the null rate a
  new suspect would be verified against."""
  rates = [e["match_rate"] for e in report["unassociated"]]
  return scoring.null_rate_upper_bound(rates, int(report["num_fingerprints"]))


def decision_threshold(n: int, null: float, alpha: float = ALPHA) -> float | None:
  """The match rate k/n at which `verify` flips: the smallest k with
  `P(Binomial(n, null) >= k) < alpha`; None when no k in [0, n] is significant."""
  for k in range(n + 1):
    if scoring.binomial_p_value(k, n, null) < alpha:
      return k / n
  return None


def model_entries(report: Mapping) -> list[tuple[str, dict]]:
  """(kind, entry) of every model in the report that has a match rate, in KINDS order."""
  out = []
  for kind in KINDS:
    items = report.get(kind, [])
    for e in [items] if isinstance(items, Mapping) else items:
      if "match_rate" in e:
        out.append((kind, e))
  return out


def entry_label(entry: Mapping) -> str:
  """A model's name on the match-rate figure, marked when the copy is not useful (below
  0.85x the base's test accuracy: drawn, not counted)."""
  return entry["name"] + ("" if entry.get("useful", True) else " (not useful)")


def match_rates_figure(report: Mapping, path: str, *, title: str | None = None) -> str:
  """Horizontal bars of every model's match rate, grouped and coloured by kind, with the
  match rate at which `verify` (alpha = 1e-3, `null_rate(report)`) judges a suspect derived."""
  entries = model_entries(report)
  if not entries:
    raise ValueError("report has no model with a match_rate; run with config.evaluate=True")
  ys, y, prev = [], 0.0, None
  for kind, _ in entries:  # a gap between kinds
    y += 1.0 if prev in (None, kind) else 1.6
    ys.append(y)
    prev = kind
  fig = _new(7.5, 1.8 + 0.24 * y)
  ax = fig.add_subplot()
  seen = set()
  for (kind, e), yy in zip(entries, ys, strict=True):
    useful = e.get("useful", True)  # a copy below 0.85x the base's accuracy: hatched
    key = kind if useful else "not useful"
    label = (KIND_LABELS[kind] if useful else NOT_USEFUL_LABEL) if key not in seen else None
    seen.add(key)
    style = {} if useful else {"alpha": 0.45, "hatch": "///", "edgecolor": "0.3"}
    ax.barh(yy, e["match_rate"], height=0.8, color=KIND_COLORS[kind], label=label, **style)
    ax.text(
      e["match_rate"] + 0.01,
      yy,
      f"{e['match_rate']:.2f}",
      va="center",
      fontsize=7,
      bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
    )
  ax.set_yticks(ys, [entry_label(e) for _, e in entries], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlim(0, 1.12)
  ax.set_xlabel("match rate (fraction of fingerprints classified as their label)")
  if report.get("unassociated"):
    null = null_rate(report)
    thr = decision_threshold(int(report["num_fingerprints"]), null)
    if thr is not None:
      label = f"verify: derived at >= {thr:.2f} (alpha 1e-3, null rate {null:.3f})"
      ax.axvline(thr, color="k", ls="--", lw=1, label=label)
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=2, fontsize=7)
  ax.set_title(title or "Match rate per model", fontsize=10)
  return _save(fig, path)


def prune_curve(report: Mapping) -> dict:
  """{"rates", "match", "innocent"} of a report: each pruned copy's (rate, match rate),
  sorted by rate, and the innocents' mean match rate (T)."""
  pts = sorted((float(e["rate"]), float(e["match_rate"])) for e in report.get("pruned", []))
  innocents = [e["match_rate"] for e in report.get("unassociated", [])]
  return {
    "rates": [r for r, _ in pts],
    "match": [m for _, m in pts],
    "innocent": float(np.mean(innocents)) if innocents else None,
  }


def match_vs_prune_figure(
  curves: Mapping[str, Mapping], path: str, *, threshold: float | None = None, title=None
) -> str:
  """Match rate of the pruned copies vs their pruning rate, one line per method (the
  paper's robustness figure), each method's innocents' mean (T) dashed in its colour.

  curves: method -> {"rates": (P,), "match": (P,), "innocent": float or None}.
  """
  if not curves:
    raise ValueError("curves is empty: give at least one method's pruned copies")
  fig = _new(7.5, 4.0)
  ax = fig.add_subplot()
  k = len(curves)
  for i, (name, c) in enumerate(curves.items()):
    # Earlier methods drawn wider, so that coinciding curves stay visible as stripes.
    lw, ms = 1.5 + 1.0 * (k - 1 - i), 4 + 2.5 * (k - 1 - i)
    color, marker = f"C{i}", "os^Dv<>p"[i % 8]
    label = f"{name}: pruned copies"
    ax.plot(c["rates"], c["match"], "-", marker=marker, color=color, lw=lw, ms=ms, label=label)
    if c.get("innocent") is not None:
      ax.axhline(c["innocent"], color=color, ls=":", lw=1.5, label=f"{name}: innocents' mean")
  if threshold is not None:
    ax.axhline(threshold, color="k", ls="--", lw=1, label="verify threshold (alpha 1e-3)")
  ax.set_xlim(0, 1)
  ax.set_ylim(-0.03, 1.05)
  ax.set_xlabel("pruning rate (fraction of conv/dense weights removed, then fine-tuned)")
  ax.set_ylabel("fingerprint match rate")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_title(title or "Robustness to pruning", fontsize=10)
  return _save(fig, path)


def roc_scores(report: Mapping) -> tuple[list[float], list[float]]:
  """(derived, innocents) match rates: the pruned and other derived copies (those that
  kept the base's accuracy: `useful`), and the unassociated models."""
  copies = report.get("pruned", []) + report.get("derived", [])
  derived = [e["match_rate"] for e in copies if e.get("useful", True)]
  return derived, [e["match_rate"] for e in report.get("unassociated", [])]


def roc_figure(
  scores: Mapping[str, tuple[Sequence[float], Sequence[float]]],
  path: str,
  *,
  threshold: float | None = None,
  title=None,
) -> str:
  """ROC curve of the match rate as a score of derived copies (positives) vs innocents
  (negatives), one curve per method, with its AUC; the `verify` threshold's point marked
  when given (single method).

  scores: method -> (derived match rates (P,), innocent match rates (Q,)), P, Q >= 1.
  """
  if not scores:
    raise ValueError("scores is empty: give at least one method's match rates")
  fig = _new(4.6, 4.6 + 0.15 * len(scores))
  ax = fig.add_subplot()
  for i, (name, (pos, neg)) in enumerate(scores.items()):
    if len(pos) == 0 or len(neg) == 0:
      raise ValueError(f"scores[{name!r}] needs >= 1 derived and >= 1 innocent match rate")
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[np.asarray(pos, float), np.asarray(neg, float)]
    fpr, tpr, _ = roc_curve(labels, s)
    auc = roc_auc_score(labels, s)
    lw = 1.5 + 2.0 * (len(scores) - 1 - i)  # coinciding curves stay visible as stripes
    ax.plot(fpr, tpr, "-", color=f"C{i}", lw=lw, drawstyle="steps-post")
    ax.plot([], [], "-", color=f"C{i}", label=f"{name} (AUC {auc:.3f}, {len(pos)} vs {len(neg)})")
    if threshold is not None and len(scores) == 1:
      pt = (np.mean(np.asarray(neg) >= threshold), np.mean(np.asarray(pos) >= threshold))
      ax.plot(*pt, "k*", ms=12, label=f"verify: match >= {threshold:.2f}")
  ax.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel("false positive rate (innocents flagged)")
  ax.set_ylabel("true positive rate (derived copies flagged)")
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
  ax.set_title(title or "Derived copies vs innocents", fontsize=10)
  return _save(fig, path)


def fingerprint_grid_figure(x: np.ndarray, y: np.ndarray, path: str, *, max_images=40) -> str:
  """A grid of fingerprint images x (N, H, W, C) in [0, 1] titled with their labels y (N,),
  classes interleaved (one class per column when labels are balanced)."""
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 4 or x.shape[-1] not in (1, 3) or y.shape != x.shape[:1]:
    raise ValueError(f"x must be (N, H, W, 1 or 3) and y (N,); got {x.shape} and {y.shape}")
  by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
  rounds = max(len(idx) for idx in by_class)
  order = [idx[r] for r in range(rounds) for idx in by_class if r < len(idx)][:max_images]
  cols = min(10, len(order))
  rows = -(-len(order) // cols)
  # One mosaic in one axes (a subplot per image is ~10x slower): tiles with a white gap
  # and a band above each for its label.
  h, w, c = x.shape[1:]
  gap, band = max(1, w // 8), max(2, round(h * 0.35))
  cell_h, cell_w = h + band, w + gap
  mosaic = np.ones((rows * cell_h, cols * cell_w, c), np.float32)
  fig = _new(1.0 * cols, 1.0 * rows * cell_h / cell_w + 0.35)
  ax = fig.add_subplot()
  for j, i in enumerate(order):
    top, left = (j // cols) * cell_h + band, (j % cols) * cell_w
    mosaic[top : top + h, left : left + w] = np.clip(x[i], 0, 1)
    label = f"y={int(y[i])}"
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec="0.6", lw=0.6))
    ax.text(left + w / 2 - 0.5, top - band / 2 - 0.5, label, ha="center", va="center", fontsize=8)
  img = mosaic[..., 0] if c == 1 else mosaic
  ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  ax.set_axis_off()
  ax.set_title(f"{len(order)} of {len(x)} fingerprints with their labels", fontsize=10)
  return _save(fig, path)


def mean_spectrum(x: np.ndarray) -> np.ndarray:
  """(H, W) mean |FFT2| of images x (N, H, W, C) over examples and channels, centred
  (zero frequency in the middle, `np.fft.fftshift`)."""
  f = np.abs(np.fft.fft2(np.asarray(x, np.float64), axes=(1, 2)))
  return np.fft.fftshift(f.mean(axis=(0, 3)))


def radial_profile(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(radii (R,), mean of a centred (H, W) spectrum over each integer radius bin)."""
  h, w = spectrum.shape
  r = np.rint(np.fft.fftshift(frequency_radius(h, w))).astype(int)
  radii = np.unique(r)
  return radii, np.array([spectrum[r == k].mean() for k in radii])


def spectrum_figure(x: np.ndarray, radius: float, path: str, *, seed: int = 0) -> str:
  """Mean |FFT2| (log scale) of the fingerprints x (N, H, W, C) and of the initial noise
  (uniform on [0, 1], same shape, fixed seed), and both radial profiles with the high-pass
  radius marked (LTRC updates keep only frequencies >= radius; 0: no filter)."""
  x = np.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"x must be (N, H, W, C); got shape {x.shape}")
  noise = np.random.default_rng(seed).uniform(0.0, 1.0, size=x.shape)
  s_fp, s_noise = mean_spectrum(x), mean_spectrum(noise)
  h, w = s_fp.shape
  ac = np.ones((h, w), bool)
  ac[h // 2, w // 2] = False  # the zero frequency (the mean) would flatten the colour scale
  both = np.stack([s_fp[ac], s_noise[ac]])
  tiny = 1e-9 * max(both.max(), 1e-9)  # a floor for log10 (a constant image has zeros)
  lo, hi = np.log10(both.min() + tiny), np.log10(both.max() + 2 * tiny)
  extent = (-(w // 2) - 0.5, (w - 1) // 2 + 0.5, -(h // 2) - 0.5, (h - 1) // 2 + 0.5)
  fig = _new(11.0, 3.6)
  axes = fig.subplots(1, 3, width_ratios=(1, 1, 1.4))
  for ax, s, name in ((axes[0], s_fp, "fingerprints"), (axes[1], s_noise, "uniform noise")):
    im = ax.imshow(
      np.log10(s + tiny), vmin=lo, vmax=hi, cmap="magma", extent=extent, origin="lower"
    )
    ax.set_title(f"log10 mean |FFT| of {name}\n(centre: the mean, off the scale)", fontsize=9)
    ax.set_xlabel("horizontal frequency (cycles/image)", fontsize=8)
    ax.set_ylabel("vertical frequency", fontsize=8)
  fig.colorbar(im, ax=axes[:2], shrink=0.8)
  ax = axes[2]
  for s, name, style in ((s_fp, "fingerprints", "o-"), (s_noise, "uniform noise", "s--")):
    radii, prof = radial_profile(s)
    ax.semilogy(radii[1:], prof[1:] + tiny, style, ms=4, label=name)  # radius 0 (the mean) left out
  if radius > 0:
    ax.axvspan(0, radius, color="0.85", zorder=0, label=f"removed from updates (r < {radius:g})")
    ax.axvline(radius, color="k", lw=1)
    note = f"high-pass radius {radius:g}"
  else:
    note = "high-pass radius 0: filter off"
  ax.set_xlim(0, None)
  ax.set_xlabel("frequency radius (cycles/image)", fontsize=8)
  ax.set_ylabel("mean |FFT|", fontsize=8)
  ax.set_title(f"radial profile (radius >= 1)\n{note}", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  return _save(fig, path)


def report_figures(report: Mapping, x: np.ndarray, y: np.ndarray, folder: str) -> dict[str, str]:
  """Writes the main job's figures (those its report supports) to folder/<name>.png.

  Returns name -> path, in NAMES order. Without evaluation (no match rates) only
  `fingerprints` and `spectrum` are drawn.
  """
  os.makedirs(folder, exist_ok=True)
  path = {n: os.path.join(folder, f"{n}.png") for n in NAMES}
  method = str(report.get("method", "fingerprints"))
  out = {}
  if model_entries(report) and report.get("unassociated"):
    thr = decision_threshold(int(report["num_fingerprints"]), null_rate(report))
    out["match_rates"] = match_rates_figure(report, path["match_rates"])
    if report.get("pruned"):
      curve = prune_curve(report)
      out["match_vs_prune"] = match_vs_prune_figure(
        {method: curve}, path["match_vs_prune"], threshold=thr
      )
      out["roc"] = roc_figure({method: roc_scores(report)}, path["roc"], threshold=thr)
  out["fingerprints"] = fingerprint_grid_figure(x, y, path["fingerprints"])
  ltrc = report.get("config", {}).get("ltrc", {})
  radius = float(ltrc.get("radius", 0.0)) if method == "ltrc" else 0.0  # c, rc: no filter
  out["spectrum"] = spectrum_figure(x, radius, path["spectrum"])
  return out
