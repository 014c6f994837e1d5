"""config.init='data': examples start from the owner's images of another class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import set_fields

from ucfp import Model, fingerprint
from ucfp.core.generation import data_starts


def _brightness(variables, x):
  """Logits (N, 10) of a model that classifies an image by its mean pixel: class
  floor(10 * mean), so a constant image of value (k + 0.5) / 10 is class k."""
  del variables
  k = jnp.clip(jnp.floor(10 * x.mean(axis=(1, 2, 3))), 0, 9).astype(jnp.int32)
  return 10.0 * jax.nn.one_hot(k, 10) + 0.0 * x.sum(axis=(1, 2, 3))[:, None]


MODEL = Model(_brightness, {}, "brightness")


def _pool(classes):
  """Constant 8x8x1 images, one per entry of `classes`, that MODEL puts in that class."""
  return np.stack([np.full((8, 8, 1), (c + 0.5) / 10, np.float32) for c in classes])


def _class_of(x):
  return np.asarray(_brightness({}, jnp.asarray(x))).argmax(-1)


def test_data_starts_are_pool_images_of_another_class():
  pool = _pool([0, 1, 2, 3, 3, 3])
  y = np.array([3, 3, 3, 0, 1, 2, 4, 5], np.int32)
  x0 = np.asarray(data_starts(jax.random.PRNGKey(0), MODEL, pool, y))
  assert x0.shape == (8, 8, 8, 1)
  assert all(any(np.array_equal(a, p) for p in pool) for a in x0)  # each is a pool image
  assert np.all(_class_of(x0) != y)  # ... that the model puts in another class
  again = np.asarray(data_starts(jax.random.PRNGKey(0), MODEL, pool, y))
  np.testing.assert_array_equal(x0, again)  # deterministic per key
  # targets 4 and 5 may start from any of the 6 images: several keys use more than one
  seen = {float(data_starts(jax.random.PRNGKey(s), MODEL, pool, y)[6].mean()) for s in range(8)}
  assert len(seen) > 1


def test_fingerprint_with_data_init_starts_from_the_images(tiny_config):
  c = set_fields(tiny_config, method="c", num_fingerprints=10, steps=2, init="data")
  pool = _pool(range(10))
  fp = fingerprint(MODEL, c, key=jax.random.PRNGKey(1), starts=pool)
  # the brightness model has zero gradient, so the examples stay where they started
  assert all(any(np.array_equal(a, p) for p in pool) for a in fp.x)
  assert np.all(_class_of(fp.x) != fp.y)


def test_data_init_errors_before_compute(tiny_config):
  c = set_fields(tiny_config, method="c", num_fingerprints=10, steps=2, init="data")
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match="config.init='data' needs the owner's images"):
    fingerprint(MODEL, c, key=key)
  with pytest.raises(ValueError, match=r"starts must be \(M, 8, 8, 1\)"):
    fingerprint(MODEL, c, key=key, starts=np.zeros((4, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    fingerprint(MODEL, c, key=key, starts=np.full((4, 8, 8, 1), 2.0, np.float32))
  with pytest.raises(ValueError, match="every one of the 3 starts images as class 3"):
    fingerprint(MODEL, c, key=key, starts=_pool([3, 3, 3]))
  plain = set_fields(tiny_config, method="c", num_fingerprints=10, steps=2, init="uniform")
  with pytest.raises(ValueError, match="starts= is read only with config.init='data'"):
    fingerprint(MODEL, plain, key=key, starts=_pool(range(10)))
