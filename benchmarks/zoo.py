"""Times the digits (or any preset's) zoo from an empty work directory, then its restore.

    python benchmarks/zoo.py [--config=configs/ltrc.py:digits] [--workdir=/tmp/ucfp-zoo]
      [--compare=benchmarks/results/quality-cifar10.json] [--record_minutes]

Writes benchmarks/results/zoo-<tag or dataset>.json and .md: each model's test
accuracy and training seconds, and their total (`train_minutes`). --compare: a
quality-*.json whose `zoo` gives each model's accuracy and seconds before; every model
is checked to be within --tolerance of it, and its total is `before_minutes`.
--record_minutes: also writes `zoo_minutes` {before, after} into
benchmarks/results/train-speed.json. The work directory is emptied first unless --keep.
The CIFAR-10 zoo of the quality benchmark (issue #19), ~1 h on 2 cores:

    python benchmarks/zoo.py --config=configs/ltrc.py:cifar10 --config.zoo.extended=True \
      --config.dataset=imagefolder:/work/shared/data/cifar10-jpeg.tar.gz \
      --workdir=/tmp/ucfp-zoo-cifar10 --tag=cifar10 \
      --compare=benchmarks/results/quality-cifar10.json --record_minutes
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks.common import write_results  # noqa: E402
from ucfp.core import progress  # noqa: E402
from ucfp.evaluation.data import load_dataset  # noqa: E402
from ucfp.evaluation.zoo import build_zoo  # noqa: E402

# Accuracy goals per dataset (the presets' comments in configs/base.py).
GOALS = {
  "digits": {"base": 0.95, "pruned": 0.85, "unassociated": 0.90},
  "cifar10": {"base": 0.80, "unassociated": 0.65},
}

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltrc.py", "config[:preset]")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ucfp-zoo-bench", "scratch work directory")
_KEEP = flags.DEFINE_bool("keep", False, "reuse the work directory instead of emptying it")
_TAG = flags.DEFINE_string("tag", None, "results name zoo-<tag> (default: the dataset name)")
_COMPARE = flags.DEFINE_string("compare", None, "a quality-*.json whose zoo to compare with")
_TOLERANCE = flags.DEFINE_float("tolerance", 0.01, "largest accuracy change allowed by --compare")
_RECORD = flags.DEFINE_bool("record_minutes", False, "write zoo_minutes into train-speed.json")


def compare(models: list[dict], before: dict, tolerance: float) -> dict:
  """Adds `before_accuracy` and `within` to each model (in place); the totals.

  models: this build's [{name, test_accuracy, train_seconds}]; before: a quality json's
  `zoo` {name: {test_accuracy, train_seconds}}. A model absent from it is not within.
  """
  for m in models:
    old = before.get(m["name"])
    m["before_accuracy"] = old and old["test_accuracy"]
    m["within"] = bool(old) and abs(m["test_accuracy"] - old["test_accuracy"]) <= tolerance
  return {
    "before_minutes": sum(v["train_seconds"] for v in before.values()) / 60,
    "all_within": all(m["within"] for m in models) and len(models) == len(before),
    "tolerance": tolerance,
  }


def record_minutes(before: float | None, after: float, all_within: bool | None) -> str:
  """Writes `zoo_minutes` into train-speed.json (kept by later train_speed.py runs)."""
  from benchmarks.common import RESULTS, provenance
  from ucfp.core.io import atomic_write_json

  path = os.path.join(RESULTS, "train-speed.json")
  res = json.load(open(path)) if os.path.exists(path) else {}
  prov = provenance()
  res["zoo_minutes"] = {
    "before": before,
    "after": after,
    "accuracies_within_tolerance": all_within,
    "command": prov["command"],
    "commit": prov["commit"],
    "date": prov["date"],
  }
  atomic_write_json(path, res)
  return path


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  progress.show_progress()
  config, workdir = _CONFIG.value, _WORKDIR.value
  if not _KEEP.value and os.path.exists(workdir):
    shutil.rmtree(workdir)
  data = load_dataset(config.dataset, cache_dir=os.path.join(workdir, "data"))
  progress.note(f"building the zoo in {workdir}")
  t = time.perf_counter()
  zoo = build_zoo(config, data, workdir)
  first = time.perf_counter() - t
  workers = zoo.workers
  progress.note("restoring it")
  t = time.perf_counter()
  again = build_zoo(config, data, workdir)
  second = time.perf_counter() - t
  retrained = sum(m.seconds > 0 for m in again.all())
  models = [
    {
      "name": m.name,
      "kind": m.kind,
      "test_accuracy": m.test_accuracy,
      "rate": m.rate,
      "train_seconds": m.seconds,
    }
    for m in zoo.all()
  ]
  cmp = None
  if _COMPARE.value:
    cmp = compare(models, json.load(open(_COMPARE.value))["zoo"], _TOLERANCE.value)
  train_minutes = sum(m["train_seconds"] for m in models) / 60

  def row(m):
    r = f"| {m['name']} | {m['kind']} | {m['test_accuracy']:.4f} | {m['train_seconds']:.1f} |"
    if cmp:
      old = "-" if m["before_accuracy"] is None else f"{m['before_accuracy']:.4f}"
      r += f" {old} | {'yes' if m['within'] else 'NO'} |"
    return r

  rows = "\n".join(map(row, models))

  def worst(kind):
    return min(m["test_accuracy"] for m in models if m["kind"] == kind)

  goals = next((g for name, g in GOALS.items() if name in config.dataset), {})
  checks = "".join(
    f"- lowest {what} {worst(kind):.4f}"
    + (f" (goal >= {goals[kind]:g})\n" if kind in goals else "\n")
    for kind, what in (
      ("base", "base"),
      ("pruned", "fine-tuned pruned copy"),
      ("unassociated", "unassociated model"),
    )
    if any(m["kind"] == kind for m in models)
  )
  head = "| model | kind | test accuracy | train seconds |"
  if cmp:
    head += f" accuracy before | within {cmp['tolerance']:g} |"
    checks += (
      f"- built in {first / 60:.1f} min wall, {train_minutes:.1f} min of model training "
      f"summed over {workers} worker(s) (before: {cmp['before_minutes']:.1f} min of training, one "
      "process, "
      f"{_COMPARE.value}); every accuracy within {cmp['tolerance']:g} of before: "
      f"{'yes' if cmp['all_within'] else 'NO'}\n"
    )
  md = (
    f"# Zoo: {config.dataset}\n\n"
    f"Built from an empty work directory in **{first:.1f} s** wall with "
    f"config.train.workers={config.train.workers} ({workers} worker process(es); "
    f"{train_minutes:.1f} min of model training summed over them); the second build restored every model in {second:.1f} s and "
    f"retrained {retrained}. Load average (1, 5, 15 min) at the end: "
    + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    + " (2 shared cores).\n\n"
    + checks
    + "\n"
    + head
    + "\n|"
    + "---|" * head.count(" |")
    + "\n"
    + rows
  )
  payload = {
    "dataset": config.dataset,
    "build_seconds": first,
    "restore_seconds": second,
    "retrained_on_restore": retrained,
    "train_minutes": train_minutes,
    "build_minutes": first / 60,
    "workers": workers,
    "loadavg_end": os.getloadavg(),
    "compare": cmp and {**cmp, "file": _COMPARE.value},
    "models": models,
  }
  paths = write_results(f"zoo-{_TAG.value or config.dataset.split(':')[0]}", payload, md)
  if _RECORD.value:
    before = cmp and cmp["before_minutes"]
    print("recorded zoo_minutes in", record_minutes(before, first / 60, cmp and cmp["all_within"]))
  print(md)
  print("wrote", *paths)


if __name__ == "__main__":
  app.run(main)
