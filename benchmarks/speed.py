"""Speed of the generation step (RC: mean loss over V model variants) per batching strategy.

    python benchmarks/speed.py [--quick]
    python benchmarks/speed.py --xla-flags   # oneDNN / XNNPACK flags of XLA:CPU

For the digits model (cnn_small, 8x8x1) and the CIFAR-10 model (vgg, 32x32x3),
V in {1, 8, 32} and B in {64, 256}, and each strategy of `robust.batching`
(`auto` resolves to one of them, so its row repeats that measurement; `grouped` only
where V > GROUP_CPU, as below that it is `unrolled`; at V=8 also `vmap+im2col`, vmap
with im2col convolutions, a stronger vmap baseline on XLA:CPU): median
step time, compile time (lower + compile), useful GFLOP/s (forward FLOPs from XLA's cost analysis
x 2V: V forward and V input-gradient passes; the base-model margin is read every 10
steps outside the step) and XLA's
cost analysis of the whole step, peak RSS. Also the ceilings measured in the same
run (f32 matmul, 64-channel 3x3 convolution) and a PyTorch CPU reference loop over
V masked copies of the same architecture (input gradient only), skipped with a
message when torch is absent. Every configuration runs in its own process; at V=8, where
the must-show ratios are measured, in ROUNDS_V8 interleaved processes (median reported).
Writes benchmarks/results/speed.json and .md.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = {"digits": ("cnn_small", (8, 8, 1)), "cifar10": ("vgg", (32, 32, 3))}
# XLA's cost analysis counts a `lax.scan` body once, so its GFLOP/s for `loop` is low by ~V.
STRATEGIES = ("vmap", "loop", "unrolled", "grouped")  # grouped only where V > GROUP_CPU
# Not a ucfp strategy: `vmap` with im2col convolutions, whose batching rule is a batched
# matmul instead of a grouped convolution: the strongest vmap form found on XLA:CPU.
VMAP_IM2COL = "vmap+im2col"


def _timed(fn, max_total=30.0, min_reps=3, max_reps=41, min_total=2.0):
  """(first call seconds, median of further calls; for a step slower than `max_total`,
  the first call: compilation happens before, so it is a steady step).

  Fast steps are repeated until `min_total` seconds or `max_reps` calls (at least
  `min_reps`): on this shared VM a 30 ms step varies by +-30% from call to call, and a
  median of 3 calls was off by up to 2x between runs.
  """
  t = time.perf_counter()
  fn()
  first = time.perf_counter() - t
  if first > max_total:
    return first, first
  times = []
  while len(times) < max_reps:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
    total = sum(times)
    if total > max_total or (len(times) >= min_reps and total >= min_total):
      break
  return first, statistics.median(times)


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_jax(model_key, v, b, strategy, whole=False) -> dict:
  import jax
  import jax.numpy as jnp

  if strategy == VMAP_IM2COL:  # this process only: vmap with im2col convolutions
    import ucfp.step

    ucfp.step.conv_lowering_for = lambda batching, backend=None: "im2col"
    strategy = "vmap"

  from configs import rc
  from ucfp import prune
  from ucfp.generation import GenSpec, GroupedStep, compiled_step, make_optimizer
  from ucfp.models import get_module, inference_apply, init_variables

  arch, shape = MODELS[model_key]
  module = get_module(arch, 10)
  apply_fn = inference_apply(module)
  variables = init_variables(module, jax.random.PRNGKey(0), shape)
  cfg = rc.get_config()
  cfg.robust.num_variants, cfg.robust.batching, cfg.num_fingerprints = v, strategy, b
  cfg.robust.chunk = b if whole else 0  # all examples at once, or the auto rule
  spec = GenSpec.from_config(cfg)
  step = compiled_step(spec, apply_fn, ())
  x0 = jax.random.uniform(jax.random.PRNGKey(1), (b, *shape))
  y = jnp.arange(b) % 10
  sorted_abs = prune.sorted_magnitudes(variables)
  state = [(jnp.copy(x0), make_optimizer(spec).init(x0))]
  args = lambda: (state[0], x0, y, variables, (), (), sorted_abs, jax.random.PRNGKey(3))

  def cost(compiled):
    c = compiled.cost_analysis()
    return (c[0] if isinstance(c, list | tuple) else c).get("flops", float("nan"))

  t = time.perf_counter()
  if isinstance(step, GroupedStep):  # one compiled call per group, then the update
    st, *rest = args()
    group = step.group_fn.lower(st[0], *rest, jnp.int32(0)).compile()
    part = (jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct(x0.shape, x0.dtype))
    update = step.update_fn.lower(st, (part,) * step.num_groups).compile()
    step_flops = step.num_groups * cost(group) + cost(update)
  else:
    step_flops = cost(step.lower(*args()).compile())
  compile_s = time.perf_counter() - t

  def call():
    new_state, loss = step(*args())
    jax.block_until_ready(loss)
    state[0] = new_state

  _, step_s = _timed(call)
  fwd = jax.jit(apply_fn).lower(variables, x0).compile().cost_analysis()
  fwd = fwd[0] if isinstance(fwd, list | tuple) else fwd
  useful = fwd["flops"] * 2 * v
  return {
    "compile_s": compile_s,
    "step_s": step_s,
    "useful_gflops": useful / step_s / 1e9,
    "xla_gflops": step_flops / step_s / 1e9,
    "peak_rss_gib": _peak_rss_gib(),
    "resolved": spec.batching,
    "chunk": spec.chunk or b,
  }


def _torch_model(model_key):
  import torch
  from torch import nn

  if model_key == "digits":
    return nn.Sequential(
      nn.Conv2d(1, 32, 3, padding=1),
      nn.ReLU(),
      nn.Conv2d(32, 64, 3, padding=1),
      nn.ReLU(),
      nn.MaxPool2d(2),
      nn.Flatten(),
      nn.Linear(64 * 16, 128),
      nn.ReLU(),
      nn.Linear(128, 10),
    )
  layers, c = [], 3
  for i, w in enumerate((32, 64, 128)):
    for _ in range(2):
      layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
      c = w
    if i < 2:
      layers.append(nn.MaxPool2d(2))
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)).eval()
  del torch


def run_torch(model_key, v, b) -> dict:
  import torch
  from torch.func import functional_call

  torch.set_num_threads(os.cpu_count() or 1)
  model = _torch_model(model_key).eval()
  params = {k: p.detach() for k, p in model.named_parameters()}
  buffers = dict(model.named_buffers())
  kernels = [k for k, p in params.items() if p.ndim >= 2]
  flat = torch.cat([params[k].abs().flatten() for k in kernels]).sort().values
  _, shape = MODELS[model_key]
  x = torch.rand(b, shape[2], shape[0], shape[1])
  y = torch.arange(b) % 10

  def call():
    xg = x.clone().requires_grad_(True)
    total = 0.0
    for _ in range(v):
      rate = float(torch.empty(()).uniform_(0.3, 0.9))
      thr = flat[int(rate * (flat.numel() - 1))]
      p = dict(params)
      for k in kernels:
        w = params[k]
        noisy = w + 0.01 * w.abs() * torch.empty_like(w).uniform_(-1, 1)
        p[k] = noisy * (w.abs() >= thr)
      out = functional_call(model, {**p, **buffers}, (xg,))
      total = total + torch.nn.functional.cross_entropy(out, y, reduction="sum")
    (grad,) = torch.autograd.grad(total / v, xg)
    xg.data = (xg - 0.01 * grad.sign()).clamp(0, 1)

  first, step = _timed(call)
  return {"step_s": step, "first_s": first, "peak_rss_gib": _peak_rss_gib()}


def run_ceilings() -> dict:
  import jax

  out = {}
  a = jax.random.normal(jax.random.PRNGKey(0), (2048, 2048))
  mm = jax.jit(lambda a: a @ a)
  _, s = _timed(lambda: mm(a).block_until_ready())
  out["jax_matmul_gflops"] = 2 * 2048**3 / s / 1e9
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 32, 32, 64))
  w = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 64, 64))
  conv = jax.jit(
    lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
  )
  _, s = _timed(lambda: conv(x, w).block_until_ready())
  conv_flops = 2 * 64 * 32 * 32 * 64 * 64 * 9
  out["jax_conv_gflops"] = conv_flops / s / 1e9
  try:
    import torch
  except ImportError:
    return out
  torch.set_num_threads(os.cpu_count() or 1)
  ta = torch.randn(2048, 2048)
  _, s = _timed(lambda: ta @ ta)
  out["torch_matmul_gflops"] = 2 * 2048**3 / s / 1e9
  tx, tw = torch.randn(64, 64, 32, 32), torch.randn(64, 64, 3, 3)
  with torch.no_grad():
    _, s = _timed(lambda: torch.nn.functional.conv2d(tx, tw, padding=1))
  out["torch_conv_gflops"] = conv_flops / s / 1e9
  return out


def run_sharded() -> dict:
  """RC fingerprints of the digits model (random weights, N=64, 20 steps, V=8) sharded
  over 8 fake CPU devices vs on one device, in one process."""
  import jax
  import numpy as np

  from configs import rc
  from ucfp import Model, fingerprint
  from ucfp.models import get_module, inference_apply, init_variables

  assert jax.device_count() == 8, jax.devices()
  module = get_module("cnn_small", 10)
  model = Model(inference_apply(module), init_variables(module, jax.random.PRNGKey(0), (8, 8, 1)))
  c = rc.get_config()
  c.num_fingerprints, c.steps, c.loss = 64, 20, "margin"
  out = {}
  for shard in (True, False):
    c.shard = shard
    t = time.perf_counter()
    out[shard] = fingerprint(model, c, key=jax.random.PRNGKey(0))
    out[f"seconds_{shard}"] = time.perf_counter() - t
  diff = np.abs(out[True].x - out[False].x)
  return {
    "devices": out[True].meta["devices"],
    "max_abs_diff": float(diff.max()),
    "frac_pixels_diff_gt_1e-4": float(np.mean(diff > 1e-4)),
    "labels_equal": bool(np.array_equal(out[True].y, out[False].y)),
    "sharded_s": out["seconds_True"],
    "single_s": out["seconds_False"],
  }


def _subprocess(args, env=None) -> dict:
  cmd = [sys.executable, __file__, "--one", json.dumps(args)]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800, env=env)
  for line in out.stdout.splitlines()[::-1]:
    if line.startswith("RESULT "):
      return json.loads(line[7:])
  return {"error": (out.stderr or out.stdout)[-500:]}


def one(args):
  kind = args["kind"]
  if kind == "jax":
    res = run_jax(args["model"], args["v"], args["b"], args["strategy"], args.get("whole", False))
  elif kind == "sharded":
    res = run_sharded()
  elif kind == "torch":
    res = run_torch(args["model"], args["v"], args["b"])
  else:
    res = run_ceilings()
  print("RESULT " + json.dumps(res), flush=True)


XLA_FLAG_SETS = (
  "",
  "--xla_cpu_use_onednn=true",
  "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
  "--xla_cpu_use_xnnpack=true",
)


def flags_main():
  """XLA:CPU flags that might route convolutions to oneDNN or XNNPACK, on the CIFAR-10
  model at V=8, B=64, for the unrolled and loop strategies."""
  from benchmarks.common import write_results

  rows = []
  for flags in XLA_FLAG_SETS:
    for strategy in ("unrolled", "loop"):
      env = {**os.environ, "XLA_FLAGS": flags}
      args = {"kind": "jax", "model": "cifar10", "v": 8, "b": 64, "strategy": strategy}
      out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
      )
      res = next(
        (json.loads(x[7:]) for x in out.stdout.splitlines() if x.startswith("RESULT ")),
        {"error": out.stderr[-300:]},
      )
      rows.append({"xla_flags": flags or "(none)", "strategy": strategy, **res})
      print(rows[-1], flush=True)
  md = [
    "# XLA:CPU flags (cifar10 model, V=8, B=64)",
    "",
    "| XLA_FLAGS | strategy | step s |",
    "|---|---|---|",
  ]
  md += [
    f"| `{r['xla_flags']}` | {r['strategy']} | {r.get('step_s', float('nan')):.3f} |" for r in rows
  ]
  write_results("speed-xla-flags", {"rows": rows}, "\n".join(md))
  print("\n".join(md))


ROUNDS_V8 = 3  # processes per V=8 configuration, where the must-show ratios are measured


def _median_round(rounds: list[dict]) -> dict:
  """The round with the median step time, plus every round's step time (`step_s_rounds`)."""
  ok = sorted((r for r in rounds if "step_s" in r), key=lambda r: r["step_s"])
  if not ok:
    return rounds[-1]
  return {**ok[(len(ok) - 1) // 2], "step_s_rounds": [r["step_s"] for r in ok]}


def main(quick: bool):
  from benchmarks.common import write_results

  vs, bs = ((1, 8), (64,)) if quick else ((1, 8, 32), (64, 256))
  try:
    import torch  # noqa: F401

    have_torch = True
  except ImportError:
    have_torch = False
    print("torch is absent: skipping the PyTorch reference (pip install torch==2.13.0)")
  from ucfp.variants import GROUP_CPU, resolve_batching

  results = {"ceilings": _subprocess({"kind": "ceilings"}), "jax": [], "torch": []}
  print("ceilings", results["ceilings"], flush=True)
  for model_key in MODELS:
    for b in bs:
      for v in vs:
        runs = [(s, False) for s in STRATEGIES if s != "grouped" or v > GROUP_CPU]
        if v == 8:  # the effect of example chunking, where the must-show is measured
          runs += [("vmap", True), (resolve_batching("auto", v, "cpu"), True)]
          runs += [(VMAP_IM2COL, False)]
        configs = [dict(model=model_key, v=v, b=b, strategy=s, whole=w) for s, w in runs]
        rounds = [[] for _ in configs]
        for _ in range(ROUNDS_V8 if v == 8 else 1):  # interleaved: a slow spell hits all
          for i, args in enumerate(configs):
            rounds[i].append(_subprocess({"kind": "jax", **args}))
            print(args, rounds[i][-1], flush=True)
        results["jax"] += [{**args, **_median_round(rounds[i])} for i, args in enumerate(configs)]
        if have_torch:
          t = {"model": model_key, "v": v, "b": b}
          t.update(_subprocess({"kind": "torch", **t}))
          results["torch"].append(t)
          print("torch", t, flush=True)
  results["auto_rule"] = {str(v): resolve_batching("auto", v, "cpu") for v in (1, 8, 32)}
  fake8 = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  results["sharded"] = _subprocess({"kind": "sharded"}, env=fake8)
  print("sharded", results["sharded"], flush=True)
  write_results("speed", results, markdown(results))
  print(markdown(results))


def markdown(res) -> str:
  def get(model, b, v, strategy, whole=False):
    for r in res["jax"]:
      key = (r["model"], r["b"], r["v"], r["strategy"], r.get("whole", False))
      if key == (model, b, v, strategy, whole) and "step_s" in r:
        return r
    return None

  def torch_row(model, b, v):
    for r in res["torch"]:
      if (r["model"], r["b"], r["v"]) == (model, b, v):
        return r
    return None

  c = res["ceilings"]
  lines = [
    "# Generation step speed (RC objective, one optimiser step)",
    "",
    "Ceilings in the same run: " + ", ".join(f"{k} {v:.1f}" for k, v in c.items()),
    "",
    "| model | B | V | strategy | chunk | step s | compile s | useful GFLOP/s | XLA GFLOP/s "
    "| peak RSS GiB | vs torch |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in res["jax"]:
    if "error" in r:
      lines.append(
        f"| {r['model']} | {r['b']} | {r['v']} | {r['strategy']} | error: {r['error'][-80:]!r} |"
      )
      continue
    t = torch_row(r["model"], r["b"], r["v"])
    ratio = f"{r['step_s'] / t['step_s']:.2f}x" if t and "step_s" in t else "n/a"
    lines.append(
      f"| {r['model']} | {r['b']} | {r['v']} | {r['strategy']} | {r['chunk']} | {r['step_s']:.4f} | "
      f"{r['compile_s']:.1f} | {r['useful_gflops']:.1f} | {r['xla_gflops']:.1f} | "
      f"{r['peak_rss_gib']:.2f} | {ratio} |"
    )
  lines += [
    "",
    "PyTorch reference (loop over V masked copies, input gradient only):",
    "",
    "| model | B | V | step s | peak RSS GiB |",
    "|---|---|---|---|---|",
  ]
  for t in res["torch"]:
    if "step_s" in t:
      lines.append(
        f"| {t['model']} | {t['b']} | {t['v']} | {t['step_s']:.4f} | {t['peak_rss_gib']:.2f} |"
      )
  lines += [
    "",
    "`auto` on CPU resolves to: " + ", ".join(f"V={k}: {v}" for k, v in res["auto_rule"].items()),
  ]
  checks = []
  for model in MODELS:
    for b in sorted({r["b"] for r in res["jax"]}):
      auto8 = get(model, b, 8, res["auto_rule"]["8"])
      auto1 = get(model, b, 1, res["auto_rule"]["1"])
      vmaps = [r for r in (get(model, b, 8, "vmap"), get(model, b, 8, "vmap", True)) if r]
      if auto8 and auto1 and vmaps:
        vmap8 = min(vmaps, key=lambda r: r["step_s"])  # the faster vmap, chunked or not
        im2col = get(model, b, 8, VMAP_IM2COL)
        vs_im2col = (
          f"; {im2col['step_s'] / auto8['step_s']:.1f}x faster than vmap+im2col" if im2col else ""
        )
        spread = "".join(
          f"; {name} rounds {min(r['step_s_rounds']):.4g}-{max(r['step_s_rounds']):.4g} s"
          for name, r in (("auto", auto8), ("vmap", vmap8))
          if len(r.get("step_s_rounds", [])) > 1
        )
        checks.append(
          f"- {model}, B={b}: auto V=8 step = {auto8['step_s'] / (8 * auto1['step_s']):.2f} x "
          f"(8 x its V=1 step); {vmap8['step_s'] / auto8['step_s']:.1f}x faster than vmap "
          f"(its faster form, chunk {vmap8['chunk']}){vs_im2col} (medians of "
          f"{len(auto8.get('step_s_rounds', [0]))} processes{spread})"
        )
  for model in MODELS:
    for b in sorted({r["b"] for r in res["jax"]}):
      ratios = []
      for v in (8, 32):
        a, t = get(model, b, v, res["auto_rule"].get(str(v), "")), torch_row(model, b, v)
        if a and t and "step_s" in t:
          ratios.append(f"V={v} {a['step_s'] / t['step_s']:.2f}x ({a['strategy']})")
      if ratios:
        checks.append(f"- {model}, B={b}: auto / PyTorch step time: " + ", ".join(ratios))
  sh = res.get("sharded", {})
  if "max_abs_diff" in sh:
    checks.append(
      f"- sharded over {sh['devices']} fake CPU devices vs one device (digits model, RC, "
      f"64 examples, 20 steps, margin loss): labels equal {sh['labels_equal']}, max |dx| "
      f"{sh['max_abs_diff']:.2g}, pixels differing > 1e-4: {sh['frac_pixels_diff_gt_1e-4']:.4f} "
      f"({sh['sharded_s']:.1f} s vs {sh['single_s']:.1f} s: 8 fake devices share 2 cores)"
    )
  elif sh:
    checks.append(f"- sharded run failed: {sh.get('error', '')[-200:]!r}")
  return "\n".join(lines + [""] + checks)


if __name__ == "__main__":
  if len(sys.argv) > 2 and sys.argv[1] == "--one":
    one(json.loads(sys.argv[2]))
  elif "--xla-flags" in sys.argv:
    flags_main()
  else:
    main(quick="--quick" in sys.argv)
