"""Sampled model variants (weight noise and/or pruning masks) and how V of them are batched.

A variant is `(theta + noise) * mask` on conv and dense kernels only; biases and
normalisation statistics are untouched. Masks come from the *base* weights'
magnitudes (what an adversary prunes), at a rate drawn from [low, high].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ucfp.core import prune

BATCHINGS = ("auto", "vmap", "loop", "unrolled", "grouped")
MASKS = ("magnitude", "bernoulli", "none")
NOISE_KINDS = ("relative", "absolute")


@dataclasses.dataclass(frozen=True)
class VariantSpec:
  noise_bound: float = 0.0
  noise_kind: str = "relative"
  mask: str = "magnitude"
  prune_low: float = 0.0
  prune_high: float = 0.0
  # Which leaves of the variables are kernels (`ucfp.core.prune.leaf_flags`, one bool per
  # leaf); None: the default rule, `ucfp.core.prune.is_prunable`.
  kernels: tuple[bool, ...] | None = None


def uniform_noise(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """Uniform noise on [-1, 1] with 256 levels: `(b + 0.5) / 128 - 1`, b ~ U{0..255}.

  Four draws per 32 random bits: XLA:CPU lowers threefry as a memory-bound rolled
  loop, so this is ~3x cheaper than `jax.random.uniform` for the ~10^5-10^6 weights
  of a variant (mean 0 and variance 0.333 as the continuous uniform's 1/3, up to
  1.5e-5). Shape: any; returns `shape` in `dtype`.
  """
  n = math.prod(shape)
  bits = jax.random.bits(key, (-(-n // 4),), jnp.uint32)
  b = jax.lax.bitcast_convert_type(bits, jnp.uint8).reshape(-1)[:n]
  return ((b.astype(dtype) + 0.5) * (1.0 / 128.0) - 1.0).reshape(shape)


def sample_variant(variables, key: jax.Array, spec: VariantSpec, sorted_abs: jax.Array | None):
  """One variant of `variables`.

  Args:
    variables: base weights pytree.
    key: PRNG key for this variant.
    spec: noise and mask settings.
    sorted_abs: :func:`ucfp.core.prune.sorted_magnitudes` of the base (magnitude masks).
  """
  k_rate, k_mask, k_noise = jax.random.split(key, 3)
  flags = spec.kernels if spec.kernels is not None else prune.leaf_flags(variables)
  leaves, treedef = jax.tree.flatten(variables)
  out = list(leaves)
  if spec.noise_bound > 0:  # one draw for all kernels, split among them
    idx = [i for i, f in enumerate(flags) if f]
    u = uniform_noise(k_noise, (sum(leaves[i].size for i in idx),))
    offset = 0
    for i in idx:
      v = leaves[i]
      ui = u[offset : offset + v.size].reshape(v.shape).astype(v.dtype)
      offset += v.size
      scale = jnp.abs(v) if spec.noise_kind == "relative" else 1.0
      out[i] = v + spec.noise_bound * scale * ui
  noisy = jax.tree.unflatten(treedef, out)
  if spec.mask == "none" or spec.prune_high <= 0:
    return noisy
  rate = jax.random.uniform(k_rate, (), minval=spec.prune_low, maxval=spec.prune_high)
  if spec.mask == "magnitude":
    masks = prune.global_magnitude_masks(variables, rate, sorted_abs, flags)
  else:
    masks = prune.bernoulli_masks(variables, rate, k_mask, flags)
  return prune.apply_masks(noisy, masks)


def resolve_batching(batching: str, num_variants: int, backend: str | None = None) -> str:
  """`auto`: vmap on accelerators (grouped convolutions are native there); on CPU a
  Python-unrolled sum inside one jit for V <= GROUP_CPU, else `grouped`: the same
  unrolled program over groups of at most GROUP_CPU variants, one compiled call per
  group (compile time and memory of V=8, no slow in-loop convolutions). See DESIGN
  section 5 and benchmarks/speed.py."""
  if batching != "auto":
    return batching
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return "vmap"
  return "unrolled" if num_variants <= GROUP_CPU else "grouped"


GROUP_CPU = 8


def group_layout(num_variants: int) -> tuple[int, int]:
  """(number of groups, variants per group) for `grouped` batching: as few groups of
  at most GROUP_CPU variants as possible, of equal size (the last one may hold up to
  size - 1 zero-weight slots): 32 -> 4 x 8, 12 -> 2 x 6, 13 -> 2 x 7."""
  num_groups = -(-num_variants // GROUP_CPU)
  return num_groups, -(-num_variants // num_groups)


CHUNK_CPU = 32
MAX_CHUNKS = 8


def resolve_chunk(chunk: int, num_examples: int, backend: str | None = None) -> int:
  """Examples per gradient evaluation (0: all at once).

  `0` (auto): on a single CPU device, equal chunks of about `CHUNK_CPU` examples, at
  most `MAX_CHUNKS` of them (each chunk is another copy of the objective in the
  compiled step): 64 -> 2 x 32, 100 -> 4 x 25, 256 -> 8 x 32. Smaller working sets
  step faster there (benchmarks/speed.py; medians of >= 20 steps, V=8: digits CNN
  B=64 24 ms in chunks of 32 vs 28 ms whole, B=256 122 vs 156 ms in chunks of 64;
  CIFAR-10 VGG B=256 2.78 s vs 3.17 s in chunks of 64). On accelerators, or with
  several devices, all examples at once.
  """
  if chunk > 0:
    return chunk
  backend = backend or jax.default_backend()
  if backend != "cpu" or jax.device_count() > 1 or num_examples <= CHUNK_CPU:
    return 0
  k = min(MAX_CHUNKS, -(-num_examples // CHUNK_CPU))
  return -(-num_examples // k)


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
  group_start: jax.Array | None = None,
) -> jax.Array:
  """`mean_v fn(variant_v)` over V sampled variants, batched as `batching` says.

  `fn(variables) -> scalar`. Every strategy draws the same variants for a key
  (variant v from `jax.random.split(key, V)[v]`).

  For `grouped`, `group_start` (an int32 scalar, traced) selects the group of
  :func:`group_layout` that starts at variant `group_start`: the result is that
  group's share, `sum_{v in group} fn(variant_v) / V`, so the shares of all groups
  sum to the mean. Without `group_start` all groups are evaluated here.
  """
  keys = jax.random.split(key, num_variants)
  one = lambda k: fn(sample_variant(variables, k, spec, sorted_abs))
  batching = resolve_batching(batching, num_variants)
  if batching == "vmap":
    return jnp.mean(jax.vmap(one)(keys))
  if batching == "unrolled" or (batching == "grouped" and group_start is None):
    return sum(one(keys[i]) for i in range(num_variants)) / num_variants
  if batching == "grouped":
    num_groups, size = group_layout(num_variants)
    padded = jnp.concatenate([keys, keys[: num_groups * size - num_variants]])
    group = jax.lax.dynamic_slice_in_dim(padded, group_start, size)
    live = (group_start + jnp.arange(size)) < num_variants  # padding slots weigh 0
    return sum(jnp.where(live[i], one(group[i]), 0.0) for i in range(size)) / num_variants
  if batching == "loop":
    total, _ = jax.lax.scan(lambda acc, k: (acc + one(k), None), jnp.zeros(()), keys)
    return total / num_variants
  raise ValueError(f"config.robust.batching={batching!r} is not one of {', '.join(BATCHINGS)}")
