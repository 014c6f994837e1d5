"""Pruning masks over conv and dense kernels of a variables pytree.

A *prunable* leaf is a conv or dense kernel. The default rule (:func:`is_prunable`):
a leaf named `kernel` (Flax linen and NNX), `w` (Haiku) or `weight` (Equinox) with at
least two dimensions, not under `batch_stats`; a trailing `.value` in the path (a Flax
NNX `State` from `nnx.split`) is seen through. Any other naming is selected with a
predicate `prunable(path, leaf) -> bool` over `jax.tree_util` key paths. Biases,
normalisation scales and running statistics are never masked by the default rule.
Masks are pytrees with the structure of the variables: float32 0/1 arrays on prunable
leaves and `None` elsewhere. `flags`, where a function takes it, is the flat tuple of
:func:`leaf_flags` (one bool per leaf of the variables, in tree order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

KERNEL_NAMES = ("kernel", "w", "weight")
_SEE_THROUGH = ("value",)  # nnx.State leaves: path ... / 'kernel' / .value

Prunable = Callable[[tuple, object], bool]


def _leaf_name(path) -> str:
  last = path[-1] if path else None
  for attr in ("key", "name", "idx"):
    if hasattr(last, attr):
      return str(getattr(last, attr))
  return str(last)


def is_prunable(path, leaf) -> bool:
  """True for conv and dense kernels (named `kernel`, `w` or `weight`, ndim >= 2), never
  statistics. `path` is a `jax.tree_util` key path; a trailing `.value` is skipped."""
  names = [_leaf_name((p,)) for p in path]
  while len(names) > 1 and names[-1] in _SEE_THROUGH:
    names.pop()
  return (
    bool(names)
    and names[-1] in KERNEL_NAMES
    and "batch_stats" not in names
    and (jnp.ndim(leaf) >= 2)
  )


def leaf_flags(variables, prunable: Prunable | None = None) -> tuple[bool, ...]:
  """One Python bool per leaf of `variables` (tree order): is it a prunable kernel?

  Args:
    variables: a weights pytree (concrete or traced).
    prunable: `prunable(path, leaf) -> bool`; default :func:`is_prunable`.

  Raises:
    ValueError: `prunable` returned something other than a bool, or selected a leaf
      that is not a floating-point array (a user's predicate only).
  """
  rule = prunable or is_prunable
  out = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
    f = rule(path, leaf)
    if not isinstance(f, bool | np.bool_):
      raise ValueError(
        f"prunable({jax.tree_util.keystr(path)}, leaf) returned {type(f).__name__}; "
        "it must return True or False"
      )
    if f and prunable and not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(
        f"prunable selected {jax.tree_util.keystr(path)}, which is not a floating-point array"
      )
    out.append(bool(f))
  return tuple(out)


def _flags(variables, flags: Sequence[bool] | None) -> tuple[bool, ...]:
  if flags is None:
    return leaf_flags(variables)
  n = len(jax.tree.leaves(variables))
  if len(flags) != n:
    raise ValueError(f"flags has {len(flags)} entries; the variables have {n} leaves")
  return tuple(flags)


def prunable_mask_tree(variables, flags: Sequence[bool] | None = None) -> object:
  """A pytree of bools: which leaves are prunable kernels."""
  return jax.tree.unflatten(jax.tree.structure(variables), list(_flags(variables, flags)))


def kernels(variables, flags: Sequence[bool] | None = None) -> list[jax.Array]:
  """The prunable kernels, in tree order."""
  f = _flags(variables, flags)
  return [leaf for leaf, k in zip(jax.tree.leaves(variables), f, strict=True) if k]


def sorted_magnitudes(variables, flags: Sequence[bool] | None = None) -> jax.Array:
  """All prunable kernel magnitudes, concatenated and sorted ascending: (n,).

  Raises:
    ValueError: the variables have no prunable kernels.
  """
  ks = kernels(variables, flags)
  if not ks:
    raise ValueError("no prunable kernels in the variables (see ucfp.core.prune.is_prunable)")
  return jnp.sort(jnp.concatenate([jnp.abs(k).ravel() for k in ks]))


def magnitude_threshold(sorted_abs: jax.Array, rate) -> jax.Array:
  """The magnitude below which `floor(rate * n)` weights fall (jit-safe, `rate` traced)."""
  n = sorted_abs.shape[0]
  k = jnp.clip(jnp.floor(rate * n).astype(jnp.int32), 0, n - 1)
  return jnp.where(rate > 0, sorted_abs[k], -jnp.inf)


def _masks(variables, flags, mask_fn):
  """A mask pytree: `mask_fn(i, leaf)` on prunable leaves (i: leaf index), None elsewhere."""
  leaves, treedef = jax.tree.flatten(variables)
  f = _flags(variables, flags)
  return jax.tree.unflatten(
    treedef, [mask_fn(i, v) if k else None for i, (v, k) in enumerate(zip(leaves, f, strict=True))]
  )


def global_magnitude_masks(variables, rate, sorted_abs=None, flags: Sequence[bool] | None = None):
  """Global unstructured magnitude pruning: drops the `rate` fraction of smallest kernels.

  Args:
    variables: model variables pytree.
    rate: fraction in [0, 1) of all prunable weights to remove (may be traced).
    sorted_abs: optional precomputed :func:`sorted_magnitudes`.
    flags: which leaves are kernels (:func:`leaf_flags`); default the default rule.

  Returns:
    A mask pytree (float32 0/1 on kernels, None elsewhere).
  """
  if sorted_abs is None:
    sorted_abs = sorted_magnitudes(variables, flags)
  thr = magnitude_threshold(sorted_abs, rate)
  return _masks(variables, flags, lambda _, v: (jnp.abs(v) >= thr).astype(jnp.float32))


def layerwise_magnitude_masks(variables, rate, flags: Sequence[bool] | None = None):
  """Per-layer magnitude pruning: each kernel loses its own `rate` fraction."""

  def mask(_, v):
    thr = magnitude_threshold(jnp.sort(jnp.abs(v).ravel()), rate)
    return (jnp.abs(v) >= thr).astype(jnp.float32)

  return _masks(variables, flags, mask)


def bernoulli_masks(variables, rate, key: jax.Array, flags: Sequence[bool] | None = None):
  """Random masks: each kernel weight kept independently with probability 1 - rate."""
  keys = jax.random.split(key, len(jax.tree.leaves(variables)))
  return _masks(
    variables,
    flags,
    lambda i, v: jax.random.bernoulli(keys[i], 1.0 - rate, v.shape).astype(jnp.float32),
  )


def apply_masks(variables, masks):
  """Multiplies each kernel by its mask; leaves with a `None` mask are unchanged."""
  return jax.tree.map(
    lambda v, m: v if m is None else v * m.astype(v.dtype),
    variables,
    masks,
    is_leaf=lambda x: x is None,
  )


def sparsity(variables, flags: Sequence[bool] | None = None) -> float:
  """Fraction of prunable kernel weights that are exactly zero."""
  ks = kernels(variables, flags)
  zeros = sum(int(np.sum(np.asarray(k) == 0)) for k in ks)
  return zeros / max(1, sum(int(np.size(k)) for k in ks))
