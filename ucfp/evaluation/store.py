"""One orbax checkpoint per trained model, named by a hash of how it was trained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ucfp.core.io import atomic_write_json


def data_id(x: np.ndarray, y: np.ndarray, name: str) -> str:
  """A short identity for a training set: its name, shape and a hash of its contents."""
  h = hashlib.sha256()
  h.update(f"{name}|{x.shape}|{x.dtype}".encode())
  h.update(np.ascontiguousarray(y).tobytes())
  h.update(np.ascontiguousarray(x[:: max(1, len(x) // 256)]).tobytes())
  return h.hexdigest()[:16]


# Bump when model or training code changes what a spec trains, so old checkpoints
# are not restored for new code.
CACHE_VERSION = 2


def hashed_fields(spec: Any) -> dict:
  """The fields of a (dataclass) spec that name its checkpoint: all of them, less those
  with `omit_default` metadata that hold their default (fields added later)."""
  out = dataclasses.asdict(spec)
  for f in dataclasses.fields(spec):
    if f.metadata.get("omit_default") and out[f.name] == f.default:
      del out[f.name]
  return out


def spec_key(spec: Any, dataset: str) -> str:
  """A 16-hex-digit hash of a (dataclass) training spec, a dataset identity and the
  cache version."""
  payload = json.dumps(
    {"spec": hashed_fields(spec), "data": dataset, "version": CACHE_VERSION}, sort_keys=True
  )
  return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ModelStore:
  """Checkpoints under `<root>/<name>-<key>/` with a `<name>-<key>.json` record beside.

  The record (test accuracy, spec, ...) is written only after the checkpoint is
  complete, so a model counts as cached only when both exist.
  """

  def __init__(self, root: str):
    self.root = os.path.abspath(root)
    self._ckptr = ocp.StandardCheckpointer()

  def _paths(self, name: str, key: str) -> tuple[str, str]:
    base = os.path.join(self.root, f"{name}-{key}")
    return base, base + ".json"

  def exists(self, name: str, key: str) -> bool:
    """Whether the model is cached (its checkpoint and record both written)."""
    ckpt, rec = self._paths(name, key)
    return os.path.isdir(ckpt) and os.path.isfile(rec)

  def restore(self, name: str, key: str, abstract: Any) -> tuple[Any, dict] | None:
    """(variables, record) if cached, else None. `abstract` is from `jax.eval_shape`."""
    if not self.exists(name, key):
      return None
    ckpt, rec = self._paths(name, key)
    with open(rec) as f:
      record = json.load(f)
    return self._ckptr.restore(ckpt, abstract), record

  def save(self, name: str, key: str, variables: Any, record: dict) -> None:
    ckpt, rec = self._paths(name, key)
    if jax.process_index() == 0 and os.path.exists(rec):
      os.remove(rec)
    self._ckptr.save(ckpt, variables, force=True)
    self._ckptr.wait_until_finished()
    if jax.process_index() == 0:
      atomic_write_json(rec, record)
