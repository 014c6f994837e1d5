"""Data sources: embedded digits, tfds (cifar10, mnist) and image folders.

Every source returns a :class:`Dataset`: float32 images in [0, 1] in NHWC
layout, int32 labels, and a :class:`DatasetInfo`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator

import numpy as np

from ucfp.core.io import atomic_write_npz

TFDS_DATASETS = ("cifar10", "mnist")
DATASET_CHOICES = ("digits", *TFDS_DATASETS, "imagefolder:<path>")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test arrays: x float32 (n, H, W, C) in [0, 1], y int32 (n,)."""

  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  info: DatasetInfo


def check_dataset_name(name: str) -> None:
  """Raises ValueError naming `config.dataset` when `name` is not a known source."""
  if not isinstance(name, str) or not (
    name == "digits" or name in TFDS_DATASETS or (name.startswith("imagefolder:") and name[12:])
  ):
    raise ValueError(f"config.dataset={name!r} is not one of {', '.join(DATASET_CHOICES)}")


def load_dataset(name: str, cache_dir: str | None = None) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: `digits`, `cifar10`, `mnist` or `imagefolder:<folder or .tar.gz>`.
    cache_dir: where decoded image folders (and tfds downloads) are cached.

  Returns:
    A :class:`Dataset`.
  """
  check_dataset_name(name)
  if name == "digits":
    return load_digits()
  if name in TFDS_DATASETS:
    return load_tfds(name, data_dir=None if cache_dir is None else os.path.join(cache_dir, "tfds"))
  return load_imagefolder(name[len("imagefolder:") :], cache_dir=cache_dir)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
  """scikit-learn's 8x8 digits (1,797 images), scaled to [0, 1], fixed seeded split."""
  from sklearn.datasets import load_digits as sk_load_digits
  from sklearn.model_selection import train_test_split

  d = sk_load_digits()
  x = (d.images.astype(np.float32) / 16.0)[..., None]
  y = d.target.astype(np.int32)
  tr_x, te_x, tr_y, te_y = train_test_split(
    x, y, test_size=test_fraction, random_state=seed, stratify=y
  )
  info = DatasetInfo("digits", 10, (8, 8, 1), tuple(str(i) for i in range(10)))
  return Dataset(tr_x, tr_y, te_x, te_y, info)


def load_tfds(name: str, data_dir: str | None = None) -> Dataset:
  """Loads `cifar10` or `mnist` through `tfds.data_source` (array_record, no TensorFlow)."""
  import tensorflow_datasets as tfds

  arrays = {}
  for split in ("train", "test"):
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    images, labels = [], []
    for example in source:
      images.append(np.asarray(example["image"]))
      labels.append(int(example["label"]))
    x = np.stack(images).astype(np.float32) / 255.0
    if x.ndim == 3:
      x = x[..., None]
    arrays[split] = (x, np.asarray(labels, np.int32))
  builder = tfds.builder(name, data_dir=data_dir)
  label_feature = builder.info.features["label"]
  names = tuple(label_feature.names)
  info = DatasetInfo(name, len(names), tuple(arrays["train"][0].shape[1:]), names)
  return Dataset(*arrays["train"], *arrays["test"], info)


# ----------------------------------------------------------------------------- image folders


def _folder_entries(path: str) -> Iterator[tuple[str, str, str, bytes]]:
  """Yields (split, class, member name, bytes) for `<split>/<class>/<image>` files."""
  if os.path.isdir(path):
    for root, _, files in os.walk(path):
      for fname in files:
        full = os.path.join(root, fname)
        parts = os.path.relpath(full, path).split(os.sep)
        if len(parts) >= 3 and fname.lower().endswith(_IMAGE_SUFFIXES):
          with open(full, "rb") as f:
            yield parts[-3], parts[-2], "/".join(parts), f.read()
  else:
    with tarfile.open(path, "r:*") as tar:
      for member in tar:
        parts = member.name.strip("/").split("/")
        if member.isfile() and len(parts) >= 3 and member.name.lower().endswith(_IMAGE_SUFFIXES):
          data = tar.extractfile(member)
          if data is not None:
            yield parts[-3], parts[-2], member.name, data.read()


def _source_key(path: str) -> str:
  st = os.stat(path)
  return hashlib.sha256(
    f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()
  ).hexdigest()[:16]


def _decode_folder(path: str) -> dict[str, np.ndarray]:
  from PIL import Image

  per_split: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
  for split, cls, member, raw in _folder_entries(path):
    if split not in per_split:
      continue
    try:
      with Image.open(io.BytesIO(raw)) as im:
        arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "I;16", "I") else "RGB"))
    except Exception as e:  # noqa: BLE001 - any decoder failure names the file
      raise ValueError(f"imagefolder: cannot decode {member!r}: {e}") from e
    per_split[split].append((cls, arr if arr.ndim == 3 else arr[..., None], member))
  for split, items in per_split.items():
    if not items:
      raise ValueError(
        f"imagefolder {path!r}: no images under '{split}/<class>/'; "
        "expected the layout <split>/<class>/<image> with splits 'train' and 'test'"
      )
  classes = sorted({cls for cls, _, _ in per_split["train"]})
  unknown = sorted({cls for cls, _, _ in per_split["test"]} - set(classes))
  if unknown:
    raise ValueError(f"imagefolder {path!r}: test classes {unknown} have no training images")
  channels = 3 if any(a.shape[-1] == 3 for items in per_split.values() for _, a, _ in items) else 1
  out: dict[str, np.ndarray] = {"classes": np.asarray(classes)}
  shape = None
  for split, items in per_split.items():
    items.sort(key=lambda t: t[2])
    xs = []
    for _cls, arr, member in items:
      if channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
      shape = shape or arr.shape
      if arr.shape != shape:
        raise ValueError(f"imagefolder: {member!r} has shape {arr.shape}, expected {shape}")
      xs.append(arr)
    out[f"{split}_x"] = np.stack(xs).astype(np.uint8)
    out[f"{split}_y"] = np.asarray([classes.index(c) for c, _, _ in items], np.int32)
  return out


def load_imagefolder(path: str, cache_dir: str | None = None) -> Dataset:
  """Decodes `<split>/<class>/<image>` (a folder or a .tar.gz) with Pillow, cached as .npz.

  Classes are sorted by name; label index = position. The decoded arrays are
  cached in `cache_dir` (written to a temporary name, then renamed).
  """
  if not os.path.exists(path):
    raise ValueError(f"config.dataset: image folder {path!r} does not exist")
  cache = None
  if cache_dir is not None:
    cache = os.path.join(cache_dir, f"imagefolder-{_source_key(path)}.npz")
  if cache is not None and os.path.exists(cache):
    with np.load(cache, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  else:
    arrays = _decode_folder(path)
    if cache is not None:
      atomic_write_npz(cache, **arrays)
  classes = tuple(str(c) for c in arrays["classes"])
  shape = tuple(int(s) for s in arrays["train_x"].shape[1:])
  info = DatasetInfo(f"imagefolder:{path}", len(classes), shape, classes)
  scale = np.float32(1.0 / 255.0)
  return Dataset(
    arrays["train_x"].astype(np.float32) * scale,
    arrays["train_y"],
    arrays["test_x"].astype(np.float32) * scale,
    arrays["test_y"],
    info,
  )


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Two disjoint halves (index arrays) of range(n), from a seeded permutation."""
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])
