"""Reference models for the low-transferability term, made cheaply from the user's side.

The reference term (`config.ltrc.term = 'reference'`) keeps fingerprints away from what
independently trained models predict; it is only as good as the reference models
(benchmarks/results/clients-digits-r3.md): a few of one architecture leave fingerprints
that other architectures, even a logistic regression, still follow. Two helpers:

- :func:`train_references`: K models of the user's own architecture, trained by the
  user's own training function with other seeds, cached as .npz files. Short runs
  count too: 4 runs of a tenth of the user's epochs (3 of 30-40 on digits), added to
  K = 4 references, cut the innocents' mean match by 44-70% (T 0.24 -> 0.13, 0.16 ->
  0.05, 0.15 -> 0.08 on three client models) for about 0.3 of one full run's cost in
  all (benchmarks/results/clients-digits-r3.md): what every model learns first is what
  transferring fingerprints exploit;
- :func:`simple_references`: a linear model, an MLP and a small CNN trained on the
  user's data in seconds to a minute (digits), which stand in for the other
  architectures a thief's innocent look-alikes have.

Both return :class:`ucfp.Model` lists for `ucfp.fingerprint(..., reference=...)`. The
models must be trained on data the owner controls and never be the models a
verification is evaluated against. A third, :func:`pruned_copies`, makes the owner's own
pruned, fine-tuned copies of the model, for `surrogates=` and `validators=`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ucfp.core.io import atomic_write_npz
from ucfp.core.types import Model

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def save_variables(path: str, variables) -> None:
  """Writes a nested dict of arrays as an .npz (keys joined by "/"), atomically."""
  from flax import traverse_util  # here, not at `import ucfp`

  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  atomic_write_npz(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_variables(path: str):
  """Reads what `save_variables` wrote (no pickle)."""
  from flax import traverse_util

  with np.load(path, allow_pickle=False) as f:
    flat = {k: jnp.asarray(f[k]) for k in f.files}
  return traverse_util.unflatten_dict(flat, sep="/")


def _cached(cache_dir: str | None, filename: str, make: Callable[[], object]):
  """`make()`'s variables, restored from / stored to `cache_dir/filename` when given."""
  if cache_dir is None:
    return make()
  path = os.path.join(cache_dir, filename)
  if os.path.exists(path):
    return load_variables(path)
  variables = make()
  os.makedirs(cache_dir, exist_ok=True)
  save_variables(path, variables)
  return variables


def train_references(
  apply_fn: Callable,
  train_fn: Callable[[int], object],
  k: int,
  *,
  seeds: list[int] | None = None,
  cache_dir: str | None = None,
  name: str = "reference",
) -> list[Model]:
  """K reference models of the user's architecture, trained by the user's function.

  Args:
    apply_fn: `apply_fn(variables, x (N, H, W, C)) -> logits (N, K)`, the user's model.
    train_fn: `train_fn(seed) -> variables`: the user's own training (their data,
      optimiser and epochs), with the seed deciding initialisation and data order.
      Use the owner's data, never a suspect's. For cheap references pass a train_fn
      that runs about a tenth of the usual epochs (and another `name`).
    k: the number of reference models (>= 1).
    seeds: their seeds (default 1001 .. 1000 + k); none may be the base model's.
    cache_dir: where each model's variables are kept as `<name>-s<seed>.npz` (flattened,
      no pickle) and restored from on the next call. Change `name` when `train_fn`
      changes: the cache cannot see inside it.
    name: the models' names (`<name>-s<seed>`) and cache file prefix.

  Returns:
    k :class:`ucfp.Model`.
  """
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"train_references: k={k!r} must be a positive integer")
  seeds = list(range(1001, 1001 + k)) if seeds is None else list(seeds)
  if len(seeds) != k or len(set(seeds)) != k:
    raise ValueError(f"train_references: seeds={seeds} must be {k} distinct integers")
  if not _NAME.match(name):
    raise ValueError(f"train_references: name={name!r} may hold only letters, digits, _ . -")
  models = []
  for seed in seeds:
    variables = _cached(cache_dir, f"{name}-s{seed}.npz", lambda seed=seed: train_fn(int(seed)))
    models.append(Model(apply_fn, variables, f"{name}-s{seed}"))
  return models


def pruned_copies(
  model: Model,
  finetune_fn: Callable[[object, object, int], object],
  rates: Sequence[float],
  *,
  seeds: Sequence[int] | None = None,
  cache_dir: str | None = None,
  name: str | None = None,
) -> list[Model]:
  """The owner's own pruned, fine-tuned copies of `model`, as a pruning thief makes them.

  For `ucfp.fingerprint(..., surrogates=...)` (`config.robust.surrogates`, in the
  objective) and `validators=...` (`config.robust.validators`, held out; they choose
  among the candidates): each copy is `model` with the `rate` fraction of its smallest
  kernel weights zeroed (global magnitude pruning over every conv / dense kernel, the
  evaluation's rule) and then fine-tuned by the user's own function.

  Args:
    model: the owner's :class:`ucfp.Model` (white-box: its variables are pruned).
    finetune_fn: `finetune_fn(variables, masks, seed) -> variables`: the user's
      fine-tuning (a few epochs of their training, their data) from the pruned
      `variables`, keeping the pruned weights at zero: `masks` has the structure of
      `variables`, float 0/1 arrays on the kernels and None elsewhere
      (`ucfp.core.prune.apply_masks(variables, masks)` after each update does it).
    rates: prune rates in (0, 1), e.g. `config.robust.surrogates` or
      `config.robust.validators`.
    seeds: one per rate, for the fine-tuning's data order (default 2001, 2002, ...).
      Give validators other seeds than surrogates, so that none is a copy in the
      objective.
    cache_dir: where each copy is kept as `<name>-pruned-<rate>-s<seed>.npz` (no
      pickle) and restored from on the next call; change `name` when the model or
      `finetune_fn` changes: the cache cannot see inside them.
    name: the copies' name prefix (default `model.name`).

  Returns:
    One :class:`ucfp.Model` per rate, named `<name>-pruned-<rate>-s<seed>`.
  """
  from ucfp.core import prune
  from ucfp.core.validate import are_prune_rates

  rates = tuple(rates)
  if not rates or not are_prune_rates(rates):
    raise ValueError(f"pruned_copies: rates={rates!r} must be prune rates in (0, 1)")
  seeds = list(range(2001, 2001 + len(rates))) if seeds is None else list(seeds)
  if len(seeds) != len(rates) or not all(isinstance(s, int) for s in seeds):
    raise ValueError(f"pruned_copies: seeds={seeds} must be {len(rates)} integers, one per rate")
  name = model.name if name is None else name
  if not _NAME.match(name):
    raise ValueError(f"pruned_copies: name={name!r} may hold only letters, digits, _ . -")
  out = []
  for rate, seed in zip(rates, seeds, strict=True):
    tag = f"{name}-pruned-{float(rate):g}-s{seed}"

    def make(rate=rate, seed=seed):
      masks = prune.global_magnitude_masks(model.variables, float(rate))
      return finetune_fn(prune.apply_masks(model.variables, masks), masks, int(seed))

    out.append(Model(model.apply_fn, _cached(cache_dir, f"{tag}.npz", make), tag))
  return out


KINDS = ("linear", "mlp", "cnn")


def _families(k: int):
  """{name: (Flax module, learning rate)} of `simple_references`: a linear model, an MLP
  and a small CNN with k outputs (Flax is imported here, not at `import ucfp`)."""
  import flax.linen as nn

  class Linear(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(k)(x.reshape(x.shape[0], -1))

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Dense(256)(x.reshape(x.shape[0], -1)))
      return nn.Dense(k)(x)

  class CNN(nn.Module):
    """3x3 conv 32, max pool, 3x3 conv 64, global average pool, dense 128: any image
    size >= 2 x 2."""

    @nn.compact
    def __call__(self, x):
      x = nn.max_pool(nn.relu(nn.Conv(32, (3, 3))(x)), (2, 2), (2, 2))
      x = nn.relu(nn.Conv(64, (3, 3))(x)).mean(axis=(1, 2))
      return nn.Dense(k)(nn.relu(nn.Dense(128)(x)))

  return {"linear": (Linear(), 1e-2), "mlp": (MLP(), 1e-3), "cnn": (CNN(), 1e-3)}


def _fit(module, x: np.ndarray, y: np.ndarray, seed: int, epochs: int, lr: float):
  """Adam on cross-entropy, batches of 64, `epochs` passes, the learning rate decayed
  to 0 over the run (cosine); returns the variables.

  The decay: on CIFAR-10 at 3 epochs the linear model reached 0.274 test accuracy at a
  constant 1e-2, 0.347 at 1e-3, 0.409 decayed from 1e-2 (a probe), below the
  scikit-learn logistic regression (0.337) that the client MLP's fingerprints then
  followed (benchmarks/results/clients-cifar10.md)."""
  key = jax.random.PRNGKey(seed)
  variables = module.init(key, jnp.zeros((1, *x.shape[1:]), jnp.float32))
  bs = min(64, len(x))
  steps = len(x) // bs
  tx = optax.adam(optax.cosine_decay_schedule(lr, max(1, steps * epochs)))

  def loss(params, xb, yb):
    logits = module.apply({"params": params}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def epoch(carry, xd, yd, order):
    def step(c, idx):
      params, opt = c
      g = jax.grad(loss)(params, xd[idx], yd[idx])
      updates, opt = tx.update(g, opt, params)
      return (optax.apply_updates(params, updates), opt), None

    return jax.lax.scan(step, carry, order)[0]

  xd, yd = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
  params = variables["params"]
  carry = (params, tx.init(params))
  rng = np.random.default_rng(seed)
  for _ in range(epochs):
    carry = epoch(carry, xd, yd, rng.permutation(len(x))[: steps * bs].reshape(steps, bs))
  return {"params": carry[0]}


def simple_references(
  x: np.ndarray,
  y: np.ndarray,
  *,
  num_classes: int | None = None,
  seed: int = 2001,
  epochs: int = 40,
  kinds: Sequence[str] = KINDS,
  cache_dir: str | None = None,
) -> list[Model]:
  """A linear model, a one-hidden-layer MLP and a small CNN trained on the owner's data.

  Added to the user's own reference models they keep fingerprints from transferring
  to innocents of other families than the user's architecture, which it does not stand
  for (benchmarks/results/clients-digits.md: with configs/own.py and no reference of
  the user's, all three instead of the CNN alone took the innocents' mean match from
  0.325 to 0.132 on the avg-pool client, 0.229 to 0.102 on the MLP client; r3 there: at
  K = 4 the CNN took the avg-pool client's BatchNorm-CNN innocent from 0.26 to 0.17
  match, but not its wider avg-pool innocent). On 8x8 digits the linear
  model and the MLP train in seconds, the CNN in about 40 s on 2 CPU cores; on larger
  images lower `epochs`.

  Args:
    x: (n, H, W, C) float32 images in [0, 1]; y: (n,) integer labels in [0, num_classes).
    num_classes: default `max(y) + 1`.
    seed: the first model's seed (the i-th of `kinds` has seed + i).
    epochs: passes over the data (batches of 64, Adam, cosine-decayed learning rate).
    kinds: which of "linear", "mlp", "cnn", in this order of seeds.
    cache_dir: where each model's variables are kept as
      `<kind>-s<seed>-e<epochs>-n<len(x)>-cosine.npz` (no pickle) and restored from on the
      next call; the name cannot see the images themselves: use one folder per data set.

  Returns:
    One :class:`ucfp.Model` per kind, named `<kind>-s<seed + i>`.
  """
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
    raise ValueError(
      f"simple_references: x must be (n, H, W, C) and y (n,); got {x.shape}, {y.shape}"
    )
  if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
    raise ValueError("simple_references: y must hold non-negative integer labels")
  kinds = tuple(kinds)
  if not kinds or any(kind not in KINDS for kind in kinds) or len(set(kinds)) != len(kinds):
    raise ValueError(f"simple_references: kinds={kinds!r} must be distinct names of {KINDS}")
  k = int(y.max()) + 1 if num_classes is None else int(num_classes)
  if y.max() >= k:
    raise ValueError(f"simple_references: labels must be in [0, num_classes={k})")
  out, families = [], _families(k)
  for i, tag in enumerate(kinds):
    module, lr = families[tag]
    name = f"{tag}-s{seed + i}"
    variables = _cached(
      cache_dir,
      f"{name}-e{epochs}-n{len(x)}-cosine.npz",
      lambda module=module, i=i, lr=lr: _fit(module, x, y, seed + i, epochs, lr),
    )
    out.append(Model(module.apply, variables, name))
  return out
