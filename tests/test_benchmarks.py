"""The benchmark scripts stay runnable: tiny runs that write to a temporary folder."""

import json
import os
import subprocess
import sys

import numpy as np
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
      "--methods=c,ucfp,mistakes",
    ],
    tmp_path,
  )
  q = json.load(open(tmp_path / "results" / "quality-digits.json"))
  # mistakes: run, or skipped with the reason where the tiny base has too few
  assert set(q["methods"]) | set(q["skipped"]) == {"c", "ucfp", "mistakes"}
  assert q["best"] in q["methods"]
  for m in q["methods"].values():
    assert {
      "robustness",
      "transferability",
      "uniqueness_score",
      "robustness_all",
      "uniqueness_score_all",
      "auc",
      "tpr_at_1pct_fpr",
      "misses",
      "false_alarms",
      "seconds",
      "per_model",
    } <= set(m)
  assert os.path.exists(tmp_path / "results" / "quality-digits.md")
  assert q["total_seconds"] >= q["model_seconds"] > 0
  assert q["complete"] and q["missing"] == []
  # Resumable: a second run restores every model and every method's fingerprints.
  assert len(os.listdir(os.path.join(work, "fingerprints"))) == 2
  _run(
    ["benchmarks/quality.py", "--config=configs/ltrc.py:tiny", f"--workdir={work}", "--methods=c"],
    tmp_path,
  )
  again = json.load(open(tmp_path / "results" / "quality-digits.json"))
  assert again["methods"]["c"] == q["methods"]["c"]
  # --cached_only scores a build in progress: an innocent not built is left out, not trained
  models = sorted(os.listdir(os.path.join(work, "models")))
  _run(
    ["benchmarks/quality.py", "--config=configs/ltrc.py:tiny", f"--workdir={work}", "--methods=c"]
    + ["--cached_only", "--config.zoo.unassociated=mlp:103,mlp:104:half_b,mlp:199", "--tag=part"],
    tmp_path,
  )
  part = json.load(open(tmp_path / "results" / "quality-part.json"))
  assert not part["complete"] and part["missing"] == ["innocent-mlp-s199"]
  assert part["methods"]["c"]["per_model"] == again["methods"]["c"]["per_model"]
  assert "**Partial**" in open(tmp_path / "results" / "quality-part.md").read()
  assert sorted(os.listdir(os.path.join(work, "models"))) == models
  figs = sorted(os.listdir(tmp_path / "results" / "quality-digits-figures"))
  assert figs == ["match_rates.png", "match_vs_prune.png", "report.md", "roc.png"]
  assert q["methods"]["ucfp"]["per_model"]["pruned-0.5"]["rate"] == 0.5
  # The students' evidence restores the same zoo: the halves partition the train split.
  _run(
    ["benchmarks/student_labels.py", "--config=configs/ltrc.py:tiny", f"--workdir={work}"]
    + ["--nothreat_model", "--cached_only"],
    tmp_path,
  )
  s = json.load(open(tmp_path / "results" / "students-digits.json"))
  labels = s["labels"]
  assert (
    labels["half_a"]["queries"] + labels["half_b (extraction's queries)"]["queries"]
    == (labels["train (distillation's images)"]["queries"])
  )
  assert all(0 <= v["fraction"] <= 1 for v in labels.values())


def test_quality_figures_from_committed_results(tmp_path):
  """The figures of a results file written before pruning rates were stored (read from
  the copies' names), for the paper's methods only (no ablations)."""
  sys.path.insert(0, ROOT)
  from benchmarks import quality_report

  src = os.path.join(ROOT, "benchmarks", "results", "quality-digits.json")
  q = json.load(open(src))
  for method in q["methods"].values():  # as written before the rates were stored
    for entry in method["per_model"].values():
      entry.pop("rate", None)
  q["command"] = "python benchmarks/quality.py"  # (the committed one may list the methods)
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


def test_train_speed_quick(tmp_path):
  """The digits CNN at batch 8, 2 steps: ucfp's trainer step vs PyTorch's (or its skip)."""
  _run(["benchmarks/train_speed.py", "--quick"], tmp_path)
  res = json.load(open(tmp_path / "results" / "train-speed.json"))
  m = res["models"]["cnn_small"]
  assert m["ucfp_images_per_s"] > 0 and m["compile_s"] > 0 and m["batch"] == 8
  assert m["ucfp"]["params"] == 151306 and 0 < m["ucfp"]["forward_s"] < m["ucfp"]["step_s"] * 10
  assert {"command", "commit", "machine"} <= set(res) and len(res["loadavg"]["end"]) == 3
  if res["torch_skipped"]:
    assert m["torch_images_per_s"] is None and m["ratio"] is None
  else:
    assert m["torch_images_per_s"] > 0 and m["torch"]["params"] == m["ucfp"]["params"]
    assert m["ratio"] == pytest.approx(m["ucfp_images_per_s"] / m["torch_images_per_s"])
  assert "| cnn_small | 8 | 151,306 |" in open(tmp_path / "results" / "train-speed.md").read()


def test_train_speed_median_and_markdown():
  sys.path.insert(0, ROOT)
  from benchmarks import train_speed

  rounds = [
    {"images_per_s": 3.0},
    {"error": "killed"},
    {"images_per_s": 1.0},
    {"images_per_s": 2.0},
  ]
  assert train_speed._median(rounds) == {
    "images_per_s": 2.0,
    "images_per_s_rounds": [1.0, 2.0, 3.0],
  }
  u = dict(images_per_s=50.0, compile_s=4.0, forward_s=0.5, forward_backward_s=1.5, step_s=2.0)
  t = {**u, "images_per_s": 100.0, "params": 7}
  m = train_speed.summarise(128, {**u, "params": 7}, t)
  assert (m["ucfp_images_per_s"], m["torch_images_per_s"], m["ratio"]) == (50.0, 100.0, 0.5)
  res = {"models": {"vgg": m}, "rounds": 3, "loadavg": {"start": (1, 2, 3), "end": (2, 2, 2)}}
  md = train_speed.markdown(res)
  assert "| vgg | 128 | 7 | 50 | 100 | 0.50 | 4.0 | 500.0 / 1500.0 / 2000.0 |" in md
  assert "1.00, 2.00, 3.00 at the start" in md
  m["pair"] = {"ucfp_images_per_s": 80.0, "torch_images_per_s": 160.0, "ratio": 0.5}
  md = train_speed.markdown(res)
  assert "| vgg | 80 | 160 | 0.50 | 1.60x | 1.60x |" in md


def test_train_speed_bound_flops():
  """Forward + backward costs 2-4x the forward's FLOPs; the bound's table reads its rows."""
  import jax
  import jax.numpy as jnp

  sys.path.insert(0, ROOT)
  from benchmarks import train_speed_bound
  from ucfp.evaluation.models import get_module, init_variables

  module = get_module("cnn_small", 10, "xla")
  variables = init_variables(module, jax.random.PRNGKey(0), (8, 8, 1))
  fwd = jax.jit(lambda v, x: module.apply(v, x)).lower(variables, jnp.zeros((4, 8, 8, 1)))
  cost = fwd.compile().cost_analysis()
  fwd_gflop = (cost[0] if isinstance(cost, list) else cost)["flops"] / 1e9
  both = train_speed_bound.fwd_bwd_gflop("cnn_small", (8, 8, 1), 4)
  assert 2 * fwd_gflop < both < 4 * fwd_gflop
  row = dict(fwd_bwd_gflop=27.0, ucfp_fwd_bwd_s=0.45, torch_fwd_bwd_s=0.25, ucfp_gflops=60.0)
  row.update(torch_gflops=108.0, ucfp_fwd_bwd_s_at_ceiling=0.281, max_ratio=0.89)
  res = {"xla_conv_ceiling_gflops": 96.0, "speed_commit": "abc", "models": {"vgg": row}}
  md = train_speed_bound.markdown(res)
  assert "| vgg | 27.0 | 0.450 | 60 | 0.250 | 108 | 0.281 | 0.89 |" in md and "(96 GFLOP/s)" in md


@pytest.mark.parametrize("arch, shape", [("cnn_small", (8, 8, 1)), ("resnet20", (32, 32, 3))])
def test_torch_twin_gives_ucfp_logits(arch, shape):
  """Same layers, padding (stride 2) and flatten order: copied weights, same logits."""
  torch = pytest.importorskip("torch")
  import jax
  import numpy as np

  sys.path.insert(0, ROOT)
  from benchmarks.speed_reference import load_flax_params, torch_module
  from ucfp.evaluation.models import get_module, init_variables

  module = get_module(arch, 10)
  variables = init_variables(module, jax.random.PRNGKey(0), shape)
  twin = torch_module(arch).train()
  load_flax_params(twin, variables["params"])
  x = np.random.default_rng(0).uniform(size=(4, *shape)).astype(np.float32)
  ours, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
  theirs = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=2e-5)
  with pytest.raises(ValueError, match="params: "):
    load_flax_params(
      torch_module("vgg" if arch == "cnn_small" else "cnn_small"), variables["params"]
    )


def test_zoo_compare_and_record_minutes(tmp_path, monkeypatch):
  """Each model within tolerance of the quality json's zoo (absent: not); zoo_minutes
  written into train-speed.json beside what is there, and shown by its markdown."""
  sys.path.insert(0, ROOT)
  from benchmarks import common, train_speed, zoo

  before = {"a": {"test_accuracy": 0.80, "train_seconds": 600.0}}
  before["b"] = {"test_accuracy": 0.70, "train_seconds": 300.0}
  models = [{"name": "a", "test_accuracy": 0.805}, {"name": "b", "test_accuracy": 0.68}]
  cmp = zoo.compare(models, before, 0.01)
  assert [m["within"] for m in models] == [True, False] and models[1]["before_accuracy"] == 0.70
  assert cmp["before_minutes"] == 15.0 and not cmp["all_within"]
  assert zoo.compare([{"name": "c", "test_accuracy": 0.8}], before, 0.01)["all_within"] is False
  monkeypatch.setattr(common, "RESULTS", str(tmp_path))
  json.dump({"models": {}}, open(tmp_path / "train-speed.json", "w"))
  zoo.record_minutes(15.0, 6.5, True)
  res = json.load(open(tmp_path / "train-speed.json"))
  assert res["models"] == {} and res["zoo_minutes"]["after"] == 6.5
  res.update(rounds=1, loadavg={"start": (1, 1, 1), "end": (1, 1, 1)})
  assert "before 15.0, after 6.5" in train_speed.markdown(res)


def test_quality_fingerprint_cache_key_sees_every_generation_field():
  """Two configs that generate different fingerprints never share a cached file; a
  field left at its default keeps the key it had before the field existed."""
  sys.path.insert(0, ROOT)
  from benchmarks.quality_cache import cache_path
  from configs import ltrc
  from ucfp.evaluation.zoo import ZooModel

  base = ZooModel(None, "base", 0.9, label="base")
  paths = set()
  for over in ({}, {"oversample": 3}, {"budget": 0.2}, {"steps": 7}):
    cfg = ltrc.get_config("tiny")
    for k, v in over.items():
      cfg[k] = v
    paths.add(cache_path("/w", cfg, base, []))
  assert len(paths) == 4
  cfg = ltrc.get_config("tiny")
  default = cache_path("/w", cfg, base, [])
  cfg.oversample = 1
  assert cache_path("/w", cfg, base, []) == default
  # The generation key (--key): 0 is the default's file, any other its own.
  assert cache_path("/w", cfg, base, [], key=0) == default
  assert (
    len({default, cache_path("/w", cfg, base, [], key=1), cache_path("/w", cfg, base, [], key=2)})
    == 3
  )


def test_threat_tables_parse_for_digits_and_cifar10():
  """--threat_model's attacks and innocents are valid zoo specs; a 32x32x3 image folder
  gets CIFAR-10's (>= 20 innocents, every attack family), digits its own."""
  sys.path.insert(0, ROOT)
  from benchmarks.quality_methods import THREAT_ATTACKS, threat_tables
  from configs import ltrc
  from ucfp.evaluation.attacks import parse_attacks
  from ucfp.evaluation.checks import validate_config

  families = {a.split(":")[0] for a in THREAT_ATTACKS.split(",")}
  for preset, dataset in (("digits", "digits"), ("cifar10", "imagefolder:/x/cifar.tar.gz")):
    cfg = ltrc.get_config(preset)
    cfg.dataset = dataset
    attacks, innocents = threat_tables(cfg.dataset, cfg.image_shape)
    assert {a.split(":")[0] for a in attacks.split(",")} == families
    assert len(innocents.split(",")) >= 20
    cfg.zoo.attacks, cfg.zoo.unassociated = attacks, innocents
    validate_config(cfg)  # raises on a spec the zoo cannot build
    assert len(parse_attacks(attacks)) == len(attacks.split(","))
  assert threat_tables("imagefolder:/x", (32, 32, 3)) == threat_tables("cifar10", (32, 32, 3))
  assert threat_tables("mnist", (28, 28, 1))[1] is None


def test_kind_table_counts_useful_copies_per_attack_kind():
  """The per-attack-kind summary: a not-useful copy is neither hit nor miss, pruned
  copies without a spec count as pruning, innocents give false alarms and the max."""
  sys.path.insert(0, ROOT)
  from benchmarks.quality_report import kind_table

  def e(kind, rate, derived, attack=None, useful=True):
    return {
      "kind": kind, "match_rate": rate, "derived": derived, "useful": useful,
      **({"attack": attack} if attack else {}),
    }  # fmt: skip

  per_model = {
    "pruned-0.5": e("pruned", 0.9, True),
    "channel-pruned-0.5": e("derived", 0.4, False, "prune_channel:0.5:finetune"),
    "washed-other-data": e("derived", 0.1, False, "wash:other", useful=False),
    "finetuned-same-data": e("derived", 0.7, True, "finetune_all:same"),
    "distilled-mlp-T4": e("derived", 0.05, False, "distill:mlp:4"),
    "innocent-a": e("unassociated", 0.12, True),
    "innocent-b": e("unassociated", 0.03, False),
  }
  table = kind_table({"m": {"per_model": per_model}})
  header, _, row = table.splitlines()
  assert header.split(" | ")[1:4] == ["pruning", "fine-tuning", "distillation"]
  assert row == "| m | 1/2 of 2, 0.40 | 1/1 of 2, 0.70 | 0/1 of 1, 0.05 | 1 of 2, 0.12 |"
  per_model["future"] = e("derived", 0.5, True, "some_new_attack:1")  # listed, not a crash
  assert kind_table({"m": {"per_model": per_model}}).splitlines()[0].count("| other |") == 1


def test_combine_tests_sets_together_at_alpha_over_their_number():
  """Bonferroni over fingerprint sets: derived when any set's p < alpha / 2; a p-value
  below alpha in one set but not below alpha / 2 is no longer enough (copy or innocent)."""
  sys.path.insert(0, ROOT)
  from benchmarks.quality_report import combine, kind_table

  def e(kind, p, attack=None, useful=True):
    extra = {"attack": attack} if attack else {}
    return {"kind": kind, "p_value": p, "useful": useful, "match_rate": 0.5, **extra}

  a = {
    "pruned-0.5": e("pruned", 1e-30),
    "distilled": e("derived", 0.3, "distill:same:4"),
    "extracted": e("derived", 0.2, "extract:same:half_b"),
    "washed": e("derived", 0.9, "wash:other", useful=False),
    "innocent-a": e("unassociated", 0.5),
    "innocent-b": e("unassociated", 0.2),
  }
  b = {
    **a,
    "distilled": e("derived", 4e-4, "distill:same:4"),  # < alpha / 2: detected
    "extracted": e("derived", 8e-4, "extract:same:half_b"),  # < alpha, > alpha / 2: missed
    "innocent-b": e("unassociated", 6e-4),  # the same for an innocent: no alarm
  }
  b.pop("innocent-a")  # scored by one set only: left out
  c = combine({"x": {"per_model": a}, "y": {"per_model": b}}, ("x", "y"))
  pm = c["per_model"]
  assert set(pm) == set(a) - {"innocent-a"}
  assert pm["pruned-0.5"]["derived"] and pm["distilled"]["derived"]
  assert not pm["extracted"]["derived"] and not pm["innocent-b"]["derived"]
  assert pm["distilled"]["p_value"] == pytest.approx(8e-4)
  assert (c["misses"], c["false_alarms"]) == (1, 0)  # the not-useful copy is no miss
  # -log p: pruned and distilled above the innocent, extracted (p 1.6e-3) below it (1.2e-3)
  assert c["auc"] == pytest.approx(2 / 3)
  assert "match_rate" not in pm["distilled"]
  row = kind_table({"x+y": c}).splitlines()[2]
  assert row == "| x+y | 1/1 of 1 | 0/0 of 1 | 1/1 of 1 | 0/1 of 1 | 0 of 1 |"


def test_auc_split_separates_weight_copies_from_students():
  sys.path.insert(0, ROOT)
  from benchmarks.quality_report import auc_split, robustness_split

  per_model = {
    "pruned-0.5": {"kind": "pruned", "match_rate": 0.9},
    "noise-0.1": {"kind": "derived", "match_rate": 0.8, "attack": "noise:0.1"},
    "washed": {"kind": "derived", "match_rate": 0.0, "attack": "wash:other", "useful": False},
    "distilled": {"kind": "derived", "match_rate": 0.02, "attack": "distill:mlp:4"},
    "extracted": {"kind": "derived", "match_rate": 0.30, "attack": "extract:same:aug"},
    "innocent-a": {"kind": "unassociated", "match_rate": 0.05},
    "innocent-b": {"kind": "unassociated", "match_rate": 0.02},
  }
  s = auc_split(per_model)
  assert s["auc_weight_copies"] == 1.0
  assert s["auc_students"] == (0.25 + 1.0) / 2  # 0.02: below a, tied with b; 0.30: above both
  assert s["auc"] == (2 * 1.0 + 0.25 + 1.0) / 4  # the not-useful copy is left out
  r = robustness_split(per_model)  # every useful copy, the not-useful one left out
  assert r["robustness_all"] == pytest.approx((0.9 + 0.8 + 0.02 + 0.30) / 4)
  assert r["uniqueness_score_all"] == pytest.approx(r["robustness_all"] - 0.035)


def test_threat_base_lenet_sets_model_references_and_innocents():
  """--threat_base=lenet: every attack (digits' strengths and CIFAR-10's) with the LeNet
  base's references and >= 20 innocents, disjoint from the references; a base of another
  dataset is refused."""
  sys.path.insert(0, ROOT)
  from benchmarks.quality_methods import (
    THREAT_ATTACKS,
    THREAT_BASES,
    apply_threat_model,
    threat_tables,
  )
  from configs import ltrc
  from ucfp.evaluation.checks import validate_config

  cfg = ltrc.get_config("cifar10")
  cfg.dataset = "imagefolder:/x/cifar.tar.gz"
  apply_threat_model(cfg, "lenet")
  assert cfg.model == "lenet"
  assert cfg.reference.models == THREAT_BASES["lenet"]["references"]
  attacks = set(cfg.zoo.attacks.split(","))
  assert attacks >= set(THREAT_ATTACKS.split(",")) | set(
    threat_tables("cifar10", (32, 32, 3))[0].split(",")
  )
  innocents = cfg.zoo.unassociated.split(",")
  assert len(innocents) >= 20
  refs = {tuple(r.split(":")[:2]) for r in cfg.reference.models.split(",")}
  assert not refs & {tuple(i.split(":")[:2]) for i in innocents}
  validate_config(cfg)
  digits = ltrc.get_config("digits")
  with pytest.raises(ValueError, match="threat_base=lenet is a cifar10 base"):
    apply_threat_model(digits, "lenet")


def test_perturbed_pool_shifts_and_noises_every_image_with_its_label():
  sys.path.insert(0, ROOT)
  from benchmarks.quality_methods import perturbed_pool

  x = np.zeros((3, 4, 4, 1), np.float32)
  x[:, 1, 1] = 1.0
  images, labels = perturbed_pool(x, np.array([0, 1, 2]))
  assert images.shape == (33, 4, 4, 1) and images.dtype == np.float32
  assert labels.tolist() == [0, 1, 2] * 11
  assert images.min() >= 0.0 and images.max() <= 1.0
  assert images[0, 2, 2, 0] == 1.0 and images[0, 1, 1, 0] == 0.0  # shifted by (-1, -1)
  assert not np.array_equal(images[24], x[0])  # noisy


@pytest.mark.parametrize(
  "flags, message",
  [
    (["--threat_base=lenet"], "--threat_base needs --threat_model"),
    (["--threat_model", "--threat_base=lenet"], "threat_base=lenet is a cifar10 base"),
  ],
)
def test_threat_base_bad_flags_fail_before_any_compute(tmp_path, flags, message):
  work = tmp_path / "work"
  out = subprocess.run(
    [sys.executable, "benchmarks/quality.py", f"--workdir={work}", *flags],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert out.returncode != 0 and message in out.stdout + out.stderr
  assert not work.exists()  # nothing loaded or trained
