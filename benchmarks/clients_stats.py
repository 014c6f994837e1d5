"""The beta-binomial diagnostic of benchmarks/clients_null.py: pure functions, no flags,
so tests and other scripts can import them (see that script's docstring)."""

from __future__ import annotations

from benchmarks.clients_zoo import ALPHA


def beta_binomial_fit(rates, n: int) -> tuple[float, float, float]:
  """(mean, rho, a + b) of the beta-binomial fitted to match rates (R,) of n trials
  each by the method of moments (`ucfp.null_dispersion`; rho = 1 / (a + b + 1), the
  correlation of two trials of one model); rho = 0 and a + b = inf (the binomial) when
  the rates spread no more than Binomial(n, mean) does."""
  import numpy as np

  from ucfp.core.scoring import null_dispersion

  r = np.asarray(rates, np.float64)
  mu = float(r.mean())
  rho = null_dispersion(r, n) if len(r) >= 2 else 0.0
  return mu, rho, (np.inf if rho == 0.0 else 1.0 / rho - 1.0)


def beta_binomial_p_value(k: int, n: int, rates) -> float:
  """P(X >= k) for X of the beta-binomial fitted to `rates` (the binomial at their mean
  when they show no extra spread): `ucfp.verify`'s test at the rates' mean (not its
  upper bound) and their `null_dispersion`."""
  from ucfp.core.scoring import binomial_p_value

  mu, rho, _ = beta_binomial_fit(rates, n)
  if mu <= 0.0:
    return 0.0 if k > 0 else 1.0
  return binomial_p_value(k, n, mu, rho)


def analyse(run: dict, n: int) -> dict:
  """One clients.py run (a method at one K): spread, and the beta-binomial's verdicts."""
  import numpy as np

  derived = run["derived"]
  inn = [m for m in run["match_rate"] if m not in derived and not m.startswith("base-")]
  rates = {m: run["match_rate"][m] for m in inn}
  t = float(np.mean(list(rates.values())))
  alarms = [
    m
    for m in inn
    if beta_binomial_p_value(round(rates[m] * n), n, [rates[o] for o in inn if o != m]) < ALPHA
  ]
  all_rates = list(rates.values())
  detected = {
    d: beta_binomial_p_value(round(v["match_rate"] * n), n, all_rates) < ALPHA
    for d, v in derived.items()
  }
  _, rho, _ = beta_binomial_fit(all_rates, n)
  return {
    "transferability": t,
    "innocent_sd": float(np.std(all_rates, ddof=1)),
    "binomial_sd": float(np.sqrt(t * (1 - t) / n)),
    "rho": rho,
    "false_alarms_binomial": run["false_alarms"],
    "false_alarms_beta_binomial": alarms,
    "missed_binomial": sorted(
      d for d, v in derived.items() if v["useful"] and not v["detected"] and _copy(d)
    ),
    "missed_beta_binomial": sorted(
      d for d, v in derived.items() if v["useful"] and not detected[d] and _copy(d)
    ),
    "students_detected_beta_binomial": sorted(
      d for d, v in derived.items() if v["useful"] and detected[d] and not _copy(d)
    ),
  }


def _copy(name: str) -> bool:
  """A pruned, quantised or fine-tuned copy (the must-detect kinds), not a student."""
  return not name.startswith(("distill-", "extract-"))
