"""Attacks without training: symmetric int8 / int4 quantisation and Gaussian weight noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ucfp.core import prune
from ucfp.core.types import Model
from ucfp.evaluation.attacks.base import Attack, Context, Derivation
from ucfp.evaluation.data import Dataset

# The weight noise's key: config.seed + NOISE_SEED.
NOISE_SEED = 4002


def quantize(variables, bits: int = 8, per_channel: bool = False):
  """Symmetric quantisation of conv and dense kernels to `bits`, dequantised.

  Each kernel becomes `round(w / s).clip(-q, q) * s` with `q = 2**(bits-1) - 1` and
  `s = max|w| / q` over the whole tensor, or per output channel (the last axis) when
  `per_channel`: at most 2q + 1 distinct values per tensor (per channel). Biases and
  normalisation parameters stay float32, as in common int8 / int4 deployments.
  """
  flags = prune.prunable_mask_tree(variables)
  q = 2 ** (bits - 1) - 1

  def quant(f, v):
    if not f:
      return v
    axes = tuple(range(v.ndim - 1)) if per_channel else None
    s = jnp.maximum(jnp.max(jnp.abs(v), axis=axes, keepdims=per_channel), 1e-12) / q
    return (jnp.clip(jnp.round(v / s), -q, q) * s).astype(v.dtype)

  return jax.tree.map(quant, flags, variables)


def quantize_int8(variables):
  """Per-tensor symmetric int8 quantisation (`quantize(variables, 8)`)."""
  return quantize(variables, 8)


def weight_noise(variables, scale: float, key: jax.Array):
  """Adds Gaussian noise to every conv and dense kernel, std `scale` times the
  kernel's own standard deviation; biases and normalisation are unchanged."""
  flags = prune.prunable_mask_tree(variables)
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  out = [
    v + scale * jnp.std(v) * jax.random.normal(k, v.shape, v.dtype) if f else v
    for k, f, v in zip(keys, jax.tree.leaves(flags), leaves, strict=True)
  ]
  return jax.tree.unflatten(treedef, out)


def quant_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """quant:BITS:GRAIN: the base quantised (no training)."""
  bits, grain = attack.args
  v = quantize(base.variables, bits, per_channel=grain == "channel")
  return Derivation(ctx.base_spec.arch, variables=v)


def noise_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """noise:SCALE: Gaussian noise on the base's kernels (no training)."""
  key = jax.random.PRNGKey(ctx.base_spec.seed + NOISE_SEED)
  return Derivation(ctx.base_spec.arch, variables=weight_noise(base.variables, attack.args[0], key))
