"""Progress: silent by default; a tqdm bar on a terminal, one whole line per interval in logs."""

import io

import jax
import pytest

from ucfp import fingerprint
from ucfp.core import progress


class Terminal(io.StringIO):
  def isatty(self):
    return True


@pytest.fixture
def progress_on(monkeypatch):
  monkeypatch.setattr(progress, "_enabled", True)
  monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)  # a line per update


def test_generation_writes_whole_lines_to_a_log(tiny_config, cnn_model, progress_on, capsys):
  tiny_config.method, tiny_config.num_fingerprints, tiny_config.steps = "c", 10, 12
  fingerprint(cnn_model, tiny_config, key=jax.random.PRNGKey(0))
  lines = capsys.readouterr().err.splitlines()
  assert lines[0].startswith("generating 10 c fingerprints: 0/12 steps (0%)")
  assert lines[1].startswith("generating 10 c fingerprints: 10/12 steps (83%)")  # every 10
  assert lines[-1].startswith("generating 10 c fingerprints: 12/12 steps (100%)")
  assert "step/s" in lines[-1] and "loss=" in lines[-1] and len(lines) == 3


def test_training_bar_and_zoo_lines(tmp_path, digits, progress_on, capsys):
  from configs import base
  from ucfp.evaluation.zoo import build_zoo

  cfg = base.get_config("tiny")
  cfg.method, cfg.model, cfg.train.epochs = "c", "mlp", 1
  build_zoo(cfg, digits, str(tmp_path), evaluation=False)
  out, err = capsys.readouterr()
  lines = out.splitlines()
  assert out == "  training base-mlp (mlp, 1 epochs)...\n" + "\n".join(lines[1:]) + "\n"
  assert lines[1].startswith("  base-mlp: test accuracy ") and len(lines) == 3
  assert lines[2].startswith("zoo: trained 1 of 1 models in ")  # the build's training total
  assert err.splitlines()[-1].startswith("  training base-mlp: 22/22 steps (100%)")
  assert "\r" not in err and "|" not in err  # whole lines, no bar
  build_zoo(cfg, digits, str(tmp_path), evaluation=False)
  assert capsys.readouterr().out.startswith("  restored base-mlp (test accuracy ")


def test_a_terminal_gets_a_bar_and_nothing_when_off(monkeypatch):
  monkeypatch.setattr(progress, "_enabled", True)
  term = Terminal()
  with progress.bar(total=5, desc="training x", file=term) as bar:
    bar.update(5)
  assert "\r" in term.getvalue() and "5/5" in term.getvalue() and "|" in term.getvalue()
  monkeypatch.setattr(progress, "_enabled", False)
  quiet = Terminal()
  with progress.bar(total=5, desc="training x", file=quiet) as bar:
    bar.update(5)
  progress.note("a note")
  assert quiet.getvalue() == ""


def test_the_library_is_silent_by_default(tiny_config, cnn_model, capsys):
  assert not progress.progress_enabled()
  tiny_config.method, tiny_config.num_fingerprints, tiny_config.steps = "c", 10, 3
  fingerprint(cnn_model, tiny_config, key=jax.random.PRNGKey(0))
  assert capsys.readouterr() == ("", "")
