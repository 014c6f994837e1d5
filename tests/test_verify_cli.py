"""The verify command line (python -m ucfp.verify): suspects, null rates, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from conftest import ROOT

import ucfp
import ucfp.verify as cli_module

N, SHAPE = 20, (8, 8, 1)


def _subprocess(*args, code=None):
  cmd = [sys.executable, *(["-c", code] if code else ["-m", "ucfp.verify", *args])]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli(capsys):
  """Runs the command in-process: (exit status, stdout, stderr)."""

  def run(*args):
    flags.FLAGS.unparse_flags()
    code = cli_module.run(cli_module.parse_flags(["ucfp.verify", *args]))
    out, err = capsys.readouterr()
    return code, out, err

  yield run
  flags.FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """A fingerprint file of random images and a module of suspect factories beside it."""
  folder = tmp_path_factory.mktemp("synthetic")
  rng = np.random.default_rng(0)
  fps = ucfp.Fingerprints(rng.uniform(size=(N, *SHAPE)), np.arange(N) % 10, {"method": "test"})
  fp_path = str(folder / "fp.npz")
  fps.save(fp_path)
  w = rng.normal(size=(int(np.prod(SHAPE)), 10)).astype(np.float32)
  np.save(folder / "w.npy", w)
  source = f"""
import numpy as np
import ucfp

FPS = ucfp.Fingerprints.load({fp_path!r})
W = np.load({str(folder / "w.npy")!r})
MODEL = ucfp.Model(lambda v, x: x.reshape(x.shape[0], -1) @ v, W, "linear-constant")


def oracle():  # the label of the nearest fingerprint: a perfect copy
  def predict(x):
    d = ((x[:, None] - FPS.x[None]) ** 2).reshape(len(x), len(FPS), -1).sum(-1)
    return FPS.y[d.argmin(1)]
  return predict


def constant():
  return lambda x: np.zeros(len(x), np.int64)


def bad_shape():
  return lambda x: np.zeros((len(x), 2, 5), np.float32)


def linear():
  return ucfp.Model(lambda v, x: x.reshape(x.shape[0], -1) @ v, W, "linear")


def returns_int():
  return 3
"""
  (folder / "verify_suspects_mod.py").write_text(source)
  expected = float(np.mean(np.argmax(fps.x.reshape(N, -1) @ w, -1) == fps.y))
  return {"dir": folder, "fps": fp_path, "mod": str(folder / "verify_suspects_mod.py"), "w": w,
          "linear_match": expected}  # fmt: skip


def test_import_ucfp_verify_keeps_the_function_callable():
  code = (
    "import inspect, json, numpy as np, ucfp, ucfp.verify\n"
    "from ucfp import verify\n"
    "fps = ucfp.Fingerprints(np.zeros((10, 8, 8, 1)), np.arange(10))\n"
    "v = ucfp.verify(fps, lambda x: np.arange(10), null_rate=0.1, alpha=1e-3)\n"
    "w = verify(fps, lambda x: np.zeros(10, int), null_rate=0.1)\n"
    "params = list(inspect.signature(ucfp.verify).parameters)\n"
    "print(json.dumps([type(ucfp.verify).__name__, v.match_rate, v.derived, w.derived, params]))"
  )
  out = _subprocess(code=code)
  assert out.returncode == 0, out.stderr[-2000:]
  kind, rate, derived, other, params = json.loads(out.stdout.strip().splitlines()[-1])
  assert kind == "_CallableModule"  # the module, imported, took the attribute's place
  assert rate == 1.0 and derived is True and other is False
  assert params == ["fingerprints", "suspect", "null_rate", "alpha", "dispersion"]


def test_function_suspects_and_exit_codes(cli, synthetic):
  fp, mod = f"--fingerprints={synthetic['fps']}", synthetic["mod"]
  code, out, _ = cli(fp, f"--suspect={mod}:oracle", "--null_rate=0.1")
  assert code == 1 and "DERIVED" in out and "20 of 20" in out
  code, out, _ = cli(fp, f"--suspect={mod}:constant", "--null_rate=0.1", "--json")
  result = json.loads(out)
  assert code == 0 and result["match_rate"] == 0.1 and result["derived"] is False
  assert result["verdict"] == "not derived" and result["null_from"] == "--null_rate"
  # a Model from a factory and a module-level Model; by dotted name from sys.path
  sys.path.insert(0, str(synthetic["dir"]))
  try:
    for spec in (f"{mod}:linear", "verify_suspects_mod:MODEL"):
      code, out, _ = cli(fp, f"--suspect={spec}", "--null_rate=0.1", "--json")
      assert code in (0, 1) and json.loads(out)["match_rate"] == synthetic["linear_match"]
  finally:
    sys.path.remove(str(synthetic["dir"]))
  assert json.loads(out)["suspect"] == "linear-constant"


def test_beta_binomial_null_from_a_report(cli, synthetic, tmp_path):
  rates = [0.05, 0.1, 0.35, 0.0, 0.15]  # innocents spread wider than Binomial(20, T)
  inn = [{"name": f"innocent-{i}", "match_rate": r} for i, r in enumerate(rates)]
  (tmp_path / "r.json").write_text(json.dumps({"num_fingerprints": N, "unassociated": inn}))
  fp, rep = f"--fingerprints={synthetic['fps']}", f"--report={tmp_path / 'r.json'}"
  mod = synthetic["mod"]
  code, out, _ = cli(fp, f"--suspect={mod}:oracle", rep, "--null=beta-binomial", "--json")
  result = json.loads(out)
  assert code == 1 and result["derived"] and result["null"] == "beta-binomial"
  assert ucfp.null_dispersion(rates, N) > 0
  assert result["dispersion"] == pytest.approx(ucfp.null_dispersion(rates, N))
  assert result["null_rate"] == pytest.approx(ucfp.null_rate_upper_bound(rates, N))
  code, out, _ = cli(fp, f"--suspect={mod}:oracle", rep)  # binomial: rho 0, as before
  assert code == 1 and "beta-binomial" not in out
  code, out, _ = cli(fp, f"--suspect={mod}:oracle", rep, "--null=beta-binomial")
  assert code == 1 and "beta-binomial, dispersion rho" in out
  (tmp_path / "r.json").write_text(json.dumps({"num_fingerprints": N, "unassociated": inn[:1]}))
  code, _, err = cli(fp, f"--suspect={mod}:oracle", rep, "--null=beta-binomial")
  assert code == 2 and "needs >= 2 unassociated models" in err


@pytest.mark.parametrize(
  "args, message",
  [
    (["--suspect={mod}:bad_shape", "--null_rate=0.1"], "suspect returned shape (20, 2, 5)"),
    (["--suspect={mod}:nope", "--null_rate=0.1"], "has no attribute 'nope'"),
    (
      ["--suspect={mod}:returns_int", "--null_rate=0.1"],
      "returned a value of type int, not a ucfp.Model",
    ),
    (["--suspect=no_such_module_xyz:f", "--null_rate=0.1"], "cannot import 'no_such_module_xyz'"),
    (["--suspect=missing/model", "--null_rate=0.1"], "no such checkpoint"),
    (["--suspect={mod}:oracle"], "give exactly one of --report"),
    (["--suspect={mod}:oracle", "--null_rate=0.1", "--report=r.json"], "exactly one of"),
    (["--suspect={mod}:oracle", "--null_rate=1.5"], "--null_rate=1.5 must be in [0, 1]"),
    (["--suspect={mod}:oracle", "--null_rate=0.1", "--alpha=0"], "--alpha=0.0 must be in (0, 1)"),
    (["--suspect={mod}:oracle", "--report=missing.json"], "is not a readable JSON file"),
    (["--null_rate=0.1"], "--suspect is required"),
    (
      ["--suspect={mod}:oracle", "--null_rate=0.1", "--null=beta-binomial"],
      "--null=beta-binomial needs --report",
    ),
  ],
)
def test_bad_input_is_one_line_and_exit_2(cli, synthetic, args, message):
  args = [a.format(mod=synthetic["mod"]) for a in args]
  code, out, err = cli(f"--fingerprints={synthetic['fps']}", *args, "--json")
  assert code == 2
  assert message in json.loads(out)["error"]
  assert err.count("\n") == 1 and err.startswith("ucfp.verify: error: ") and message in err


def test_bad_fingerprint_file_and_flags_exit_2(cli, synthetic, tmp_path):
  code, _, err = cli("--fingerprints=nowhere.npz", "--suspect=x:y", "--null_rate=0.1")
  assert code == 2 and "no fingerprint file at 'nowhere.npz'" in err
  with pytest.raises(SystemExit) as e:
    cli("--no_such_flag=1")
  assert e.value.code == 2


def _onnx_linear(path, w, layout, batch):
  """A linear classifier as ONNX: NHWC or NCHW (transposed inside) input, (N, 10) logits."""
  onnx = pytest.importorskip("onnx", reason="onnx builds the test models")
  from onnx import TensorProto, helper, numpy_helper

  h, wd, c = SHAPE
  dims = [batch, h, wd, c] if layout == "NHWC" else [batch, c, h, wd]
  nodes, x = [], "x"
  if layout == "NCHW":
    nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1]))
    x = "xt"
  nodes += [
    helper.make_node("Reshape", [x, "flat"], ["xf"]),
    helper.make_node("MatMul", ["xf", "w"], ["logits"]),
  ]
  graph = helper.make_graph(
    nodes,
    "linear",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1, h * wd * c]), "flat")],
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
  model.ir_version = 8
  onnx.save(model, str(path))
  return str(path)


@pytest.mark.parametrize("layout, batch", [("NHWC", "N"), ("NCHW", 7)])
def test_onnx_suspect(cli, synthetic, tmp_path, layout, batch):
  pytest.importorskip("onnxruntime", reason="the optional extra ucfp[onnx] is not installed")
  path = _onnx_linear(tmp_path / "m.onnx", synthetic["w"], layout, batch)
  code, out, _ = cli(f"--fingerprints={synthetic['fps']}", f"--suspect={path}", "--null_rate=0.1",
                     "--json")  # fmt: skip
  result = json.loads(out)
  assert code in (0, 1) and result["suspect_kind"] == "onnx"
  assert result["match_rate"] == synthetic["linear_match"]  # the same as the linear Model


def test_onnx_without_onnxruntime_is_a_clear_error(cli, synthetic, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
  code, _, err = cli(f"--fingerprints={synthetic['fps']}", f"--suspect={tmp_path}/m.onnx",
                     "--null_rate=0.1")  # fmt: skip
  assert code == 2 and "onnxruntime is not installed: pip install 'ucfp[onnx]'" in err


def _tamper(src, dst):
  """A copy of a fingerprint file with one label changed and the old sha256 kept."""
  with np.load(src) as z:
    arrays = dict(z)
  arrays["y"] = arrays["y"].copy()
  arrays["y"][0] = (arrays["y"][0] + 1) % 10
  np.savez(dst, **arrays)
  return str(dst)


@pytest.mark.slow
def test_main_job_outputs_base_and_pruned_derived_innocents_not(cli, tiny_job):
  workdir, _ = tiny_job
  report = json.load(open(workdir / "report.json"))
  models = workdir / "models"
  fp, rep = f"--fingerprints={workdir / 'fingerprints.npz'}", f"--report={workdir / 'report.json'}"
  owned = [report["base"]["name"]] + [p["name"] for p in report["pruned"]]
  innocents = {e["name"]: e["match_rate"] for e in report["unassociated"]}
  assert len(owned) >= 2 and len(innocents) >= 2
  (record,) = models.glob(f"{owned[0]}-*.json")  # a checkpoint by its record ...
  (folder,) = [p for p in models.glob(f"{owned[-1]}-*") if p.is_dir()]  # ... or its folder
  specs = {owned[0]: record, owned[-1]: folder}
  for name in [*owned, *innocents]:
    suspect = specs.get(name, models / name)  # ... or <models>/<name>
    code, out, err = cli(fp, f"--suspect={suspect}", rep, "--json")
    result = json.loads(out)
    assert result["suspect"] == name and result["suspect_kind"] == "checkpoint", err
    if name in innocents:
      assert code == 0 and not result["derived"], result
      assert result["match_rate"] == pytest.approx(innocents[name])  # restored as evaluated
      assert name not in result["null_from"]  # never calibrated on itself
      assert len(result["null_from"]) == len(innocents) - 1
    else:
      assert code == 1 and result["derived"] and result["p_value"] < 1e-3, result
      assert result["null_from"] == list(innocents)


@pytest.mark.slow
def test_main_job_exit_codes_from_the_command_line(tiny_job, tmp_path):
  workdir, _ = tiny_job
  fp, rep = workdir / "fingerprints.npz", f"--report={workdir / 'report.json'}"
  base = f"--suspect={workdir / 'models' / 'base-cnn_small'}"
  out = _subprocess(f"--fingerprints={fp}", base, rep)
  assert out.returncode == 1, out.stderr[-2000:]
  assert "verdict     DERIVED" in out.stdout and "match rate  1.000 (20 of 20)" in out.stdout
  tampered = _tamper(fp, tmp_path / "tampered.npz")
  out = _subprocess(f"--fingerprints={tampered}", base, rep, "--json")
  assert out.returncode == 2
  assert "sha256 mismatch" in json.loads(out.stdout)["error"]
  assert out.stderr.strip().splitlines()[-1].startswith("ucfp.verify: error: ")


def test_checkpoint_and_report_that_do_not_fit_the_fingerprints(cli, tiny_job, tmp_path):
  workdir, _ = tiny_job
  big = ucfp.Fingerprints(np.zeros((N, 16, 16, 1)), np.arange(N) % 10)
  big_path = big.save(str(tmp_path / "big.npz"))
  base = f"--suspect={workdir / 'models' / 'base-cnn_small'}"
  code, _, err = cli(f"--fingerprints={big_path}", base, "--null_rate=0.1")
  assert code == 2 and "cnn_small weights do not fit images of shape (16, 16, 1)" in err
  report = json.load(open(workdir / "report.json"))
  (tmp_path / "r.json").write_text(json.dumps({**report, "num_fingerprints": N + 1}))
  code, _, err = cli(f"--fingerprints={workdir / 'fingerprints.npz'}", base,
                     f"--report={tmp_path / 'r.json'}")  # fmt: skip
  assert code == 2 and f"report num_fingerprints={N + 1} but the fingerprint file has {N}" in err
  del report["unassociated"]
  (tmp_path / "r.json").write_text(json.dumps(report))
  code, _, err = cli(f"--fingerprints={workdir / 'fingerprints.npz'}", base,
                     f"--report={tmp_path / 'r.json'}")  # fmt: skip
  assert code == 2 and "report has no 'unassociated' match rates" in err
  code, _, err = cli(f"--fingerprints={_tamper(workdir / 'fingerprints.npz', tmp_path / 't.npz')}",
                     base, "--null_rate=0.1")  # fmt: skip
  assert code == 2 and "sha256 mismatch" in err


def test_main_job_with_a_mistakes_set_tests_both_at_alpha_over_2(cli, mistakes_job, tmp_path):
  from ucfp.core.scoring import combined_p_value

  workdir, _ = mistakes_job
  report = json.load(open(workdir / "report.json"))
  fp, rep = f"--fingerprints={workdir / 'fingerprints.npz'}", f"--report={workdir / 'report.json'}"
  expected = {e["name"]: e for k in ("pruned", "unassociated") for e in report[k]}
  for name, e in expected.items():
    code, out, err = cli(fp, f"--suspect={workdir / 'models' / name}", rep, "--json")
    result = json.loads(out)
    examples, mistakes = result["sets"]  # auto: the report's mistakes set
    assert mistakes["fingerprints"] == str(workdir / "mistakes.npz"), err
    assert examples["match_rate"] == result["match_rate"] == pytest.approx(e["match_rate"])
    assert mistakes["match_rate"] == pytest.approx(e["mistakes_match_rate"])
    assert examples["alpha"] == mistakes["alpha"] == 5e-4
    assert result["p_value"] == combined_p_value([examples["p_value"], mistakes["p_value"]])
    assert code == int(result["derived"]) and result["derived"] == (result["p_value"] < 1e-3)
    if name in [i["name"] for i in report["unassociated"]]:  # leave-one-out, as evaluated
      assert result["p_value"] == pytest.approx(e["combined"]["p_value"])
  base = f"--suspect={workdir / 'models' / 'base-cnn_small'}"
  code, out, _ = cli(fp, base, rep)
  assert "mistakes    1.000 (10 of 10) against null rate" in out
  assert "(the smallest of 2 sets' p-values x 2;" in out
  code, out, _ = cli(fp, base, rep, "--mistakes=none", "--json")
  (only,) = json.loads(out)["sets"]
  assert only["alpha"] == 1e-3 and json.loads(out)["p_value"] == only["p_value"]
  # the report and its mistakes set moved together: found beside the report
  moved = tmp_path / "moved"
  moved.mkdir()
  (moved / "mistakes.npz").write_bytes((workdir / "mistakes.npz").read_bytes())
  gone = {**report, "mistakes": {**report["mistakes"], "fingerprints": "/nonexistent/mistakes.npz"}}
  (moved / "report.json").write_text(json.dumps(gone))
  code, out, err = cli(fp, base, f"--report={moved / 'report.json'}", "--json")
  assert json.loads(out)["sets"][1]["fingerprints"] == str(moved / "mistakes.npz"), err
  (moved / "mistakes.npz").unlink()
  code, _, err = cli(fp, base, f"--report={moved / 'report.json'}")
  assert code == 2 and "names a mistakes set '/nonexistent/mistakes.npz' that is neither" in err
  code, _, err = cli(fp, base, "--null_rate=0.1", f"--mistakes={workdir / 'mistakes.npz'}")
  assert code == 2 and "--mistakes=PATH needs --report=report.json" in err
  no_rates = {**report, "mistakes": {"fingerprints": report["mistakes"]["fingerprints"]}}
  (moved / "report.json").write_text(json.dumps(no_rates))
  code, _, err = cli(fp, base, f"--report={moved / 'report.json'}")
  assert code == 2 and "report has no 'unassociated' match rates" in err
