import os
import tarfile

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from ucfp.evaluation.data import load_dataset, load_digits, load_tfds, split_halves


def test_digits(digits):
  assert digits.train_x.shape == (1437, 8, 8, 1) and digits.test_x.shape == (360, 8, 8, 1)
  assert digits.train_x.dtype == np.float32 and digits.train_y.dtype == np.int32
  assert 0.0 <= digits.train_x.min() and digits.train_x.max() == 1.0
  assert digits.info.num_classes == 10 and digits.info.image_shape == (8, 8, 1)
  again = load_digits()
  np.testing.assert_array_equal(again.test_y, digits.test_y)


def test_unknown_dataset():
  with pytest.raises(ValueError, match=r"config\.dataset='svhn' is not one of"):
    load_dataset("svhn")
  with pytest.raises(ValueError, match="does not exist"):
    load_dataset("imagefolder:/no/such/folder")


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_sources_with_mock_data(name, shape):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    ds = load_tfds(name)
  assert ds.train_x.shape == (6, *shape) and ds.test_x.shape == (6, *shape)
  assert ds.train_x.dtype == np.float32 and 0 <= ds.train_x.min() and ds.train_x.max() <= 1
  assert ds.info.num_classes == 10 and ds.info.image_shape == shape


def _write_folder(root, rgb=True):
  rng = np.random.default_rng(0)
  for split, n in (("train", 3), ("test", 2)):
    for cls in ("dog", "cat"):
      os.makedirs(root / split / cls)
      for i in range(n):
        arr = rng.integers(0, 256, (6, 5, 3) if rgb else (6, 5), dtype=np.uint8)
        Image.fromarray(arr).save(root / split / cls / f"{i}.png")


@pytest.mark.parametrize("as_tar", [False, True])
def test_imagefolder(tmp_path, as_tar):
  root = tmp_path / "imgs"
  _write_folder(root)
  src = root
  if as_tar:
    src = tmp_path / "imgs.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
      tar.add(root, arcname="top")
  cache = tmp_path / "cache"
  ds = load_dataset(f"imagefolder:{src}", cache_dir=str(cache))
  assert ds.info.class_names == ("cat", "dog")  # sorted by name
  assert ds.train_x.shape == (6, 6, 5, 3) and ds.test_x.shape == (4, 6, 5, 3)
  assert np.bincount(ds.train_y).tolist() == [3, 3]
  expected = np.asarray(Image.open(root / "train" / "cat" / "0.png"), np.float32) / 255
  np.testing.assert_allclose(ds.train_x[0], expected, atol=1e-6)
  files = os.listdir(cache)
  assert len(files) == 1 and files[0].endswith(".npz")  # cached, no temporary left
  again = load_dataset(f"imagefolder:{src}", cache_dir=str(cache))
  np.testing.assert_array_equal(again.train_x, ds.train_x)


def test_imagefolder_grayscale_and_missing_split(tmp_path):
  root = tmp_path / "g"
  _write_folder(root, rgb=False)
  ds = load_dataset(f"imagefolder:{root}")
  assert ds.info.image_shape == (6, 5, 1)
  empty = tmp_path / "e" / "train" / "a"
  empty.mkdir(parents=True)
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(empty / "x.png")
  with pytest.raises(ValueError, match="'test/<class>/'"):
    load_dataset(f"imagefolder:{tmp_path / 'e'}")


def test_split_halves_are_disjoint():
  a, b = split_halves(101, seed=1)
  assert len(set(a) & set(b)) == 0 and len(a) + len(b) == 101


def test_shared_cifar10_imagefolder(tmp_path):
  path = os.path.join(SHARED_DATA, "cifar10-jpeg.tar.gz")
  if not os.path.exists(path):
    pytest.skip(f"{path} is absent (it exists only on the project's machines)")
  ds = load_dataset(f"imagefolder:{path}", cache_dir=str(tmp_path))
  assert ds.train_x.shape == (50000, 32, 32, 3) and ds.test_x.shape == (10000, 32, 32, 3)
  assert ds.info.class_names[:2] == ("airplane", "automobile") and ds.info.num_classes == 10
  assert np.bincount(ds.train_y).tolist() == [5000] * 10
  assert np.bincount(ds.test_y).tolist() == [1000] * 10
