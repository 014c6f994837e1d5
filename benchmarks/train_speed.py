"""Speed of one training step: ucfp's (the zoo trainer's) against PyTorch CPU's.

    python benchmarks/train_speed.py [--quick]

Images/s of a training step (forward + backward + AdamW update, BatchNorm in training
mode, no augmentation) of the CIFAR-10 VGG, VGG-small and ResNet-20 at batch 128 and the
digits CNN at batch 64. The ucfp step is `ucfp.evaluation.train._cached_runner`'s, the
one `train` runs for these images on this backend (`choose_path`): on XLA:CPU at 32x32
a Python loop of jitted single steps with XLA's native convolution, state donated; at
8x8 STEPS steps under `lax.scan` in one compiled call with the im2col convolution. Timed
per call of STEPS steps, compile (lower + compile of the step or scan) separately. The
PyTorch reference trains the same architecture (`speed_reference.torch_module`, same
parameter count) with `torch.optim.AdamW` on the same batches, eager, NCHW; its first call (warm-up) is reported as its `compile_s`. Each side
also times the forward pass alone and forward + backward, so the update is their
difference. Every measurement runs in its own process, ucfp and PyTorch back to back for
each model and round (interleaved: both see the same load), ROUNDS rounds, median kept.
For the 32x32 models also side by side, as `config.train.workers` trains the zoo
(`run_pair`): two processes at once, each pinned to one core with one thread, for
ucfp and for PyTorch, images/s summed. Also the machine's f32 matmul and 3x3-conv
ceilings and the load average at start and end. PyTorch is skipped with a message when absent (not a dependency of ucfp).
`--quick`: the digits CNN at batch 8, 2 steps, one round, no ceilings (for tests).
Writes benchmarks/results/train-speed.json and .md.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS, peak_rss_gib, print_result, run_in_subprocess, write_results  # noqa: E402
from benchmarks.common import timed as _timed  # noqa: E402
from ucfp.evaluation.parallel import _cores  # noqa: E402

# name: (arch, image shape (H, W, C), batch, steps per timed call)
MODELS = {
  "vgg": ("vgg", (32, 32, 3), 128, 2),
  "vgg_small": ("vgg_small", (32, 32, 3), 128, 4),
  "resnet20": ("resnet20", (32, 32, 3), 128, 2),
  "cnn_small": ("cnn_small", (8, 8, 1), 64, 50),
}
QUICK = {"cnn_small": ("cnn_small", (8, 8, 1), 8, 2)}
ROUNDS = 3
LR, WD = 2e-3, 1e-4  # the cifar10 preset's; the schedule's values do not change the cost


def _batches(shape, b, steps):
  """Images (steps * b, H, W, C) in [0, 1], labels (steps * b,), indices (steps, b)."""
  import numpy as np

  rng = np.random.default_rng(0)
  n = steps * b
  x = rng.uniform(size=(n, *shape)).astype(np.float32)
  idx = rng.permutation(n).reshape(steps, b).astype(np.int32)
  return x, (np.arange(n) % 10).astype(np.int32), idx


def run_ucfp(arch, shape, b, steps, min_total=2.0) -> dict:
  import contextlib

  import jax
  import jax.numpy as jnp

  from ucfp.core.lowering import conv_lowering
  from ucfp.evaluation.models import get_module, init_variables
  from ucfp.evaluation.train import _cached_runner, choose_path, label_loss

  timed = functools.partial(_timed, min_total=min_total)
  module = get_module(arch, 10)
  path, conv = choose_path(shape)  # what `train` runs for these images on this backend
  lowering = lambda: conv_lowering(conv) if conv else contextlib.nullcontext()
  variables = init_variables(module, jax.random.PRNGKey(0), shape)
  params = variables["params"]
  stats = {k: v for k, v in variables.items() if k != "params"}
  run, tx = _cached_runner(module, LR, WD, False, False, 10_000, path=path, conv=conv)
  x, y, idx = (jnp.asarray(a) for a in _batches(shape, b, steps))
  key = jax.random.PRNGKey(1)
  state = [jax.tree.map(jnp.copy, (params, stats, tx.init(params)))]  # the loop donates it
  t = time.perf_counter()
  if path == "scan":
    run.lower(state[0], x, y, idx, None, key).compile()
  else:
    run.step.lower(state[0], x, y, idx[0], None, key).compile()
  compile_s = time.perf_counter() - t

  def call():
    state[0], losses = run(state[0], x, y, idx, None, key)
    jax.block_until_ready(losses)

  _, chunk_s = timed(call)
  xb, yb = x[idx[0]], y[idx[0]]
  params, stats = state[0][0], state[0][1]

  def loss_fn(p):
    with lowering():
      logits, _ = module.apply({"params": p, **stats}, xb, train=True, mutable=["batch_stats"])
    return label_loss(logits, yb)

  fwd = jax.jit(loss_fn).lower(params).compile()
  grad = jax.jit(jax.value_and_grad(loss_fn)).lower(params).compile()
  _, fwd_s = timed(lambda: jax.block_until_ready(fwd(params)))
  _, grad_s = timed(lambda: jax.block_until_ready(grad(params)))
  return {
    "images_per_s": steps * b / chunk_s,
    "step_s": chunk_s / steps,
    "compile_s": compile_s,
    "path": path,
    "conv": conv or "default",
    "forward_s": fwd_s,
    "forward_backward_s": grad_s,
    "params": int(sum(a.size for a in jax.tree.leaves(params))),
    "peak_rss_gib": peak_rss_gib(),
  }


def run_torch(arch, shape, b, steps, min_total=2.0, threads=None) -> dict:
  import torch

  from benchmarks.speed_reference import torch_module

  timed = functools.partial(_timed, min_total=min_total)

  torch.set_num_threads(threads or os.cpu_count() or 1)
  torch.manual_seed(0)
  model = torch_module(arch).train()
  opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
  x, y, idx = _batches(shape, b, steps)
  x, y = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y).long()
  idx = torch.from_numpy(idx).long()
  loss_of = lambda i: torch.nn.functional.cross_entropy(model(x[idx[i]]), y[idx[i]])

  def call():
    for i in range(steps):
      opt.zero_grad(set_to_none=True)
      loss_of(i).backward()
      opt.step()

  def forward_backward():
    opt.zero_grad(set_to_none=True)
    loss_of(0).backward()

  first_s, chunk_s = timed(call)
  _, fwd_s = timed(lambda: loss_of(0))
  _, grad_s = timed(forward_backward)
  return {
    "images_per_s": steps * b / chunk_s,
    "step_s": chunk_s / steps,
    "compile_s": first_s,  # eager: the first call's warm-up (oneDNN kernel selection)
    "forward_s": fwd_s,
    "forward_backward_s": grad_s,
    "params": int(sum(p.numel() for p in model.parameters())),
    "peak_rss_gib": peak_rss_gib(),
    "torch": torch.__version__,
  }


def one(args):
  if args["kind"] == "ceilings":
    from benchmarks.speed_reference import run_ceilings

    print_result(run_ceilings())
    return
  if args.get("cores") and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, args["cores"])
  a = (args["arch"], tuple(args["shape"]), args["b"], args["steps"], args["min_total"])
  if args["kind"] == "ucfp":
    print_result(run_ucfp(*a))
  else:
    print_result(run_torch(*a, threads=len(args["cores"]) if args.get("cores") else None))


def run_pair(kind: str, args: dict) -> dict:
  """Two processes of `kind` side by side, each pinned to one core with one thread (how
  `config.train.workers` trains the zoo: `ucfp.evaluation.parallel`'s worker
  environment for ucfp, `torch.set_num_threads(1)` for PyTorch): their summed
  images/s and each one's result."""
  from concurrent.futures import ThreadPoolExecutor

  from ucfp.evaluation.parallel import _cores, _worker_env

  cores = _cores()[:2]

  def go(core):
    env = _worker_env([core]) if kind == "ucfp" else None
    return run_in_subprocess(__file__, {"kind": kind, **args, "cores": [core]}, env=env)

  with ThreadPoolExecutor(2) as pool:
    both = list(pool.map(go, cores))
  if any("images_per_s" not in r for r in both):
    return {"error": [r.get("error") for r in both]}
  return {"images_per_s": sum(r["images_per_s"] for r in both), "processes": both}


def _median(rounds: list[dict]) -> dict:
  """The round with the median images/s, plus every round's (`images_per_s_rounds`)."""
  ok = sorted((r for r in rounds if "images_per_s" in r), key=lambda r: r["images_per_s"])
  if not ok:
    return rounds[-1]
  return {**ok[(len(ok) - 1) // 2], "images_per_s_rounds": [r["images_per_s"] for r in ok]}


def summarise(b: int, ucfp: dict, torch: dict | None) -> dict:
  """One `models` entry: the required fields first, then both sides' details."""
  u_ips = ucfp.get("images_per_s")
  t_ips = (torch or {}).get("images_per_s")
  return {
    "ucfp_images_per_s": u_ips,
    "torch_images_per_s": t_ips,
    "compile_s": ucfp.get("compile_s"),
    "ratio": u_ips / t_ips if u_ips and t_ips else None,  # > 1: ucfp faster
    "batch": b,
    "ucfp": ucfp,
    "torch": torch,
  }


def _f(v, fmt="{:.0f}"):
  return "-" if v is None else fmt.format(v)


def markdown(res: dict) -> str:
  load = res["loadavg"]
  lines = [
    "# Training step speed: ucfp vs PyTorch CPU",
    "",
    "Images/s of one training step (forward + backward + AdamW, BatchNorm in training mode,",
    "no augmentation): ucfp's zoo trainer (`ucfp.evaluation.train`, the path `train` uses)",
    "and the same architecture in PyTorch (eager, NCHW, `torch.optim.AdamW`), each in its",
    f"own process, interleaved, median of {res['rounds']} round(s). Ratio = ucfp / PyTorch.",
    f"Load average (1, 5, 15 min) {_load(load['start'])} at the start, {_load(load['end'])}",
    "at the end (above ~0.5 the machine was shared: absolute figures move with the load,",
    "the interleaved ratios less so).",
    "",
    "| model | batch | params | ucfp img/s | PyTorch img/s | ratio | ucfp compile s "
    "| ucfp fwd / fwd+bwd / step ms | PyTorch fwd / fwd+bwd / step ms | ucfp path, conv |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name, m in res["models"].items():
    u, t = m["ucfp"] or {}, m["torch"] or {}
    ms = lambda d: " / ".join(
      _f(d.get(k) and 1e3 * d[k], "{:.1f}") for k in ("forward_s", "forward_backward_s", "step_s")
    )
    params = _f(u.get("params"), "{:,}")
    if t.get("params") not in (None, u.get("params")):
      params += f" (PyTorch {t['params']:,})"
    lines.append(
      f"| {name} | {m['batch']} | {params} | {_f(m['ucfp_images_per_s'])} "
      f"| {_f(m['torch_images_per_s'])} | {_f(m['ratio'], '{:.2f}')} | {_f(m['compile_s'], '{:.1f}')} "
      f"| {ms(u)} | {ms(t)} | {u.get('path', '-')}, {u.get('conv', '-')} |"
    )
  pairs = {n: m["pair"] for n, m in res["models"].items() if m.get("pair")}
  if pairs:
    lines += [
      "",
      "Side by side, as `config.train.workers` trains the zoo: two processes at once, each",
      "pinned to one core with one thread (ucfp: the zoo worker's XLA flags; PyTorch:",
      "`torch.set_num_threads(1)`), images/s summed over both (median of the rounds).",
      "",
      "| model | ucfp img/s, 2 x 1 thread | PyTorch img/s, 2 x 1 thread | ratio |"
      " ucfp 2 x 1 vs 1 x 2 threads | PyTorch 2 x 1 vs 1 x 2 threads |",
      "|---|---|---|---|---|---|",
    ]
    for name, pr in pairs.items():
      m = res["models"][name]
      gain = lambda a, b: _f(a / b if a and b else None, "{:.2f}x")
      lines.append(
        f"| {name} | {_f(pr['ucfp_images_per_s'])} | {_f(pr['torch_images_per_s'])} "
        f"| {_f(pr['ratio'], '{:.2f}')} | {gain(pr['ucfp_images_per_s'], m['ucfp_images_per_s'])} "
        f"| {gain(pr['torch_images_per_s'], m['torch_images_per_s'])} |"
      )
  if res.get("torch_skipped"):
    lines += ["", res["torch_skipped"]]
  z = res.get("zoo_minutes")
  if z:
    before = "-" if z.get("before") is None else f"{z['before']:.1f}"
    lines += [
      "",
      f"CIFAR-10 zoo of the quality benchmark, training minutes from an empty cache: before "
      f"{before}, after {z['after']:.1f} (`{z['command']}`, {z['date']}; every accuracy "
      f"within tolerance of before: {z.get('accuracies_within_tolerance')}).",
    ]
  c = res.get("ceilings") or {}
  if c:
    lines += [
      "",
      "Ceilings measured in the same run (GFLOP/s, f32): "
      + ", ".join(f"{k.replace('_gflops', '')} {v:.0f}" for k, v in c.items() if "gflops" in k),
    ]
  return "\n".join(lines)


def _load(t):
  return ", ".join(f"{v:.2f}" for v in t)


def main(quick: bool):
  from ucfp.core import progress

  load_start = os.getloadavg()
  try:
    import torch  # noqa: F401

    skipped = None
  except ImportError:
    skipped = "torch is absent: skipping the PyTorch reference (pip install torch==2.13.0)"
    print(skipped)
  models, rounds = (QUICK, 1) if quick else (MODELS, ROUNDS)
  ceilings = {} if quick else run_in_subprocess(__file__, {"kind": "ceilings"})
  print("ceilings", ceilings, flush=True)
  progress.show_progress()
  bar = progress.bar(total=len(models) * rounds, desc="train-speed", unit="round")
  out = {}
  for name, (arch, shape, b, steps) in models.items():
    args = {
      "arch": arch,
      "shape": shape,
      "b": b,
      "steps": steps,
      "min_total": 0.05 if quick else 2.0,
    }
    got = {"ucfp": [], "torch": [], "ucfp_pair": [], "torch_pair": []}
    pairs = shape[0] > 16 and not quick and len(_cores()) >= 2  # the zoo's worker path
    for _ in range(rounds):
      for kind in ("ucfp",) if skipped else ("ucfp", "torch"):
        got[kind].append(run_in_subprocess(__file__, {"kind": kind, **args}))
        print(name, kind, got[kind][-1], flush=True)
        if pairs:
          got[kind + "_pair"].append(run_pair(kind, args))
          print(name, kind, "pair", got[kind + "_pair"][-1].get("images_per_s"), flush=True)
      bar.update(1)
    torch_res = None if skipped else _median(got["torch"])
    out[name] = summarise(b, _median(got["ucfp"]), torch_res)
    if pairs:
      u, t = _median(got["ucfp_pair"]), None if skipped else _median(got["torch_pair"])
      u_ips, t_ips = u.get("images_per_s"), (t or {}).get("images_per_s")
      out[name]["pair"] = {
        "ucfp_images_per_s": u_ips,
        "torch_images_per_s": t_ips,
        "ratio": u_ips / t_ips if u_ips and t_ips else None,
        "ucfp": u,
        "torch": t,
      }
  bar.close()
  res = {
    "models": out,
    "ceilings": ceilings,
    "rounds": rounds,
    "steps_per_call": {name: m[3] for name, m in models.items()},
    "loadavg": {"start": load_start, "end": os.getloadavg()},
    "torch_skipped": skipped,
  }
  old = os.path.join(RESULTS, "train-speed.json")
  if os.path.exists(old):  # benchmarks/zoo.py --record_minutes's figure stays
    zoo = json.load(open(old)).get("zoo_minutes")
    res.update({"zoo_minutes": zoo} if zoo else {})
  write_results("train-speed", res, markdown(res))
  print(markdown(res))


if __name__ == "__main__":
  if len(sys.argv) > 2 and sys.argv[1] == "--one":
    one(json.loads(sys.argv[2]))
  else:
    main(quick="--quick" in sys.argv)
