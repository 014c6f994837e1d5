"""How fast could ucfp's training step be on XLA:CPU? A bound from FLOPs and ceilings.

    python benchmarks/train_speed_bound.py

For each 32x32 model of benchmarks/train_speed.py: the FLOPs of one forward + backward
pass at batch 128 (XLA's cost analysis of the compiled `value_and_grad` of the
cross-entropy, BatchNorm in training mode), the GFLOP/s that ucfp's and PyTorch's
measured forward + backward reached (`benchmarks/results/train-speed.json`), and the
shortest forward + backward ucfp could reach if every FLOP ran at the 3x3-convolution
ceiling XLA:CPU reached in that run: its time over PyTorch's measured one is the largest
ucfp / PyTorch ratio XLA's convolution allows. Compiles only (no timing of its own).
Writes benchmarks/results/train-speed-bound.json and .md.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS, write_results  # noqa: E402
from benchmarks.train_speed import MODELS  # noqa: E402


def fwd_bwd_gflop(arch: str, shape: tuple[int, int, int], batch: int) -> float:
  """XLA's FLOP count (GFLOP) of one forward + backward pass of `arch` at `batch`."""
  import jax
  import jax.numpy as jnp
  import optax

  from ucfp.evaluation import models

  module = models.get_module(arch, 10, "xla")
  variables = models.init_variables(module, jax.random.PRNGKey(0), shape)
  params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}

  def loss(p, x, y):
    logits, _ = module.apply({"params": p, **rest}, x, train=True, mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  x, y = jnp.zeros((batch, *shape)), jnp.zeros((batch,), jnp.int32)
  cost = jax.jit(jax.value_and_grad(loss)).lower(params, x, y).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"]) / 1e9


def main() -> None:
  with open(os.path.join(RESULTS, "train-speed.json")) as f:
    speed = json.load(f)
  ceiling = speed["ceilings"]["jax_conv_gflops"]
  rows = {}
  for name, (arch, shape, batch, _) in MODELS.items():
    m = speed["models"].get(name, {})
    if shape[0] != 32 or not m.get("torch"):
      continue
    gflop = fwd_bwd_gflop(arch, shape, batch)
    ucfp_s, torch_s = m["ucfp"]["forward_backward_s"], m["torch"]["forward_backward_s"]
    best_s = gflop / ceiling
    rows[name] = {
      "batch": batch,
      "fwd_bwd_gflop": gflop,
      "ucfp_fwd_bwd_s": ucfp_s,
      "torch_fwd_bwd_s": torch_s,
      "ucfp_gflops": gflop / ucfp_s,
      "torch_gflops": gflop / torch_s,
      "ucfp_fwd_bwd_s_at_ceiling": best_s,
      "max_ratio": torch_s / best_s,
    }
    print(name, rows[name], flush=True)
  res = {"xla_conv_ceiling_gflops": ceiling, "speed_commit": speed["commit"], "models": rows}
  write_results("train-speed-bound", res, markdown(res))


def markdown(res: dict) -> str:
  lines = [
    "# Training step: the bound XLA:CPU's convolution sets",
    "",
    "FLOPs of one forward + backward pass (XLA cost analysis, batch 128, BatchNorm in",
    "training mode); the measured forward + backward times of",
    f"[train-speed.md](train-speed.md) (commit `{res['speed_commit']}`); the shortest",
    "forward + backward ucfp could reach with every FLOP at XLA:CPU's 3x3-convolution",
    f"ceiling of that run ({res['xla_conv_ceiling_gflops']:.0f} GFLOP/s), and so the",
    "largest ucfp / PyTorch ratio that ceiling allows.",
    "",
    "| model | GFLOP (fwd + bwd) | ucfp s | ucfp GFLOP/s | PyTorch s | PyTorch GFLOP/s |"
    " ucfp s at the ceiling | largest ratio |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, r in res["models"].items():
    lines.append(
      f"| {name} | {r['fwd_bwd_gflop']:.1f} | {r['ucfp_fwd_bwd_s']:.3f} | {r['ucfp_gflops']:.0f} |"
      f" {r['torch_fwd_bwd_s']:.3f} | {r['torch_gflops']:.0f} |"
      f" {r['ucfp_fwd_bwd_s_at_ceiling']:.3f} | {r['max_ratio']:.2f} |"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  main()
