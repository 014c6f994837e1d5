"""Shared fixtures: tiny models and configs so the suite stays fast on 2 CPU cores."""

import os
import subprocess
import sys

import jax
import pytest

from configs import base as base_config
from ucfp import Model
from ucfp.evaluation.data import load_digits
from ucfp.evaluation.models import get_module, inference_apply, init_variables

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_generate(workdir, *extra) -> subprocess.CompletedProcess:
  """`python -m ucfp.generate --config=configs/ltrc.py:tiny --workdir=workdir ...`."""
  cmd = [
    sys.executable,
    "-m",
    "ucfp.generate",
    "--config=configs/ltrc.py:tiny",
    f"--workdir={workdir}",
    *extra,
  ]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tiny_job(tmp_path_factory):
  """The main job on the tiny preset, run once per session from an empty work directory
  (checkpointing generation every 5 steps): (workdir, its CompletedProcess). Tests may run it again there but must not break it."""
  workdir = tmp_path_factory.mktemp("tiny-job")
  out = run_generate(workdir, "--config.checkpoint_every=5")
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


@pytest.fixture(scope="session")
def mistakes_job(tmp_path_factory):
  """The main job on the tiny preset trained 1 epoch (so the base makes mistakes on its
  training images), with 10 fingerprints and a mistakes set: (workdir, CompletedProcess).
  Tests must not change the work directory."""
  workdir = tmp_path_factory.mktemp("mistakes-job")
  out = run_generate(workdir, "--config.num_fingerprints=10", "--config.train.epochs=1")
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


def set_fields(c, **kw):
  """Sets config fields by dotted name (`set_fields(c, **{"robust.num_variants": 2})`)."""
  for k, v in kw.items():
    node = c
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


@pytest.fixture(scope="session")
def digits():
  return load_digits()


def random_model(arch: str, seed: int = 0, shape=(8, 8, 1), k: int = 10, name=None) -> Model:
  module = get_module(arch, k)
  variables = init_variables(module, jax.random.PRNGKey(seed), shape)
  return Model(inference_apply(module), variables, name or f"{arch}-{seed}")


@pytest.fixture(scope="session")
def mlp_model():
  return random_model("mlp", 0)


@pytest.fixture(scope="session")
def cnn_model():
  return random_model("cnn_small", 0)


@pytest.fixture
def tiny_config():
  return base_config.get_config("tiny")
