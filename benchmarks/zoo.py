"""Times the digits (or any preset's) zoo from an empty work directory, then its restore.

    python benchmarks/zoo.py [--config=configs/ltrc.py:digits] [--workdir=/tmp/ucfp-zoo]

Writes benchmarks/results/zoo-<dataset>.json and .md. The work directory is
emptied first unless --keep is given.
"""

from __future__ import annotations

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

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltrc.py", "config[:preset]")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ucfp-zoo-bench", "scratch work directory")
_KEEP = flags.DEFINE_bool("keep", False, "reuse the work directory instead of emptying it")


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
  rows = "\n".join(
    f"| {m['name']} | {m['kind']} | {m['test_accuracy']:.4f} | {m['train_seconds']:.1f} |"
    for m in models
  )

  def worst(kind):
    return min(m["test_accuracy"] for m in models if m["kind"] == kind)

  checks = (
    f"- base test accuracy {worst('base'):.4f} (goal >= 0.95)\n"
    f"- lowest fine-tuned pruned copy {worst('pruned'):.4f} (goal >= 0.85)\n"
    f"- lowest unassociated model {worst('unassociated'):.4f} (goal >= 0.90)\n"
  )
  md = (
    f"# Zoo: {config.dataset}\n\n"
    f"Built from an empty work directory in **{first:.1f} s** wall; the second build "
    f"restored every model in {second:.1f} s and retrained {retrained}.\n\n" + checks + "\n"
    "| model | kind | test accuracy | train seconds |\n|---|---|---|---|\n" + rows
  )
  payload = {
    "dataset": config.dataset,
    "build_seconds": first,
    "restore_seconds": second,
    "retrained_on_restore": retrained,
    "models": models,
  }
  paths = write_results(f"zoo-{config.dataset.split(':')[0]}", payload, md)
  print(md)
  print("wrote", *paths)


if __name__ == "__main__":
  app.run(main)
