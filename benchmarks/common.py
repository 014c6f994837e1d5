"""Shared helpers: where results go and how they record the command, commit and machine."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tests point this elsewhere so a tiny run never overwrites the committed results.
RESULTS = os.environ.get("UCFP_RESULTS_DIR", os.path.join(ROOT, "benchmarks", "results"))


def provenance() -> dict:
  """The command, commit, machine and library versions of this run."""
  try:
    commit = subprocess.run(
      ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
      # results files a run rewrites do not make the code dirty
      ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
      cwd=ROOT,
      capture_output=True,
      text=True,
    ).stdout.strip()
  except OSError:
    commit, dirty = "unknown", ""
  return {
    "command": "python " + " ".join(sys.argv),
    "commit": commit + ("+dirty" if dirty else ""),
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
    f"{platform.release()}, python {platform.python_version()}",
    "backend": f"jax {jax.__version__} {jax.default_backend()} ({len(jax.devices())} device(s))",
  }


def write_results(name: str, payload: dict, markdown: str) -> tuple[str, str]:
  """Writes `benchmarks/results/<name>.json` and `.md` (atomically)."""
  from ucfp.core.io import atomic_write_json

  prov = provenance()
  payload = {**payload, **prov}
  json_path = os.path.join(RESULTS, f"{name}.json")
  md_path = os.path.join(RESULTS, f"{name}.md")
  atomic_write_json(json_path, payload)
  header = (
    f"Command: `{prov['command']}`  \nCommit: `{prov['commit']}`, {prov['date']}  \n"
    f"Machine: {prov['machine']}; {prov['backend']}\n\n"
  )
  tmp = md_path + ".tmp"
  with open(tmp, "w") as f:
    f.write(markdown.rstrip() + "\n\n" + header)
  os.replace(tmp, md_path)
  return json_path, md_path


def timed(fn, max_total=30.0, min_reps=3, max_reps=41, min_total=2.0):
  """(first call seconds, median of further calls; for a step slower than `max_total`,
  the first call: compilation happens before, so it is a steady step).

  Fast steps are repeated until `min_total` seconds or `max_reps` calls (at least
  `min_reps`): on this shared VM a 30 ms step varies by +-30% from call to call, and a
  median of 3 calls was off by up to 2x between runs.
  """
  t = time.perf_counter()
  fn()
  first = time.perf_counter() - t
  if first > max_total:
    return first, first
  times = []
  while len(times) < max_reps:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
    total = sum(times)
    if total > max_total or (len(times) >= min_reps and total >= min_total):
      break
  return first, statistics.median(times)


def peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_in_subprocess(
  script: str, args: dict, env: dict | None = None, timeout: float = 1800
) -> dict:
  """Runs `python <script> --one <json args>` in a fresh process (its own compile caches
  and peak memory) and returns the dict it printed on a `RESULT <json>` line, or
  `{"error": ...}` with the end of its output."""
  cmd = [sys.executable, script, "--one", json.dumps(args)]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
  for line in out.stdout.splitlines()[::-1]:
    if line.startswith("RESULT "):
      return json.loads(line[7:])
  return {"error": (out.stderr or out.stdout)[-500:]}


def print_result(res: dict) -> None:
  """The child's side of `run_in_subprocess`."""
  print("RESULT " + json.dumps(res), flush=True)
