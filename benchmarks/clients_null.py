"""How well the binomial null fits the innocents of benchmarks/clients.py's results.

    python benchmarks/clients_null.py [--tag=digits] [--num_fingerprints=100]

Reads `benchmarks/results/clients-<tag>.json` (no model is run) and, per setup,
method and K, sets the innocents' spread of match rates beside the binomial's: the
binomial null (`ucfp.verify`, the false alarms of the clients tables) treats the N
fingerprints as independent trials with one rate, but an innocent follows the
fingerprints of a few target classes nearly all and the rest nearly none
(`innocent_classes` in newer clients results), so innocents differ far more than
Binomial(N, T) allows. As a diagnostic beside the contract's test, the same leave-one-out
false alarms and detections are counted with a beta-binomial null fitted to the other
innocents by the method of moments (the binomial where they show no extra spread).
Writes benchmarks/results/clients-<tag>-null.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.common import RESULTS, write_results  # noqa: E402

_TAG = flags.DEFINE_string("tag", "digits", "reads benchmarks/results/clients-<tag>.json")
_N = flags.DEFINE_integer("num_fingerprints", 100, "N of that run")
ALPHA = 1e-3


def beta_binomial_fit(rates, n: int) -> tuple[float, float, float]:
  """(mean, rho, a + b) of the beta-binomial fitted to match rates (R,) of n trials
  each by the method of moments (rho = 1 / (a + b + 1), the correlation of two trials
  of one model); rho = 0 and a + b = inf (the binomial) when the rates spread no more
  than Binomial(n, mean) does."""
  import numpy as np

  r = np.asarray(rates, np.float64)
  mu = float(r.mean())
  if len(r) < 2 or mu <= 0.0 or mu >= 1.0:
    return mu, 0.0, np.inf
  var = float(r.var(ddof=1))
  rho = (var * n / (mu * (1 - mu)) - 1) / (n - 1)
  rho = min(max(rho, 0.0), 0.999)
  return mu, rho, (np.inf if rho == 0.0 else 1.0 / rho - 1.0)


def beta_binomial_p_value(k: int, n: int, rates) -> float:
  """P(X >= k) for X of the beta-binomial fitted to `rates` (the binomial at their mean
  when they show no extra spread)."""
  import numpy as np
  from scipy import stats

  mu, rho, s = beta_binomial_fit(rates, n)
  if mu <= 0.0:
    return 0.0 if k > 0 else 1.0
  if not np.isfinite(s):
    return float(stats.binom.sf(k - 1, n, mu))
  return float(stats.betabinom.sf(k - 1, n, mu * s, (1 - mu) * s))


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


def main(argv):
  del argv
  path = os.path.join(RESULTS, f"clients-{_TAG.value}.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"--tag={_TAG.value}: no {path}; run benchmarks/clients.py first")
  with open(path) as f:
    src = json.load(f)
  rows = []
  for setup, s in src["setups"].items():
    for key, run in s["runs"].items():
      method, k = key.split("/K=")
      rows.append({"setup": setup, "method": method, "k": int(k), **analyse(run, _N.value)})
  out = {"source": path, "source_commit": src.get("commit"), "rows": rows}
  write_results(f"clients-{_TAG.value}-null", out, markdown(out, _TAG.value))


def markdown(out: dict, tag: str) -> str:
  lines = [
    f"# Client models: {tag}, the innocents' spread against the binomial null",
    "",
    f"From [clients-{tag}.json](clients-{tag}.json) (commit {out['source_commit']}); no",
    "model run here. sd: the innocents' match rates' standard deviation; binomial sd:",
    "sqrt(T (1 - T) / N), what it would be if every fingerprint were an independent",
    "trial at rate T; rho: the beta-binomial's intra-model correlation fitted to them.",
    "False alarms and missed pruned / int8 / fine-tuned copies: with the binomial null",
    "(the clients tables, `ucfp.verify`) and with the beta-binomial null (a diagnostic,",
    "leave-one-out as the binomial's, alpha 1e-3). Rows identical for every K are",
    "shown once.",
    "",
    "| setup | method | K | T | sd | binomial sd | rho | false alarms (binomial) | "
    "false alarms (beta-binomial) | missed (binomial) | missed (beta-binomial) | "
    "students detected (beta-binomial) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  seen = set()
  for r in out["rows"]:
    ident = (r["setup"], r["method"], r["transferability"], r["innocent_sd"])
    if ident in seen:
      continue
    seen.add(ident)
    lines.append(
      f"| {r['setup']} | {r['method']} | {r['k']} | {r['transferability']:.3f} | "
      f"{r['innocent_sd']:.3f} | {r['binomial_sd']:.3f} | {r['rho']:.3f} | "
      f"{len(r['false_alarms_binomial'])} | {len(r['false_alarms_beta_binomial'])} | "
      f"{', '.join(r['missed_binomial']) or 'none'} | "
      f"{', '.join(r['missed_beta_binomial']) or 'none'} | "
      f"{', '.join(r['students_detected_beta_binomial']) or 'none'} |"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
