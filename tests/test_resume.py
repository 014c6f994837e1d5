"""Resumable generation: an interrupted run, rerun, equals an uninterrupted one bit for bit."""

import os

import jax
import numpy as np
import pytest
from conftest import random_model, set_fields

from ucfp import fingerprint
from ucfp.core import generation, progress
from ucfp.core.resume import run_id

KEY = jax.random.PRNGKey(7)


def _cfg(c, **kw):
  c.num_fingerprints, c.checkpoint_every = 10, 4
  return set_fields(c, **kw)


def _interrupt_after(monkeypatch, calls: int) -> list[int]:
  """Makes generation's step raise KeyboardInterrupt on call `calls + 1`; returns a list
  whose first item counts the steps that ran."""
  real, ran = generation.compiled_step, [0]

  def compiled(*args):
    step = real(*args)

    def interrupting(*a):
      if ran[0] == calls:
        raise KeyboardInterrupt
      ran[0] += 1
      return step(*a)

    return interrupting

  monkeypatch.setattr(generation, "compiled_step", compiled)
  return ran


def _count_steps(monkeypatch) -> list[int]:
  return _interrupt_after(monkeypatch, -1)  # never reaches -1: counts only


@pytest.mark.parametrize(
  "overrides",
  [
    # rc with Adam: the optimiser state (count, moments) must be restored too
    {"method": "rc", "optimizer": "adam", "steps": 12},
    # early stop read every 10 steps (this margin always passes: stops after step 10)
    {"method": "c", "steps": 20, "early_stop": True, "early_stop_margin": -1e9},
  ],
)
def test_interrupted_then_resumed_equals_uninterrupted(
  tiny_config, cnn_model, tmp_path, monkeypatch, capsys, overrides
):
  c = _cfg(tiny_config, **overrides)
  whole = fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path / "a"))
  assert whole.meta["resumed_from"] == 0
  assert os.listdir(tmp_path / "a") == []  # complete: its checkpoints are removed
  with monkeypatch.context() as m:
    _interrupt_after(m, 6)  # checkpoints after steps 4 (kept) and 8 (never reached)
    with pytest.raises(KeyboardInterrupt):
      fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path / "b"))
  (run,) = os.listdir(tmp_path / "b")
  assert os.listdir(tmp_path / "b" / run) == ["4"]
  ran = _count_steps(monkeypatch)
  resumed = fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path / "b"))
  assert resumed.meta["resumed_from"] == 4 and ran[0] == whole.meta["steps_run"] - 4
  np.testing.assert_array_equal(resumed.x, whole.x)  # bit for bit
  np.testing.assert_array_equal(resumed.y, whole.y)
  for field in ("steps_run", "final_loss", "min_margin"):
    assert resumed.meta[field] == whole.meta[field], field
  assert os.listdir(tmp_path / "b") == []
  assert capsys.readouterr() == ("", "")  # the library is silent unless progress is on


def test_resume_is_announced_when_progress_is_on(
  tiny_config, cnn_model, tmp_path, monkeypatch, capsys
):
  monkeypatch.setattr(progress, "_enabled", True)
  c = _cfg(tiny_config, method="c", steps=12)
  with monkeypatch.context() as m:
    _interrupt_after(m, 6)
    with pytest.raises(KeyboardInterrupt):
      fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path))
  capsys.readouterr()
  fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path))
  out, err = capsys.readouterr()
  assert "resuming generation at step 4/12" in out
  assert err.startswith("generating 10 c fingerprints: 4/12 steps (33%)")


def test_another_config_or_key_never_resumes_a_foreign_state(
  tiny_config, cnn_model, tmp_path, monkeypatch
):
  c = _cfg(tiny_config, method="c", steps=8)
  with monkeypatch.context() as m:
    _interrupt_after(m, 5)
    with pytest.raises(KeyboardInterrupt):
      fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path))
  (foreign,) = os.listdir(tmp_path)
  c.step_size = 0.03
  other = fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path))
  assert other.meta["resumed_from"] == 0
  np.testing.assert_array_equal(other.x, fingerprint(cnn_model, c, key=KEY).x)
  assert os.listdir(tmp_path) == [foreign]  # the other run's checkpoint is left alone

  shape = (8, 8, 1)
  y = np.arange(10) % 10
  ids = {run_id(c, shape, cnn_model, (), (), KEY, y)}
  c.checkpoint_every = 2  # when state is saved, not what it is: the same run
  assert run_id(c, shape, cnn_model, (), (), KEY, y) in ids
  for changed in [
    dict(key=jax.random.PRNGKey(8)),
    dict(labels=y[::-1]),
    dict(model=random_model("cnn_small", 1)),
    dict(reference=(random_model("mlp", 0),)),
  ]:
    a = dict(model=cnn_model, reference=(), key=KEY, labels=y) | changed
    ids.add(run_id(c, shape, a["model"], a["reference"], (), a["key"], a["labels"]))
  c.robust.num_variants = 3
  ids.add(run_id(c, shape, cnn_model, (), (), KEY, y))
  assert len(ids) == 6


def test_no_checkpoints_without_a_folder_or_with_checkpoint_every_0(
  tiny_config, cnn_model, tmp_path
):
  c = _cfg(tiny_config, method="c", steps=4, checkpoint_every=0)
  fp = fingerprint(cnn_model, c, key=KEY, checkpoint_dir=str(tmp_path / "off"))
  assert not os.path.exists(tmp_path / "off") and fp.meta["resumed_from"] == 0
  c.checkpoint_every = -1
  with pytest.raises(ValueError, match=r"config\.checkpoint_every=-1 must be a non-negative"):
    fingerprint(cnn_model, c, key=KEY)
