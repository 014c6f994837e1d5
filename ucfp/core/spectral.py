"""Frequency-domain filters and the LTRC high-pass filter as an optax transformation.

Frequencies are integers in cycles per image (`fftfreq(H) * H`), so the centred
radius of frequency (u, v) is `sqrt(u^2 + v^2)` and the largest radius of an
H x W image (the Nyquist corner) is `sqrt((H/2)^2 + (W/2)^2)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax


def frequency_radius(height: int, width: int) -> np.ndarray:
  """(H, W) radius of each FFT bin (unshifted layout, as `jnp.fft.fft2` returns)."""
  u = np.fft.fftfreq(height) * height
  v = np.fft.fftfreq(width) * width
  return np.sqrt(u[:, None] ** 2 + v[None, :] ** 2)


def nyquist_radius(height: int, width: int) -> float:
  """The largest frequency radius of an H x W image."""
  return float(math.hypot(height // 2, width // 2))


def check_radius(radius: float, image_shape, field: str = "config.ltrc.radius") -> None:
  """Raises ValueError naming `field` unless 0 <= radius <= the Nyquist radius."""
  h, w = int(image_shape[0]), int(image_shape[1])
  limit = nyquist_radius(h, w)
  if not (0.0 <= float(radius) <= limit):
    raise ValueError(
      f"{field}={radius} must be in [0, {limit:.3f}] (the Nyquist radius of {h}x{w} images)"
    )


def _band_filter(x: jax.Array, keep: np.ndarray) -> jax.Array:
  f = jnp.fft.fft2(x, axes=(-3, -2))
  return jnp.real(jnp.fft.ifft2(f * keep[:, :, None], axes=(-3, -2))).astype(x.dtype)


def high_pass(x: jax.Array, radius: float) -> jax.Array:
  """Keeps frequencies with radius >= `radius`, per channel. x: (..., H, W, C)."""
  if radius <= 0:
    return x
  keep = (frequency_radius(x.shape[-3], x.shape[-2]) >= radius).astype(np.float32)
  return _band_filter(x, keep)


def low_pass(x: jax.Array, radius: float) -> jax.Array:
  """Keeps frequencies with radius < `radius` (the complement of :func:`high_pass`)."""
  keep = (frequency_radius(x.shape[-3], x.shape[-2]) < radius).astype(np.float32)
  return _band_filter(x, keep)


def high_pass_filter(radius: float) -> optax.GradientTransformation:
  """An optax transformation that high-passes every update (LTRC, Wang et al. 2021).

  Place it last in an `optax.chain` (after any sign or scaling) so that the
  accumulated perturbation `x - x0` stays in the high band (up to clipping).
  Updates are image batches (N, H, W, C).
  """

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: high_pass(u, radius), updates), state

  return optax.GradientTransformation(init_fn, update_fn)
