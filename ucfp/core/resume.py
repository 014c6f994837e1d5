"""Resumable generation: the loop's state checkpointed with orbax every `checkpoint_every` steps.

A run is named by a hash of everything that determines its result (`run_id`): the
generation fields of the config, the image shape, the model's (and the reference and
surrogate models') weights, the key, the target labels and the devices. Its
checkpoints live under `<checkpoint_dir>/<run id>/<step>/`, so a rerun with the same
inputs resumes and a run with other inputs never restores a foreign state. A
checkpoint holds the examples x (N, H, W, C), the optimiser state and the losses so
far; the step is the checkpoint's number, and it is also the key state, since step t
draws its variants with `fold_in(key, t)`. Only the latest checkpoint is kept, and
the run's folder is removed once its fingerprints are complete.
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

# Config fields that determine a generation's result (with the whole `robust` and
# `ltrc` groups); `checkpoint_every` is not one: it changes when state is saved, not
# the state.
GENERATION_FIELDS = (
  "method", "num_fingerprints", "steps", "step_size", "optimizer", "loss", "kappa", "init",
  "init_sigma", "early_stop", "early_stop_margin", "shard",
)  # fmt: skip


def _plain(node):
  return node.to_dict() if hasattr(node, "to_dict") else dict(node)


def _hash_arrays(h, tree) -> None:
  for leaf in jax.tree.leaves(tree):
    a = np.asarray(leaf)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def run_id(
  config, image_shape, model, reference, surrogates, key, labels, kernels=(), starts=None
) -> str:
  """16 hex digits naming one generation run.

  Args:
    config: the ucfp config (its generation fields, `robust` and `ltrc`).
    image_shape: (H, W, C) of the examples.
    model, reference, surrogates: the `Model`s whose weights the run reads.
    key: the run's PRNG key.
    labels: (N,) target labels.
    kernels: which leaves of `model.variables` variants prune and perturb (the flags
      of `prune.leaf_flags`: a user's `prunable` predicate changes the result).
    starts: (N, H, W, C) starting images of `config.init='data'`, or None.
  """
  fields = {f: config[f] for f in GENERATION_FIELDS}
  fields.update(robust=_plain(config.robust), ltrc=_plain(config.ltrc))
  desc = {
    "config": fields,
    "image_shape": list(image_shape),
    "models": [m.name for m in (model, *reference, *surrogates)],
    "devices": [jax.default_backend(), jax.device_count()],
    "kernels": [bool(f) for f in kernels],
  }
  h = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode())
  _hash_arrays(h, [m.variables for m in (model, *reference, *surrogates)])
  typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
  _hash_arrays(h, [jax.random.key_data(key) if typed else key, labels])
  if starts is not None:
    _hash_arrays(h, [starts])
  return h.hexdigest()[:16]


class Checkpoints:
  """The latest state of one generation run, under `<root>/<run>/<step>/` (orbax).

  Args:
    root: the folder for all runs' checkpoints (created if missing).
    run: the run's id (`run_id`).
    every: save after every `every` steps (> 0).
    num_steps: T, the run's total steps (the saved losses have shape (T,)).
  """

  def __init__(self, root: str, run: str, every: int, num_steps: int):
    self.directory = os.path.join(os.path.abspath(root), run)
    self.every = every
    self.num_steps = num_steps
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def restore(self, state, replicated=None):
    """(step, state, losses) of the latest checkpoint, or None when there is none.

    Args:
      state: the run's initial (x, optimiser state); it gives the tree, shapes, dtypes
        and shardings to restore into.
      replicated: the sharding of the leaves that are not split over examples (when
        the examples are sharded); None on one device.

    Returns:
      the number of steps done, the state after them, and their losses (a list).
    """
    step = self._manager.latest_step()
    if step is None:
      return None
    n = state[0].shape[0]

    def abstract(a):
      if replicated is None:  # one device: to the host, then placed like a fresh state
        return np.empty(a.shape, a.dtype)
      sharding = a.sharding if a.ndim and a.shape[0] == n else replicated
      return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

    target = {
      "x": abstract(state[0]),
      "opt_state": jax.tree.map(abstract, state[1]),
      "losses": np.zeros(self.num_steps, np.float32),
    }
    saved = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    x, opt_state = saved["x"], saved["opt_state"]
    if replicated is None:  # uncommitted, as fresh arrays are: no recompilation of the step
      x, opt_state = jax.tree.map(jnp.asarray, (x, opt_state))
    losses = [np.float32(v) for v in np.asarray(saved["losses"])[:step]]
    return step, (x, opt_state), losses

  def save(self, steps_done: int, state, losses) -> bool:
    """Saves (asynchronously) when `steps_done` is a multiple of `every` and not the
    last step; returns whether it saved. `losses`: the losses of the steps done."""
    if steps_done % self.every or steps_done >= self.num_steps:
      return False
    done = np.asarray(jnp.stack(losses), np.float32)
    padded = np.zeros(self.num_steps, np.float32)
    padded[: len(done)] = done
    # copies: the next step donates the state's buffers while the save may still read them
    tree = {"x": jnp.copy(state[0]), "opt_state": jax.tree.map(jnp.copy, state[1])}
    tree["losses"] = padded
    self._manager.save(steps_done, args=ocp.args.StandardSave(tree))
    return True

  def close(self, completed: bool) -> None:
    """Waits for a pending save; when the run is `completed`, deletes its checkpoints
    and its (then empty) folder."""
    self._manager.wait_until_finished()
    if completed:
      for step in self._manager.all_steps():
        self._manager.delete(step)
      self._manager.wait_until_finished()
    self._manager.close()
    if completed and jax.process_index() == 0 and os.path.isdir(self.directory):
      try:
        os.rmdir(self.directory)
      except OSError:  # something else was put there: leave it
        pass
