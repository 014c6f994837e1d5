"""The markdown report of benchmarks/speed.py, and its XLA:CPU flags run (`--xla-flags`)."""

from __future__ import annotations

import os

from benchmarks.common import ROOT, run_in_subprocess, write_results
from benchmarks.speed_reference import MODELS

SPEED = os.path.join(ROOT, "benchmarks", "speed.py")
# Not a ucfp strategy: `vmap` with im2col convolutions, whose batching rule is a batched
# matmul instead of a grouped convolution: the strongest vmap form found on XLA:CPU.
VMAP_IM2COL = "vmap+im2col"


def markdown(res, models=MODELS) -> str:
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
  for model in models:
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
  for model in models:
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


XLA_FLAG_SETS = (
  "",
  "--xla_cpu_use_onednn=true",
  "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
  "--xla_cpu_use_xnnpack=true",
)


def flags_main():
  """XLA:CPU flags that might route convolutions to oneDNN or XNNPACK, on the CIFAR-10
  model at V=8, B=64, for the unrolled and loop strategies."""
  rows = []
  for flags in XLA_FLAG_SETS:
    for strategy in ("unrolled", "loop"):
      env = {**os.environ, "XLA_FLAGS": flags}
      args = {"kind": "jax", "model": "cifar10", "v": 8, "b": 64, "strategy": strategy}
      res = run_in_subprocess(SPEED, args, env=env)
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
