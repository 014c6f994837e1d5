import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ucfp.core.spectral import (
  check_radius,
  frequency_radius,
  high_pass,
  high_pass_filter,
  low_pass,
  nyquist_radius,
)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (32, 32)])
@pytest.mark.parametrize("radius", [1.0, 2.5, 4.0])
def test_high_pass_removes_exactly_the_low_band(shape, radius):
  x = jax.random.normal(jax.random.PRNGKey(0), (3, *shape, 2))
  y = high_pass(x, radius)
  fx, fy = np.fft.fft2(np.asarray(x), axes=(1, 2)), np.fft.fft2(np.asarray(y), axes=(1, 2))
  low = frequency_radius(*shape) < radius
  assert low.any() and (~low).any()
  np.testing.assert_allclose(np.abs(fy[:, low]), 0.0, atol=1e-4)
  np.testing.assert_allclose(fy[:, ~low], fx[:, ~low], rtol=1e-4, atol=1e-4)
  # idempotent, and the two bands add up to the input
  np.testing.assert_allclose(high_pass(y, radius), y, atol=1e-5)
  np.testing.assert_allclose(low_pass(x, radius) + y, x, atol=1e-5)


def test_radius_zero_is_identity():
  x = jnp.ones((1, 8, 8, 1))
  assert high_pass(x, 0.0) is x


def test_nyquist_check():
  assert nyquist_radius(8, 8) == pytest.approx(np.sqrt(32))
  assert frequency_radius(8, 8).max() == pytest.approx(nyquist_radius(8, 8))
  check_radius(5.6, (8, 8, 1))
  with pytest.raises(ValueError, match=r"config\.ltrc\.radius=5\.7.*Nyquist"):
    check_radius(5.7, (8, 8, 1))
  with pytest.raises(ValueError, match=r"ltrc\.radius"):
    check_radius(-1.0, (8, 8, 1))


def test_optax_transformation_filters_updates():
  tx = optax.chain(optax.scale_by_sign(), optax.scale(-0.1), high_pass_filter(2.0))
  x = jnp.zeros((2, 8, 8, 1))
  g = jax.random.normal(jax.random.PRNGKey(1), x.shape)
  updates, _ = tx.update(g, tx.init(x), x)
  expected = high_pass(-0.1 * jnp.sign(g), 2.0)
  np.testing.assert_allclose(updates, expected, atol=1e-6)
