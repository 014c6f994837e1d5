"""Sharding fingerprint generation over devices: examples along one mesh axis.

Each example's update depends only on itself (the model weights are shared), so
splitting the N examples over D devices gives the single-device result up to
float rounding. Arrays are built with `jax.make_array_from_callback`, which also
works when several hosts (after `jax.distributed.initialize`) hold the same data.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


@dataclasses.dataclass(frozen=True)
class ExampleSharding:
  examples: NamedSharding  # leading axis split over the mesh
  replicated: NamedSharding

  @property
  def num_devices(self) -> int:
    return self.examples.mesh.size


def example_sharding(num_examples: int, devices=None) -> ExampleSharding | None:
  """A 1-D mesh over all devices, or None when there is one device or N % D != 0."""
  devices = list(jax.devices() if devices is None else devices)
  if len(devices) < 2 or num_examples % len(devices):
    return None
  mesh = Mesh(np.asarray(devices), (AXIS,))
  return ExampleSharding(NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P()))


def place(tree, sharding: NamedSharding):
  """Puts every array leaf of `tree` on `sharding` (from identical host copies)."""

  def put(leaf):
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

  return jax.tree.map(put, tree)
