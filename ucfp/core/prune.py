"""Pruning masks over conv and dense kernels of a variables pytree.

A *prunable* leaf is a conv or dense kernel: a leaf named `kernel` (Flax) or
`w` (Haiku) with at least two dimensions. Biases, normalisation scales and
running statistics are never masked. Masks are pytrees with the structure of
the variables: float32 0/1 arrays on prunable leaves and `None` elsewhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_KERNEL_NAMES = ("kernel", "w")


def _leaf_name(path) -> str:
  last = path[-1] if path else None
  for attr in ("key", "name", "idx"):
    if hasattr(last, attr):
      return str(getattr(last, attr))
  return str(last)


def is_prunable(path, leaf) -> bool:
  """True for conv and dense kernels (named `kernel` or `w`, ndim >= 2), never statistics."""
  names = [_leaf_name((p,)) for p in path]
  return (
    bool(names)
    and names[-1] in _KERNEL_NAMES
    and "batch_stats" not in names
    and (jnp.ndim(leaf) >= 2)
  )


def prunable_mask_tree(variables) -> object:
  """A pytree of bools: which leaves are prunable kernels."""
  return jax.tree_util.tree_map_with_path(is_prunable, variables)


def kernels(variables) -> list[jax.Array]:
  """The prunable kernels, in tree order."""
  flags = jax.tree.leaves(prunable_mask_tree(variables))
  return [leaf for leaf, f in zip(jax.tree.leaves(variables), flags, strict=True) if f]


def sorted_magnitudes(variables) -> jax.Array:
  """All prunable kernel magnitudes, concatenated and sorted ascending: (n,)."""
  return jnp.sort(jnp.concatenate([jnp.abs(k).ravel() for k in kernels(variables)]))


def magnitude_threshold(sorted_abs: jax.Array, rate) -> jax.Array:
  """The magnitude below which `floor(rate * n)` weights fall (jit-safe, `rate` traced)."""
  n = sorted_abs.shape[0]
  k = jnp.clip(jnp.floor(rate * n).astype(jnp.int32), 0, n - 1)
  return jnp.where(rate > 0, sorted_abs[k], -jnp.inf)


def global_magnitude_masks(variables, rate, sorted_abs=None):
  """Global unstructured magnitude pruning: drops the `rate` fraction of smallest kernels.

  Args:
    variables: model variables pytree.
    rate: fraction in [0, 1) of all prunable weights to remove (may be traced).
    sorted_abs: optional precomputed :func:`sorted_magnitudes`.

  Returns:
    A mask pytree (float32 0/1 on kernels, None elsewhere).
  """
  if sorted_abs is None:
    sorted_abs = sorted_magnitudes(variables)
  thr = magnitude_threshold(sorted_abs, rate)
  flags = prunable_mask_tree(variables)
  return jax.tree.map(
    lambda f, v: (jnp.abs(v) >= thr).astype(jnp.float32) if f else None, flags, variables
  )


def layerwise_magnitude_masks(variables, rate):
  """Per-layer magnitude pruning: each kernel loses its own `rate` fraction."""
  flags = prunable_mask_tree(variables)

  def mask(f, v):
    if not f:
      return None
    return (jnp.abs(v) >= magnitude_threshold(jnp.sort(jnp.abs(v).ravel()), rate)).astype(
      jnp.float32
    )

  return jax.tree.map(mask, flags, variables)


def bernoulli_masks(variables, rate, key: jax.Array):
  """Random masks: each kernel weight kept independently with probability 1 - rate."""
  flags = prunable_mask_tree(variables)
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  out = [
    jax.random.bernoulli(k, 1.0 - rate, v.shape).astype(jnp.float32) if f else None
    for k, f, v in zip(keys, jax.tree.leaves(flags), leaves, strict=True)
  ]
  return jax.tree.unflatten(treedef, out)


def apply_masks(variables, masks):
  """Multiplies each kernel by its mask; leaves with a `None` mask are unchanged."""
  return jax.tree.map(
    lambda v, m: v if m is None else v * m.astype(v.dtype),
    variables,
    masks,
    is_leaf=lambda x: x is None,
  )


def sparsity(variables) -> float:
  """Fraction of prunable kernel weights that are exactly zero."""
  ks = kernels(variables)
  zeros = sum(int(np.sum(np.asarray(k) == 0)) for k in ks)
  return zeros / max(1, sum(int(np.size(k)) for k in ks))
