import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_model, set_fields

from ucfp import Model, fingerprint, match_rate
from ucfp.core import objectives
from ucfp.core.generation import GroupedStep
from ucfp.core.spectral import frequency_radius


def _cfg(c, method="c", **kw):
  c.method = method
  c.num_fingerprints = 10
  c.steps = 6
  c.robust.num_variants = 2
  return set_fields(c, **kw)


def test_loss_falls_and_examples_match(tiny_config, cnn_model):
  c = _cfg(tiny_config, "c", steps=30, step_size=0.02)
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))
  assert fp.x.shape == (10, 8, 8, 1) and fp.x.min() >= 0 and fp.x.max() <= 1
  x0 = jax.random.uniform(jax.random.split(jax.random.PRNGKey(0), 3)[0], fp.x.shape)
  before = float(jnp.sum(objectives.c_loss(cnn_model(x0), jnp.asarray(fp.y))))
  assert fp.meta["final_loss"] < 0.5 * before
  assert match_rate(fp, cnn_model) == 1.0
  assert sorted(np.bincount(fp.y, minlength=10)) == [1] * 10  # balanced


@pytest.mark.parametrize("method", ["c", "rc", "ltrc"])
def test_same_key_same_fingerprints(tiny_config, cnn_model, mlp_model, method):
  c = _cfg(tiny_config, method, **{"ltrc.radius": 2.0, "ltrc.term": "reference"})
  ref = [mlp_model] if method == "ltrc" else []
  a = fingerprint(cnn_model, c, key=jax.random.PRNGKey(3), reference=ref)
  b = fingerprint(cnn_model, c, key=jax.random.PRNGKey(3), reference=ref)
  np.testing.assert_array_equal(a.x, b.x)
  np.testing.assert_array_equal(a.y, b.y)
  d = fingerprint(cnn_model, c, key=jax.random.PRNGKey(4), reference=ref)
  assert not np.array_equal(a.x, d.x)


def test_ltrc_perturbation_stays_high_pass(tiny_config, cnn_model):
  # gaussian start away from the box edges so clipping does not interfere
  c = _cfg(
    tiny_config,
    "ltrc",
    init="gaussian",
    init_sigma=0.01,
    step_size=0.002,
    **{"ltrc.radius": 2.0, "ltrc.term": "none"},
  )
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))
  x0 = np.clip(
    0.5
    + 0.01
    * np.asarray(jax.random.normal(jax.random.split(jax.random.PRNGKey(0), 3)[0], fp.x.shape)),
    0,
    1,
  )
  f = np.fft.fft2(fp.x - x0, axes=(1, 2))
  low = frequency_radius(8, 8) < 2.0
  assert np.abs(f[:, low]).max() < 1e-4 < np.abs(f[:, ~low]).max()


def test_given_labels_and_bad_labels(tiny_config, cnn_model):
  c = _cfg(tiny_config)
  y = np.full(10, 3)
  assert np.all(fingerprint(cnn_model, c, key=jax.random.PRNGKey(0), labels=y).y == 3)
  with pytest.raises(ValueError, match=r"labels.*\[0, 10\)"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0), labels=np.full(10, 10))


def test_image_shape_mismatch(tiny_config):
  rgb = random_model("cnn_small", shape=(8, 8, 3))
  with pytest.raises(ValueError, match=r"config\.image_shape.*channel"):
    fingerprint(rgb, _cfg(tiny_config), key=jax.random.PRNGKey(0))


def test_reference_term_needs_reference_models(tiny_config, cnn_model):
  c = _cfg(tiny_config, "ltrc", **{"ltrc.term": "reference"})
  with pytest.raises(ValueError, match="reference"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))


def test_surrogates_needed_when_configured(tiny_config, cnn_model):
  c = _cfg(tiny_config, "rc", **{"robust.surrogates": (0.8,)})
  with pytest.raises(ValueError, match=r"config\.robust\.surrogates=\(0\.8,\) needs"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))


def test_surrogate_attacks_need_surrogates(tiny_config, cnn_model):
  c = _cfg(tiny_config, "rc", **{"robust.surrogate_attacks": "distill:same"})
  with pytest.raises(ValueError, match=r"config\.robust\.surrogate_attacks='distill:same' needs"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))


def test_surrogate_term_changes_rc_not_c(tiny_config, cnn_model, mlp_model):
  key = jax.random.PRNGKey(5)
  rc = _cfg(tiny_config.copy_and_resolve_references(), "rc")
  plain = fingerprint(cnn_model, rc, key=key)
  with_sur = fingerprint(cnn_model, rc, key=key, surrogates=[mlp_model])
  assert with_sur.meta["surrogates"] == [mlp_model.name] and plain.meta["surrogates"] == []
  assert not np.array_equal(plain.x, with_sur.x)
  # the term pulls the surrogate's loss down: lower than without it, from the same start
  y = jnp.asarray(plain.y)
  sur_loss = lambda fp: float(jnp.sum(objectives.c_loss(mlp_model(fp.x), y)))
  assert sur_loss(with_sur) < sur_loss(plain)
  c = _cfg(tiny_config.copy_and_resolve_references(), "c")
  np.testing.assert_array_equal(
    fingerprint(cnn_model, c, key=key).x,
    fingerprint(cnn_model, c, key=key, surrogates=[mlp_model]).x,
  )


def test_nan_loss_stops_with_step_number(tiny_config, cnn_model):
  def apply_fn(v, x):
    out = cnn_model.apply_fn(v, x)
    return out * jnp.where(jnp.mean(x) > -1, jnp.nan, 1.0)

  with pytest.raises(FloatingPointError, match="step 0"):
    fingerprint(
      Model(apply_fn, cnn_model.variables, "nan"),
      _cfg(tiny_config, steps=15),
      key=jax.random.PRNGKey(0),
    )


def test_early_stop(tiny_config, cnn_model):
  c = _cfg(tiny_config, "c", steps=200, step_size=0.05, early_stop=True, early_stop_margin=1.0)
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))
  assert fp.meta["steps_run"] < 200 and fp.meta["min_margin"] >= 1.0


def test_strategies_give_the_same_fingerprints(tiny_config, cnn_model, monkeypatch):
  from ucfp.core import variants

  monkeypatch.setattr(variants, "GROUP_CPU", 1)  # grouped: V=2 in 2 compiled calls
  # margin loss: the sign of its gradient is stable under float rounding of the logits
  out = {}
  for b in ("vmap", "loop", "unrolled", "grouped"):
    c = _cfg(tiny_config, "rc", loss="margin", **{"robust.batching": b})
    out[b] = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0)).x
  for b in ("loop", "unrolled", "grouped"):
    assert np.mean(np.abs(out[b] - out["vmap"]) > 1e-4) < 0.01


@pytest.mark.parametrize("chunk", [3, 4])  # 10 examples: 3 chunks + a remainder; 2 + remainder
def test_chunked_gradient_equals_whole(cnn_model, chunk):
  from ucfp.core.generation import chunked_value_and_grad

  x = jax.random.uniform(jax.random.PRNGKey(0), (10, 8, 8, 1))
  y = jnp.arange(10) % 10
  w = jnp.float32(0.5)  # a shared argument

  def fn(x, y, w):
    return w * jnp.sum(objectives.c_loss(cnn_model(x), y))

  whole = chunked_value_and_grad(fn, x, (y,), (w,), 0)
  parts = jax.jit(lambda x: chunked_value_and_grad(fn, x, (y,), (w,), chunk))(x)
  np.testing.assert_allclose(parts[0], whole[0], rtol=1e-5)
  np.testing.assert_allclose(parts[1], whole[1], rtol=1e-4, atol=1e-7)


def test_chunked_generation_matches_and_auto_rule(tiny_config, cnn_model):
  from ucfp.core.variants import resolve_chunk

  assert resolve_chunk(0, 100, "cpu") == 25 and resolve_chunk(0, 64, "cpu") == 32
  assert resolve_chunk(0, 101, "cpu") == 26 and resolve_chunk(0, 20, "cpu") == 0
  assert resolve_chunk(0, 256, "cpu") == 32 and resolve_chunk(0, 1000, "cpu") == 125
  assert resolve_chunk(0, 100, "tpu") == 0 and resolve_chunk(7, 100, "tpu") == 7
  c = _cfg(tiny_config, "rc", loss="margin")
  whole = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0)).x
  c.robust.chunk = 3
  parts = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0)).x
  assert np.mean(np.abs(parts - whole) > 1e-4) < 0.01


def test_grouped_step_counts_the_other_terms_once(tiny_config, cnn_model, mlp_model, monkeypatch):
  from ucfp.core import prune, variants
  from ucfp.core.generation import GenSpec, compiled_step, make_optimizer

  monkeypatch.setattr(variants, "GROUP_CPU", 2)  # V=3: 2 groups of 2, one padding slot
  c = _cfg(tiny_config, "ltrc", **{"robust.num_variants": 3, "ltrc.term": "reference"})
  c.ltrc.radius = 2.0
  c.robust.surrogate_weight = 0.5
  outs = {}
  for b in ("unrolled", "grouped"):
    c.robust.batching = b
    spec = GenSpec.from_config(c)
    fns = ((mlp_model.apply_fn,), (cnn_model.apply_fn,))  # reference, surrogate
    step = compiled_step(spec, cnn_model.apply_fn, *fns)
    assert isinstance(step, GroupedStep) == (b == "grouped")
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (10, 8, 8, 1))
    args = (x0, jnp.arange(10) % 10, cnn_model.variables, (mlp_model.variables,))
    args += ((cnn_model.variables,), prune.sorted_magnitudes(cnn_model.variables))
    outs[b] = step((jnp.copy(x0), make_optimizer(spec).init(x0)), *args, jax.random.PRNGKey(2))
  (xu, _), lu = outs["unrolled"]
  (xg, _), lg = outs["grouped"]
  np.testing.assert_allclose(lg, lu, rtol=1e-5)
  assert np.mean(np.abs(np.asarray(xg) - np.asarray(xu)) > 1e-4) < 0.01


def test_budget_keeps_examples_near_their_noise(tiny_config, cnn_model):
  c = _cfg(tiny_config, "rc", steps=20, step_size=0.05, budget=0.1)
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))
  x0 = jax.random.uniform(jax.random.split(jax.random.PRNGKey(0), 3)[0], fp.x.shape)
  assert float(jnp.max(jnp.abs(fp.x - x0))) <= 0.1 + 1e-6
  free = fingerprint(
    cnn_model,
    _cfg(tiny_config, "rc", steps=20, step_size=0.05, budget=0.0),
    key=jax.random.PRNGKey(0),
  )
  assert float(jnp.max(jnp.abs(free.x - x0))) > 0.5  # without it they move further


def test_reference_noise_complement_and_margin_change_the_examples(
  tiny_config, cnn_model, mlp_model
):
  kw = {"ltrc.term": "reference", "ltrc.radius": 0.0}
  plain = fingerprint(
    cnn_model, _cfg(tiny_config, "ltrc", **kw), key=jax.random.PRNGKey(0), reference=[mlp_model]
  )
  extras = (
    {"ltrc.ref_noise": 0.3},
    {"ltrc.ref_loss": "complement"},
    {"ltrc.ref_loss": "margin", "ltrc.ref_kappa": 3.0},
    {"ltrc.ref_loss": "anchor"},
    {"ltrc.anchor_weight": 1.0},
  )
  for extra in extras:
    c = _cfg(tiny_config, "ltrc", **kw, **extra)
    a = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0), reference=[mlp_model])
    b = fingerprint(cnn_model, c, key=jax.random.PRNGKey(0), reference=[mlp_model])
    np.testing.assert_array_equal(a.x, b.x)  # deterministic per key
    assert not np.array_equal(a.x, plain.x), extra


def test_reference_warning_names_too_few_or_alike_references(tiny_config, cnn_model, mlp_model):
  from ucfp.core.generation import reference_warning

  assert "only 1 reference" in reference_warning([mlp_model])
  alike = [random_model("mlp", s) for s in range(4)]
  assert "all of one architecture" in reference_warning(alike)
  assert "only" not in reference_warning(alike)
  mixed = alike[:2] + [cnn_model, random_model("cnn_small", 9)]
  assert reference_warning(mixed) is None
  # with the model: too few of its own architecture (2 cnn_small of 4)
  assert "2 of the model's own architecture (< 5" in reference_warning(mixed, cnn_model)
  own = [random_model("cnn_small", s) for s in range(10, 15)]
  assert reference_warning(own + alike[:1], cnn_model) is None
  c = _cfg(tiny_config, "ltrc", **{"ltrc.term": "reference", "ltrc.radius": 0.0}, steps=1)
  with pytest.warns(UserWarning, match="ucfp.train_references"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0), reference=[mlp_model])
