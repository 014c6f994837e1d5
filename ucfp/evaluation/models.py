"""Flax linen classifiers registered by name.

Every model takes images in [0, 1] of shape (B, H, W, C), normalises them
internally, and returns logits (B, K). Models with BatchNorm take `train`;
outside training they are applied in inference mode (running statistics).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ucfp.core.predict import predict_logits
from ucfp.evaluation.layers import Conv


def _normalise(x: jax.Array) -> jax.Array:
  return (x - 0.5) / 0.25


def max_pool2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2 (x: (B, H, W, C); odd H or W: `nn.max_pool`).

  Same values and same gradient as `nn.max_pool(x, (2, 2), (2, 2))` (each window's
  gradient goes to its first maximal element in row-major order, as XLA's
  select-and-scatter and PyTorch do), computed as a reshape + max forward and
  elementwise selects backward: XLA:CPU's select-and-scatter is slow, and the
  gradient of a plain reshape + max spends a reduction counting ties.
  """
  if x.shape[1] % 2 or x.shape[2] % 2:
    return nn.max_pool(x, (2, 2), (2, 2))
  return _max_pool2_even(x)


@jax.custom_vjp
def _max_pool2_even(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def _max_pool2_fwd(x):
  y = _max_pool2_even(x)
  return y, (x, y)


def _max_pool2_bwd(res, g):
  x, y = res
  b, h, w, c = x.shape
  xr = x.reshape(b, h // 2, 2, w // 2, 2, c)
  free = jnp.ones(y.shape, bool)  # windows whose gradient is not yet placed
  parts = []
  for i in range(2):
    for j in range(2):
      hit = free & (xr[:, :, i, :, j, :] == y)
      parts.append(jnp.where(hit, g, jnp.zeros_like(g)))
      free = free & ~hit
  rows = [jnp.stack(parts[2 * i : 2 * i + 2], axis=3) for i in range(2)]  # (B, H/2, W/2, 2, C)
  return (jnp.stack(rows, axis=2).reshape(x.shape),)


_max_pool2_even.defvjp(_max_pool2_fwd, _max_pool2_bwd)


class MLP(nn.Module):
  num_classes: int
  hidden: Sequence[int] = (256, 128)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _normalise(x).reshape((x.shape[0], -1))
    for h in self.hidden:
      x = nn.relu(nn.Dense(h)(x))
    return nn.Dense(self.num_classes)(x)


class SmallCNN(nn.Module):
  """Two 3x3 convs, a pool, a dense layer: for 8x8 inputs (works at any size)."""

  num_classes: int
  width: int = 32
  conv: str = "auto"  # convolution lowering, see ucfp.evaluation.layers

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _normalise(x)
    x = nn.relu(Conv(self.width, (3, 3), impl=self.conv)(x))
    # relu(max_pool(conv + b)) == relu(max_pool(conv) + b): bias and ReLU on the pooled map
    x = nn.relu(Conv(2 * self.width, (3, 3), impl=self.conv, pool=max_pool2)(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(128)(x))
    return nn.Dense(self.num_classes)(x)


class LeNet(nn.Module):
  """LeNet-style: 5x5 convs with tanh and average pooling."""

  num_classes: int
  conv: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _normalise(x)
    x = nn.tanh(Conv(16, (5, 5), impl=self.conv)(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.tanh(Conv(32, (5, 5), impl=self.conv)(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.tanh(nn.Dense(120)(x))
    x = nn.tanh(nn.Dense(84)(x))
    return nn.Dense(self.num_classes)(x)


class VGG(nn.Module):
  """VGG-style CNN: three blocks of two conv-BN-ReLU layers (widths 32/64/128);
  `batchnorm=False`: conv (with bias)-ReLU, the same network without BatchNorm."""

  num_classes: int
  widths: Sequence[int] = (32, 64, 128)
  conv: str = "auto"
  batchnorm: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _normalise(x)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
    for i, w in enumerate(self.widths):
      for _ in range(2):
        x = Conv(w, (3, 3), use_bias=not self.batchnorm, impl=self.conv)(x)
        x = nn.relu(norm()(x) if self.batchnorm else x)
      if i < len(self.widths) - 1 and x.shape[1] > 1:
        x = max_pool2(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class _ResBlock(nn.Module):
  width: int
  stride: int
  conv: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool):
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
    s = (self.stride, self.stride)
    y = nn.relu(norm()(Conv(self.width, (3, 3), s, use_bias=False, impl=self.conv)(x)))
    y = norm()(Conv(self.width, (3, 3), use_bias=False, impl=self.conv)(y))
    if x.shape != y.shape:
      x = norm()(Conv(self.width, (1, 1), s, use_bias=False, impl=self.conv)(x))
    return nn.relu(x + y)


class ResNet20(nn.Module):
  """ResNet-20 for 32x32 inputs (He et al., 2016): 3 stages of 3 blocks, widths 16/32/64."""

  num_classes: int
  blocks_per_stage: int = 3
  conv: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _normalise(x)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
    x = nn.relu(norm()(Conv(16, (3, 3), use_bias=False, impl=self.conv)(x)))
    for stage, width in enumerate((16, 32, 64)):
      for block in range(self.blocks_per_stage):
        x = _ResBlock(width, 2 if (stage > 0 and block == 0) else 1, self.conv)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


MODELS: dict[str, Callable[[int, str], nn.Module]] = {
  "mlp": lambda k, conv: MLP(k),
  "cnn_small": lambda k, conv: SmallCNN(k, conv=conv),
  "cnn_wide": lambda k, conv: SmallCNN(k, width=64, conv=conv),
  "lenet": lambda k, conv: LeNet(k, conv=conv),
  "vgg": lambda k, conv: VGG(k, conv=conv),
  "vgg_small": lambda k, conv: VGG(k, widths=(16, 32, 64), conv=conv),
  # the small VGG without BatchNorm: isolates BatchNorm in the adversarial-fine-tuning probe
  "vgg_small_nobn": lambda k, conv: VGG(k, widths=(16, 32, 64), conv=conv, batchnorm=False),
  "resnet20": lambda k, conv: ResNet20(k, conv=conv),
}


def check_model_name(name: str, field: str = "config.model") -> None:
  if name not in MODELS:
    raise ValueError(f"{field}={name!r} is not one of {', '.join(sorted(MODELS))}")


@functools.cache
def get_module(name: str, num_classes: int, conv: str = "auto") -> nn.Module:
  """The (cached, hashable) Flax module for a registered model name.

  `conv` picks the convolution lowering (auto | im2col | xla, see `ucfp.evaluation.layers`);
  it changes speed, not parameters.
  """
  check_model_name(name)
  return MODELS[name](num_classes, conv)


@functools.cache
def inference_apply(module: nn.Module) -> Callable:
  """`apply_fn(variables, x) -> logits` in inference mode; one function object per module.

  Returning the same object for the same module lets `jax.jit` reuse compiled code.
  """

  def apply_fn(variables, x):
    return module.apply(variables, x, train=False)

  return apply_fn


def init_variables(module: nn.Module, key: jax.Array, image_shape: Sequence[int]):
  """Initial variables for a batch of images of `image_shape` (H, W, C)."""
  return module.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)


def accuracy(apply_fn: Callable, variables, x, y) -> float:
  """Top-1 accuracy of `apply_fn` on images x (n, H, W, C) with labels y (n,)."""
  return float(jnp.mean(jnp.argmax(predict_logits(apply_fn, variables, x), -1) == jnp.asarray(y)))
