import math
import os

import numpy as np
import pytest
from scipy import stats

from ucfp import Fingerprints, Model, match_rate, null_rate_upper_bound, uniqueness_score, verify
from ucfp.core.scoring import binomial_p_value


def _fps(n=12, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(n, 8, 8, 1)).astype(np.float32)
  return Fingerprints(x, np.arange(n) % 10, {"method": "ltrc", "note": "ü"})


def test_save_load_round_trip_is_bit_exact(tmp_path):
  fp = _fps()
  path = fp.save(str(tmp_path / "fp.npz"))
  back = Fingerprints.load(path)
  assert back.x.tobytes() == fp.x.tobytes() and back.y.tobytes() == fp.y.tobytes()
  assert back.meta == fp.meta and back.x.dtype == np.float32 and back.y.dtype == np.int32
  assert not [f for f in os.listdir(tmp_path) if f != "fp.npz"]  # no temporary left


def test_every_changed_byte_is_rejected_or_harmless(tmp_path):
  fp = _fps(n=3)
  path = str(tmp_path / "fp.npz")
  fp.save(path)
  raw = open(path, "rb").read()
  rejected = 0
  for i in range(0, len(raw)):
    bad = bytearray(raw)
    bad[i] ^= 0x5A
    p = tmp_path / "bad.npz"
    p.write_bytes(bytes(bad))
    try:
      got = Fingerprints.load(str(p))
    except ValueError:
      rejected += 1
      continue
    # a byte the format ignores (e.g. a zip timestamp) may change: content must be intact
    assert got.x.tobytes() == fp.x.tobytes() and got.y.tobytes() == fp.y.tobytes()
    assert got.meta == fp.meta
  assert rejected > len(raw) // 2


def test_tampered_array_is_rejected(tmp_path):
  fp = _fps()
  path = str(tmp_path / "fp.npz")
  fp.save(path)
  with np.load(path) as z:
    arrays = {k: z[k] for k in z.files}
  arrays["y"] = arrays["y"].copy()
  arrays["y"][0] = (arrays["y"][0] + 1) % 10
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match="sha256"):
    Fingerprints.load(path)


def test_to_uint8():
  fp = _fps()
  u = fp.to_uint8()
  assert u.dtype == np.uint8 and u.shape == fp.x.shape
  np.testing.assert_allclose(fp.quantized().x, u / 255.0, atol=1e-7)
  assert np.max(np.abs(fp.quantized().x - fp.x)) <= 0.5 / 255 + 1e-7


def test_match_rate_models_and_callables():
  fp = _fps(n=10)
  labels = fp.y.copy()
  labels[:3] = (labels[:3] + 1) % 10
  assert match_rate(fp, lambda x: labels) == pytest.approx(0.7)
  scores = np.eye(10)[labels]
  assert match_rate(fp, lambda x: scores) == pytest.approx(0.7)
  model = Model(lambda v, x: v[labels], np.eye(10, dtype=np.float32), "m")
  assert match_rate(fp, model) == pytest.approx(0.7)
  with pytest.raises(ValueError, match="suspect returned shape"):
    match_rate(fp, lambda x: labels[:5])


def test_uniqueness_score():
  fp = _fps(n=10)
  right = lambda x: fp.y
  wrong = lambda x: (fp.y + 1) % 10
  half = lambda x: np.where(np.arange(10) < 5, fp.y, (fp.y + 1) % 10)
  rep = uniqueness_score(fp, {"p1": right, "p2": half}, {"u1": wrong, "u2": half})
  assert rep.robustness == pytest.approx(0.75)
  assert rep.transferability == pytest.approx(0.25)
  assert rep.score == pytest.approx(0.5)
  assert rep.per_model == {"p1": 1.0, "p2": 0.5, "u1": 0.0, "u2": 0.5}


@pytest.mark.parametrize("k,n,p", [(0, 10, 0.1), (3, 10, 0.1), (10, 10, 0.5), (40, 100, 0.2)])
def test_p_value_matches_binomial_tail(k, n, p):
  exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
  assert binomial_p_value(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
  assert binomial_p_value(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9)


def test_null_rate_upper_bound_is_clopper_pearson():
  ub = null_rate_upper_bound([0.1, 0.2], 100)
  assert ub == pytest.approx(stats.beta.ppf(0.95, 31, 170))
  assert 0.15 < ub < 0.25


def test_verify():
  fp = _fps(n=10)
  v = verify(fp, lambda x: fp.y, null_rate=0.1, alpha=1e-3)
  assert v.derived and v.matches == 10 and v.p_value == pytest.approx(1e-10)
  v = verify(fp, lambda x: (fp.y + 1) % 10, null_rate=0.1)
  assert not v.derived and v.p_value == 1.0
  with pytest.raises(ValueError, match="null_rate"):
    verify(fp, lambda x: fp.y, null_rate=1.5)
