"""The zoo trained in worker processes (config.train.workers): the same models, cached
the same way, the base before its copies, failures reported."""

import math
import os
import queue

import pytest

from configs import ltrc
from ucfp.evaluation import parallel
from ucfp.evaluation.checks import validate_config
from ucfp.evaluation.parallel import Job


class _FakeWorker:
  """Answers each job written to its stdin at once (seconds 1, or an error)."""

  def __init__(self, i, log, results, fail=()):
    self.i, self.log, self.results, self.fail = i, log, results, fail
    self.stdin = self

  def write(self, text):
    name = text.strip()
    self.log.append(name)
    res = {"name": name, "error": "boom"} if name in self.fail else {"name": name, "seconds": 1.0}
    self.results.put((self.i, res))

  def flush(self):
    pass


def _run_schedule(jobs, workers=2, fail=()):
  log, results = [], queue.Queue()
  procs = [_FakeWorker(i, log, results, fail) for i in range(workers)]
  done = parallel._schedule(jobs, procs, [[] for _ in procs], results)
  return done, log


JOBS = [
  Job("base-vgg", "base"),
  Job("reference-vgg-s1", "reference"),
  Job("surrogate-pruned-0.8", "surrogate"),
  Job("pruned-0.5", "pruned"),
  Job("innocent-vgg-s2", "unassociated"),
  Job("distilled", "derived"),
]


def test_schedule_trains_the_base_before_its_copies():
  done, log = _run_schedule(JOBS)
  assert sorted(done) == sorted(j.name for j in JOBS)
  assert sorted(log) == sorted(done)  # each job given out once
  first_copy = min(log.index(j.name) for j in JOBS if j.needs_base)
  assert log.index("base-vgg") < first_copy
  # the copies wait for the base, the independent models do not
  assert log.index("innocent-vgg-s2") < first_copy


def test_schedule_starts_copies_at_once_when_the_base_is_cached():
  jobs = [j for j in JOBS if j.kind != "base"]
  done, log = _run_schedule(jobs, workers=3)
  assert sorted(done) == sorted(j.name for j in jobs)
  # in build order: the owner's surrogate and the pruned copies before the innocents
  assert log == [j.name for j in jobs]


def test_schedule_reports_a_failed_job():
  with pytest.raises(RuntimeError, match=r"worker \d failed while training pruned-0.5: boom"):
    _run_schedule(JOBS, fail=("pruned-0.5",))


def test_workers_field_is_checked_before_any_compute():
  cfg = ltrc.get_config("tiny")
  cfg.unlock()
  cfg.train.workers = -1  # (ml_collections itself refuses a value that is not an int)
  with pytest.raises(ValueError, match="config.train.workers"):
    validate_config(cfg)
  for bad in (-1, 1.5, True, "2"):
    with pytest.raises(ValueError, match="config.train.workers"):
      parallel.resolve_workers(bad, 4)


def test_resolve_workers_on_cpu(monkeypatch):
  monkeypatch.setattr(parallel, "_cores", lambda: [0, 1])
  assert parallel.resolve_workers(1, 10) == []
  assert parallel.resolve_workers(0, 10) == [[0], [1]]  # auto: one per core
  assert parallel.resolve_workers(0, 1) == []  # one model: this process
  assert parallel.resolve_workers(3, 10) == [[0], [1], []]  # more than cores: unpinned
  env = parallel._worker_env([1])
  assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"] and env["JAX_PLATFORMS"] == "cpu"
  assert env[parallel.PARENT_ENV] == str(os.getpid())  # the worker watches it


def _tiny(workers):
  cfg = ltrc.get_config("tiny")
  cfg.unlock()
  cfg.train.workers = workers
  return cfg


def test_parallel_build_caches_the_serial_builds_models(tmp_path, digits):
  from ucfp.evaluation.zoo import build_zoo

  par = build_zoo(_tiny(2), digits, str(tmp_path / "par"))
  assert par.workers == 2
  assert all(m.seconds > 0 for m in par.all())  # each trained by a worker in this build
  again = build_zoo(_tiny(1), digits, str(tmp_path / "par"))  # serial: restores them all
  assert all(m.seconds == 0 for m in again.all())
  serial = build_zoo(_tiny(1), digits, str(tmp_path / "serial"))
  names = [m.name for m in serial.all()]
  assert [m.name for m in par.all()] == names
  for p, s in zip(par.all(), serial.all(), strict=True):
    assert math.isfinite(p.test_accuracy)
    assert p.test_accuracy == pytest.approx(s.test_accuracy, abs=0.02), p.name


def test_a_failing_worker_stops_the_build(tmp_path, digits):
  jobs = [Job("no-such-model", "reference"), Job("nor-this-one", "reference")]
  with pytest.raises(RuntimeError, match="zoo worker .* failed while training"):
    parallel.run_jobs(jobs, _tiny(2), digits, str(tmp_path), "zoo")
  assert not (tmp_path / "parallel-build").exists()  # the job directory is removed


def _alive(pid: int) -> bool:
  """Whether process `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False
  except OSError:  # no /proc: ask the kernel
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    return True


def test_a_worker_exits_when_the_build_is_killed():
  """Killing the build (here SIGKILL: no cleanup runs in it) ends its workers: each
  watches its parent (zoo_worker.exit_with_parent) instead of training on unseen."""
  import signal
  import subprocess
  import sys
  import time

  child = (
    "import os, time; from ucfp.evaluation.zoo_worker import exit_with_parent; "
    "exit_with_parent(os.getppid(), 0.1); print('ready', flush=True); time.sleep(120)"
  )
  build = (
    "import subprocess, sys; "
    f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, text=True); "
    "p.stdout.readline(); print(p.pid, flush=True); p.wait()"
  )
  parent = subprocess.Popen([sys.executable, "-c", build], stdout=subprocess.PIPE, text=True)
  worker = int(parent.stdout.readline())
  assert _alive(worker)
  os.kill(parent.pid, signal.SIGKILL)
  parent.wait()
  deadline = time.monotonic() + 20
  while _alive(worker) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not _alive(worker), "the worker outlived its build"
