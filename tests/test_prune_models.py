import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ucfp.core import prune
from ucfp.evaluation.layers import Conv, im2col_conv
from ucfp.evaluation.models import MODELS, get_module, init_variables, max_pool2
from ucfp.evaluation.train import TrainSpec, train


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
def test_im2col_matches_lax_conv(strides, k, hw):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, *hw, 3))
  w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 3, 4))
  ref = jax.lax.conv_general_dilated(
    x, w, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  np.testing.assert_allclose(im2col_conv(x, w, strides), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hw", [(8, 8), (6, 10), (5, 8)])
def test_max_pool2_matches_nn_max_pool_values_and_gradient_with_ties(hw):
  x = jax.random.normal(jax.random.PRNGKey(0), (3, *hw, 4))
  x = x.at[0, :2, :2, 0].set(1.5)  # a window of four equal maxima
  x = x.at[1, :2, 2:4, 1].set(jnp.array([[-1.0, 2.0], [2.0, 2.0]]))  # three
  x = x.at[2].set(jnp.round(x[2]))  # many ties, mostly at 0 and +-1
  pool = lambda x: flax.linen.max_pool(x, (2, 2), (2, 2))
  y, vjp = jax.vjp(max_pool2, x)
  y_ref, vjp_ref = jax.vjp(pool, x)
  np.testing.assert_array_equal(y, y_ref)
  g = jax.random.normal(jax.random.PRNGKey(1), y.shape)
  np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])  # first maximum takes it all


def test_conv_pool_before_bias_equals_pool_after_bias():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  plain, pooled = Conv(5), Conv(5, pool=max_pool2)
  v = plain.init(jax.random.PRNGKey(1), x)
  v = {"params": {**v["params"], "bias": jnp.linspace(-1.0, 1.0, 5)}}
  assert jax.tree.structure(pooled.init(jax.random.PRNGKey(1), x)) == jax.tree.structure(v)
  ref = lambda x: jax.nn.relu(max_pool2(plain.apply(v, x)))
  got = lambda x: jax.nn.relu(pooled.apply(v, x))
  np.testing.assert_array_equal(got(x), ref(x))
  g = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 4, 5))
  dx = jax.vjp(got, x)[1](g)[0]
  np.testing.assert_allclose(dx, jax.vjp(ref, x)[1](g)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_shapes(name):
  shape = (8, 8, 1) if name in ("mlp", "cnn_small", "cnn_wide", "lenet") else (32, 32, 3)
  m = get_module(name, 7)
  v = init_variables(m, jax.random.PRNGKey(0), shape)
  out = jax.eval_shape(lambda v, x: m.apply(v, x), v, jnp.zeros((3, *shape)))
  assert out.shape == (3, 7)


def test_global_magnitude_masks_are_exact(cnn_model):
  v = cnn_model.variables
  for rate in (0.0, 0.3, 0.9):
    pruned = prune.apply_masks(v, prune.global_magnitude_masks(v, rate))
    assert prune.sparsity(pruned) == pytest.approx(rate, abs=1e-4)
    # the kept weights are the largest ones
    kept = jnp.concatenate([jnp.abs(k[k != 0]) for k in prune.kernels(pruned)])
    dropped_max = jnp.sort(jnp.concatenate([jnp.abs(k).ravel() for k in prune.kernels(v)]))
    if rate > 0:
      assert float(kept.min()) >= float(dropped_max[int(rate * dropped_max.size) - 1])
  # biases untouched
  masks = prune.global_magnitude_masks(v, 0.5)
  np.testing.assert_array_equal(
    prune.apply_masks(v, masks)["params"]["Dense_0"]["bias"], v["params"]["Dense_0"]["bias"]
  )


def test_layerwise_and_bernoulli(cnn_model):
  v = cnn_model.variables
  lw = prune.apply_masks(v, prune.layerwise_magnitude_masks(v, 0.5))
  for k in prune.kernels(lw):
    assert float(jnp.mean(k == 0)) == pytest.approx(0.5, abs=0.01)
  bern = prune.apply_masks(v, prune.bernoulli_masks(v, 0.5, jax.random.PRNGKey(0)))
  assert prune.sparsity(bern) == pytest.approx(0.5, abs=0.02)


def test_batch_stats_are_never_pruned():
  m = get_module("vgg_small", 10)
  v = init_variables(m, jax.random.PRNGKey(0), (8, 8, 1))
  flags = jax.tree.leaves(prune.prunable_mask_tree(v))
  n_kernels = sum(flags)
  assert n_kernels == 7  # six convs + one dense


def test_training_is_deterministic_and_learns(digits):
  m = get_module("mlp", 10)
  spec = TrainSpec("mlp", 3, 2)
  a = train(m, spec, digits.train_x, digits.train_y)
  b = train(m, spec, digits.train_x, digits.train_y)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  from ucfp.evaluation.models import accuracy, inference_apply

  assert accuracy(inference_apply(m), a, digits.test_x, digits.test_y) > 0.85


def test_masked_finetune_keeps_pruned_weights_zero(digits):
  m = get_module("mlp", 10)
  v = train(m, TrainSpec("mlp", 3, 1), digits.train_x, digits.train_y)
  masks = prune.global_magnitude_masks(v, 0.7)
  ft = train(
    m, TrainSpec("mlp", 3, 1, prune_rate=0.7), digits.train_x, digits.train_y, init=v, masks=masks
  )
  assert prune.sparsity(ft) >= 0.7 - 1e-4
  for k, mk in zip(prune.kernels(ft), prune.kernels(masks), strict=True):
    assert np.all(np.asarray(k)[np.asarray(mk) == 0] == 0)
