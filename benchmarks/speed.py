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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_rss_gib, print_result, run_in_subprocess, timed, write_results  # noqa: E402
from benchmarks.speed_reference import MODELS, run_ceilings, run_torch  # noqa: E402
from benchmarks.speed_report import VMAP_IM2COL, flags_main, markdown  # noqa: E402

# XLA's cost analysis counts a `lax.scan` body once, so its GFLOP/s for `loop` is low by ~V.
STRATEGIES = ("vmap", "loop", "unrolled", "grouped")  # grouped only where V > GROUP_CPU


def run_jax(model_key, v, b, strategy, whole=False) -> dict:
  import jax
  import jax.numpy as jnp

  if strategy == VMAP_IM2COL:  # this process only: vmap with im2col convolutions
    import ucfp.core.step

    ucfp.core.step.conv_lowering_for = lambda batching, backend=None: "im2col"
    strategy = "vmap"

  from configs import rc
  from ucfp.core import prune
  from ucfp.core.generation import GenSpec, GroupedStep, compiled_step, make_optimizer
  from ucfp.evaluation.models import get_module, inference_apply, init_variables

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

  _, step_s = timed(call)
  fwd = jax.jit(apply_fn).lower(variables, x0).compile().cost_analysis()
  fwd = fwd[0] if isinstance(fwd, list | tuple) else fwd
  useful = fwd["flops"] * 2 * v
  return {
    "compile_s": compile_s,
    "step_s": step_s,
    "useful_gflops": useful / step_s / 1e9,
    "xla_gflops": step_flops / step_s / 1e9,
    "peak_rss_gib": peak_rss_gib(),
    "resolved": spec.batching,
    "chunk": spec.chunk or b,
  }


def run_sharded() -> dict:
  """RC fingerprints of the digits model (random weights, N=64, 20 steps, V=8) sharded
  over 8 fake CPU devices vs on one device, in one process."""
  import jax
  import numpy as np

  from configs import rc
  from ucfp import Model, fingerprint
  from ucfp.evaluation.models import get_module, inference_apply, init_variables

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


def _run(args, env=None) -> dict:
  return run_in_subprocess(__file__, args, env=env)


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
  print_result(res)


ROUNDS_V8 = 3  # processes per V=8 configuration, where the must-show ratios are measured


def _median_round(rounds: list[dict]) -> dict:
  """The round with the median step time, plus every round's step time (`step_s_rounds`)."""
  ok = sorted((r for r in rounds if "step_s" in r), key=lambda r: r["step_s"])
  if not ok:
    return rounds[-1]
  return {**ok[(len(ok) - 1) // 2], "step_s_rounds": [r["step_s"] for r in ok]}


def main(quick: bool):
  vs, bs = ((1, 8), (64,)) if quick else ((1, 8, 32), (64, 256))
  try:
    import torch  # noqa: F401

    have_torch = True
  except ImportError:
    have_torch = False
    print("torch is absent: skipping the PyTorch reference (pip install torch==2.13.0)")
  from ucfp.core import progress
  from ucfp.core.variants import GROUP_CPU, resolve_batching

  progress.show_progress()
  results = {"ceilings": _run({"kind": "ceilings"}), "jax": [], "torch": []}
  print("ceilings", results["ceilings"], flush=True)
  cells = progress.bar(total=len(MODELS) * len(bs) * len(vs), desc="speed", unit="cell")
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
            rounds[i].append(_run({"kind": "jax", **args}))
            print(args, rounds[i][-1], flush=True)
        results["jax"] += [{**args, **_median_round(rounds[i])} for i, args in enumerate(configs)]
        if have_torch:
          t = {"model": model_key, "v": v, "b": b}
          t.update(_run({"kind": "torch", **t}))
          results["torch"].append(t)
          print("torch", t, flush=True)
        cells.update(1)
  cells.close()
  results["auto_rule"] = {str(v): resolve_batching("auto", v, "cpu") for v in (1, 8, 32)}
  fake8 = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  results["sharded"] = _run({"kind": "sharded"}, env=fake8)
  print("sharded", results["sharded"], flush=True)
  write_results("speed", results, markdown(results))
  print(markdown(results))


if __name__ == "__main__":
  if len(sys.argv) > 2 and sys.argv[1] == "--one":
    one(json.loads(sys.argv[2]))
  elif "--xla-flags" in sys.argv:
    flags_main()
  else:
    main(quick="--quick" in sys.argv)
