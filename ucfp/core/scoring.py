"""Match rates, the Uniqueness Score, and the verification test (binomial, or
beta-binomial where the innocents' match rates spread beyond the binomial's).

Suspects are white-box :class:`ucfp.Model`s or black-box callables that take a
float32 batch (N, H, W, C) in [0, 1] and return (N,) labels or (N, K) scores. The
class count K must be the fingerprints' and labels integers in [0, K): an output that
fits neither is a one-line ValueError, never silently scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ucfp.core.fingerprints import Fingerprints
from ucfp.core.predict import predict_logits
from ucfp.core.types import Model

Suspect = Model | Callable[[np.ndarray], Any]


def _name(model: Suspect) -> str:
  return f"model {model.name!r}" if isinstance(model, Model) else "suspect"


def predict_labels(
  model: Suspect, x: np.ndarray, num_classes: int | None = None, min_classes: int = 1
) -> np.ndarray:
  """(N,) int labels of a Model or a black-box callable on images x (N, H, W, C).

  Args:
    model: a :class:`Model` (its apply_fn returns (N, K) logits) or a callable that
      returns (N,) integer labels or (N, K) scores.
    x: (N, H, W, C) float32 images in [0, 1].
    num_classes: K; scores must have K columns and labels be in [0, K). None: unknown,
      then scores need at least `min_classes` columns and labels be >= 0.
    min_classes: the least K (e.g. max(y) + 1 of the fingerprints) when K is unknown.

  Raises:
    ValueError: (one line) an output shape, class count or label that does not fit.
  """
  if isinstance(model, Model):
    out = np.asarray(predict_logits(model.apply_fn, model.variables, x))
  elif callable(model):
    out = np.asarray(model(np.asarray(x, np.float32)))
  else:
    raise TypeError(f"suspect must be a ucfp.Model or a callable, got {type(model).__name__}")
  n, who = x.shape[0], _name(model)
  if isinstance(model, Model) and out.ndim != 2:
    raise ValueError(f"{who} returned shape {out.shape}; its apply_fn must return ({n}, K) logits")
  if out.ndim == 2 and out.shape[0] == n:
    k = out.shape[1]
    if (num_classes is not None and k != num_classes) or k < max(2, min_classes):
      want = num_classes if num_classes is not None else f">= {max(2, min_classes)}"
      raise ValueError(
        f"{who} returned ({n}, {k}) scores; the fingerprints need {want} classes "
        f"(return ({n},) integer labels or ({n}, K) scores)"
      )
    return np.argmax(out, axis=-1)
  if out.shape != (n,):
    raise ValueError(f"{who} returned shape {out.shape}; expected ({n},) labels or ({n}, K) scores")
  if out.dtype.kind == "f":
    fractional = ~np.isfinite(out) | (out != np.round(out))
    if not np.any(fractional):
      out = out.astype(np.int64)  # integral floats, e.g. 2.0
  if out.dtype.kind not in "iu":
    bad = (out[fractional] if out.dtype.kind == "f" else out)[0]
    bad = bad.item() if hasattr(bad, "item") else bad
    k = num_classes if num_classes is not None else "K"
    raise ValueError(
      f"{who} returned {out.dtype} labels (e.g. {bad!r}); labels must be integers in [0, {k})"
    )
  outside, allowed = out < 0, ">= 0"
  if num_classes is not None:
    outside, allowed = outside | (out >= num_classes), f"in [0, {num_classes})"
  if np.any(outside):
    raise ValueError(f"{who} returned label {out[outside][0]}; labels must be {allowed}")
  return out.astype(np.int64)


def _predict(fingerprints: Fingerprints, model: Suspect) -> np.ndarray:
  """Labels of `model` on the fingerprints, checked against their class count."""
  min_classes = int(fingerprints.y.max()) + 1 if len(fingerprints) else 1
  return predict_labels(model, fingerprints.x, fingerprints.num_classes, min_classes)


def match_rate(fingerprints: Fingerprints, model: Suspect) -> float:
  """`(1/N) sum_i 1[argmax m(x_i) = y_i]`."""
  return float(np.mean(_predict(fingerprints, model) == fingerprints.y))


@dataclasses.dataclass(frozen=True)
class UniquenessReport:
  robustness: float  # mean match rate over the pruned copies
  transferability: float  # mean match rate over the unassociated models
  score: float  # robustness - transferability, in [-1, 1]
  per_model: dict[str, float]


def _named(models: Sequence[Suspect] | Mapping[str, Suspect], prefix: str) -> dict[str, Suspect]:
  if isinstance(models, Mapping):
    return dict(models)
  out = {}
  for i, m in enumerate(models):
    name = m.name if isinstance(m, Model) else getattr(m, "__name__", f"{prefix}{i}")
    out[name if name not in out else f"{name}#{i}"] = m
  return out


def uniqueness_score(
  fingerprints: Fingerprints,
  pruned: Sequence[Suspect] | Mapping[str, Suspect],
  unassociated: Sequence[Suspect] | Mapping[str, Suspect],
) -> UniquenessReport:
  """Uniqueness Score (Wang et al. 2021): robustness R minus transferability T.

  Args:
    fingerprints: the fingerprint set.
    pruned: models derived from the base (a list, or a dict name -> model).
    unassociated: independently trained models.

  Returns:
    A :class:`UniquenessReport` with R, T, US = R - T and every model's match rate.
  """
  p, u = _named(pruned, "pruned"), _named(unassociated, "unassociated")
  if not p or not u:
    raise ValueError("uniqueness_score needs at least one pruned and one unassociated model")
  per_model = {name: match_rate(fingerprints, m) for name, m in {**p, **u}.items()}
  r = float(np.mean([per_model[n] for n in p]))
  t = float(np.mean([per_model[n] for n in u]))
  return UniquenessReport(r, t, r - t, per_model)


@dataclasses.dataclass(frozen=True)
class Verdict:
  match_rate: float
  matches: int
  num_fingerprints: int
  null_rate: float
  p_value: float  # P(X >= matches), X Binomial(N, null_rate) (or beta-binomial, dispersion)
  alpha: float
  derived: bool  # p_value < alpha
  dispersion: float = 0.0  # the null's intra-model correlation rho (0: the binomial)


def binomial_p_value(matches: int, n: int, null_rate: float, dispersion: float = 0.0) -> float:
  """`P(X >= matches)` for X ~ Binomial(n, null_rate), or with `dispersion` rho > 0 the
  beta-binomial of that mean whose trials correlate by rho within one model
  (a + b = 1 / rho - 1): a model's match rate varies around null_rate by
  sqrt(rho + (1 - rho) / n) times the binomial's per-trial sd, not 1 / sqrt(n)."""
  if dispersion <= 0.0 or null_rate <= 0.0 or null_rate >= 1.0:
    return float(stats.binom.sf(matches - 1, n, null_rate))
  s = 1.0 / dispersion - 1.0
  return float(stats.betabinom.sf(matches - 1, n, null_rate * s, (1.0 - null_rate) * s))


def null_dispersion(match_rates: Sequence[float], n: int) -> float:
  """The intra-model correlation rho in [0, 0.999] of the innocents' match rates (R,) on
  n fingerprints, by the method of moments: 0 when they spread no more than
  Binomial(n, mean) / n does (the binomial null fits), else
  rho = (var * n / (mean (1 - mean)) - 1) / (n - 1), var their sample variance.

  Fingerprints are not independent trials when an innocent follows whole groups of
  them (all of one target class): its match rate then spreads widely around the mean
  and a binomial null judges the upper tail of independent models derived. Needs >= 2
  rates; with few innocents rho is itself uncertain (a point estimate)."""
  rates = np.asarray(match_rates, np.float64)
  if rates.ndim != 1 or len(rates) < 2 or not np.all((rates >= 0) & (rates <= 1)):
    raise ValueError(
      f"null_dispersion: match_rates must be >= 2 numbers in [0, 1]; got {match_rates}"
    )
  if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
    raise ValueError(f"null_dispersion: n={n!r} must be an integer >= 2")
  mu = float(rates.mean())
  if mu <= 0.0 or mu >= 1.0:
    return 0.0
  rho = (float(rates.var(ddof=1)) * n / (mu * (1.0 - mu)) - 1.0) / (n - 1)
  return float(min(max(rho, 0.0), 0.999))


def null_rate_upper_bound(match_rates: Sequence[float], n: int, confidence: float = 0.95) -> float:
  """Clopper-Pearson upper bound on the innocents' mean match rate.

  Pools the matches of R innocent models on n fingerprints each (R * n trials).
  """
  if len(match_rates) == 0:
    raise ValueError("null_rate_upper_bound needs at least one innocent match rate")
  rates = np.asarray(match_rates, np.float64)
  if rates.ndim != 1 or not np.all((rates >= 0) & (rates <= 1)):
    raise ValueError(f"null_rate_upper_bound: match_rates must be in [0, 1]; got {match_rates}")
  if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
    raise ValueError(f"null_rate_upper_bound: n={n!r} must be a positive integer")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"null_rate_upper_bound: confidence={confidence} must be in (0, 1)")
  trials = n * len(match_rates)
  k = int(round(sum(match_rates) * n))
  if k >= trials:
    return 1.0
  return float(stats.beta.ppf(confidence, k + 1, trials - k))


def verify(
  fingerprints: Fingerprints,
  suspect: Suspect,
  *,
  null_rate: float,
  alpha: float = 1e-3,
  dispersion: float = 0.0,
) -> Verdict:
  """Tests whether `suspect` was derived from the fingerprinted model.

  Under the null hypothesis ("not derived") the number of matches is
  Binomial(N, null_rate), with null_rate an upper confidence bound on the match
  rate of independent models (see :func:`null_rate_upper_bound`). The suspect is
  judged derived when `P(Binomial(N, null_rate) >= k) < alpha`. `dispersion` rho > 0
  (:func:`null_dispersion` of the innocents' match rates) makes the null the
  beta-binomial of mean null_rate whose trials correlate by rho within a model: the
  test for fingerprints that independent models follow by whole groups.
  """
  if not 0.0 <= null_rate <= 1.0:
    raise ValueError(f"null_rate={null_rate} must be in [0, 1]")
  if not 0.0 < alpha < 1.0:
    raise ValueError(f"alpha={alpha} must be in (0, 1)")
  if not 0.0 <= dispersion < 1.0:
    raise ValueError(f"dispersion={dispersion} must be in [0, 1) (0: the binomial null)")
  labels = _predict(fingerprints, suspect)
  k, n = int(np.sum(labels == fingerprints.y)), len(fingerprints)
  p = binomial_p_value(k, n, null_rate, dispersion)
  return Verdict(k / n, k, n, float(null_rate), p, float(alpha), p < alpha, float(dispersion))


@dataclasses.dataclass(frozen=True)
class CombinedVerdict:
  verdicts: tuple[Verdict, ...]  # one per fingerprint set, each tested at alpha / m
  p_value: float  # min(1, m * the smallest p-value): Bonferroni over the m sets
  alpha: float
  derived: bool  # p_value < alpha: some set's p-value < alpha / m


def combined_p_value(p_values: Sequence[float]) -> float:
  """Bonferroni's p-value (m,) -> min(1, m * min p): the suspect is judged derived at
  alpha when some one of m fingerprint sets has p < alpha / m, so an independent model
  is a false alarm with probability at most alpha whatever the sets' dependence."""
  p = np.asarray(p_values, np.float64)
  if p.ndim != 1 or len(p) == 0 or not np.all((p >= 0) & (p <= 1)):
    raise ValueError(f"combined_p_value: p_values must be >= 1 numbers in [0, 1]; got {p_values}")
  return float(min(1.0, len(p) * p.min()))


def verify_combined(
  fingerprint_sets: Sequence[Fingerprints],
  suspect: Suspect,
  *,
  null_rates: Sequence[float],
  alpha: float = 1e-3,
  dispersions: Sequence[float] | None = None,
) -> CombinedVerdict:
  """Tests a suspect on m fingerprint sets together (e.g. `ucfp.fingerprint`'s examples,
  which copies of the weights keep, and `ucfp.mistake_fingerprints`, which students of
  the model's labels learn): each set by :func:`verify` at alpha / m with its own null
  rate (and dispersion), derived when any set says so. One set: :func:`verify`."""
  m = len(fingerprint_sets)
  dispersions = [0.0] * m if dispersions is None else list(dispersions)
  if m == 0 or len(null_rates) != m or len(dispersions) != m:
    raise ValueError(
      f"verify_combined: {m} fingerprint sets need as many null_rates ({len(null_rates)}) "
      f"and dispersions ({len(dispersions)}), at least one"
    )
  if not 0.0 < alpha < 1.0:
    raise ValueError(f"alpha={alpha} must be in (0, 1)")
  verdicts = tuple(
    verify(fps, suspect, null_rate=r, alpha=alpha / m, dispersion=d)
    for fps, r, d in zip(fingerprint_sets, null_rates, dispersions, strict=True)
  )
  p = combined_p_value([v.p_value for v in verdicts])
  return CombinedVerdict(verdicts, p, float(alpha), p < alpha)
