"""End to end: the command line on the tiny preset, then a restore that trains nothing."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import run_generate as _run

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


@pytest.mark.slow
def test_main_job_end_to_end_and_restore(tiny_job):
  tmp_path, out = tiny_job  # the first run, from an empty work directory
  report = json.load(open(tmp_path / "report.json"))
  assert KEYS <= set(report)
  assert report["method"] == "ltrc" and report["num_fingerprints"] == 20
  assert [p["rate"] for p in report["pruned"]] == [0.5]
  assert {"name", "test_accuracy", "match_rate"} <= set(report["unassociated"][0])
  assert report["uniqueness_score"] == pytest.approx(
    report["robustness"] - report["transferability"]
  )
  assert os.path.exists(tmp_path / "fingerprints.npz")
  # configs/ltrc.py asks for a mistakes set; the base makes too few training mistakes
  assert "too few" in report["mistakes"]["skipped"] and "no mistakes set: num=20" in out.stdout
  assert not os.path.exists(tmp_path / "mistakes.npz")
  assert "- No mistakes set: num=20: the model labels" in open(tmp_path / "report.md").read()
  assert "wrote" in out.stdout and "Uniqueness Score" in out.stdout
  assert f"wrote {tmp_path / 'report.md'} with 5 figures" in out.stdout
  md = open(tmp_path / "report.md").read()
  for name in ("match_rates", "match_vs_prune", "roc", "fingerprints", "spectrum"):
    assert os.path.getsize(tmp_path / "figures" / f"{name}.png") > 2000
    assert f"](figures/{name}.png)" in md
  assert out.stdout.count("training ") == 5  # base, 1 reference, 1 pruned, 2 innocents
  # progress at the default verbosity: one line per interval (stderr is not a terminal),
  # without orbax's INFO logs of the generation checkpoints (saved at 5, 10, 15)
  assert "generating 20 ltrc fingerprints: 20/20 steps (100%)" in out.stderr
  assert "training base-cnn_small: 44/44 steps (100%)" in out.stderr
  assert "orbax" not in out.stderr.lower() and "\r" not in out.stderr
  assert os.listdir(tmp_path / "generation") == []  # complete: checkpoints removed
  again = _run(tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "training " not in again.stdout  # everything restored
  assert again.stdout.count("  restored ") == 5


def test_bad_flag_is_a_clear_error(tmp_path):
  out = _run(tmp_path, "--config.method=xc")
  assert out.returncode == 2
  assert "config.method='xc' is not one of c, rc, ltrc" in out.stderr
  assert not os.path.exists(tmp_path / "models")  # nothing computed or written


def test_zoo_builds_surrogates_with_their_own_seed(tmp_path, digits):
  from configs import ltrc
  from ucfp.core import prune
  from ucfp.evaluation.zoo import build_zoo

  cfg = ltrc.get_config("tiny")
  with cfg.unlocked():
    cfg.robust.surrogates = (0.5,)
    cfg.robust.validators = (0.5,)
  zoo = build_zoo(cfg, digits, str(tmp_path))  # evaluation: pruned-0.5 too
  (sur,), (val,) = zoo.surrogate, zoo.validator
  assert sur.name == "surrogate-pruned-0.5" and sur.kind == "surrogate" and sur.rate == 0.5
  assert val.name == "validator-pruned-0.5" and val.kind == "validator" and val.rate == 0.5
  assert sur in zoo.all() and val in zoo.all() and sur not in zoo.pruned
  assert prune.sparsity(sur.model.variables) == pytest.approx(0.5, abs=0.02)
  # the same rate as the evaluation's pruned copy, but other fine-tuning runs
  (adv,) = zoo.pruned
  for a, b in ((sur, adv), (val, adv), (val, sur)):
    pairs = zip(jax.tree.leaves(a.model.variables), jax.tree.leaves(b.model.variables), strict=True)
    assert any(not np.array_equal(u, v) for u, v in pairs)
  # restore_zoo scores a build in progress: what is cached, nothing trained
  from ucfp.evaluation.zoo import restore_zoo

  with cfg.unlocked():
    cfg.zoo.unassociated += ",mlp:199"
    cfg.zoo.attacks = "quant:8,finetune_last:same"
  cached = sorted(os.listdir(tmp_path / "models"))
  part, missing = restore_zoo(cfg, digits, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "models")) == cached
  assert len(missing) == 2 and ("innocent-mlp-s199", "unassociated") in [
    (j.name, j.kind) for j in missing
  ]
  assert [m.name for m in part.all() if m.name not in (d.name for d in part.derived)] == [
    m.name for m in zoo.all()
  ]
  (quant,) = part.derived  # derived without training: always there
  assert quant.attack.startswith("quant:8") and np.isfinite(quant.test_accuracy)
  with pytest.raises(ValueError, match="no cnn_small base cached"):
    restore_zoo(cfg, digits, str(tmp_path / "empty"))


def test_surrogate_attacks_are_students_with_their_own_seed(tmp_path, digits):
  from configs import ltrc
  from ucfp.evaluation import attacks
  from ucfp.evaluation.zoo import ZooBuilder

  cfg = ltrc.get_config("tiny")
  with cfg.unlocked():
    cfg.robust.surrogate_attacks = "distill:mlp"
  b = ZooBuilder(cfg, digits, str(tmp_path))
  base, key = b.base()
  (sur,) = b.surrogates(base, key)
  assert sur.name == "surrogate-distilled-mlp-T4" and sur.kind == "surrogate"
  assert sur.test_accuracy > 0.5  # a working student of the base
  # the evaluation's student of the same attack: another initialisation and data order
  (adv,) = b.attacked(base, key, attacks.parse_attacks("distill:mlp"))
  assert adv.name == "distilled-mlp-T4" and adv.kind == "derived"
  pairs = zip(
    jax.tree.leaves(sur.model.variables), jax.tree.leaves(adv.model.variables), strict=True
  )
  assert all(not np.array_equal(a, b) for a, b in pairs)
  c = ltrc.get_config("tiny")  # and `c` uses no surrogates
  with c.unlocked():
    c.method, c.robust.surrogate_attacks = "c", "distill:mlp"
  assert ZooBuilder(c, digits, str(tmp_path)).surrogates(base, key) == []


def test_table_has_a_derived_column_and_no_trailing_spaces():
  from ucfp.pipeline import format_table

  def e(name, match, **verdict):
    return {"name": name, "test_accuracy": 0.9, "match_rate": match, **verdict}

  report = {
    "base": e("cnn_small-0", 1.0),
    "reference": [e("mlp-1002", 0.0)],
    "pruned": [e("pruned-0.5", 1.0, rate=0.5, p_value=1e-20, derived=True)],
    "unassociated": [e("mlp-103", 0.05, p_value=0.6, derived=False)],
    "robustness": 1.0,
    "transferability": 0.05,
    "uniqueness_score": 0.95,
  }
  lines = format_table(report).splitlines()
  assert lines[0].split() == ["model", "kind", "test", "acc", "match", "p-value", "derived"]
  cells = {line.split()[0]: line.split()[1:] for line in lines[2:-1]}
  assert cells == {
    "cnn_small-0": ["base", "0.9000", "1.00", "-", "-"],
    "mlp-1002": ["reference", "0.9000", "0.00", "-", "-"],
    "pruned-0.5": ["pruned", "0.9000", "1.00", "1e-20", "yes"],
    "mlp-103": ["unassociated", "0.9000", "0.05", "0.6", "no"],
  }
  assert all(line == line.rstrip() for line in lines)
  # without evaluation (config.evaluate=false) the report has no match rates
  only_base = format_table({"base": {"name": "cnn_small-0", "test_accuracy": 0.9}})
  assert only_base.splitlines()[-1].split() == ["cnn_small-0", "base", "0.9000", "-", "-", "-"]


@pytest.mark.slow
def test_main_job_with_data_starts(tiny_job, tmp_path):
  # the tiny job's models, copied, so that this run trains nothing and leaves them as they are
  import shutil

  from ucfp import Fingerprints

  for sub in ("models", "data"):
    if (tiny_job[0] / sub).exists():
      shutil.copytree(tiny_job[0] / sub, tmp_path / sub)
  out = _run(tmp_path, "--config.init=data")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "training " not in out.stdout
  fps = Fingerprints.load(str(tmp_path / "fingerprints.npz"))
  assert fps.meta["config"]["init"] == "data"
  first = Fingerprints.load(str(tiny_job[0] / "fingerprints.npz"))
  assert not np.array_equal(fps.x, first.x)


@pytest.mark.slow
def test_main_job_builds_validators_and_lets_them_choose(tiny_job, tmp_path):
  """`robust.validators`: the zoo trains the owner's held-out copies (and only those here),
  the report lists them, and the fingerprints record that they chose."""
  import json
  import shutil

  from ucfp import Fingerprints

  for sub in ("models", "data"):
    if (tiny_job[0] / sub).exists():
      shutil.copytree(tiny_job[0] / sub, tmp_path / sub)
  out = _run(tmp_path, "--config.oversample=2", "--config.robust.validators=(0.5,)")
  assert out.returncode == 0, out.stderr[-3000:]
  trained = [line for line in out.stdout.splitlines() if line.strip().startswith("training ")]
  assert trained and all("validator-pruned-0.5" in line for line in trained)
  report = json.loads((tmp_path / "report.json").read_text())
  assert [v["name"] for v in report["validator"]] == ["validator-pruned-0.5"]
  assert "validator-pruned-0.5" not in [p["name"] for p in report["pruned"]]
  fps = Fingerprints.load(str(tmp_path / "fingerprints.npz"))
  assert fps.meta["validators"] == ["validator-pruned-0.5"] and fps.meta["oversample"] == 2


def test_main_job_writes_and_scores_the_mistakes_set(mistakes_job, tmp_path):
  import shutil

  import ucfp
  from ucfp.core.scoring import combined_p_value

  workdir, out = mistakes_job
  report = json.load(open(workdir / "report.json"))
  mistakes = report["mistakes"]
  path = workdir / "mistakes.npz"
  assert mistakes["fingerprints"] == str(path) and f"wrote {path}" in out.stdout
  fps = ucfp.Fingerprints.load(str(path))
  assert len(fps) == mistakes["num_fingerprints"] == 10 and fps.meta["method"] == "mistakes"
  assert mistakes["base"]["match_rate"] == 1.0  # the base's own labels
  assert [e["match_rate"] for e in mistakes["reference"]] == [0.0]  # none a reference gives
  innocents = {e["name"]: e["match_rate"] for e in mistakes["unassociated"]}
  assert mistakes["transferability"] == pytest.approx(np.mean(list(innocents.values())))
  for kind in ("pruned", "unassociated"):
    for e, m in zip(report[kind], mistakes[kind], strict=True):
      assert e["name"] == m["name"] and e["mistakes_match_rate"] == m["match_rate"]
      p = combined_p_value([e["p_value"], m["p_value"]])
      assert e["combined"] == {"p_value": p, "derived": p < 1e-3}
  header = next(line for line in out.stdout.splitlines() if line.startswith("model "))
  assert header.split()[-2:] == ["mistakes", "both"]
  assert "mistakes set: R = " in out.stdout
  md = open(workdir / "report.md").read()
  assert "| mistakes | both |" in md and "- Mistakes set (`mistakes.npz`, 10 of the base's" in md
  # a run without the set removes an earlier run's file (not these fingerprints' set)
  again = tmp_path / "work"
  shutil.copytree(workdir, again)
  out = _run(again, "--config.num_fingerprints=10", "--config.train.epochs=1",
             "--config.mistakes=false", "--config.evaluate=false")  # fmt: skip
  assert out.returncode == 0, out.stderr[-3000:]
  assert "training " not in out.stdout and not os.path.exists(again / "mistakes.npz")
  assert "mistakes" not in json.load(open(again / "report.json"))
  assert "mistakes" not in out.stdout
