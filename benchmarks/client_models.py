"""Client setups for benchmarks/clients.py: models and training loops a user writes.

Nothing here comes from `ucfp.evaluation.models` or ucfp's trainer: each model is a
small Flax module of its own, trained by a plain optax loop (a jitted step in a Python
loop, no scan, no schedule unless the recipe has one), as a research user would train
the model they want to fingerprint. The derived copies (what a thief does) are also
made by these loops: masked fine-tuning after magnitude pruning, fine-tuning, int8
quantisation, distillation and label-only extraction.

Trained variables are cached as .npz (flattened pytrees, no pickle) under a cache
folder, named by a hash of everything that determines them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ucfp.core import prune
from ucfp.references import load_variables, save_variables


class AvgPoolCNN(nn.Module):
  """Two 3x3 convs, average pooling, two dense layers (the issue's example client)."""

  width: int = 16

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    x = nn.relu(nn.Conv(self.width, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(2 * self.width, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(10)(x)


class BNCNN(nn.Module):
  """conv-BN-relu x2, max pooling, conv-BN-relu, global average pooling, dense."""

  width: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    def block(x, c):
      x = nn.Conv(c, (3, 3), use_bias=False)(x)
      return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))

    x = block(block(x, self.width), self.width)
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = block(x, 2 * self.width)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(10)(x)


class ClientMLP(nn.Module):
  """Two hidden ReLU layers on flat pixels."""

  hidden: tuple[int, ...] = (256, 128)

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    x = x.reshape(x.shape[0], -1)
    for h in self.hidden:
      x = nn.relu(nn.Dense(h)(x))
    return nn.Dense(10)(x)


class Linear(nn.Module):
  """Multinomial logistic regression on flat pixels."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


ARCHS = {
  "linear": Linear(),
  "avgcnn": AvgPoolCNN(),
  "avgcnn_wide": AvgPoolCNN(width=32),
  "bncnn": BNCNN(),
  "bncnn16": BNCNN(width=16),  # CIFAR-10's (benchmarks/clients_zoo.py CIFAR_SETUPS)
  "mlp": ClientMLP(),
}


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A client's training recipe: optimiser, learning rate, epochs, batch, weight decay."""

  optimizer: str = "adam"  # adam | sgd (momentum 0.9, nesterov) | rmsprop
  learning_rate: float = 1e-3
  epochs: int = 40
  batch_size: int = 32
  weight_decay: float = 0.0
  cosine: bool = False  # cosine decay of the learning rate over the run

  def tx(self, steps: int) -> optax.GradientTransformation:
    lr = (
      optax.cosine_decay_schedule(self.learning_rate, steps) if self.cosine else self.learning_rate
    )
    opt = {
      "adam": lambda: optax.adam(lr),
      "sgd": lambda: optax.sgd(lr, momentum=0.9, nesterov=True),
      "rmsprop": lambda: optax.rmsprop(lr),
    }[self.optimizer]()
    if self.weight_decay:
      return optax.chain(optax.add_decayed_weights(self.weight_decay), opt)
    return opt


@functools.cache
def apply_fn(arch: str):
  """`apply(variables, x (N, H, W, C)) -> logits (N, 10)` in inference mode; one function
  object per architecture, so that compiled code is shared by its models."""
  module = ARCHS[arch]
  return lambda variables, x: module.apply(variables, x, train=False)


@functools.cache
def jit_apply(arch: str):
  """`apply_fn(arch)`, jitted once."""
  return jax.jit(apply_fn(arch))


@functools.cache
def _step(arch: str, recipe: Recipe, steps: int, masked: bool):
  """The jitted training step `(params, state, opt_state, masks, xb, yb) -> (params, state,
  opt_state)` of `fit`, compiled once per architecture, recipe and run length."""
  module, tx = ARCHS[arch], recipe.tx(steps)

  @jax.jit
  def step(params, state, opt_state, pmask, xb, yb):
    (_, new), g = jax.value_and_grad(_loss, argnums=1, has_aux=True)(module, params, state, xb, yb)
    if masked:
      g = prune.apply_masks(g, pmask)
    updates, opt_state = tx.update(g, opt_state, params)
    params = optax.apply_updates(params, updates)
    if masked:
      params = prune.apply_masks(params, pmask)
    return params, {**state, **new}, opt_state

  return step, tx


def _loss(module, params, state, x, y):
  """Cross-entropy with int labels y (B,) or soft labels y (B, K); updates BN statistics."""
  if state:
    logits, new = module.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"])
  else:
    logits, new = module.apply({"params": params}, x, train=True), {}
  if y.ndim == 2:
    loss = optax.softmax_cross_entropy(logits, y).mean()
  else:
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, new


def fit(
  arch: str,
  recipe: Recipe,
  x: np.ndarray,
  y: np.ndarray,
  seed: int,
  init=None,
  masks=None,
):
  """Trains ARCHS[arch] on x (n, H, W, C), y (n,) int or (n, K) soft; returns variables.

  `init`: variables to start from (fine-tuning); `masks`: a 0/1 pytree over the
  variables holding pruned kernels at zero (masked fine-tuning).
  """
  module = ARCHS[arch]
  key = jax.random.PRNGKey(seed)
  variables = init or module.init(key, jnp.zeros((1, *x.shape[1:])), train=False)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  pmask = None if masks is None else masks["params"]
  bs = min(recipe.batch_size, len(x))
  per_epoch = len(x) // bs
  step, tx = _step(arch, recipe, recipe.epochs * per_epoch, pmask is not None)
  opt_state = tx.init(params)

  rng = np.random.default_rng(seed)
  xd, yd = jnp.asarray(x), jnp.asarray(y)
  for _ in range(recipe.epochs):
    order = rng.permutation(len(x))[: per_epoch * bs].reshape(per_epoch, bs)
    for idx in order:
      params, state, opt_state = step(params, state, opt_state, pmask, xd[idx], yd[idx])
  return {"params": params, **state}


def logits(arch: str, variables, x, batch: int = 2048) -> np.ndarray:
  """(n, K) float32 logits of the model on x (n, H, W, C), `batch` images at a time:
  all 50,000 CIFAR-10 training images at once need more memory than a 24 GiB machine
  has for the BatchNorm CNN's full-resolution activations (std::bad_alloc)."""
  fn = jit_apply(arch)
  parts = [
    np.asarray(fn(variables, jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)
  ]
  return np.concatenate(parts).astype(np.float32)


def accuracy(arch: str, variables, x, y) -> float:
  """Test accuracy of a model on x (n, H, W, C), y (n,)."""
  pred = np.argmax(logits(arch, variables, x), -1)
  return float(np.mean(pred == np.asarray(y)))


def quantize(variables, bits: int = 8):
  """Symmetric per-output-channel quantisation of every conv/dense kernel (dequantised)."""
  flags = prune.leaf_flags(variables)
  leaves, treedef = jax.tree_util.tree_flatten(variables)
  q = 2 ** (bits - 1) - 1
  out = []
  for leaf, flag in zip(leaves, flags, strict=True):
    if flag:
      axes = tuple(range(leaf.ndim - 1))
      scale = jnp.maximum(jnp.max(jnp.abs(leaf), axis=axes, keepdims=True), 1e-12) / q
      leaf = jnp.round(leaf / scale) * scale
    out.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, out)


def soft_labels(arch: str, variables, x, temperature: float = 4.0) -> np.ndarray:
  """(n, K) probabilities of the model at `temperature` (distillation targets)."""
  return np.asarray(jax.nn.softmax(jnp.asarray(logits(arch, variables, x)) / temperature))


def hard_labels(arch: str, variables, x) -> np.ndarray:
  """(n,) the model's labels (what a label-only extraction attack queries)."""
  return np.argmax(logits(arch, variables, x), -1)


class Cache:
  """Trained variables as .npz files named by a hash of what determines them."""

  def __init__(self, folder: str):
    self.folder = folder
    os.makedirs(folder, exist_ok=True)

  def path(self, *parts) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(self.folder, f"{h}.npz")

  def get_or_fit(self, key_parts, make):
    """Returns cached variables for `key_parts`, else `make()` (then stored)."""
    path = self.path(*key_parts)
    if os.path.exists(path):
      return load_variables(path)
    variables = make()
    save_variables(path, variables)
    return variables


class FingerprintCache(Cache):
  """Fingerprints as ucfp .npz files named by a hash of the config, the models' names
  and their weights (so a retrained model never reuses another's fingerprints)."""

  def get_or_make(self, setup: str, ident, models, make):
    """Fingerprints stored for (setup, ident, models' weights), else `make()` (then stored)."""
    import ucfp
    from ucfp.core.generation import variables_hash

    name = os.path.basename(self.path(setup, ident, [variables_hash(m.variables) for m in models]))
    path = os.path.join(self.folder, f"{setup}-{name}")
    if os.path.exists(path):
      return ucfp.Fingerprints.load(path)
    fps = make()
    fps.save(path)
    return fps
