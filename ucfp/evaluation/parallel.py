"""Trains the zoo's models side by side in worker processes (CPU).

On XLA:CPU one training process does not fill two cores: the VGG forward pass takes as
long on one thread as on two, so two single-threaded processes, one per core, train
1.44-1.51x the images per second of one two-threaded process (VGG, VGG-small,
ResNet-20; benchmarks/results/train-speed.md). The zoo's models are independent but
for the base, from which the pruned, surrogate and derived copies are made: workers
train the base first and the references and innocents beside it, then the copies.

    config.train.workers: 1 trains in this process, one model at a time; N > 1 in N
    worker processes, each pinned to its share of the cores; 0 picks: one per core
    (at most MAX_AUTO_WORKERS) on the CPU backend with >= 2 cores, else 1.

Each worker is `python -m ucfp.evaluation.zoo_worker JOBDIR INDEX CORES`: it reads the
config (JSON) and the data (.npz, no pickle) the parent wrote to JOBDIR, then trains the
models named on its stdin one by one (`ucfp.evaluation.zoo.train_one`), caching each in
the work directory exactly as a serial build would, and answers with one `RESULT_TAG`
JSON line per model. Its other output is passed on, prefixed. A failed model stops
the build with the worker's error; what was trained stays cached (the build resumes).
A worker exits on its own once the build's process is gone (`PARENT_ENV`), so killing
the build stops its workers too.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

from ucfp.core import progress
from ucfp.core.io import atomic_write_json, atomic_write_npz

MAX_AUTO_WORKERS = 4
RESULT_TAG = "UCFP_ZOO_RESULT "
# The build's process id, which a worker watches to exit when the build is gone.
PARENT_ENV = "UCFP_ZOO_PARENT"


@dataclasses.dataclass(frozen=True)
class Job:
  name: str  # the model's name in the zoo
  kind: str  # base | reference | unassociated | pruned | surrogate | derived

  @property
  def needs_base(self) -> bool:
    """Made from the base (its weights or its outputs): trained after it."""
    return self.kind not in ("base", "reference", "unassociated")


def _cores() -> list[int]:
  if hasattr(os, "sched_getaffinity"):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


def check_workers(value) -> None:
  """Raises ValueError naming config.train.workers unless it is an int >= 0."""
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise ValueError(
      f"config.train.workers={value!r} must be 0 (one per core on a CPU), 1 (this "
      "process) or a number of worker processes"
    )


def resolve_workers(requested: int, jobs: int) -> list[list[int]]:
  """The cores of each worker for `jobs` models to train ([] : train in this process).

  Raises ValueError naming config.train.workers when it is negative, or > 1 on an
  accelerator backend (one process per device there).
  """
  import jax

  check_workers(requested)
  cpu = jax.default_backend() == "cpu"
  if requested > 1 and not cpu:
    raise ValueError(
      f"config.train.workers={requested} needs the CPU backend (this one is "
      f"{jax.default_backend()}): set 1 or 0 to train in this process on the accelerator"
    )
  cores = _cores()
  if requested == 0:
    requested = min(len(cores), MAX_AUTO_WORKERS) if cpu else 1
  n = min(requested, jobs)
  if n <= 1:
    return []
  return [cores[i::n] for i in range(n)]  # empty when more workers than cores: unpinned


def _worker_env(cores: list[int]) -> dict:
  """The worker's environment: XLA:CPU (and BLAS) limited to its cores' count."""
  threads = max(1, len(cores))
  env = dict(os.environ)
  flags = env.get("XLA_FLAGS", "")
  flags += (
    " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if threads == 1
    else f" intra_op_parallelism_threads={threads}"
  )
  env["XLA_FLAGS"] = flags.strip()
  env["JAX_PLATFORMS"] = "cpu"
  env[PARENT_ENV] = str(os.getpid())
  for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    env[var] = str(threads)
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  return env


def _write_jobdir(jobdir: str, config, data, workdir: str, scope: str) -> None:
  os.makedirs(jobdir, exist_ok=True)
  atomic_write_npz(
    os.path.join(jobdir, "data.npz"),
    train_x=data.train_x,
    train_y=data.train_y,
    test_x=data.test_x,
    test_y=data.test_y,
  )
  info = dataclasses.asdict(data.info)
  atomic_write_json(
    os.path.join(jobdir, "job.json"),
    {
      "config": json.loads(config.to_json()),
      "info": info,
      "workdir": os.path.abspath(workdir),
      "scope": scope,
      "progress": progress.progress_enabled(),
    },
  )


def _read(i: int, proc: subprocess.Popen, results: queue.Queue, tail: collections.deque):
  """Passes the worker's output on (prefixed) and its results to `results`."""
  for line in proc.stdout:
    if line.startswith(RESULT_TAG):
      results.put((i, json.loads(line[len(RESULT_TAG) :])))
      continue
    tail.append(line)
    if progress.progress_enabled():
      sys.stdout.write(f"[worker {i}] {line}")
      sys.stdout.flush()
  results.put((i, None))  # the worker's output ended


def run_jobs(jobs: list[Job], config, data, workdir: str, scope: str) -> tuple[dict, int]:
  """Trains `jobs` in `config.train.workers` processes: ({name: training seconds}, the
  number of workers), or ({}, 1) when they are to be trained in this process."""
  groups = resolve_workers(config.train.workers, len(jobs))
  if not groups:
    return {}, 1
  jobdir = os.path.join(os.path.abspath(workdir), "parallel-build")
  _write_jobdir(jobdir, config, data, workdir, scope)
  progress.note(f"zoo: training {len(jobs)} models in {len(groups)} worker processes")
  results: queue.Queue = queue.Queue()
  procs, tails = [], []
  try:
    for i, cores in enumerate(groups):
      cmd = [sys.executable, "-m", "ucfp.evaluation.zoo_worker", jobdir, str(i)]
      cmd.append(",".join(map(str, cores)))
      proc = subprocess.Popen(
        cmd,
        env=_worker_env(cores),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
      )
      tail: collections.deque = collections.deque(maxlen=40)
      threading.Thread(target=_read, args=(i, proc, results, tail), daemon=True).start()
      procs.append(proc)
      tails.append(tail)
    return _schedule(jobs, procs, tails, results), len(groups)
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.stdin.close()
    deadline = time.monotonic() + 30
    for proc in procs:
      try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(jobdir, ignore_errors=True)


def _schedule(jobs, procs, tails, results) -> dict:
  """Gives each idle worker the next job (the copies of the base once it is cached).
  With the base cached, `jobs` go out in their build order (the owner's references and
  surrogates, the pruned copies, the innocents, the attacks), so a build resumed
  across sessions can be scored (`--cached_only`) with the owner's models early."""
  if not any(j.kind == "base" for j in jobs):
    ready, later = collections.deque(jobs), []  # the base is cached: plan order
  else:
    later = [j for j in jobs if j.needs_base]
    ready = collections.deque(j for j in jobs if not j.needs_base)
  running: dict[int, Job] = {}
  done: dict[str, float] = {}
  idle = list(range(len(procs)))
  while len(done) < len(jobs):
    while idle and ready:
      i, job = idle.pop(0), ready.popleft()
      running[i] = job
      procs[i].stdin.write(job.name + "\n")
      procs[i].stdin.flush()
    i, res = results.get()
    if res is None or "error" in res:
      what = running.get(i)
      detail = res["error"] if res else "".join(tails[i])[-3000:]
      raise RuntimeError(
        f"zoo worker {i} failed while training {what.name if what else 'nothing'}: "
        f"{detail}\n(the models trained so far are cached: run again to resume)"
      )
    done[res["name"]] = float(res["seconds"])
    finished = running.pop(i)
    idle.append(i)
    if finished.kind == "base" and later:
      ready.extend(later)
      later = []
  return done
