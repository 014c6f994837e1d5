"""Pruning attacks: global and layer-wise magnitude, structured channel (L1), and
fine-pruning (Liu et al., 2018), each followed by masked fine-tuning or not (`raw`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ucfp.core import prune
from ucfp.core.types import Model
from ucfp.evaluation.attacks.base import Attack, Context, Derivation, TrainInputs
from ucfp.evaluation.data import Dataset
from ucfp.evaluation.layers import Conv
from ucfp.evaluation.models import get_module

# Clean images (evenly spaced over the train split) on which fine-pruning measures activity.
ACTIVITY_IMAGES = 2048


def channel_prune_masks(variables, rate: float):
  """Structured pruning: in every conv kernel (kh, kw, C_in, C_out) zero the `rate`
  fraction of output channels with the smallest L1 norm. Dense kernels are kept.

  Returns a mask pytree (as `ucfp.core.prune`), for `apply_masks` and masked fine-tuning.
  """
  flags = prune.prunable_mask_tree(variables)

  def mask(f, v):
    if not f:
      return None
    if v.ndim != 4:
      return jnp.ones_like(v)
    norms = jnp.sum(jnp.abs(v), axis=(0, 1, 2))
    k = int(np.floor(rate * v.shape[-1]))
    keep = jnp.ones_like(norms).at[jnp.argsort(norms)[:k]].set(0.0)
    return jnp.broadcast_to(keep, v.shape).astype(jnp.float32)

  return jax.tree.map(mask, flags, variables)


def last_conv_activity(module: nn.Module, variables, x: np.ndarray) -> tuple[tuple, np.ndarray]:
  """The last convolution (in execution order) and each output channel's activity.

  Activity is the mean over images and positions of the positive part of the
  layer's output, after the BatchNorm that follows it when there is one.
  Returns (path of the conv's module names, activity (C_out,)).
  """
  is_layer = lambda mdl, _: isinstance(mdl, (Conv, nn.BatchNorm))
  _, state = module.apply(
    variables,
    jnp.asarray(x),
    train=False,
    capture_intermediates=is_layer,
    mutable=["intermediates"],
  )
  outputs = []  # (path, kind, output) in execution order

  def walk(tree, path):
    for k, v in tree.items():
      if k == "__call__":
        outputs.append((path, path[-1].split("_")[0], v[0]))
      elif isinstance(v, dict):
        walk(v, (*path, k))

  walk(state["intermediates"], ())
  convs = [i for i, (_, kind, _) in enumerate(outputs) if kind == "Conv"]
  if not convs:
    raise ValueError("fine_prune needs a model with a convolution")
  i = convs[-1]
  path, _, out = outputs[i]
  if i + 1 < len(outputs) and outputs[i + 1][1] == "BatchNorm":
    out = outputs[i + 1][2]
  return path, np.asarray(jnp.mean(jax.nn.relu(out), axis=(0, 1, 2)))


def fine_prune_masks(module: nn.Module, variables, x: np.ndarray, rate: float):
  """Fine-pruning's masks: the `rate` fraction of the last conv layer's output channels
  least active on clean images x (n, H, W, C) are removed: their kernel slice, bias
  and following BatchNorm scale and offset are zeroed, so the channel outputs 0."""
  path, activity = last_conv_activity(module, variables, x)
  k = int(np.floor(rate * activity.shape[0]))
  keep = np.ones_like(activity, np.float32)
  keep[np.argsort(activity, kind="stable")[:k]] = 0.0
  bn = ("BatchNorm" + path[-1][len("Conv") :],)

  def mask(p, v):
    names = tuple(getattr(q, "key", str(q)) for q in p)
    if names[0] != "params" or names[1:-1] not in (path, path[:-1] + bn):
      return None
    return jnp.broadcast_to(jnp.asarray(keep), v.shape)

  return jax.tree_util.tree_map_with_path(mask, variables)


def _masks(attack: Attack, base: Model, data: Dataset, arch_module):
  rate = attack.rate
  v = base.variables
  if attack.kind == "prune_global":
    return prune.global_magnitude_masks(v, rate)
  if attack.kind == "prune_layer":
    return prune.layerwise_magnitude_masks(v, rate)
  if attack.kind == "prune_channel":
    return channel_prune_masks(v, rate)
  step = max(1, len(data.train_x) // ACTIVITY_IMAGES)
  return fine_prune_masks(arch_module, v, data.train_x[::step], rate)


PRUNE_KINDS = {
  "prune_global": "global",
  "prune_layer": "layerwise",
  "prune_channel": "channel",
  "fine_prune": "activity",
}


def prune_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """Prunes the base (`attack.kind` picks the masks) at `attack.rate`; unless the
  attack is `raw`, the copy is then fine-tuned with its mask held fixed."""
  arch = ctx.base_spec.arch
  module = get_module(arch, ctx.num_classes)  # fine-pruning runs it to measure activity
  if attack.args[-1] == "raw":
    masks = _masks(attack, base, data, module)
    return Derivation(arch, variables=prune.apply_masks(base.variables, masks))
  spec = ctx.finetune_spec(
    prune_rate=attack.rate, prune_kind=PRUNE_KINDS[attack.kind], augment=False
  )

  def inputs():
    masks = _masks(attack, base, data, module)
    return TrainInputs(data.train_x, data.train_y, init=base.variables, masks=masks)

  return Derivation(arch, spec=spec, inputs=inputs)
