"""The three pure objective functions of characteristic-example generation.

- :func:`c_loss`: the C-example loss of one model (Wang et al. 2021, Eq. 1);
- :func:`robustness_term`: its mean over V sampled variants ("Gradient Mean");
- :func:`surrogate_term`: its mean over the owner's own derived copies (ucfp);
- :func:`spectral_term` and :func:`reference_term`: the low-transferability terms.

All are pure functions of arrays and pytrees; `jit` is applied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from ucfp.core.spectral import low_pass
from ucfp.core.variants import VariantSpec, mean_over_variants

LOSSES = ("xent", "margin")


def c_loss(logits: jax.Array, y: jax.Array, loss: str = "xent", kappa: float = 5.0) -> jax.Array:
  """Per-example C-example loss.

  Args:
    logits: (N, K).
    y: (N,) int target labels.
    loss: `xent` (cross-entropy towards y) or `margin`
      (`max(max_{j != y} z_j - z_y, -kappa)`, the C&W loss).
    kappa: the margin loss floor.

  Returns:
    (N,) losses.
  """
  if loss == "xent":
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)
  if loss == "margin":
    return jnp.maximum(-margins(logits, y), -kappa)
  raise ValueError(f"config.loss={loss!r} is not one of {', '.join(LOSSES)}")


def _others(logits: jax.Array, y: jax.Array) -> jax.Array:
  """(N, K) logits with the target class y masked to -inf."""
  return jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)


def margins(logits: jax.Array, y: jax.Array) -> jax.Array:
  """(N,) `z_y - max_{j != y} z_j`: positive when argmax is y."""
  z_y = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  return z_y - jnp.max(_others(logits, y), axis=-1)


def robustness_term(
  apply_fn: Callable,
  variables,
  x: jax.Array,
  y: jax.Array,
  key: jax.Array,
  *,
  num_variants: int,
  variant_spec: VariantSpec,
  sorted_abs: jax.Array | None = None,
  batching: str = "auto",
  loss: str = "xent",
  kappa: float = 5.0,
  group_start: jax.Array | None = None,
) -> jax.Array:
  """`E_v sum_i L_C(x_i; v)` estimated by the mean over V sampled variants.

  Args:
    apply_fn: `apply_fn(variables, x) -> logits`.
    variables: base weights.
    x: (N, H, W, C) images; y: (N,) targets.
    key: PRNG key for the variants of this step.
    num_variants: V.
    variant_spec: noise bound and pruning settings.
    sorted_abs: sorted base kernel magnitudes (see `ucfp.core.prune.sorted_magnitudes`).
    batching: vmap | loop | unrolled | grouped | auto.
    group_start: for `grouped`, the first variant of the group to evaluate (this
      group's share of the mean; see `ucfp.core.variants.mean_over_variants`).

  Returns:
    A scalar. With V = 1 and no noise or mask it equals `sum(c_loss(...))`.
  """
  fn = lambda v: jnp.sum(c_loss(apply_fn(v, x), y, loss, kappa))
  return mean_over_variants(
    fn, variables, key, num_variants, variant_spec, sorted_abs, batching, group_start
  )


def surrogate_term(
  apply_fns: Sequence[Callable],
  variables: Sequence,
  x: jax.Array,
  y: jax.Array,
  loss: str = "xent",
  kappa: float = 5.0,
) -> jax.Array:
  """`mean_s sum_i L_C(x_i; s)` over S surrogate models: the owner's own pruned and
  fine-tuned copies of the base model, which sampled variants (pruned without
  fine-tuning) imitate only roughly.

  Args:
    apply_fns, variables: S >= 1 surrogate models.
    x: (N, H, W, C); y: (N,).

  Returns:
    A scalar.
  """
  total = [
    jnp.sum(c_loss(f(v, x), y, loss, kappa)) for f, v in zip(apply_fns, variables, strict=True)
  ]
  return sum(total) / len(total)


def spectral_term(x: jax.Array, x0: jax.Array, radius: float) -> jax.Array:
  """`sum_i ||LowPass_r(x_i - x0_i)||^2`: the perturbation's energy below radius r.

  x, x0: (N, H, W, C). Returns a scalar.
  """
  return jnp.sum(low_pass(x - x0, radius) ** 2)


REDUCTIONS = ("mean", "max")
REF_LOSSES = ("prob", "complement", "margin", "anchor", "anchor_margin")


def _ref_penalty(
  logits: jax.Array,
  y: jax.Array,
  ref_loss: str,
  ref_kappa: float = 0.0,
  logits0: jax.Array | None = None,
) -> jax.Array:
  """(N,) penalty of a reference model assigning y: `p(y|x)` (prob),
  `-log(1 - p(y|x))` (complement), whose gradient grows, not vanishes, as p -> 1, or
  the hinge `max(z_y - max_{j != y} z_j + ref_kappa, 0)` (margin), which keeps pushing
  until the reference is ref_kappa logits short of y (a safety gap: independently
  trained models differ from the references by a class-wide logit offset), or
  `-log p(a|x)` (anchor) with `a = argmax_{j != y} z_j(x0)`, the class other than y the
  reference reads in the starting image (logits0: its logits there, (N, K)): the
  reference keeps reading the start's class, not merely some class other than y; or
  the hinge `max(max_{j != a} z_j - z_a + ref_kappa, 0)` (anchor_margin), which stops
  once the reference reads a by ref_kappa logits."""
  logp_all = jax.nn.log_softmax(logits)
  if ref_loss in ("anchor", "anchor_margin"):
    anchor = jnp.argmax(_others(jax.lax.stop_gradient(logits0), y), axis=-1)
    if ref_loss == "anchor_margin":
      return jnp.maximum(ref_kappa - margins(logits, anchor), 0.0)
    return -jnp.take_along_axis(logp_all, anchor[:, None], axis=-1)[:, 0]
  logp = jnp.take_along_axis(logp_all, y[:, None], axis=-1)[:, 0]
  if ref_loss == "prob":
    return jnp.exp(logp)
  if ref_loss == "complement":
    # log(1 - p) = log(sum_{j != y} p_j), stable when p -> 1.
    return jax.nn.logsumexp(logits, axis=-1) - jax.nn.logsumexp(_others(logits, y), axis=-1)
  if ref_loss == "margin":
    return jnp.maximum(margins(logits, y) + ref_kappa, 0.0)
  raise ValueError(f"config.ltrc.ref_loss={ref_loss!r} is not one of {', '.join(REF_LOSSES)}")


def reference_term(
  apply_fns: Sequence[Callable],
  variables: Sequence,
  x: jax.Array,
  y: jax.Array,
  reduce: str = "mean",
  ref_loss: str = "prob",
  ref_kappa: float = 0.0,
  x0: jax.Array | None = None,
) -> jax.Array:
  """`sum_i reduce_r pen_r(x_i, y_i)`: how much reference models assign the target class.

  The owner's independently trained reference models (never the evaluation's
  innocents) stand in for models that fingerprints must not transfer to.

  Args:
    apply_fns, variables: R reference models.
    x: (N, H, W, C); y: (N,).
    reduce: `mean` over the references, or `max` (each example is pushed away from
      the reference that still assigns it the target class most).
    ref_loss: the penalty `pen_r`: `prob` (the target probability `p_r(y|x)`) or
      `complement` (`-log(1 - p_r(y|x))`) or `margin` (hinge at `-ref_kappa` logits) or
      `anchor` (`-log p_r(a|x)`, a: the reference's class other than y of x0) or
      `anchor_margin` (a hinge until the reference reads a by `ref_kappa` logits).
    ref_kappa: the margin penalties' gap (logits), >= 0.
    x0: (N, H, W, C) the starting images (`anchor`, `anchor_margin` only).
  """
  if reduce not in REDUCTIONS:
    raise ValueError(f"config.ltrc.reduce={reduce!r} is not one of {', '.join(REDUCTIONS)}")
  anchored = ref_loss in ("anchor", "anchor_margin")
  if anchored and x0 is None:
    raise ValueError(f"config.ltrc.ref_loss={ref_loss!r} needs the starting images x0")
  probs = [
    _ref_penalty(f(v, x), y, ref_loss, ref_kappa, f(v, x0) if anchored else None)
    for f, v in zip(apply_fns, variables, strict=True)
  ]
  stacked = jnp.stack(probs)
  return jnp.sum(jnp.mean(stacked, axis=0) if reduce == "mean" else jnp.max(stacked, axis=0))
