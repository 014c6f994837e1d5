import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ucfp.core import objectives, prune
from ucfp.core.spectral import low_pass
from ucfp.core.variants import VariantSpec, mean_over_variants, sample_variant, uniform_noise


def test_xent_and_margin():
  logits = jnp.array([[2.0, 1.0, -1.0], [0.0, 3.0, 0.5]])
  y = jnp.array([0, 0])
  np.testing.assert_allclose(
    objectives.c_loss(logits, y), optax.softmax_cross_entropy_with_integer_labels(logits, y)
  )
  np.testing.assert_allclose(objectives.margins(logits, y), [1.0, -3.0])
  np.testing.assert_allclose(objectives.c_loss(logits, y, "margin", kappa=0.5), [-0.5, 3.0])
  with pytest.raises(ValueError, match="config.loss"):
    objectives.c_loss(logits, y, "hinge")


def test_robustness_term_with_one_clean_variant_equals_c_loss(cnn_model):
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
  y = jnp.arange(4)
  clean = VariantSpec(noise_bound=0.0, mask="none")
  r = objectives.robustness_term(
    cnn_model.apply_fn,
    cnn_model.variables,
    x,
    y,
    jax.random.PRNGKey(1),
    num_variants=1,
    variant_spec=clean,
  )
  c = jnp.sum(objectives.c_loss(cnn_model(x), y))
  np.testing.assert_allclose(r, c, rtol=1e-5)


def test_batching_strategies_agree(cnn_model):
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
  y = jnp.array([1, 2, 3])
  spec = VariantSpec(0.05, "relative", "magnitude", 0.3, 0.9)
  sa = prune.sorted_magnitudes(cnn_model.variables)
  vals = {}
  for b in ("vmap", "loop", "unrolled"):
    fn = lambda xx, b=b: objectives.robustness_term(
      cnn_model.apply_fn,
      cnn_model.variables,
      xx,
      y,
      jax.random.PRNGKey(5),
      num_variants=3,
      variant_spec=spec,
      sorted_abs=sa,
      batching=b,
    )
    vals[b] = jax.jit(jax.value_and_grad(fn))(x)
  for b in ("loop", "unrolled"):
    np.testing.assert_allclose(vals[b][0], vals["vmap"][0], rtol=1e-4)
    np.testing.assert_allclose(vals[b][1], vals["vmap"][1], rtol=1e-3, atol=1e-5)


def test_variants_touch_only_kernels_and_respect_bounds(cnn_model):
  v = cnn_model.variables
  spec = VariantSpec(0.1, "relative", "none")
  out = sample_variant(v, jax.random.PRNGKey(0), spec, None)
  for path, a in jax.tree_util.tree_flatten_with_path(v)[0]:
    b = out
    for p in path:
      b = b[p.key]
    if prune.is_prunable(path, a):
      assert not np.allclose(a, b)
      assert np.all(np.abs(np.asarray(b) - np.asarray(a)) <= 0.1 * np.abs(np.asarray(a)) + 1e-7)
    else:
      np.testing.assert_array_equal(a, b)


def test_uniform_noise_is_a_256_level_uniform_on_pm1():
  u = np.asarray(uniform_noise(jax.random.PRNGKey(0), (1001, 99)))
  assert u.shape == (1001, 99) and u.dtype == np.float32
  levels = np.unique(u)
  assert len(levels) == 256 and levels.min() == -1 + 1 / 256 and levels.max() == 1 - 1 / 256
  counts = np.unique(u, return_counts=True)[1]
  assert counts.min() > 0.8 * u.size / 256  # every level about equally likely
  assert abs(u.mean()) < 0.01 and abs(u.var() - 1 / 3) < 0.01
  v = np.asarray(uniform_noise(jax.random.PRNGKey(1), (1001, 99)))
  assert abs(np.corrcoef(u.ravel(), v.ravel())[0, 1]) < 0.01


def test_magnitude_variant_prunes_in_range(cnn_model):
  v = cnn_model.variables
  spec = VariantSpec(0.0, "relative", "magnitude", 0.4, 0.6)
  sa = prune.sorted_magnitudes(v)
  for i in range(4):
    s = prune.sparsity(sample_variant(v, jax.random.PRNGKey(i), spec, sa))
    assert 0.4 - 1e-3 <= s <= 0.6 + 1e-3


def test_mean_over_variants_rejects_unknown_batching(cnn_model):
  with pytest.raises(ValueError, match="robust.batching"):
    mean_over_variants(
      lambda v: 0.0, cnn_model.variables, jax.random.PRNGKey(0), 2, VariantSpec(), None, "pmap"
    )


def test_spectral_term():
  x0 = jnp.zeros((2, 8, 8, 1))
  x = jax.random.uniform(jax.random.PRNGKey(0), x0.shape)
  np.testing.assert_allclose(
    objectives.spectral_term(x, x0, 2.0), jnp.sum(low_pass(x, 2.0) ** 2), rtol=1e-5
  )
  assert float(objectives.spectral_term(x0, x0, 2.0)) == 0.0


def test_reference_term(mlp_model, cnn_model):
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 8, 8, 1))
  y = jnp.array([0, 1, 2, 3, 4])
  got = objectives.reference_term(
    (mlp_model.apply_fn, cnn_model.apply_fn), (mlp_model.variables, cnn_model.variables), x, y
  )
  p1 = jax.nn.softmax(mlp_model(x))[jnp.arange(5), y]
  p2 = jax.nn.softmax(cnn_model(x))[jnp.arange(5), y]
  np.testing.assert_allclose(got, jnp.sum((p1 + p2) / 2), rtol=1e-5)
  fns, vs = (mlp_model.apply_fn, cnn_model.apply_fn), (mlp_model.variables, cnn_model.variables)
  got_max = objectives.reference_term(fns, vs, x, y, reduce="max")
  np.testing.assert_allclose(got_max, jnp.sum(jnp.maximum(p1, p2)), rtol=1e-5)
  with pytest.raises(ValueError, match=r"config\.ltrc\.reduce"):
    objectives.reference_term(fns, vs, x, y, reduce="median")


def test_surrogate_term_is_the_mean_c_loss_over_surrogates(mlp_model, cnn_model):
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 8, 8, 1))
  y = jnp.array([0, 1, 2, 3, 4])
  fns, vs = (mlp_model.apply_fn, cnn_model.apply_fn), (mlp_model.variables, cnn_model.variables)
  got = objectives.surrogate_term(fns, vs, x, y)
  want = (
    jnp.sum(objectives.c_loss(mlp_model(x), y)) + jnp.sum(objectives.c_loss(cnn_model(x), y))
  ) / 2
  np.testing.assert_allclose(got, want, rtol=1e-5)
  got_margin = objectives.surrogate_term(fns[:1], vs[:1], x, y, "margin", 2.0)
  want_margin = jnp.sum(objectives.c_loss(mlp_model(x), y, "margin", 2.0))
  np.testing.assert_allclose(got_margin, want_margin, rtol=1e-5)


def test_conv_lowering_context_and_rule():
  from ucfp.core.variants import conv_lowering_for, resolve_batching
  from ucfp.evaluation.layers import conv_lowering, resolve_conv_impl

  assert resolve_conv_impl("xla") == "xla"
  with conv_lowering("xla"):
    assert resolve_conv_impl("auto") == "xla"
    assert resolve_conv_impl("im2col") == "im2col"
  with conv_lowering("im2col"):
    assert resolve_conv_impl("auto") == "im2col"
  assert conv_lowering_for("loop", "cpu") == "im2col"
  assert conv_lowering_for("unrolled", "cpu") == "xla"
  assert conv_lowering_for("loop", "tpu") == "xla"
  assert resolve_batching("auto", 8, "cpu") == "unrolled"
  assert resolve_batching("auto", 9, "cpu") == "grouped"
  assert resolve_batching("auto", 32, "cpu") == "grouped"
  assert conv_lowering_for("grouped", "cpu") == "xla"
  assert resolve_batching("auto", 8, "tpu") == "vmap"
  with pytest.raises(ValueError, match="conv impl"):
    resolve_conv_impl("fft")


def test_group_layout():
  from ucfp.core.variants import group_layout

  assert group_layout(1) == (1, 1) and group_layout(8) == (1, 8)
  assert group_layout(32) == (4, 8) and group_layout(12) == (2, 6) and group_layout(13) == (2, 7)


def test_grouped_shares_sum_to_the_mean(cnn_model, monkeypatch):
  from ucfp.core import variants

  monkeypatch.setattr(variants, "GROUP_CPU", 2)  # V=5: 3 groups of 2, one padding slot
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1))
  y = jnp.array([1, 2, 3])
  spec = VariantSpec(0.05, "relative", "magnitude", 0.3, 0.9)
  sa = prune.sorted_magnitudes(cnn_model.variables)

  def term(xx, b, start=None):
    return objectives.robustness_term(
      cnn_model.apply_fn, cnn_model.variables, xx, y, jax.random.PRNGKey(5), num_variants=5,
      variant_spec=spec, sorted_abs=sa, batching=b, group_start=start,
    )  # fmt: skip

  whole = jax.value_and_grad(term)(x, "unrolled")
  share = jax.jit(jax.value_and_grad(term), static_argnums=1)
  parts = [share(x, "grouped", jnp.int32(s)) for s in (0, 2, 4)]
  np.testing.assert_allclose(sum(p[0] for p in parts), whole[0], rtol=1e-5)
  np.testing.assert_allclose(sum(p[1] for p in parts), whole[1], rtol=1e-4, atol=1e-6)
  # without a group_start, grouped is the unrolled mean itself
  np.testing.assert_allclose(term(x, "grouped"), whole[0], rtol=1e-6)


def test_complement_reference_loss_is_minus_log_one_minus_p(mlp_model):
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 8, 8, 1))
  y = jnp.array([0, 1, 2, 3, 4])
  fns, vs = (mlp_model.apply_fn,), (mlp_model.variables,)
  p = jax.nn.softmax(mlp_model(x))[jnp.arange(5), y]
  got = objectives.reference_term(fns, vs, x, y, ref_loss="complement")
  np.testing.assert_allclose(got, jnp.sum(-jnp.log1p(-p)), rtol=1e-5)
  # finite where the reference is all but certain of y (p = 1 in float32)
  big = lambda v, x: jnp.where(jnp.arange(10) == 0, 200.0, 0.0) * jnp.ones((x.shape[0], 1))
  pen = objectives.reference_term((big,), ({},), x, jnp.zeros(5, jnp.int32), ref_loss="complement")
  np.testing.assert_allclose(pen, 5 * (200.0 - jnp.log(9.0)), rtol=1e-5)
  with pytest.raises(ValueError, match=r"config\.ltrc\.ref_loss"):
    objectives.reference_term(fns, vs, x, y, ref_loss="logit")


def test_margin_reference_loss_is_a_hinge_at_minus_kappa():
  # logits (N=3, K=3): margins of y=0 are 2 - 1 = 1, 0 - 1 = -1, -5 - 0 = -5
  logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, -1.0], [-5.0, 0.0, -2.0]])
  fn = lambda v, x: logits
  y = jnp.zeros(3, jnp.int32)
  pen = lambda kappa: objectives.reference_term((fn,), ({},), None, y, "mean", "margin", kappa)
  np.testing.assert_allclose(pen(0.0), 1.0)  # only the example the reference puts in y
  np.testing.assert_allclose(pen(3.0), (1 + 3) + (-1 + 3) + 0)  # -5 + 3 < 0: no penalty
  np.testing.assert_allclose(pen(6.0), 7 + 5 + 1)
  grad = jax.grad(
    lambda z: objectives.reference_term(
      (lambda v, x: z,), ({},), None, y, ref_loss="margin", ref_kappa=3.0
    )
  )(logits)
  # pushes z_y down and the runner-up up for the penalised examples, nothing for the third
  np.testing.assert_allclose(grad, [[1, -1, 0], [1, -1, 0], [0, 0, 0]])


def test_anchor_reference_loss_keeps_the_start_class_other_than_y():
  # the reference's logits at the start x0 (N=2, K=3) and at x; y = 0
  z0 = jnp.array([[5.0, 1.0, 3.0], [0.0, 2.0, -1.0]])  # first: argmax is y itself
  z = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  fn = lambda v, x: jnp.where(x[:, :1] > 0, z0, z)  # x0 = 1s, x = 0s
  x0, x = jnp.ones((2, 1)), jnp.zeros((2, 1))
  y = jnp.zeros(2, jnp.int32)
  got = objectives.reference_term((fn,), ({},), x, y, ref_loss="anchor", x0=x0)
  logp = jax.nn.log_softmax(z)
  # anchors: class 2 (the best class other than y at x0), then class 1
  np.testing.assert_allclose(got, -(logp[0, 2] + logp[1, 1]), rtol=1e-6)
  with pytest.raises(ValueError, match=r"ref_loss='anchor' needs the starting images"):
    objectives.reference_term((fn,), ({},), x, y, ref_loss="anchor")
  # the hinge: anchor margins at x are 0 - 1 = -1 (class 2 vs 0) and 0 - 3 = -3 (1 vs 2)
  hinge = lambda kappa: objectives.reference_term(
    (fn,), ({},), x, y, ref_loss="anchor_margin", ref_kappa=kappa, x0=x0
  )
  np.testing.assert_allclose(hinge(0.0), 1 + 3)
  np.testing.assert_allclose(hinge(2.0), 3 + 5)
  z = z.at[0].set(jnp.array([0.0, 0.0, 5.0]))  # reads its anchor by 5 logits: no penalty
  np.testing.assert_allclose(hinge(2.0), 5)
