"""The PyTorch CPU reference for benchmarks/speed.py and the machine's measured ceilings
(f32 matmul, a 64-channel 3x3 convolution) in JAX and, where installed, PyTorch."""

from __future__ import annotations

import os

from benchmarks.common import peak_rss_gib, timed

MODELS = {"digits": ("cnn_small", (8, 8, 1)), "cifar10": ("vgg", (32, 32, 3))}


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

  first, step = timed(call)
  return {"step_s": step, "first_s": first, "peak_rss_gib": peak_rss_gib()}


def run_ceilings() -> dict:
  import jax

  out = {}
  a = jax.random.normal(jax.random.PRNGKey(0), (2048, 2048))
  mm = jax.jit(lambda a: a @ a)
  _, s = timed(lambda: mm(a).block_until_ready())
  out["jax_matmul_gflops"] = 2 * 2048**3 / s / 1e9
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 32, 32, 64))
  w = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 64, 64))
  conv = jax.jit(
    lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
  )
  _, s = timed(lambda: conv(x, w).block_until_ready())
  conv_flops = 2 * 64 * 32 * 32 * 64 * 64 * 9
  out["jax_conv_gflops"] = conv_flops / s / 1e9
  try:
    import torch
  except ImportError:
    return out
  torch.set_num_threads(os.cpu_count() or 1)
  ta = torch.randn(2048, 2048)
  _, s = timed(lambda: ta @ ta)
  out["torch_matmul_gflops"] = 2 * 2048**3 / s / 1e9
  tx, tw = torch.randn(64, 64, 32, 32), torch.randn(64, 64, 3, 3)
  with torch.no_grad():
    _, s = timed(lambda: torch.nn.functional.conv2d(tx, tw, padding=1))
  out["torch_conv_gflops"] = conv_flops / s / 1e9
  return out
