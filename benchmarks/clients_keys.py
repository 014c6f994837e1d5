"""How much of a client cell's verdict is the generation key's luck (issue #20).

    python benchmarks/clients.py --methods=ucfp_own --key=1 --tag=digits-key1 ...
    python benchmarks/clients_keys.py --tags=digits,digits-key1,digits-key2 \
        [--method=ucfp_own] [--out=digits]

Reads `benchmarks/results/clients-<tag>.json` of runs on the same models that differ
only in `benchmarks/clients.py --key` (the PRNGKey of `ucfp.fingerprint`: other start
images and noise), and per setup and K sets the keys side by side: US, T, false alarms
(innocents judged derived with the null rate from the other innocents, alpha 1e-3)
and whether the goal (US >= 0.85, T <= 0.10, 0 false alarms, every useful pruned, int8
and fine-tuned copy detected) is met. Summed over the keys: per cell how often the goal
is met, and per setup the innocents' false alarms per innocent test (innocents x keys x
K values), the rate a user of that setup meets. No model is run.

With `--selection` the tags name benchmarks/clients_selection.py's results instead
(each `+`-joined tag one key's files) and `--method` one of its levers:

    python benchmarks/clients_keys.py --selection --method=val+cap15 --out=digits-cap15 \
        --tags=digits-across-key0+digits-across-k24-key0,digits-across-key1+...

Writes benchmarks/results/clients-<out>-keys.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks.clients_report import missed_copies  # noqa: E402
from benchmarks.common import RESULTS, write_results  # noqa: E402

_TAGS = flags.DEFINE_list("tags", ["digits"], "clients-<tag>.json files, one per key")
_METHOD = flags.DEFINE_string("method", "ucfp_own", "the method compared across keys")
_OUT = flags.DEFINE_string("out", "digits", "writes clients-<out>-keys.{json,md}")
_SELECTION = flags.DEFINE_bool(
  "selection",
  False,
  "tags name benchmarks/clients_selection.py results (clients-<tag>-selection.json), "
  "--method one of their levers; a tag may join several files of one key with '+'",
)


def load_source(tag: str, selection: bool) -> dict:
  """The clients results payload of `tag`: clients-<tag>.json, or with `selection` the
  rows of clients-<part>-selection.json for each '+'-joined part, as setup -> runs
  ("<lever>/K=<k>" -> row), the layout of benchmarks/clients.py's results."""
  if not selection:
    return _read(f"clients-{tag}.json", "clients.py", tag)
  out = {"setups": {}, "command": []}
  for part in tag.split("+"):
    src = _read(f"clients-{part}-selection.json", "clients_selection.py", part)
    out["command"].append(src.get("command"))
    for row in src["rows"]:
      runs = out["setups"].setdefault(row["setup"], {"runs": {}})["runs"]
      runs[f"{row['lever']}/K={row['k']}"] = row
  return out


def _read(name: str, script: str, tag: str) -> dict:
  """benchmarks/results/<name> as JSON, or a UsageError naming the run that writes it."""
  path = os.path.join(RESULTS, name)
  if not os.path.exists(path):
    raise app.UsageError(f"--tags: no {path}; run benchmarks/{script} --tag={tag} first")
  with open(path) as f:
    return json.load(f)


def cell(run: dict) -> dict:
  """One (setup, K) run of a clients results file -> the verdict's parts."""
  missed = missed_copies(run)
  us, t, alarms = run["uniqueness_score"], run["transferability"], run["false_alarms"]
  return {
    "uniqueness_score": us,
    "transferability": t,
    "false_alarms": alarms,
    "missed": missed,
    "met": us >= 0.85 and t <= 0.10 and not alarms and not missed,
  }


def compare(sources: dict, method: str) -> dict:
  """sources: tag -> a clients results payload. Returns per setup: per K the cells of
  every tag, how many met the goal, and the setup's false alarms per innocent test."""
  out = {}
  setups = sorted(set.intersection(*(set(s["setups"]) for s in sources.values())))
  for setup in setups:
    runs = {tag: src["setups"][setup]["runs"] for tag, src in sources.items()}
    ks = sorted(
      {int(r.split("K=")[1]) for rs in runs.values() for r in rs if r.startswith(method + "/")},
      reverse=True,
    )
    rows, alarms, tests = {}, {}, 0
    for k in ks:
      name = f"{method}/K={k}"
      cells = {tag: cell(rs[name]) for tag, rs in runs.items() if name in rs}
      if len(cells) < len(runs):
        continue  # a tag without this cell: not comparable
      tests += sum(len(rs[name]["innocent_classes"]) for rs in runs.values())  # innocents
      for c in cells.values():
        for a in c["false_alarms"]:
          alarms[a] = alarms.get(a, 0) + 1
      rows[str(k)] = {"cells": cells, "met": sum(c["met"] for c in cells.values())}
    out[setup] = {
      "ks": rows,
      "innocent_tests": tests,
      "false_alarms": sum(alarms.values()),
      "alarms_by_innocent": dict(sorted(alarms.items(), key=lambda kv: -kv[1])),
    }
  return out


def markdown(out: dict, tags: list, method: str, selection: bool = False) -> str:
  lines = [
    f"# Client models across generation keys: `{method}`",
    "",
    "The same models, fingerprints generated with other keys (`benchmarks/clients.py "
    "--key`: other start images and noise); per key US / T / false alarms (bold: the "
    "goal US >= 0.85, T <= 0.10, 0 false alarms, every useful pruned, int8 and "
    "fine-tuned copy detected). Sources: "
    + ", ".join(f"clients-{t}.json" for t in tags)
    + "."
    + (
      " (`a+b`: the rows of clients-a-selection.json and clients-b-selection.json.)"
      if selection
      else ""
    ),
    "",
    "| setup | K | " + " | ".join(tags) + " | met |",
    "|---|---|" + "---|" * len(tags) + "---|",
  ]
  for setup, s in out["setups"].items():
    for k, row in s["ks"].items():
      cells = []
      for t in tags:
        c = row["cells"][t]
        txt = f"{c['uniqueness_score']:.3f} / {c['transferability']:.3f} / {len(c['false_alarms'])}"
        cells.append(f"**{txt}**" if c["met"] else txt)
      lines.append(f"| {setup} | {k} | " + " | ".join(cells) + f" | {row['met']} of {len(tags)} |")
  lines += [
    "",
    "False alarms per innocent test (innocents x keys x K values), and which innocents:",
    "",
    "| setup | false alarms / tests | rate | innocents (times accused) |",
    "|---|---|---|---|",
  ]
  for setup, s in out["setups"].items():
    who = ", ".join(f"{n} ({c})" for n, c in s["alarms_by_innocent"].items()) or "none"
    rate = s["false_alarms"] / s["innocent_tests"] if s["innocent_tests"] else float("nan")
    lines.append(f"| {setup} | {s['false_alarms']} / {s['innocent_tests']} | {rate:.3f} | {who} |")
  met = sum(r["met"] for s in out["setups"].values() for r in s["ks"].values())
  total = sum(len(r["cells"]) for s in out["setups"].values() for r in s["ks"].values())
  lines += ["", f"Goal met in {met} of {total} (cell, key) pairs.", ""]
  return "\n".join(lines)


def main(argv):
  del argv
  sources = {tag: load_source(tag, _SELECTION.value) for tag in _TAGS.value}
  out = {
    "method": _METHOD.value,
    "tags": _TAGS.value,
    "commands": {t: s.get("command") for t, s in sources.items()},
    "setups": compare(sources, _METHOD.value),
  }
  write_results(
    f"clients-{_OUT.value}-keys", out, markdown(out, _TAGS.value, _METHOD.value, _SELECTION.value)
  )


if __name__ == "__main__":
  app.run(main)
