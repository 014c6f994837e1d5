"""The trainer's two step loops (`ucfp.evaluation.train.choose_path`): scan and loop."""

import jax
import numpy as np
import pytest

from ucfp.core import prune
from ucfp.evaluation.models import accuracy, get_module, inference_apply
from ucfp.evaluation.train import TrainSpec, choose_path, head_name, train


def _upscaled(x):
  """8x8 digits (n, 8, 8, 1) -> (n, 18, 18, 1): large enough for the loop path on CPU."""
  return np.pad(np.kron(x, np.ones((1, 2, 2, 1), x.dtype)), ((0, 0), (1, 1), (1, 1), (0, 0)))


def _leaves_equal(a, b) -> bool:
  return all(
    np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def test_choose_path_by_image_size_and_backend():
  assert choose_path((8, 8, 1), "cpu") == ("scan", None)
  assert choose_path((32, 32, 3), "cpu") == ("loop", "xla")
  assert choose_path((32, 32, 3), "gpu") == ("scan", None)
  with pytest.raises(ValueError, match="path="):
    train(get_module("mlp", 10), TrainSpec("mlp", 0, 1), np.zeros((4, 8, 8, 1)), [0] * 4, path="x")


def test_loop_equals_scan_on_a_tiny_model(digits):
  """Same keys, batches and updates: the two loops train the same model (augmentation
  included), up to float rounding."""
  m = get_module("cnn_small", 10)
  spec = TrainSpec("cnn_small", 5, 1, batch_size=32, augment=True)
  x, y = digits.train_x[:128], digits.train_y[:128]
  a = train(m, spec, x, y, path="scan", chunk=3)
  b = train(m, spec, x, y, path="loop", chunk=3)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_loop_path_learns_and_is_deterministic_per_seed(digits):
  x, test_x = _upscaled(digits.train_x), _upscaled(digits.test_x)
  assert choose_path(x.shape[1:], "cpu")[0] == "loop"
  m = get_module("cnn_small", 10)
  a = train(m, TrainSpec("cnn_small", 1, 2), x, digits.train_y)
  b = train(m, TrainSpec("cnn_small", 1, 2), x, digits.train_y)
  c = train(m, TrainSpec("cnn_small", 2, 2), x, digits.train_y)
  assert _leaves_equal(a, b) and not _leaves_equal(a, c)
  assert accuracy(inference_apply(m), a, test_x, digits.test_y) > 0.85


def test_loop_path_masks_head_only_and_never_donates_the_callers_init(digits):
  """Pruned fine-tuning keeps masked weights zero; head-only training keeps every other
  variable bit-identical; the init given stays readable and unchanged (the loop's steps
  donate their state, so `train` must pass them a copy)."""
  x, y = _upscaled(digits.train_x[:256]), digits.train_y[:256]
  m = get_module("vgg_small", 10)
  v = train(m, TrainSpec("vgg_small", 0, 1), x, y, path="loop")
  before = jax.tree.map(np.array, v)
  masks = prune.global_magnitude_masks(v, 0.5)
  spec = TrainSpec("vgg_small", 0, 1, prune_rate=0.5)
  ft = train(m, spec, x, y, init=v, masks=masks, path="loop")
  for k, mk in zip(prune.kernels(ft), prune.kernels(masks), strict=True):
    assert np.all(np.asarray(k)[np.asarray(mk) == 0] == 0)
  head = train(m, TrainSpec("vgg_small", 0, 1, trainable="head"), x, y, init=v, path="loop")
  name = head_name(v["params"])
  assert not np.array_equal(head["params"][name]["kernel"], v["params"][name]["kernel"])
  rest = lambda t: {**t, "params": {k: p for k, p in t["params"].items() if k != name}}
  assert _leaves_equal(rest(head), rest(before))
  assert _leaves_equal(v, before)
