import jax.numpy as jnp
import numpy as np

from ucfp.core import prune
from ucfp.evaluation.derived import channel_prune_masks, quantize_int8


def test_channel_prune_masks_drop_whole_low_norm_channels(cnn_model):
  v = cnn_model.variables
  masks = channel_prune_masks(v, 0.5)
  pruned = prune.apply_masks(v, masks)
  k = np.asarray(pruned["params"]["Conv_1"]["kernel"])  # (3, 3, 32, 64)
  dead = np.all(k == 0, axis=(0, 1, 2))
  assert dead.sum() == 32
  norms = np.abs(np.asarray(v["params"]["Conv_1"]["kernel"])).sum(axis=(0, 1, 2))
  assert norms[dead].max() <= norms[~dead].min()
  np.testing.assert_array_equal(
    pruned["params"]["Dense_0"]["kernel"], v["params"]["Dense_0"]["kernel"]
  )


def test_quantize_int8(cnn_model):
  v = cnn_model.variables
  q = quantize_int8(v)
  for a, b in zip(prune.kernels(v), prune.kernels(q), strict=True):
    s = float(jnp.max(jnp.abs(a))) / 127
    assert len(np.unique(np.round(np.asarray(b) / s))) <= 255
    assert float(jnp.max(jnp.abs(a - b))) <= s / 2 + 1e-6
  np.testing.assert_array_equal(q["params"]["Dense_0"]["bias"], v["params"]["Dense_0"]["bias"])
