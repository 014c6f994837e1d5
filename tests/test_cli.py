"""Bad command lines of `python -m ucfp.generate`: one line naming the field, preset or
file and the nearest valid names, exit status 2, before any compute."""

import os
import subprocess
import sys

import pytest

from ucfp.cli_errors import explain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, *args):
  cmd = [sys.executable, "-m", "ucfp.generate", f"--workdir={tmp_path}", *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
  "args,message",
  [
    (
      ["--config=configs/ltrc.py", "--config.stepz=3"],
      "ucfp.generate: error: --config.stepz: no such config field; nearest: steps, step_size",
    ),
    (
      ["--config=configs/ltrc.py:nosuch"],
      "ucfp.generate: error: --config=configs/ltrc.py:nosuch: config preset 'nosuch' is not one "
      "of digits, cifar10, mnist, tiny",
    ),
  ],
  ids=["field", "preset"],
)
def test_bad_field_or_preset_is_one_line_and_exit_2(tmp_path, args, message):
  out = _run(tmp_path, *args)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [message]
  assert out.stdout == "" and os.listdir(tmp_path) == []  # nothing computed or written


@pytest.mark.parametrize(
  "args,expected",
  [
    (["--config=configs/rc.py", "--config.robust.batchng=vmap"], "nearest: robust.batching"),
    (["--config=configs/rc.py", "--config.batchng=vmap"], "--config.batchng: no such config"),
    (["--config=configs/rc.py", "--noconfig.evaluat"], "--config.evaluat: no such config field"),
    (
      ["--config=configs/rc.py:digts"],
      "is not one of digits, cifar10, mnist, tiny (nearest: digits)",
    ),
    (["--config=configs/ltr.py"], "no config file 'configs/ltr.py'; nearest: configs/ltrc.py"),
    (["--config", "configs/ltrc.py", "--config.zzzzzz=1"], "the fields are in configs/base.py"),
  ],
)
def test_explain_names_the_nearest_valid_names(args, expected, monkeypatch):
  monkeypatch.chdir(ROOT)
  message = explain(args, AttributeError("a long\ntraceback"))
  assert expected in message and "\n" not in message


def test_explain_falls_back_to_the_parser_message(monkeypatch):
  monkeypatch.chdir(ROOT)
  e = ValueError("flag --config.steps=abc: invalid literal for int() with base 10: 'abc'")
  assert explain(["--config=configs/c.py", "--config.steps=abc"], e) == str(e)
