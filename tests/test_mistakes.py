"""ucfp.mistake_fingerprints: the model's own mistakes as fingerprints."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import ucfp
from ucfp.core.mistakes import select_mistakes


def test_select_mistakes_keeps_wrong_labels_no_reference_gives_most_confident_first():
  probs = np.array(
    [
      [0.9, 0.1, 0.0],  # label 0, true 0: no mistake
      [0.2, 0.7, 0.1],  # 1, true 0: a reference also says 1
      [0.1, 0.3, 0.6],  # 2, true 1: kept, confidence 0.6
      [0.05, 0.9, 0.05],  # 1, true 2: kept, confidence 0.9
      [0.4, 0.0, 0.6],  # 2, true 0: kept, confidence 0.6 (after index 2: stable)
    ]
  )
  labels = np.array([0, 0, 1, 2, 0])
  refs = np.array([[0, 1, 1, 2, 0], [0, 0, 0, 0, 1]])
  assert select_mistakes(probs, labels, refs, 10).tolist() == [3, 2, 4]
  assert select_mistakes(probs, labels, refs, 2).tolist() == [3, 2]


def _linear_model():
  """3 classes: logits are 10x the first 3 pixels of an (n, 2, 2, 1) image."""
  apply_fn = lambda v, x: v["scale"] * x.reshape(x.shape[0], -1)[:, :3]
  return ucfp.Model(apply_fn, {"scale": jnp.float32(10.0)}, name="toy")


@pytest.mark.filterwarnings("ignore:ucfp.mistake_fingerprints:UserWarning")
def test_mistake_fingerprints_carry_the_models_labels_where_no_reference_agrees():
  rng = np.random.default_rng(0)
  x = rng.random((200, 2, 2, 1)).astype(np.float32)
  pred = x.reshape(200, -1)[:, :3].argmax(-1)
  truth = np.where(rng.random(200) < 0.3, (pred + 1) % 3, pred)  # 30% model mistakes
  reference = lambda images: (images.reshape(len(images), -1)[:, :3].argmax(-1) + 2) % 3
  asked = []  # the images the reference labels: only the model's mistakes
  counted = lambda images: asked.append(len(images)) or reference(images)
  fps = ucfp.mistake_fingerprints(_linear_model(), x, truth, reference=[counted], num=20)
  assert sum(asked) == int(np.sum(truth != pred)) < len(x)
  assert len(fps) == 20 and fps.num_classes == 3
  kept = [int(np.flatnonzero((x == xi).all(axis=(1, 2, 3)))[0]) for xi in fps.x]
  assert np.array_equal(fps.y, pred[kept])  # the model's labels
  assert np.all(truth[kept] != fps.y)  # its mistakes
  assert np.all(reference(fps.x) != fps.y)  # no reference agrees
  assert ucfp.match_rate(fps, _linear_model()) == 1.0


@pytest.mark.filterwarnings("ignore:ucfp.mistake_fingerprints:UserWarning")
def test_mistake_fingerprints_errors():
  x = np.zeros((10, 2, 2, 1), np.float32)
  x[:, 0, 0, 0] = 1.0  # the model says 0 everywhere
  ref = lambda images: np.ones(len(images), np.int64)
  m = _linear_model()
  with pytest.raises(ValueError, match="reference"):
    ucfp.mistake_fingerprints(m, x, np.ones(10, np.int64), reference=[])
  with pytest.raises(ValueError, match="num"):
    ucfp.mistake_fingerprints(m, x, np.ones(10, np.int64), reference=[ref], num=0)
  with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
    ucfp.mistake_fingerprints(m, x, np.full(10, 5), reference=[ref], num=1)
  with pytest.raises(ValueError, match="images wrongly"):  # it fits every label: no mistakes
    ucfp.mistake_fingerprints(m, x, np.zeros(10, np.int64), reference=[ref], num=1)
  fps = ucfp.mistake_fingerprints(m, x, np.full(10, 2), reference=[ref], num=10)
  assert fps.y.tolist() == [0] * 10


def test_mistake_fingerprints_warn_with_fewer_than_2_references_of_the_models_own():
  x = np.zeros((10, 2, 2, 1), np.float32)
  x[:, 0, 0, 0] = 1.0  # the model says 0 everywhere, the truth is 2: 10 mistakes
  m, truth = _linear_model(), np.full(10, 2)
  ref = lambda images: np.ones(len(images), np.int64)  # a black box: architecture unknown
  own = ucfp.Model(lambda v, x: -_linear_model().apply_fn(v, x), {"scale": jnp.float32(1.0)})
  other = ucfp.Model(
    lambda v, x: x.reshape(len(x), -1)[:, :3] @ v, jnp.eye(3)[jnp.array([1, 1, 1])]
  )
  for refs, own_count in (([ref], 0), ([own, other, ref], 1)):
    with pytest.warns(UserWarning, match=f"{own_count} white-box reference model\\(s\\) of the"):
      ucfp.mistake_fingerprints(m, x, truth, reference=refs, num=10)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    fps = ucfp.mistake_fingerprints(m, x, truth, reference=[own, own, ref], num=10)
  assert len(fps) == 10
