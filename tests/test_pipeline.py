"""End to end: the command line on the tiny preset, then a restore that trains nothing."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {
  "method",
  "dataset",
  "num_fingerprints",
  "base",
  "pruned",
  "unassociated",
  "robustness",
  "transferability",
  "uniqueness_score",
  "seconds",
}


def _run(workdir, *extra):
  cmd = [
    sys.executable,
    "-m",
    "ucfp.generate",
    "--config=configs/ltrc.py:tiny",
    f"--workdir={workdir}",
    *extra,
  ]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_main_job_end_to_end_and_restore(tmp_path):
  out = _run(tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  report = json.load(open(tmp_path / "report.json"))
  assert KEYS <= set(report)
  assert report["method"] == "ltrc" and report["num_fingerprints"] == 20
  assert [p["rate"] for p in report["pruned"]] == [0.5]
  assert {"name", "test_accuracy", "match_rate"} <= set(report["unassociated"][0])
  assert report["uniqueness_score"] == pytest.approx(
    report["robustness"] - report["transferability"]
  )
  assert os.path.exists(tmp_path / "fingerprints.npz")
  assert "wrote" in out.stdout and "Uniqueness Score" in out.stdout
  assert out.stdout.count("training ") == 5  # base, 1 reference, 1 pruned, 2 innocents
  again = _run(tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "training " not in again.stdout  # everything restored


def test_bad_flag_is_a_clear_error(tmp_path):
  out = _run(tmp_path, "--config.method=xc")
  assert out.returncode != 0
  assert "config.method='xc' is not one of c, rc, ltrc" in out.stderr
  assert not os.path.exists(tmp_path / "models")  # nothing computed or written
