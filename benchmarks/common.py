"""Shared helpers: where results go and how they record the command, commit and machine."""

from __future__ import annotations

import os
import platform
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
      ["git", "status", "--porcelain", "--untracked-files=no"],
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
  from ucfp.store import atomic_write_json

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
