"""ucfp.train_references (the user's own training, cached) and ucfp.simple_references."""

import os

import jax
import numpy as np
import pytest
from conftest import random_model

import ucfp


def test_train_references_calls_the_users_function_once_per_seed(tmp_path):
  made = []

  def train_fn(seed):
    made.append(seed)
    return random_model("mlp", seed).variables

  apply_fn = random_model("mlp").apply_fn
  refs = ucfp.train_references(apply_fn, train_fn, 2, cache_dir=str(tmp_path), name="mine")
  assert made == [1001, 1002] and [r.name for r in refs] == ["mine-s1001", "mine-s1002"]
  assert sorted(os.listdir(tmp_path)) == ["mine-s1001.npz", "mine-s1002.npz"]
  again = ucfp.train_references(apply_fn, train_fn, 2, cache_dir=str(tmp_path), name="mine")
  assert made == [1001, 1002]  # restored, not retrained
  x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  for a, b in zip(refs, again, strict=True):
    np.testing.assert_array_equal(a(x), b(x))
  other = ucfp.train_references(apply_fn, train_fn, 1, seeds=[7])
  assert made[-1] == 7 and other[0].name == "reference-s7"


@pytest.mark.parametrize(
  "kw, match",
  [({"k": 0}, "k=0"), ({"k": 2, "seeds": [1, 1]}, "distinct"), ({"k": 1, "name": "a/b"}, "name")],
)
def test_train_references_rejects_bad_arguments(kw, match):
  with pytest.raises(ValueError, match=match):
    ucfp.train_references(lambda v, x: x, lambda s: {}, **kw)


def test_pruned_copies_prune_then_call_the_users_fine_tuning_once(tmp_path):
  from ucfp.core import prune

  base = random_model("mlp", 0, name="mine")
  calls = []

  def finetune_fn(variables, masks, seed):
    calls.append(seed)
    # the pruned weights arrive zeroed; "fine-tuning" moves the kept ones, mask held
    moved = jax.tree.map(lambda v: v + 0.01, variables)
    return prune.apply_masks(moved, masks)

  copies = ucfp.pruned_copies(
    base, finetune_fn, (0.5, 0.9), seeds=[3101, 3102], cache_dir=str(tmp_path)
  )
  assert calls == [3101, 3102]
  assert [c.name for c in copies] == ["mine-pruned-0.5-s3101", "mine-pruned-0.9-s3102"]
  for copy, rate in zip(copies, (0.5, 0.9), strict=True):
    assert copy.apply_fn is base.apply_fn
    assert abs(prune.sparsity(copy.variables) - rate) < 0.01
  again = ucfp.pruned_copies(
    base, finetune_fn, (0.5, 0.9), seeds=[3101, 3102], cache_dir=str(tmp_path)
  )
  assert calls == [3101, 3102]  # restored, not fine-tuned again
  x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  for a, b in zip(copies, again, strict=True):
    np.testing.assert_array_equal(a(x), b(x))
  assert ucfp.pruned_copies(base, finetune_fn, [0.8])[0].name == "mine-pruned-0.8-s2001"


@pytest.mark.parametrize(
  "kw, match",
  [
    ({"rates": ()}, "rates"),
    ({"rates": (0.5, 1.0)}, "rates"),
    ({"rates": (True,)}, "rates"),
    ({"rates": (0.5,), "seeds": [1, 2]}, "seeds"),
    ({"rates": (0.5,), "name": "my model"}, "name"),
  ],
)
def test_pruned_copies_reject_bad_arguments_before_fine_tuning(kw, match):
  def finetune_fn(*args):
    raise AssertionError("fine-tuned despite bad arguments")

  with pytest.raises(ValueError, match=match):
    ucfp.pruned_copies(random_model("mlp", 0), finetune_fn, **kw)


def test_simple_references_learn_the_data(digits):
  refs = ucfp.simple_references(digits.train_x, digits.train_y, epochs=12)
  assert [r.name for r in refs] == ["linear-s2001", "mlp-s2002", "cnn-s2003"]
  for r in refs:
    pred = np.asarray(jax.numpy.argmax(r(digits.test_x), -1))
    assert np.mean(pred == digits.test_y) > 0.85, r.name
  with pytest.raises(ValueError, match="num_classes=3"):
    ucfp.simple_references(digits.train_x, digits.train_y, num_classes=3)
  with pytest.raises(ValueError, match=r"\(n, H, W, C\)"):
    ucfp.simple_references(digits.train_x[:, :, :, 0], digits.train_y)
  with pytest.raises(ValueError, match="kinds=.*must be distinct names of"):
    ucfp.simple_references(digits.train_x, digits.train_y, kinds=("mlp", "resnet"))
  only = ucfp.simple_references(digits.train_x, digits.train_y, epochs=1, kinds=("cnn",))
  assert [r.name for r in only] == ["cnn-s2001"]


def test_simple_references_cache_restores_the_same_models(digits, tmp_path):
  x, y = digits.train_x[:256], digits.train_y[:256]
  first = ucfp.simple_references(x, y, epochs=1, kinds=("linear", "mlp"), cache_dir=str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == [
    "linear-s2001-e1-n256-cosine.npz",
    "mlp-s2002-e1-n256-cosine.npz",
  ]
  # restored, not retrained: labels that would train another model leave them unchanged
  again = ucfp.simple_references(
    x, (y + 1) % 10, epochs=1, kinds=("linear", "mlp"), cache_dir=str(tmp_path)
  )
  for a, b in zip(first, again, strict=True):
    assert a.name == b.name
    np.testing.assert_array_equal(a(digits.test_x), b(digits.test_x))
  # other epochs: another file, another model
  other = ucfp.simple_references(x, y, epochs=2, kinds=("linear",), cache_dir=str(tmp_path))
  assert os.path.exists(tmp_path / "linear-s2001-e2-n256-cosine.npz")
  assert not np.array_equal(other[0](digits.test_x), first[0](digits.test_x))
