"""Models that are not the zoo's Flax linen modules: a Flax NNX model through split/merge,
and a plain-JAX dict of weights whose kernels need a `prunable` predicate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ucfp import Model, fingerprint, match_rate
from ucfp.core import prune
from ucfp.core.variants import VariantSpec, sample_variant


class TinyCNN(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
    self.norm = nnx.LayerNorm(4, rngs=rngs)
    self.head = nnx.Linear(4 * 8 * 8, 10, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.norm(self.conv(x)))
    return self.head(h.reshape(h.shape[0], -1))


def nnx_model() -> Model:
  graphdef, state = nnx.split(TinyCNN(nnx.Rngs(0)))
  return Model(lambda state, x: nnx.merge(graphdef, state)(x), state, "nnx-cnn")


def _rc(c):
  c.method = "rc"
  c.num_fingerprints = 10
  c.steps = 5
  c.step_size = 0.05
  c.robust.num_variants = 2
  return c


def test_nnx_state_kernels_are_found_through_value():
  m = nnx_model()
  paths = [
    jax.tree_util.keystr(p)
    for (p, _), f in zip(
      jax.tree_util.tree_leaves_with_path(m.variables), prune.leaf_flags(m.variables), strict=True
    )
    if f
  ]
  assert paths == ["['conv']['kernel'].value", "['head']['kernel'].value"]


def test_nnx_model_fingerprints_with_rc(tiny_config):
  m = nnx_model()
  fps = fingerprint(m, _rc(tiny_config), key=jax.random.PRNGKey(0))
  assert fps.x.shape == (10, 8, 8, 1) and fps.meta["num_classes"] == 10
  assert np.isfinite(fps.meta["final_loss"])
  assert 0.0 <= match_rate(fps, m) <= 1.0
  # the variants the step samples prune the NNX kernels (30-90% zeros) and keep the biases
  spec = VariantSpec(mask="magnitude", prune_low=0.3, prune_high=0.9)
  v = sample_variant(m.variables, jax.random.PRNGKey(1), spec, prune.sorted_magnitudes(m.variables))
  assert 0.3 - 1e-3 <= prune.sparsity(v) <= 0.9
  np.testing.assert_array_equal(v["conv"]["bias"].value, m.variables["conv"]["bias"].value)


def plain_mlp() -> Model:
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  params = {
    "W1": jax.random.normal(k1, (64, 16)) * 0.1,
    "b1": jnp.zeros(16),
    "W2": jax.random.normal(k2, (16, 10)) * 0.1,
    "b2": jnp.zeros(10),
  }

  def apply_fn(p, x):
    h = jax.nn.relu(x.reshape(x.shape[0], -1) @ p["W1"] + p["b1"])
    return h @ p["W2"] + p["b2"]

  return Model(apply_fn, params, "plain-mlp")


def test_no_prunable_kernels_is_a_clear_error(tiny_config):
  with pytest.raises(ValueError, match=r"no prunable kernels .*\['W1'\].*prunable=") as e:
    fingerprint(plain_mlp(), _rc(tiny_config), key=jax.random.PRNGKey(0))
  assert "\n" not in str(e.value)


def test_prunable_predicate_selects_the_kernels(tiny_config):
  m = plain_mlp()
  is_w = lambda path, leaf: jax.tree_util.keystr(path).startswith("['W")
  fps = fingerprint(m, _rc(tiny_config), key=jax.random.PRNGKey(0), prunable=is_w)
  assert np.isfinite(fps.meta["final_loss"])
  flags = prune.leaf_flags(m.variables, is_w)
  assert flags == (True, True, False, False)  # W1, W2, b1, b2 (sorted keys)
  spec = VariantSpec(mask="magnitude", prune_low=0.5, prune_high=0.5, kernels=flags)
  v = sample_variant(
    m.variables, jax.random.PRNGKey(1), spec, prune.sorted_magnitudes(m.variables, flags)
  )
  assert prune.sparsity(v, flags) == pytest.approx(0.5, abs=1e-3)


def test_bad_prunable_predicate_is_named(tiny_config):
  with pytest.raises(ValueError, match=r"prunable\(\['W1'\], leaf\) returned str"):
    fingerprint(plain_mlp(), _rc(tiny_config), key=jax.random.PRNGKey(0), prunable=lambda p, v: "y")


def test_prunable_predicate_must_select_float_arrays():
  params = {"W": jnp.ones((4, 4)), "steps": jnp.zeros((2, 2), jnp.int32)}
  with pytest.raises(ValueError, match=r"prunable selected \['steps'\], which is not a floating"):
    prune.leaf_flags(params, lambda path, leaf: leaf.ndim >= 2)
