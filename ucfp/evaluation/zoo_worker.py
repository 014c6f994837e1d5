"""A worker of a parallel zoo build (`ucfp.evaluation.parallel`):

    python -m ucfp.evaluation.zoo_worker JOBDIR INDEX CORES

reads the config (JSON) and the data (.npz, no pickle) from JOBDIR, pins itself to
CORES, then trains and caches the models named on its stdin one by one, answering
each with a `RESULT_TAG` JSON line (its training seconds, or the error).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

from ucfp.core import progress
from ucfp.evaluation.parallel import RESULT_TAG


def _worker(jobdir: str, index: int, cores: str) -> None:
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
