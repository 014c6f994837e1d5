"""report.md and its figures: PNGs drawn from a small synthetic report, without pyplot."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ucfp.core import scoring
from ucfp.evaluation import figures, report_md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 50


def _entry(name, match, p=None, **extra):
  e = {"name": name, "test_accuracy": 0.95, "match_rate": match, **extra}
  if p is not None:
    e.update(p_value=p, derived=p < 1e-3, null_rate=0.05)
  return e


@pytest.fixture
def report():
  return {
    "method": "ltrc",
    "dataset": "digits",
    "num_fingerprints": N,
    "config": {"ltrc": {"radius": 2.0}},
    "fingerprints": "/somewhere/fingerprints.npz",
    "base": _entry("base-cnn", 1.0),
    "reference": [_entry("reference-mlp", 0.0)],
    "pruned": [
      _entry("pruned-0.3", 1.0, 1e-40, rate=0.3),
      _entry("pruned-0.9", 0.8, 1e-20, rate=0.9),
      _entry("pruned-0.5", 0.96, 1e-30, rate=0.5),
    ],
    "derived": [_entry("quantized-int8", 0.9, 1e-25)],
    "unassociated": [_entry("innocent-a", 0.02, 0.7), _entry("innocent-b", 0.06, 0.2)],
    "robustness": 0.92,
    "transferability": 0.04,
    "uniqueness_score": 0.88,
    "seconds": {"models": 1.0, "generate": 2.0, "total": 3.5},
  }


@pytest.fixture
def fingerprints():
  rng = np.random.default_rng(0)
  return rng.uniform(size=(N, 8, 8, 1)).astype(np.float32), np.arange(N, dtype=np.int32) % 10


def _is_png(path, min_size=(200, 150), max_size=(2000, 2000)):
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
  assert 2_000 < os.path.getsize(path) < 200_000, (path, os.path.getsize(path))
  w, h = Image.open(path).size
  assert min_size[0] <= w <= max_size[0] and min_size[1] <= h <= max_size[1], (path, w, h)


def test_report_writes_every_figure_and_links_them(tmp_path, report, fingerprints):
  md_path, paths = report_md.write_report(report, *fingerprints, str(tmp_path))
  assert list(paths) == list(figures.NAMES)
  for name, path in paths.items():
    assert path == str(tmp_path / "figures" / f"{name}.png")
    _is_png(path)
  md = open(md_path).read()
  assert md_path == str(tmp_path / "report.md")
  for name in figures.NAMES:
    assert f"](figures/{name}.png)" in md
  for kind, e in figures.model_entries(report):
    assert f"| {e['name']} | {kind} | 0.9500 | {e['match_rate']:.2f} |" in md
  assert "| pruned-0.9 | pruned | 0.9500 | 0.80 | 1e-20 | **yes** |" in md
  assert "| innocent-b | unassociated | 0.9500 | 0.06 | 0.2 | no |" in md
  assert "US = R - T = **0.880**" in md and "4 of 4 derived copies flagged" in md
  assert not [f for f in os.listdir(tmp_path / "figures") if not f.endswith(".png")]  # no temps


def test_report_without_evaluation_draws_the_fingerprints_only(tmp_path, report, fingerprints):
  bare = {k: report[k] for k in ("method", "dataset", "num_fingerprints", "config")}
  bare["base"] = {"name": "base-cnn", "test_accuracy": 0.95}
  md_path, paths = report_md.write_report(bare, *fingerprints, str(tmp_path))
  assert list(paths) == ["fingerprints", "spectrum"]
  md = open(md_path).read()
  assert "Evaluation was off" in md and "figures/roc.png" not in md
  with pytest.raises(ValueError, match="no model with a match_rate"):
    figures.match_rates_figure(bare, str(tmp_path / "m.png"))


def test_decision_threshold_is_where_verify_flips(report):
  null = figures.null_rate(report)
  assert null == scoring.null_rate_upper_bound([0.02, 0.06], N)
  thr = figures.decision_threshold(N, null)
  k = round(thr * N)
  assert scoring.binomial_p_value(k, N, null) < 1e-3 <= scoring.binomial_p_value(k - 1, N, null)
  assert figures.decision_threshold(N, 1.0) is None
  assert figures.decision_threshold(N, 0.0) == pytest.approx(1 / N)  # one match suffices


def test_prune_curve_and_roc_scores(report):
  curve = figures.prune_curve(report)
  assert curve == {"rates": [0.3, 0.5, 0.9], "match": [1.0, 0.96, 0.8], "innocent": 0.04}
  pos, neg = figures.roc_scores(report)
  assert pos == [1.0, 0.8, 0.96, 0.9] and neg == [0.02, 0.06]


def test_multi_method_figures_and_bad_input(tmp_path, report):
  worse = {**report, "pruned": [_entry("pruned-0.5", 0.1, rate=0.5)]}
  curves = {"c": figures.prune_curve(worse), "ltrc": figures.prune_curve(report)}
  _is_png(figures.match_vs_prune_figure(curves, str(tmp_path / "p.png")))
  scores = {"c": figures.roc_scores(worse), "ltrc": figures.roc_scores(report)}
  _is_png(figures.roc_figure(scores, str(tmp_path / "r.png")))
  with pytest.raises(ValueError, match=r"scores\['c'\] needs >= 1 derived"):
    figures.roc_figure({"c": ([0.5], [])}, str(tmp_path / "bad.png"))
  with pytest.raises(ValueError, match="x must be"):
    figures.fingerprint_grid_figure(np.zeros((4, 8, 8)), np.zeros(4), str(tmp_path / "g.png"))
  rgb = np.random.default_rng(1).uniform(size=(12, 32, 32, 3))
  _is_png(figures.fingerprint_grid_figure(rgb, np.arange(12) % 3, str(tmp_path / "g.png")))
  assert not os.path.exists(tmp_path / "bad.png")


def test_mean_spectrum_is_centred():
  x = np.zeros((2, 8, 8, 1))
  x[:, ::2, ::2] = 1.0  # energy at DC and at the Nyquist frequencies only
  s = figures.mean_spectrum(x)
  assert s.shape == (8, 8) and s[4, 4] == pytest.approx(16.0)  # DC at the centre
  assert s[0, 0] == pytest.approx(16.0) and s[0, 4] == s[4, 0] == pytest.approx(16.0)
  assert np.count_nonzero(s > 1e-9) == 4
  radii, prof = figures.radial_profile(s)
  assert radii[0] == 0 and prof[0] == pytest.approx(16.0)


def test_figures_leave_pyplot_and_the_backend_alone(tmp_path):
  # The backend is read without resolving it (resolving it would import pyplot itself).
  code = (
    "import sys, matplotlib, numpy as np; "
    "backend = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); b = backend(); "
    "from ucfp.evaluation import figures; "
    f"figures.spectrum_figure(np.zeros((2, 8, 8, 1)), 0.0, {str(tmp_path / 's.png')!r}); "
    "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
    "assert backend() is b, backend(); print('ok')"
  )
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
  assert os.path.exists(tmp_path / "s.png")


def test_match_rates_figure_marks_copies_that_are_not_useful(tmp_path, report):
  washed = {"name": "washed", "test_accuracy": 0.4, "match_rate": 0.3, "useful": False}
  rep = {**report, "derived": [*report.get("derived", []), washed]}
  assert figures.entry_label(washed) == "washed (not useful)"
  assert figures.entry_label({**washed, "useful": True}) == "washed"
  assert figures.entry_label({"name": "innocent-a"}) == "innocent-a"
  _is_png(figures.match_rates_figure(rep, str(tmp_path / "m.png")))
