"""Other ways an adversary derives a copy: structured pruning and int8 quantisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ucfp.core import prune


def channel_prune_masks(variables, rate: float):
  """Structured pruning: in every conv kernel (kh, kw, C_in, C_out) zero the `rate`
  fraction of output channels with the smallest L1 norm. Dense kernels are kept.

  Returns a mask pytree (as `ucfp.core.prune`), for `apply_masks` and masked fine-tuning.
  """
  flags = prune.prunable_mask_tree(variables)

  def mask(f, v):
    if not f:
      return None
    if v.ndim != 4:
      return jnp.ones_like(v)
    norms = jnp.sum(jnp.abs(v), axis=(0, 1, 2))
    k = int(np.floor(rate * v.shape[-1]))
    keep = jnp.ones_like(norms).at[jnp.argsort(norms)[:k]].set(0.0)
    return jnp.broadcast_to(keep, v.shape).astype(jnp.float32)

  return jax.tree.map(mask, flags, variables)


def quantize_int8(variables):
  """Per-tensor symmetric int8 quantisation of conv and dense kernels, dequantised.

  Each kernel becomes `round(w / s).clip(-127, 127) * s` with `s = max|w| / 127`;
  biases and normalisation parameters stay float32, as in common int8 deployments.
  """
  flags = prune.prunable_mask_tree(variables)

  def q(f, v):
    if not f:
      return v
    s = jnp.maximum(jnp.max(jnp.abs(v)), 1e-12) / 127.0
    return (jnp.clip(jnp.round(v / s), -127, 127) * s).astype(v.dtype)

  return jax.tree.map(q, flags, variables)
