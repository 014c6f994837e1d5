"""The fingerprint set: N images and their labels, saved as .npz without pickle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import numpy as np

from ucfp.core.io import atomic_write_npz

FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive


def _digest(x: np.ndarray, y: np.ndarray, meta_json: str) -> str:
  h = hashlib.sha256()
  for part in (str(x.shape), str(x.dtype), str(y.shape), str(y.dtype)):
    h.update(part.encode())
  h.update(np.ascontiguousarray(x).tobytes())
  h.update(np.ascontiguousarray(y).tobytes())
  h.update(meta_json.encode())
  return h.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class Fingerprints:
  """x: float32 (N, H, W, C) in [0, 1]; y: int32 (N,); meta: JSON-serialisable dict."""

  x: np.ndarray
  y: np.ndarray
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    x = np.asarray(self.x, np.float32)
    y = np.asarray(self.y, np.int32)
    if x.ndim != 4 or y.shape != (x.shape[0],):
      raise ValueError(f"Fingerprints: x must be (N, H, W, C) and y (N,); got {x.shape}, {y.shape}")
    object.__setattr__(self, "x", x)
    object.__setattr__(self, "y", y)

  def __len__(self) -> int:
    return int(self.y.shape[0])

  def save(self, path: str) -> str:
    """Writes `.npz` (x, y, JSON metadata, sha256) via a temporary file + rename."""
    meta_json = json.dumps(self.meta, sort_keys=True, default=str)
    atomic_write_npz(
      path,
      x=self.x,
      y=self.y,
      meta=np.asarray(meta_json),
      sha256=np.asarray(_digest(self.x, self.y, meta_json)),
      version=np.asarray(FORMAT_VERSION),
    )
    return path

  @classmethod
  def load(cls, path: str) -> Fingerprints:
    """Loads and verifies a file written by :meth:`save`.

    Raises:
      ValueError: the file is corrupt, not a fingerprint file, or its arrays or
        metadata do not match the stored sha256.
    """
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no fingerprint file at {path!r}")
    with open(path, "rb") as f:
      if f.read(4) != ZIP_MAGIC:  # else numpy tries it as a pickle and says so
        raise ValueError(f"{path!r} is not a ucfp fingerprint file (not an .npz archive)")
    try:
      with np.load(path, allow_pickle=False) as z:
        missing = {"x", "y", "meta", "sha256"} - set(z.files)
        if missing:
          raise ValueError(f"missing arrays {sorted(missing)}")
        x, y = z["x"], z["y"]
        meta_json, stored = str(z["meta"]), str(z["sha256"])
      meta = json.loads(meta_json)
    except Exception as e:  # noqa: BLE001 - any failure to parse is a corrupt file
      why = "it holds Python objects, which ucfp never loads" if "pickle" in str(e) else e
      raise ValueError(f"{path!r} is not a valid ucfp fingerprint file: {why}") from e
    if x.dtype != np.float32 or y.dtype != np.int32 or _digest(x, y, meta_json) != stored:
      raise ValueError(f"{path!r}: sha256 mismatch, the fingerprint file was modified or corrupted")
    return cls(x, y, meta)

  @property
  def num_classes(self) -> int | None:
    """K, the model's class count, recorded at generation; None in files without it."""
    k = self.meta.get("num_classes")
    return int(k) if k is not None else None

  def to_uint8(self) -> np.ndarray:
    """The images rounded to uint8 (N, H, W, C), as a remote API would receive them."""
    return np.clip(np.round(self.x * 255.0), 0, 255).astype(np.uint8)

  def quantized(self) -> Fingerprints:
    """A copy whose x is :meth:`to_uint8` mapped back to [0, 1]."""
    meta = {**self.meta, "quantized": "uint8"}
    return Fingerprints(self.to_uint8().astype(np.float32) / 255.0, self.y, meta)
