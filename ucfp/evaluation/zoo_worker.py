"""A worker of a parallel zoo build (`ucfp.evaluation.parallel`):

    python -m ucfp.evaluation.zoo_worker JOBDIR INDEX CORES

reads the config (JSON) and the data (.npz, no pickle) from JOBDIR, pins itself to
CORES, then trains and caches the models named on its stdin one by one, answering
each with a `RESULT_TAG` JSON line (its training seconds, or the error). It exits as
soon as its parent (the build) is gone, so that killing the build (SIGTERM, SIGKILL, a
notebook's interrupt) does not leave workers training models nobody collects.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

import numpy as np

from ucfp.core import progress
from ucfp.evaluation.parallel import PARENT_ENV, RESULT_TAG


def exit_with_parent(parent: int, interval: float = 1.0) -> threading.Thread:
  """Starts a daemon thread that ends this process (exit status 1) once `parent` is no
  longer its parent process: the parent died and the process was re-parented. A model
  in training is lost, never half-written (the cache writes are atomic)."""

  def watch():
    while os.getppid() == parent:
      time.sleep(interval)
    os._exit(1)  # not SystemExit: that would only end this thread

  thread = threading.Thread(target=watch, name="ucfp-parent-watch", daemon=True)
  thread.start()
  return thread


def _worker(jobdir: str, index: int, cores: str) -> None:
  if os.environ.get(PARENT_ENV):
    exit_with_parent(int(os.environ[PARENT_ENV]))
  if cores and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, [int(c) for c in cores.split(",")])
  import ml_collections

  from ucfp.evaluation.data import Dataset, DatasetInfo
  from ucfp.evaluation.zoo import train_one

  with open(os.path.join(jobdir, "job.json")) as f:
    job = json.load(f)
  with np.load(os.path.join(jobdir, "data.npz"), allow_pickle=False) as z:
    arrays = {k: z[k] for k in z.files}
  info = job["info"]
  info = DatasetInfo(
    info["name"], info["num_classes"], tuple(info["image_shape"]), tuple(info["class_names"])
  )
  data = Dataset(info=info, **arrays)
  config = ml_collections.ConfigDict(job["config"])
  progress.show_progress(job["progress"])
  for line in sys.stdin:
    name = line.strip()
    try:
      seconds = train_one(config, data, job["workdir"], job["scope"], name)
    except Exception as e:  # reported to the parent, which stops the build
      print(RESULT_TAG + json.dumps({"name": name, "error": traceback.format_exc()}), flush=True)
      raise SystemExit(1) from e
    print(RESULT_TAG + json.dumps({"name": name, "seconds": seconds}), flush=True)


if __name__ == "__main__":
  _worker(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
