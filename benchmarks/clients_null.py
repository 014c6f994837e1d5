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

from benchmarks.clients_stats import analyse  # noqa: E402
from benchmarks.common import RESULTS, write_results  # noqa: E402

_TAG = flags.DEFINE_string("tag", "digits", "reads benchmarks/results/clients-<tag>.json")
_N = flags.DEFINE_integer("num_fingerprints", 100, "N of that run")


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
