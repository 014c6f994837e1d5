"""The benchmark scripts stay runnable: tiny runs that write to a temporary folder."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path, timeout=600):
  env = {**os.environ, "UCFP_RESULTS_DIR": str(tmp_path / "results")}
  out = subprocess.run(
    [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
  )
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  return out.stdout


@pytest.mark.slow
def test_zoo_and_quality_benchmarks_tiny(tmp_path):
  work = str(tmp_path / "work")
  _run(["benchmarks/zoo.py", "--config=configs/ltrc.py:tiny", f"--workdir={work}"], tmp_path)
  zoo = json.load(open(tmp_path / "results" / "zoo-digits.json"))
  assert zoo["retrained_on_restore"] == 0 and len(zoo["models"]) == 5
  assert {"command", "commit", "machine"} <= set(zoo)
  _run(
    [
      "benchmarks/quality.py",
      "--config=configs/ltrc.py:tiny",
      f"--workdir={work}",
      "--methods=c,ucfp",
    ],
    tmp_path,
  )
  q = json.load(open(tmp_path / "results" / "quality-digits.json"))
  assert set(q["methods"]) == {"c", "ucfp"} and q["best"] in q["methods"]
  for m in q["methods"].values():
    assert {
      "robustness",
      "transferability",
      "uniqueness_score",
      "auc",
      "tpr_at_1pct_fpr",
      "misses",
      "false_alarms",
      "seconds",
      "per_model",
    } <= set(m)
  assert os.path.exists(tmp_path / "results" / "quality-digits.md")
  assert q["total_seconds"] >= q["model_seconds"] > 0
  # Resumable: a second run restores every model and every method's fingerprints.
  assert len(os.listdir(os.path.join(work, "fingerprints"))) == 2
  _run(
    ["benchmarks/quality.py", "--config=configs/ltrc.py:tiny", f"--workdir={work}", "--methods=c"],
    tmp_path,
  )
  again = json.load(open(tmp_path / "results" / "quality-digits.json"))
  assert again["methods"]["c"] == q["methods"]["c"]
  figs = sorted(os.listdir(tmp_path / "results" / "quality-digits-figures"))
  assert figs == ["match_rates.png", "match_vs_prune.png", "report.md", "roc.png"]
  assert q["methods"]["ucfp"]["per_model"]["pruned-0.5"]["rate"] == 0.5


def test_quality_figures_from_committed_results(tmp_path):
  """The figures of a results file written before pruning rates were stored (read from
  the copies' names), for the paper's methods only (no ablations)."""
  sys.path.insert(0, ROOT)
  from benchmarks import quality_report

  src = os.path.join(ROOT, "benchmarks", "results", "quality-digits.json")
  q = json.load(open(src))
  assert "rate" not in q["methods"]["ucfp"]["per_model"]["pruned-0.3"]
  dst = tmp_path / "quality-digits.json"
  dst.write_text(json.dumps(q))
  paths = quality_report.write_figures(str(dst))
  assert [os.path.basename(p) for p in paths] == [
    "match_vs_prune.png",
    "roc.png",
    "match_rates.png",
    "report.md",
  ]
  for p in paths[:3]:
    assert open(p, "rb").read(4) == b"\x89PNG"
  md = open(paths[3]).read()
  assert "methods: c, rc, ltrc_paper, ucfp." in md and "ucfp_v2" not in md
  curve = quality_report.figures.prune_curve(quality_report._as_report(q["methods"]["c"], 100))
  assert curve["rates"] == [0.3, 0.5, 0.7, 0.9]


def test_speed_benchmark_one_configuration(tmp_path):
  args = json.dumps({"kind": "jax", "model": "digits", "v": 2, "b": 8, "strategy": "loop"})
  out = _run(["benchmarks/speed.py", "--one", args], tmp_path)
  res = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
  assert res["step_s"] > 0 and res["peak_rss_gib"] > 0 and res["resolved"] == "loop"


def test_speed_rounds_report_the_median_and_the_ratio():
  sys.path.insert(0, ROOT)
  from benchmarks import speed

  rounds = [{"step_s": 3.0}, {"error": "killed"}, {"step_s": 1.0}, {"step_s": 2.0}]
  assert speed._median_round(rounds) == {"step_s": 2.0, "step_s_rounds": [1.0, 2.0, 3.0]}
  assert speed._median_round([{"error": "x"}]) == {"error": "x"}
  row = dict(compile_s=1.0, useful_gflops=1.0, xla_gflops=1.0, peak_rss_gib=0.1, chunk=8)
  jax_rows = [
    {**row, "model": "digits", "b": 8, "v": 1, "strategy": "unrolled", "step_s": 0.01},
    {**row, "model": "digits", "b": 8, "v": 8, "strategy": "unrolled", "step_s": 0.05},
    {**row, "model": "digits", "b": 8, "v": 8, "strategy": "vmap", "step_s": 0.3},
  ]
  jax_rows[1]["step_s_rounds"] = [0.04, 0.05, 0.07]
  jax_rows[2]["step_s_rounds"] = [0.2, 0.3, 0.4]
  res = {
    "ceilings": {},
    "jax": jax_rows,
    "torch": [],
    "auto_rule": {"1": "unrolled", "8": "unrolled"},
  }
  md = speed.markdown(res)
  assert "auto V=8 step = 0.62 x (8 x its V=1 step); 6.0x faster than vmap" in md
  assert "medians of 3 processes; auto rounds 0.04-0.07 s; vmap rounds 0.2-0.4 s" in md
