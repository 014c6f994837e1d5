"""Atomic writes: outputs get the umask-respecting mode of an ordinary file, and a failed
write leaves neither the target nor a temporary behind."""

import os
import stat

import numpy as np
import pytest

from ucfp import Fingerprints
from ucfp.core.io import atomic_write_json, atomic_write_npz


@pytest.fixture
def umask():
  old = os.umask(0o022)
  yield lambda m: os.umask(m)
  os.umask(old)


def _mode(path) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_respect_the_umask(tmp_path, umask, mask, expected):
  umask(mask)
  atomic_write_json(str(tmp_path / "report.json"), {"a": 1})
  atomic_write_npz(str(tmp_path / "cache.npz"), x=np.zeros(3))
  fps = Fingerprints(np.zeros((2, 8, 8, 1)), np.arange(2), {"num_classes": 10})
  fps.save(str(tmp_path / "sub" / "fingerprints.npz"))
  for p in ("report.json", "cache.npz", "sub/fingerprints.npz"):
    assert _mode(tmp_path / p) == expected, p
  assert sorted(os.listdir(tmp_path)) == ["cache.npz", "report.json", "sub"]


def test_failed_write_leaves_nothing(tmp_path):
  with pytest.raises(TypeError):
    atomic_write_json(str(tmp_path / "r.json"), {"a": object()})
  assert os.listdir(tmp_path) == []
