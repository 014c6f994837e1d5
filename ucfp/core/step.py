"""The generation step: the objective, its gradient (in chunks of examples, in groups
of variants) and the optimiser update. Pure functions; `compiled_step` jits them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ucfp.core import objectives
from ucfp.core.lowering import conv_lowering
from ucfp.core.spec import GenSpec
from ucfp.core.spectral import high_pass_filter
from ucfp.core.variants import VariantSpec, conv_lowering_for, group_layout, sample_variant


def make_optimizer(spec: GenSpec) -> optax.GradientTransformation:
  """Descent on the example: sign-gradient (default), Adam or SGD, then the high-pass filter."""
  base = {
    "sign": optax.scale_by_sign(),
    "adam": optax.scale_by_adam(),
    "sgd": optax.identity(),
  }[spec.optimizer]
  parts = [base, optax.scale(-spec.step_size)]
  if spec.radius > 0:
    parts.append(high_pass_filter(spec.radius))
  return optax.chain(*parts)


def objective(
  x, x0, y, variables, ref_variables, sur_variables, sorted_abs, key, group_start=None, *, spec,
  apply_fn, ref_fns, sur_fns=(),
):  # fmt: skip
  """The per-method objective (a scalar): c, rc, or ltrc (+ optional low-transferability term),
  plus the surrogate term for rc and ltrc when surrogate models are given.

  x, x0: (N, H, W, C); y: (N,). `group_start` (int32 scalar, `grouped` batching only):
  the robustness term is that group of variants' share of the mean, and the other
  terms count only in the group that starts at 0, so the groups' objectives sum to
  the whole objective.
  """
  if spec.method == "c":
    loss = jnp.sum(objectives.c_loss(apply_fn(variables, x), y, spec.loss, spec.kappa))
  else:
    loss = objectives.robustness_term(
      apply_fn,
      variables,
      x,
      y,
      key,
      num_variants=spec.num_variants,
      variant_spec=spec.variant,
      sorted_abs=sorted_abs,
      batching=spec.batching,
      loss=spec.loss,
      kappa=spec.kappa,
      group_start=group_start,
    )
  use_sur = spec.method != "c" and bool(sur_fns)
  if not use_sur and spec.term not in ("spectral", "reference"):
    return loss

  def others(x):
    total = jnp.zeros((), x.dtype)
    if use_sur:
      total += spec.surrogate_weight * objectives.surrogate_term(
        sur_fns, sur_variables, x, y, spec.loss, spec.kappa
      )
    if spec.term == "spectral":
      total += spec.weight * objectives.spectral_term(x, x0, spec.radius)
    elif spec.term == "reference":
      refs = ref_variables
      if spec.ref_noise > 0:  # each reference perturbed afresh every step
        vspec = VariantSpec(spec.ref_noise, "relative", "none")
        refs = [
          sample_variant(v, jax.random.fold_in(key, 7919 + i), vspec, None)
          for i, v in enumerate(ref_variables)
        ]
      total += spec.weight * objectives.reference_term(
        ref_fns, refs, x, y, spec.reduce, spec.ref_loss, spec.ref_kappa, x0
      )
      if spec.anchor_weight > 0:  # beside the penalty: each reference keeps its start's class
        total += spec.anchor_weight * objectives.reference_term(
          ref_fns, refs, x, y, spec.reduce, "anchor", 0.0, x0
        )
    return total

  if group_start is None:
    return loss + others(x)
  return loss + jax.lax.cond(group_start == 0, others, lambda x: jnp.zeros((), x.dtype), x)


def chunked_value_and_grad(fn, x, per_example, shared, chunk: int):
  """`jax.value_and_grad(fn)(x, *per_example, *shared)` for an `fn` that sums over examples,
  evaluated `chunk` examples at a time (0 or >= N: all at once).

  The chunks are unrolled in the traced program: inside a `lax.map`, XLA:CPU runs the
  convolutions ~5x slower (measured, benchmarks/speed.py). Every chunk sees the same
  `shared` arguments (the step's key, hence the same model variants), so the result
  equals the unchunked one up to float summation order.

  Args:
    fn: `fn(x, *per_example, *shared) -> scalar`, a sum of per-example terms.
    x: (N, ...) examples; per_example: arrays with leading dimension N.
    shared: arguments passed whole to every chunk.
    chunk: examples per evaluation.

  Returns:
    (loss scalar, grad (N, ...)).
  """
  vg = jax.value_and_grad(fn)
  n = x.shape[0]
  if chunk <= 0 or chunk >= n:
    return vg(x, *per_example, *shared)
  parts = [
    vg(x[i : i + chunk], *(a[i : i + chunk] for a in per_example), *shared)
    for i in range(0, n, chunk)
  ]
  return sum(p[0] for p in parts), jnp.concatenate([p[1] for p in parts])


def _value_and_grad(
  x, x0, y, variables, ref_variables, sur_variables, sorted_abs, key, group_start, *, spec,
  apply_fn, ref_fns, sur_fns,
):  # fmt: skip
  fn = functools.partial(objective, spec=spec, apply_fn=apply_fn, ref_fns=ref_fns, sur_fns=sur_fns)
  shared = (variables, ref_variables, sur_variables, sorted_abs, key, group_start)
  return chunked_value_and_grad(fn, x, (x0, y), shared, spec.chunk)


def _update(state, x0, loss, grad, *, spec):
  """The optimiser update, then projection on [0, 1] (and on the L-inf ball of radius
  `spec.budget` around the starting noise x0 (N, H, W, C) when budget > 0)."""
  x, opt_state = state
  updates, opt_state = make_optimizer(spec).update(grad, opt_state, x)
  x = optax.apply_updates(x, updates)
  if spec.budget > 0:
    x = jnp.clip(x, x0 - spec.budget, x0 + spec.budget)
  return (jnp.clip(x, 0.0, 1.0), opt_state), loss


@functools.cache
def min_margin_fn(apply_fn):
  """Jitted `(variables, x (N, H, W, C), y (N,)) -> min_n margin_n` of the base model.

  Generation reads it only when it checks the run (every 10 steps and at the end), not
  inside the step: a base-model forward per step cost ~5-8% of a V=8 step (digits CNN).
  """
  return jax.jit(lambda variables, x, y: jnp.min(objectives.margins(apply_fn(variables, x), y)))


def generation_step(
  state, x0, y, variables, ref_variables, sur_variables, sorted_abs, key, *, spec, apply_fn,
  ref_fns, sur_fns=(),
):  # fmt: skip
  """One update of the examples; pure. state = (x (N, H, W, C), optimiser state).

  Returns (new state, loss).
  """
  loss, grad = _value_and_grad(
    state[0], x0, y, variables, ref_variables, sur_variables, sorted_abs, key, None,
    spec=spec, apply_fn=apply_fn, ref_fns=ref_fns, sur_fns=sur_fns,
  )  # fmt: skip
  return _update(state, x0, loss, grad, spec=spec)


def _lowered(fn, batching: str):
  """`fn` traced with the convolution lowering that suits `batching` (`conv_lowering_for`)."""
  lowering = conv_lowering_for(batching)

  def wrapped(*args):
    with conv_lowering(lowering):  # read while tracing only
      return fn(*args)

  return wrapped


class GroupedStep:
  """`generation_step` for `grouped` batching: one compiled call per group of variants
  (`ucfp.core.variants.group_layout`), then one compiled update that sums the groups'
  losses and gradients. Same arguments and results as the jitted `generation_step`;
  equal to it up to float summation order.
  """

  def __init__(self, spec: GenSpec, apply_fn, ref_fns: tuple, sur_fns: tuple):
    self.num_groups, self.group_size = group_layout(spec.num_variants)
    self._starts = [np.int32(g * self.group_size) for g in range(self.num_groups)]

    def group(*args):
      return _value_and_grad(*args, spec=spec, apply_fn=apply_fn, ref_fns=ref_fns, sur_fns=sur_fns)

    def update(state, x0, parts):
      loss, grad = jax.tree.map(lambda *p: sum(p), *parts)
      return _update(state, x0, loss, grad, spec=spec)

    self.group_fn = jax.jit(_lowered(group, spec.batching))
    self.update_fn = jax.jit(update, donate_argnums=0)  # no model inside: no lowering

  def __call__(self, state, x0, y, variables, ref_variables, sur_variables, sorted_abs, key):
    args = (state[0], x0, y, variables, ref_variables, sur_variables, sorted_abs, key)
    parts = tuple(self.group_fn(*args, s) for s in self._starts)
    return self.update_fn(state, x0, parts)


@functools.lru_cache(maxsize=64)
def compiled_step(spec: GenSpec, apply_fn, ref_fns: tuple, sur_fns: tuple = ()):
  """`generation_step` jitted once per (settings, model functions); a `GroupedStep` for
  `grouped` batching."""
  if spec.batching == "grouped" and spec.method != "c":
    return GroupedStep(spec, apply_fn, ref_fns, sur_fns)
  step = functools.partial(
    generation_step, spec=spec, apply_fn=apply_fn, ref_fns=ref_fns, sur_fns=sur_fns
  )
  return jax.jit(_lowered(step, spec.batching), donate_argnums=0)
