"""Sampled model variants (weight noise and/or pruning masks) and how V of them are batched.

A variant is `(theta + noise) * mask` on conv and dense kernels only; biases and
normalisation statistics are untouched. Masks come from the *base* weights'
magnitudes (what an adversary prunes), at a rate drawn from [low, high].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ucfp import prune

BATCHINGS = ("auto", "vmap", "loop", "unrolled")
MASKS = ("magnitude", "bernoulli", "none")
NOISE_KINDS = ("relative", "absolute")


@dataclasses.dataclass(frozen=True)
class VariantSpec:
  noise_bound: float = 0.0
  noise_kind: str = "relative"
  mask: str = "magnitude"
  prune_low: float = 0.0
  prune_high: float = 0.0


def sample_variant(variables, key: jax.Array, spec: VariantSpec, sorted_abs: jax.Array | None):
  """One variant of `variables`.

  Args:
    variables: base weights pytree.
    key: PRNG key for this variant.
    spec: noise and mask settings.
    sorted_abs: :func:`ucfp.prune.sorted_magnitudes` of the base (magnitude masks).
  """
  k_rate, k_mask, k_noise = jax.random.split(key, 3)
  flags = prune.prunable_mask_tree(variables)
  leaves, treedef = jax.tree.flatten(variables)
  noise_keys = jax.random.split(k_noise, len(leaves))
  out = []
  for f, v, k in zip(jax.tree.leaves(flags), leaves, noise_keys, strict=True):
    if f and spec.noise_bound > 0:
      u = jax.random.uniform(k, v.shape, v.dtype, -1.0, 1.0)
      scale = jnp.abs(v) if spec.noise_kind == "relative" else 1.0
      v = v + spec.noise_bound * scale * u
    out.append(v)
  noisy = jax.tree.unflatten(treedef, out)
  if spec.mask == "none" or spec.prune_high <= 0:
    return noisy
  rate = jax.random.uniform(k_rate, (), minval=spec.prune_low, maxval=spec.prune_high)
  if spec.mask == "magnitude":
    masks = prune.global_magnitude_masks(variables, rate, sorted_abs)
  else:
    masks = prune.bernoulli_masks(variables, rate, k_mask)
  return prune.apply_masks(noisy, masks)


def resolve_batching(batching: str, num_variants: int, backend: str | None = None) -> str:
  """`auto`: vmap on accelerators (grouped convolutions are native there); on CPU a
  Python-unrolled sum inside one jit for V <= 8, else a `lax.scan` loop (bounded
  compile time). See DESIGN section 5 and benchmarks/speed.py."""
  if batching != "auto":
    return batching
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return "vmap"
  return "unrolled" if num_variants <= 8 else "loop"


def conv_lowering_for(batching: str, backend: str | None = None) -> str:
  """The convolution lowering that suits a batching strategy (measured, DESIGN section 5).

  On XLA:CPU, convolutions inside a `lax.scan` keep a slow kernel layout, while the
  im2col matmul form does not; outside loops the native convolution is as fast or
  faster. On GPU and TPU the native convolution is always used.
  """
  backend = backend or jax.default_backend()
  return "im2col" if (backend == "cpu" and batching == "loop") else "xla"


def mean_over_variants(
  fn: Callable[[object], jax.Array],
  variables,
  key: jax.Array,
  num_variants: int,
  spec: VariantSpec,
  sorted_abs: jax.Array | None,
  batching: str,
) -> jax.Array:
  """`mean_v fn(variant_v)` over V sampled variants, batched as `batching` says.

  `fn(variables) -> scalar`. Every strategy draws the same variants for a key.
  """
  keys = jax.random.split(key, num_variants)
  one = lambda k: fn(sample_variant(variables, k, spec, sorted_abs))
  batching = resolve_batching(batching, num_variants)
  if batching == "vmap":
    return jnp.mean(jax.vmap(one)(keys))
  if batching == "unrolled":
    return sum(one(keys[i]) for i in range(num_variants)) / num_variants
  if batching == "loop":
    total, _ = jax.lax.scan(lambda acc, k: (acc + one(k), None), jnp.zeros(()), keys)
    return total / num_variants
  raise ValueError(f"config.robust.batching={batching!r} is not one of {', '.join(BATCHINGS)}")
