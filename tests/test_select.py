"""Over-generation and margin / validator selection (`config.oversample`, `robust.validators`)."""

import jax
import numpy as np
import pytest
from conftest import set_fields

from ucfp import Model, fingerprint
from ucfp.core.scoring import predict_labels
from ucfp.core.select import (
  across_classes,
  base_margins,
  candidate_labels,
  class_cap,
  fewest_votes,
  lowest_margin,
)


def _rc_oversampled(config, **fields):
  """A tiny rc config with 10 fingerprints from 3x candidates, and `fields`."""
  over = {"robust.num_variants": 2, **fields}
  return set_fields(config, method="rc", num_fingerprints=10, steps=6, oversample=3, **over)


def test_lowest_margin_prefers_small_positive_margins_then_misses():
  y = np.array([0, 1, 0])
  cand_y = candidate_labels(y, 3)  # [0 1 0 0 1 0 0 1 0]
  margins = np.array([5.0, 2.0, 0.5, -1.0, -3.0, 3.0, -0.2, 0.1, 9.0])
  keep = lowest_margin(margins, cand_y, y)
  np.testing.assert_array_equal(cand_y[keep], y)
  # class 0: hits 0.5 (2), 3.0 (5), 5.0 (0), 9.0 (8); misses -0.2 (6), -1.0 (3)
  assert list(keep[[0, 2]]) == [2, 5]
  # class 1: hits 0.1 (7), 2.0 (1); miss -3.0 (4)
  assert keep[1] == 7
  # a class with only misses gets the least wrong one first
  keep = lowest_margin(np.array([-2.0, -0.5]), np.array([3, 3]), np.array([3]))
  assert list(keep) == [1]


def test_lowest_margin_short_class_raises():
  with pytest.raises(ValueError, match="class 2: 1 candidates for 2"):
    lowest_margin(np.zeros(3), np.array([2, 1, 1]), np.array([2, 2]))


def test_oversample_keeps_the_lowest_margin_candidates(tiny_config, cnn_model):
  """oversample=3 is the same run as 3N fingerprints with the labels repeated, then the
  lowest-margin selection; labels are those of the N-fingerprint run."""
  c = set_fields(
    tiny_config, method="rc", num_fingerprints=10, steps=6, **{"robust.num_variants": 2}
  )
  one = fingerprint(cnn_model, c, key=jax.random.PRNGKey(5))
  c3 = set_fields(tiny_config.copy_and_resolve_references(), oversample=3)
  fp = fingerprint(cnn_model, c3, key=jax.random.PRNGKey(5))
  assert fp.x.shape == one.x.shape and fp.meta["oversample"] == 3
  np.testing.assert_array_equal(fp.y, one.y)
  full = set_fields(tiny_config.copy_and_resolve_references(), num_fingerprints=30)
  cand = fingerprint(cnn_model, full, key=jax.random.PRNGKey(5), labels=np.tile(one.y, 3))
  m = base_margins(cnn_model.apply_fn, cnn_model.variables, cand.x, cand.y)
  keep = lowest_margin(m, cand.y, one.y)
  np.testing.assert_allclose(fp.x, cand.x[keep], atol=1e-6)
  assert fp.meta["min_margin"] == pytest.approx(float(m[keep].min()), abs=1e-5)
  # what was kept sits no deeper in its class than what was dropped
  for cls in np.unique(one.y):
    kept = m[keep][one.y == cls]
    dropped = np.delete(m, keep)[np.delete(cand.y, keep) == cls]
    if np.all(kept > 0):
      assert kept.max() <= dropped[dropped > 0].min(initial=np.inf)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_oversample_is_refused_before_compute(tiny_config, cnn_model, bad):
  c = set_fields(tiny_config, oversample=bad)
  with pytest.raises(ValueError, match="config.oversample"):
    fingerprint(cnn_model, c, key=jax.random.PRNGKey(0))


def test_fewest_votes_orders_by_votes_then_margin_misses_last():
  y = np.array([0])
  cand_y = np.array([0, 0, 0, 0])
  margins = np.array([0.5, 2.0, -1.0, 1.0])
  # the two smallest margins have votes against them: the vote-free 2.0 comes first
  assert list(fewest_votes(margins, np.array([1, 0, 0, 1]), cand_y, y)) == [1]
  # a tie in votes falls back to the smallest margin
  assert list(fewest_votes(margins, np.array([1, 1, 0, 1]), cand_y, y)) == [0]
  # a misclassified candidate stays last whatever its votes
  keep = fewest_votes(margins, np.array([2, 2, 0, 2]), cand_y, np.array([0, 0, 0, 0]))
  assert list(keep) == [0, 3, 1, 2]
  with pytest.raises(ValueError, match="votes must be"):
    fewest_votes(margins, np.array([0, -1, 0, 0]), cand_y, y)


def test_validators_choose_the_candidates_they_follow(tiny_config, cnn_model):
  """With validators, the kept candidates are per class those the fewest validators
  miss, then the smallest margin: the same run as 3N fingerprints, then `fewest_votes`."""
  # a validator that agrees with the base on some candidates: its weights with noise
  noise = jax.random.PRNGKey(1)
  noisy = jax.tree.map(
    lambda a: a + 0.3 * a.std() * jax.random.normal(noise, a.shape) if a.ndim > 1 else a,
    cnn_model.variables,
  )
  val = Model(cnn_model.apply_fn, noisy, "cnn-noisy")
  c = _rc_oversampled(tiny_config, **{"robust.validators": (0.5,)})
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(5), validators=[val])
  assert fp.meta["validators"] == ["cnn-noisy"]
  full = set_fields(
    tiny_config.copy_and_resolve_references(),
    num_fingerprints=30,
    oversample=1,
    **{"robust.validators": ()},
  )
  cand = fingerprint(cnn_model, full, key=jax.random.PRNGKey(5), labels=np.tile(fp.y, 3))
  m = base_margins(cnn_model.apply_fn, cnn_model.variables, cand.x, cand.y)
  misses = (predict_labels(val, cand.x) != cand.y).astype(int)
  assert 0 < misses.sum() < len(misses)  # the validator follows some candidates, not all
  keep, by_margin = fewest_votes(m, misses, cand.y, fp.y), lowest_margin(m, cand.y, fp.y)
  np.testing.assert_allclose(fp.x, cand.x[keep], atol=1e-6)
  # the validator changed the choice: it follows more of the kept than of the margin's
  assert misses[keep].sum() < misses[by_margin].sum()


def test_validators_are_refused_without_what_they_need(tiny_config, cnn_model, mlp_model):
  key = jax.random.PRNGKey(0)
  c = set_fields(tiny_config, method="rc", oversample=3, **{"robust.validators": (0.5,)})
  with pytest.raises(ValueError, match=r"config\.robust\.validators=\(0\.5,\) needs"):
    fingerprint(cnn_model, c, key=key)
  one = set_fields(c.copy_and_resolve_references(), oversample=1)
  with pytest.raises(ValueError, match=r"validators=\(0\.5,\) choose among oversampled.*>= 2"):
    fingerprint(cnn_model, one, key=key, validators=[mlp_model])
  plain = set_fields(c.copy_and_resolve_references(), oversample=1, **{"robust.validators": ()})
  with pytest.raises(ValueError, match="set config.oversample >= 2 \\(got 1\\)"):
    fingerprint(cnn_model, plain, key=key, validators=[mlp_model])
  bad = set_fields(c.copy_and_resolve_references(), **{"robust.validators": (1.5,)})
  with pytest.raises(ValueError, match=r"config\.robust\.validators=\(1\.5,\) must be a tuple"):
    fingerprint(cnn_model, bad, key=key, validators=[mlp_model])


def test_across_classes_ranks_all_candidates_and_caps_a_class():
  # hits (key > 0) by ascending key, then misses (key <= 0) by descending key
  key = np.array([0.5, 0.1, 0.2, -1.0, 0.3, -0.1])
  cy = np.array([0, 0, 0, 1, 1, 2])
  np.testing.assert_array_equal(across_classes(key, cy, 4, cap=6), [1, 2, 4, 0])
  np.testing.assert_array_equal(across_classes(key, cy, 4, cap=2), [1, 2, 4, 5])
  np.testing.assert_array_equal(across_classes(key, cy, 5, cap=2), [1, 2, 4, 5, 3])
  with pytest.raises(ValueError, match="cap=1"):
    across_classes(key, cy, 4, cap=1)
  assert class_cap(1.0, 100, 10) == 10 and class_cap(1.5, 100, 10) == 15
  assert class_cap(1.5, 10, 4) == 4 and class_cap(10.0, 100, 10) == 100


def test_class_cap_chooses_labels_among_the_candidates(tiny_config, cnn_model):
  """class_cap > 1 is the same run as 3N fingerprints with the labels repeated, then
  the ranking across classes; class_cap = 1 keeps N / K per class as before."""
  c = _rc_oversampled(tiny_config, class_cap=2.0)
  fp = fingerprint(cnn_model, c, key=jax.random.PRNGKey(5))
  per_class = set_fields(c.copy_and_resolve_references(), class_cap=1.0)
  one = fingerprint(cnn_model, per_class, key=jax.random.PRNGKey(5))
  full = set_fields(
    c.copy_and_resolve_references(), num_fingerprints=30, oversample=1, class_cap=1.0
  )
  cand = fingerprint(cnn_model, full, key=jax.random.PRNGKey(5), labels=np.tile(one.y, 3))
  m = base_margins(cnn_model.apply_fn, cnn_model.variables, cand.x, cand.y)
  keep = np.sort(across_classes(m, cand.y, 10, class_cap(2.0, 10, 10)))
  np.testing.assert_array_equal(fp.y, cand.y[keep])
  np.testing.assert_allclose(fp.x, cand.x[keep], atol=1e-6)
  assert np.bincount(fp.y).max() <= 2
  # no dropped hit of a class under the cap sits shallower than a kept hit
  counts = np.bincount(fp.y, minlength=10)
  dropped = np.setdiff1d(np.arange(30), keep)
  open_ = dropped[(m[dropped] > 0) & (counts[cand.y[dropped]] < 2)]
  if np.any(m[keep] > 0) and len(open_):
    assert m[keep][m[keep] > 0].max() <= m[open_].min()
  np.testing.assert_array_equal(np.bincount(one.y, minlength=10), np.ones(10, int))


def test_class_cap_is_refused_without_what_it_needs(tiny_config, cnn_model):
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match=r"config\.class_cap=0\.5 must be a number >= 1"):
    fingerprint(
      cnn_model,
      set_fields(tiny_config.copy_and_resolve_references(), oversample=3, class_cap=0.5),
      key=key,
    )
  with pytest.raises(ValueError, match=r"class_cap=2\.0 ranks oversampled.*oversample >= 2"):
    fingerprint(
      cnn_model, set_fields(tiny_config.copy_and_resolve_references(), class_cap=2.0), key=key
    )
  c = set_fields(tiny_config, oversample=3, class_cap=2.0)
  with pytest.raises(ValueError, match="labels: config.class_cap=2.0 chooses the labels"):
    fingerprint(cnn_model, c, key=key, labels=np.zeros(c.num_fingerprints, np.int32))
