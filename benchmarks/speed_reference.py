"""The PyTorch CPU reference for benchmarks/speed.py and the machine's measured ceilings
(f32 matmul, a 64-channel 3x3 convolution) in JAX and, where installed, PyTorch."""

from __future__ import annotations

import os

from benchmarks.common import peak_rss_gib, timed

MODELS = {"digits": ("cnn_small", (8, 8, 1)), "cifar10": ("vgg", (32, 32, 3))}


ARCHS = {"digits": "cnn_small", "cifar10": "vgg"}  # speed.py's model keys


def torch_module(arch: str):
  """The PyTorch twin of `ucfp.evaluation.models.MODELS[arch]` (10 classes), layer for
  layer: same widths, BatchNorm (momentum 0.1 in PyTorch's convention = Flax's 0.9), pooling,
  SAME padding (stride 2: one row/column of zeros after, as XLA pads) and flatten order
  (NHWC), so parameters copied across give the same logits (tests/test_train_speed.py).
  Takes (B, C, H, W) images in [0, 1]."""
  import torch
  from torch import nn

  class Normalise(nn.Module):
    def forward(self, x):
      return (x - 0.5) / 0.25

  class FlattenNHWC(nn.Module):
    def forward(self, x):
      return x.permute(0, 2, 3, 1).flatten(1)

  def conv_bn(cin, cout, k=3, stride=1):
    pad = [nn.ZeroPad2d((0, 1, 0, 1))] if stride == 2 and k == 3 else []
    p = k // 2 if stride == 1 else 0
    return [*pad, nn.Conv2d(cin, cout, k, stride, p, bias=False), nn.BatchNorm2d(cout)]

  class Block(nn.Module):
    def __init__(self, cin, width, stride):
      super().__init__()
      self.a = nn.Sequential(*conv_bn(cin, width, 3, stride), nn.ReLU())
      self.b = nn.Sequential(*conv_bn(width, width))
      proj = cin != width or stride != 1
      self.short = nn.Sequential(*conv_bn(cin, width, 1, stride)) if proj else nn.Identity()

    def forward(self, x):
      return torch.relu(self.short(x) + self.b(self.a(x)))

  if arch == "cnn_small":
    return nn.Sequential(
      Normalise(),
      nn.Conv2d(1, 32, 3, padding=1),
      nn.ReLU(),
      nn.Conv2d(32, 64, 3, padding=1),
      nn.ReLU(),
      nn.MaxPool2d(2),
      FlattenNHWC(),
      nn.Linear(64 * 16, 128),
      nn.ReLU(),
      nn.Linear(128, 10),
    )
  if arch in ("vgg", "vgg_small"):
    widths = (32, 64, 128) if arch == "vgg" else (16, 32, 64)
    layers, c = [Normalise()], 3
    for i, w in enumerate(widths):
      for _ in range(2):
        layers += [*conv_bn(c, w), nn.ReLU()]
        c = w
      if i < len(widths) - 1:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
  if arch == "resnet20":
    layers, c = [Normalise(), *conv_bn(3, 16), nn.ReLU()], 16
    for stage, w in enumerate((16, 32, 64)):
      for block in range(3):
        layers.append(Block(c, w, 2 if stage > 0 and block == 0 else 1))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
  raise ValueError(f"arch={arch!r} has no PyTorch twin; one of cnn_small, vgg, vgg_small, resnet20")


def run_torch(model_key, v, b) -> dict:
  import torch
  from torch.func import functional_call

  torch.set_num_threads(os.cpu_count() or 1)
  model = torch_module(ARCHS[model_key]).eval()
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


def _flax_leaves(tree, prefix=""):
  """(path, array) of a Flax variables dict in creation (insertion) order, not sorted."""
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flax_leaves(v, f"{prefix}{k}/")
    else:
      yield prefix + k, v


def load_flax_params(model, params) -> None:
  """Copies Flax `params` (of the `ucfp.evaluation.models` twin) into the PyTorch `model`
  in place: conv kernels (kh, kw, C, O) -> (O, C, kh, kw), dense (I, O) -> (O, I),
  BatchNorm scale -> weight. Raises ValueError when the two do not pair up."""
  import numpy as np
  import torch

  flax = list(_flax_leaves(params))
  ours = list(model.named_parameters())
  if len(flax) != len(ours):
    raise ValueError(f"params: {len(flax)} Flax arrays vs {len(ours)} PyTorch parameters")
  with torch.no_grad():
    for (path, a), (name, p) in zip(flax, ours, strict=True):
      a = np.asarray(a)
      a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T if a.ndim == 2 else a
      if a.shape != tuple(p.shape):
        raise ValueError(f"params: {path} {a.shape} does not fit {name} {tuple(p.shape)}")
      p.copy_(torch.from_numpy(np.array(a, dtype=np.float32)))
