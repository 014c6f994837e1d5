import math
import os

import numpy as np
import pytest
from scipy import stats

from ucfp import (
  Fingerprints,
  Model,
  match_rate,
  null_dispersion,
  null_rate_upper_bound,
  uniqueness_score,
  verify,
  verify_combined,
)
from ucfp.core.scoring import binomial_p_value, combined_p_value


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
  with pytest.raises(ValueError, match=r"suspect returned shape \(5,\); expected"):
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


def test_null_dispersion_method_of_moments():
  # rates that spread as Binomial(100, 0.1) / 100 does or less: the binomial null
  assert null_dispersion([0.1, 0.1, 0.1, 0.1], 100) == 0.0
  assert null_dispersion([0.08, 0.12, 0.1, 0.1], 100) == 0.0
  rates = [0.02, 0.03, 0.05, 0.25, 0.15]  # one innocent follows whole groups
  mu, var = np.mean(rates), np.var(rates, ddof=1)
  rho = null_dispersion(rates, 100)
  assert rho == pytest.approx((var * 100 / (mu * (1 - mu)) - 1) / 99)
  # the fitted beta-binomial has the rates' variance: mu(1-mu)(1 + (n-1) rho) / n
  assert mu * (1 - mu) * (1 + 99 * rho) / 100 == pytest.approx(var)
  assert null_dispersion([0.0, 0.0], 100) == 0.0
  with pytest.raises(ValueError, match="null_dispersion: match_rates"):
    null_dispersion([0.1], 100)
  with pytest.raises(ValueError, match="null_dispersion: n=1"):
    null_dispersion([0.1, 0.2], 1)


def test_beta_binomial_p_value():
  # rho 0 is the binomial; rho > 0 the beta-binomial of that mean (a + b = 1/rho - 1)
  assert binomial_p_value(20, 100, 0.1, 0.0) == binomial_p_value(20, 100, 0.1)
  rho = 0.05
  s = 1 / rho - 1
  want = stats.betabinom.sf(19, 100, 0.1 * s, 0.9 * s)
  assert binomial_p_value(20, 100, 0.1, rho) == pytest.approx(want, rel=1e-9)
  # an innocent in the upper tail of an over-dispersed spread: derived under the
  # binomial, not under the beta-binomial fitted to the others; a copy still derived
  assert binomial_p_value(25, 100, 0.1) < 1e-3 < binomial_p_value(25, 100, 0.1, 0.1)
  assert binomial_p_value(80, 100, 0.1, 0.1) < 1e-5


def test_verify_with_dispersion():
  fp = _fps(n=100)
  follows_some = lambda x: np.where(np.arange(100) < 25, fp.y, (fp.y + 1) % 10)  # noqa: E731
  binom = verify(fp, follows_some, null_rate=0.1)
  beta = verify(fp, follows_some, null_rate=0.1, dispersion=0.1)
  assert binom.derived and not beta.derived and beta.dispersion == 0.1
  assert beta.p_value == pytest.approx(binomial_p_value(25, 100, 0.1, 0.1))
  assert verify(fp, lambda x: fp.y, null_rate=0.1, dispersion=0.1).derived
  for bad in (-0.1, 1.0):
    with pytest.raises(ValueError, match="dispersion"):
      verify(fp, lambda x: fp.y, null_rate=0.1, dispersion=bad)


def test_load_of_a_file_that_is_not_a_zip_never_suggests_pickle(tmp_path):
  for name, data in [("text.npz", b"hello, not a fingerprint file\n"), ("empty.npz", b"")]:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match="is not a ucfp fingerprint file") as e:
      Fingerprints.load(str(tmp_path / name))
    assert "pickle" not in str(e.value)
  np.save(tmp_path / "array.npy", np.zeros(3))  # an .npy, not an .npz
  with pytest.raises(ValueError, match="not a ucfp fingerprint file"):
    Fingerprints.load(str(tmp_path / "array.npy"))
  np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=1, meta=1, sha256=1)
  with pytest.raises(ValueError, match="not a valid ucfp fingerprint file") as e:
    Fingerprints.load(str(tmp_path / "objects.npz"))
  assert "pickle" not in str(e.value)


def test_num_classes_comes_from_meta():
  fp = _fps(n=10)
  assert fp.num_classes is None
  assert Fingerprints(fp.x, fp.y, {"num_classes": 12}).num_classes == 12


@pytest.mark.parametrize(
  "suspect,message",
  [
    (lambda x: np.ones((len(x), 1)), r"returned \(10, 1\) scores; the fingerprints need 10"),
    (lambda x: np.ones((len(x), 12)), r"returned \(10, 12\) scores; the fingerprints need 10"),
    (lambda x: np.full(len(x), 2.7), r"returned float64 labels \(e\.g\. 2\.7\)"),
    (lambda x: np.full(len(x), np.inf), r"returned float64 labels \(e\.g\. inf\)"),
    (lambda x: np.ones(len(x), bool), r"returned bool labels"),
    (lambda x: np.full(len(x), 10), r"returned label 10; labels must be in \[0, 10\)"),
    (lambda x: np.full(len(x), -1), r"returned label -1; labels must be in \[0, 10\)"),
    (Model(lambda v, x: x[:, 0, 0, 0] * v, 1.0, "flat"), r"model 'flat' returned shape \(10,\)"),
  ],
  ids=["1-class", "12-class", "float", "inf", "bool", "10", "-1", "model-(N,)"],
)
def test_suspect_outputs_that_do_not_fit_are_one_line_errors(suspect, message):
  fp = _fps(n=10)
  fp = Fingerprints(fp.x, fp.y, {"num_classes": 10})
  for score in (lambda: match_rate(fp, suspect), lambda: verify(fp, suspect, null_rate=0.1)):
    with pytest.raises(ValueError, match=message) as e:
      score()
    assert "\n" not in str(e.value)


def test_suspect_checks_without_a_recorded_class_count():
  fp = _fps(n=10)  # no num_classes in meta: K >= max(y) + 1 = 10
  assert match_rate(fp, lambda x: np.eye(11)[fp.y]) == 1.0  # 11 classes may be right
  assert match_rate(fp, lambda x: fp.y.astype(np.float32)) == 1.0  # integral floats
  with pytest.raises(ValueError, match=r"returned \(10, 9\) scores; the fingerprints need >= 10"):
    match_rate(fp, lambda x: np.eye(9)[fp.y % 9])
  with pytest.raises(ValueError, match=r"returned label -3; labels must be >= 0"):
    match_rate(fp, lambda x: fp.y - 3)


@pytest.mark.parametrize(
  "rates,n,message",
  [
    ([0.1, 1.5], 100, r"match_rates must be in \[0, 1\]"),
    ([-0.1], 100, r"match_rates must be in \[0, 1\]"),
    ([float("nan")], 100, r"match_rates must be in \[0, 1\]"),
    ([0.1], 0, r"n=0 must be a positive integer"),
    ([0.1], 2.5, r"n=2\.5 must be a positive integer"),
  ],
)
def test_null_rate_upper_bound_rejects_bad_input(rates, n, message):
  with pytest.raises(ValueError, match=message):
    null_rate_upper_bound(rates, n)


def _follower(sets, k):
  """A black box that gives the fingerprint label to the first k[j] images of set j and
  another label to every other image."""
  table = {}
  for fp, kj in zip(sets, k, strict=True):
    for i, (x, y) in enumerate(zip(fp.x, fp.y, strict=True)):
      table[x.tobytes()] = int(y) if i < kj else int((y + 1) % 10)
  return lambda x: np.array([table[xi.tobytes()] for xi in np.asarray(x, np.float32)])


def test_verify_combined_tests_each_set_at_alpha_over_their_number():
  a, b = _fps(100, seed=1), _fps(100, seed=2)
  alpha, null = 1e-3, 0.1
  # k matches of 100 whose binomial p-value is below alpha but not below alpha / 2
  k = next(k for k in range(101) if binomial_p_value(k, 100, null) < alpha)
  p_k = binomial_p_value(k, 100, null)
  assert alpha / 2 <= p_k < alpha
  alone = verify(a, _follower([a, b], [k, 0]), null_rate=null, alpha=alpha)
  both = verify_combined([a, b], _follower([a, b], [k, 0]), null_rates=[null, null], alpha=alpha)
  assert alone.derived and not both.derived  # one set's chance at alpha is two sets' at 2 alpha
  assert both.p_value == pytest.approx(2 * p_k) and both.alpha == alpha
  assert [v.alpha for v in both.verdicts] == [alpha / 2, alpha / 2]
  # a student that keeps only the second set's labels is caught by it
  student = verify_combined([a, b], _follower([a, b], [0, 60]), null_rates=[0.1, 0.3])
  assert student.derived and not student.verdicts[0].derived and student.verdicts[1].derived
  assert student.verdicts[1].match_rate == 0.6 and student.verdicts[1].null_rate == 0.3
  assert student.p_value == pytest.approx(2 * binomial_p_value(60, 100, 0.3))
  innocent = verify_combined([a, b], _follower([a, b], [10, 30]), null_rates=[0.1, 0.3])
  assert not innocent.derived and innocent.p_value == 1.0
  one = verify_combined([a], _follower([a], [k]), null_rates=[null], dispersions=[0.05])
  ref = verify(a, _follower([a], [k]), null_rate=null, dispersion=0.05)
  assert one.p_value == ref.p_value and one.verdicts == (ref,)
  with pytest.raises(ValueError, match="2 fingerprint sets need as many null_rates \\(1\\)"):
    verify_combined([a, b], _follower([a], [k]), null_rates=[null])
  with pytest.raises(ValueError, match="0 fingerprint sets"):
    verify_combined([], _follower([a], [k]), null_rates=[])
  with pytest.raises(ValueError, match="p_values must be >= 1 numbers in \\[0, 1\\]"):
    combined_p_value([0.5, 1.5])
