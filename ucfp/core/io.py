"""Files are written whole or not at all: a temporary file beside the target, then a rename.

The temporary file is created with mode 0666 less the process umask (as `open` would
create the target), not `tempfile.mkstemp`'s 0600, so outputs get the usual mode.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from typing import IO, Any

import numpy as np


def _create_temp(folder: str, name: str) -> tuple[int, str]:
  """(fd, path) of a new, exclusively created file in `folder`, mode 0666 & ~umask."""
  flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
  for _ in range(100):
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
      return os.open(tmp, flags, 0o666), tmp
    except FileExistsError:
      continue
  raise FileExistsError(f"no free temporary name for {name!r} in {folder!r}")


def _atomic_write(path: str, mode: str, write: Callable[[IO], None]) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = _create_temp(folder, os.path.basename(path))
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_npz(path: str, **arrays: np.ndarray) -> None:
  """Writes an .npz to a temporary file in the same folder, then renames it into place."""
  _atomic_write(path, "wb", lambda f: np.savez(f, **arrays))


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it into place."""
  _atomic_write(path, "wb", lambda f: f.write(data))


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes JSON to a temporary file beside `path`, then renames it into place."""
  _atomic_write(path, "w", lambda f: json.dump(obj, f, indent=2, sort_keys=True))
