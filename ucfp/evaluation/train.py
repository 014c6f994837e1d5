"""Supervised training and masked fine-tuning with optax, deterministic per seed.

Steps run in chunks under `lax.scan` inside one jit (one compiled function
per module and optimiser), so small models are not dominated by dispatch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ucfp.core import progress, prune
from ucfp.core.lowering import conv_lowering
from ucfp.evaluation.models import init_variables

# Fields added after checkpoints existed carry this metadata: `store.spec_key` leaves them
# out of the hash while they hold their default, so older checkpoints keep their names.
_NEW = {"omit_default": True}


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """Everything that determines a trained model (its hash names the checkpoint)."""

  arch: str
  seed: int
  epochs: int
  batch_size: int = 64
  learning_rate: float = 3e-3
  weight_decay: float = 1e-4
  augment: bool = False
  subset: str = "full"  # full | half_a | half_b
  prune_rate: float = 0.0  # > 0: fine-tune the parent with a fixed mask
  prune_kind: str = "global"  # global | layerwise | channel
  parent: str = ""  # checkpoint key of the model being pruned
  # What the labels y given to `train` are: data (the dataset's) | parent (the parent
  # model's hard labels, model extraction) | soft (its probabilities at `temperature`,
  # (n, K), knowledge distillation).
  labels: str = dataclasses.field(default="data", metadata=_NEW)
  temperature: float = dataclasses.field(default=1.0, metadata=_NEW)  # of the KD loss
  # all | head: only the last dense layer is trained; every other variable (BatchNorm
  # statistics too) stays bit-identical.
  trainable: str = dataclasses.field(default="all", metadata=_NEW)
  reinit_head: bool = dataclasses.field(default=False, metadata=_NEW)  # new last layer first
  # none | fgsm | pgd: each batch is replaced by adversarial examples (L-inf radius
  # adv_eps, adv_steps PGD steps) against the model being trained.
  adversarial: str = dataclasses.field(default="none", metadata=_NEW)
  adv_eps: float = dataclasses.field(default=0.0, metadata=_NEW)
  adv_steps: int = dataclasses.field(default=0, metadata=_NEW)


def _make_tx(
  learning_rate: float, weight_decay: float, finetune: bool, total_steps: int
) -> optax.GradientTransformation:
  """AdamW with warmup (10% of steps; none when fine-tuning a pruned copy) and cosine decay."""
  warmup = 1 if finetune else max(1, total_steps // 10)
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, learning_rate, warmup, max(total_steps, warmup + 1)
  )
  return optax.adamw(schedule, weight_decay=weight_decay)


def _augment(key, x):
  """Random horizontal flip and up-to-4-pixel translation (reflect padding): (B, H, W, C)."""
  k1, k2 = jax.random.split(key)
  flip = jax.random.bernoulli(k1, 0.5, (x.shape[0],))
  x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
  pad = 4
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  offs = jax.random.randint(k2, (x.shape[0], 2), 0, 2 * pad + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), x.shape[1:])
  return jax.vmap(crop)(xp, offs)


def head_name(params) -> str:
  """The last dense layer of a Flax model: the top-level `Dense_<i>` with the largest i."""
  dense = [k for k in params if k.startswith("Dense_") and k[6:].isdigit()]
  if not dense:
    raise ValueError(f"no top-level Dense_<i> layer (the head) among {sorted(params)}")
  return max(dense, key=lambda k: int(k[6:]))


def kd_loss(logits: jax.Array, probs: jax.Array, temperature: float) -> jax.Array:
  """Hinton et al.'s distillation loss, mean over the batch: T^2 CE(probs, softmax(z / T)).

  logits (B, K) of the student; probs (B, K) the teacher's softmax at temperature T.
  """
  return temperature**2 * optax.softmax_cross_entropy(logits / temperature, probs).mean()


def label_loss(logits: jax.Array, y: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Cross-entropy with integer labels y (B,), or `kd_loss` with probabilities y (B, K)."""
  if y.ndim == 2:
    return kd_loss(logits, y, temperature)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def adversarial_examples(loss_of_x, x, key, kind: str, eps: float, steps: int) -> jax.Array:
  """L-inf adversarial examples of x (B, H, W, C) in [0, 1] that raise `loss_of_x(x)`.

  fgsm: one signed-gradient step of size eps. pgd: a uniform random start in the
  eps-ball, then `steps` signed steps of 2.5 eps / steps, projected on the ball and
  on [0, 1] (Madry et al., 2018). The result carries no gradient.
  """
  if kind == "fgsm":
    x_adv = x + eps * jnp.sign(jax.grad(loss_of_x)(x))
    return jax.lax.stop_gradient(jnp.clip(x_adv, 0.0, 1.0))
  alpha = 2.5 * eps / steps

  def step(_, xa):
    xa = xa + alpha * jnp.sign(jax.grad(loss_of_x)(xa))
    return jnp.clip(jnp.clip(xa, x - eps, x + eps), 0.0, 1.0)

  start = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps), 0.0, 1.0)
  return jax.lax.stop_gradient(jax.lax.fori_loop(0, steps, step, start))


# The step loops a backend and image size train with (measured in benchmarks/train_speed.py,
# jax 0.10.2, 2-core XLA:CPU): up to 16x16 images, steps in chunks under `lax.scan` with
# the im2col convolution (8x8 digits CNN: 7.5x PyTorch's images/s); larger images, a
# Python loop of jitted single steps (state donated) with XLA's native convolution, which
# is 2-5x faster than im2col at 32x32, batch 128, but pathologically slow inside a scan on
# XLA:CPU (VGG-small: 16 img/s in a scan, ~700 in the loop).
PATHS = ("auto", "scan", "loop")
LOOP_MIN_PIXELS = 17 * 17


def choose_path(image_shape, backend: str | None = None) -> tuple[str, str | None]:
  """(loop | scan, conv lowering or None for the model's default) for (H, W, C) images."""
  backend = backend or jax.default_backend()
  if backend == "cpu" and image_shape[0] * image_shape[1] >= LOOP_MIN_PIXELS:
    return "loop", "xla"
  return "scan", None


def _chunk_runner(module: nn.Module, spec: TrainSpec, total_steps: int, path: str, conv):
  """`(run(state, x_all, y_all, idx (C, B), masks, key) -> (state, losses (C,)), tx)`.

  path scan: one jitted call runs the C steps under `lax.scan`; loop: C calls of a
  jitted single step that donates the state (the caller must own it). Both draw the
  same per-step keys (`jax.random.split(key, C)`), so they train the same model up to
  float rounding. Cached on what changes the computation (not the seed, subset or
  parent), so that models of one architecture share one compiled function.
  """
  return _cached_runner(
    module,
    spec.learning_rate,
    spec.weight_decay,
    spec.prune_rate > 0,
    spec.augment,
    total_steps,
    temperature=spec.temperature,
    trainable=spec.trainable,
    adversarial=(spec.adversarial, spec.adv_eps, spec.adv_steps),
    path=path,
    conv=conv,
  )


@functools.cache
def _cached_runner(
  module,
  learning_rate,
  weight_decay,
  finetune,
  augment,
  total_steps,
  temperature=1.0,
  trainable="all",
  adversarial=("none", 0.0, 0),
  path="scan",
  conv=None,
):
  if path not in ("scan", "loop"):
    raise ValueError(f"path={path!r} is not one of scan, loop")
  tx = _make_tx(learning_rate, weight_decay, finetune, total_steps)
  frozen = trainable == "head"  # only the head trains; BatchNorm in inference mode
  adv_kind, adv_eps, adv_steps = adversarial

  def step(carry, x_all, y_all, batch_idx, masks, step_key):
    params, stats, opt_state = carry
    xb, yb = x_all[batch_idx], y_all[batch_idx]
    if augment:
      xb = _augment(step_key, xb)
    if adv_kind != "none":
      fixed = {"params": params, **stats}
      adv_loss = lambda xa: label_loss(module.apply(fixed, xa, train=False), yb, temperature)
      adv_key = jax.random.fold_in(step_key, 1)
      xb = adversarial_examples(adv_loss, xb, adv_key, adv_kind, adv_eps, adv_steps)

    def loss_fn(p):
      variables = {"params": p, **stats}
      if stats and not frozen:
        logits, new = module.apply(variables, xb, train=True, mutable=["batch_stats"])
      else:
        logits, new = module.apply(variables, xb, train=not frozen), {}
      return label_loss(logits, yb, temperature), new

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    if masks is not None:
      grads = prune.apply_masks(grads, masks)
    updates, opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    if frozen:  # selected, not added: the frozen layers stay bit-identical
      head = head_name(params)
      new_params = {k: new_params[k] if k == head else params[k] for k in params}
    params = new_params
    if masks is not None:
      params = prune.apply_masks(params, masks)
    return (params, {**stats, **new_stats}, opt_state), loss

  lowering = lambda: conv_lowering(conv) if conv else contextlib.nullcontext()
  if path == "scan":

    def run(state, x_all, y_all, idx, masks, key):
      with lowering():
        body = lambda carry, inp: step(carry, x_all, y_all, inp[0], masks, inp[1])
        return jax.lax.scan(body, state, (idx, jax.random.split(key, idx.shape[0])))

    return jax.jit(run), tx

  def traced_step(*args):
    with lowering():
      return step(*args)

  one = jax.jit(traced_step, donate_argnums=(0,))
  split = jax.jit(jax.random.split, static_argnums=1)

  def run_loop(state, x_all, y_all, idx, masks, key):
    idx = np.asarray(idx)
    keys = split(key, idx.shape[0])
    losses = []
    for i in range(idx.shape[0]):
      state, loss = one(state, x_all, y_all, idx[i], masks, keys[i])
      losses.append(loss)
    return state, jnp.stack(losses)

  run_loop.step = one  # for benchmarks: the compiled single step
  return run_loop, tx


def _index_stream(n_examples: int, indices: np.ndarray, spec: TrainSpec) -> np.ndarray:
  """(steps, batch) example indices, reshuffled per pass over `indices` from the seed.

  The number of steps is `epochs * (n_examples // batch)` whatever the subset, so a
  model trained on half the data takes as many optimiser steps (and shares the
  compiled step function) as one trained on all of it.
  """
  rng = np.random.default_rng(spec.seed + 7919)
  bs = min(spec.batch_size, len(indices))
  total = spec.epochs * max(1, n_examples // bs)
  per_pass = len(indices) // bs
  rows = []
  while sum(r.shape[0] for r in rows) < total:
    rows.append(rng.permutation(indices)[: per_pass * bs].reshape(per_pass, bs))
  return np.concatenate(rows)[:total].astype(np.int32)


def train(
  module: nn.Module,
  spec: TrainSpec,
  x: np.ndarray,
  y: np.ndarray,
  *,
  indices: np.ndarray | None = None,
  init: dict | None = None,
  masks=None,
  name: str = "model",
  chunk: int = 100,
  path: str = "auto",
):
  """Trains `module` on images x (n, H, W, C) and labels y (n,); returns its variables.

  Args:
    module: a Flax module taking `(x, train=...)`.
    spec: the training hyperparameters (and seed).
    x, y: the full training arrays; `indices` selects the subset used. y is (n,) int
      labels, or (n, K) probabilities for distillation (`spec.labels == 'soft'`).
    init: variables to start from (fine-tuning); fresh initialisation if None.
    masks: a mask pytree over the *variables*; kernels stay exactly zero where 0.
    name: for the progress bar (`ucfp.core.progress`, shown when switched on).
    chunk: steps per compiled chunk (path scan), or between progress updates (loop).
    path: auto (`choose_path` for x's image shape and the backend) | scan | loop; the
      trained model is the same up to float rounding.
  """
  if path not in PATHS:
    raise ValueError(f"path={path!r} is not one of {', '.join(PATHS)}")
  indices = np.arange(len(x)) if indices is None else np.asarray(indices)
  stream = _index_stream(len(x), indices, spec)
  total = stream.shape[0]
  key = jax.random.PRNGKey(spec.seed)
  init_key, aug_key = jax.random.split(key)
  variables = init if init is not None else init_variables(module, init_key, x.shape[1:])
  if spec.reinit_head:  # transfer to a new head: the last layer freshly initialised
    head = head_name(variables["params"])
    fresh = init_variables(module, jax.random.fold_in(init_key, 1), x.shape[1:])["params"][head]
    variables = {**variables, "params": {**variables["params"], head: fresh}}
  params = variables["params"]
  stats = {k: v for k, v in variables.items() if k != "params"}
  auto_path, conv = choose_path(x.shape[1:])
  path = auto_path if path == "auto" else path
  run, tx = _chunk_runner(module, spec, total, path, conv if path == auto_path else None)
  param_masks = None if masks is None else masks["params"]
  if param_masks is not None:
    params = prune.apply_masks(params, param_masks)
  state = (params, stats, tx.init(params))
  if path == "loop":  # its steps donate the state: never the caller's (init's) arrays
    state = jax.tree.map(jnp.copy, state)
  x_dev, y_dev = jnp.asarray(x), jnp.asarray(y)
  chunk = max(1, min(chunk, total))
  bar = progress.bar(total=total, desc=f"  training {name}", leave=False)
  try:
    for i, s in enumerate(range(0, total, chunk)):
      state, losses = run(
        state, x_dev, y_dev, stream[s : s + chunk], param_masks, jax.random.fold_in(aug_key, i)
      )
      if not bar.disable:  # dispatch is asynchronous: count the steps that have really run
        bar.set_postfix(loss=float(losses[-1]), refresh=False)
        bar.update(min(s + chunk, total) - bar.n)
  finally:
    bar.close()
  params, stats, _ = state
  return {"params": params, **stats}
