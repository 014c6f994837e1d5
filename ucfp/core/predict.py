"""Logits of any `apply_fn(variables, x)` over many images, in batches, compiled once."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


@functools.cache
def _jit_logits(apply_fn: Callable) -> Callable:
  return jax.jit(apply_fn)


def predict_logits(apply_fn: Callable, variables, x, batch_size: int = 1024) -> jax.Array:
  """Logits (n, K) for images x (n, H, W, C), in batches, with one compiled function.

  The last batch is padded to `batch_size` so every call has the same shape.
  """
  fn = _jit_logits(apply_fn)
  n = x.shape[0]
  bs = min(batch_size, n)
  outs = []
  for start in range(0, n, bs):
    xb = jnp.asarray(x[start : start + bs])
    pad = bs - xb.shape[0]
    if pad:
      xb = jnp.concatenate([xb, jnp.zeros((pad, *xb.shape[1:]), xb.dtype)])
    outs.append(fn(variables, xb)[: bs - pad])
  return jnp.concatenate(outs)
