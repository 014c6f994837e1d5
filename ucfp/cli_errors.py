"""One-line errors, exit status 2, for bad command lines of `python -m ucfp.generate`.

absl parses `--config=FILE[:preset]` and the `--config.KEY=VALUE` overrides before
`main` runs; a bad one used to surface as a long traceback (an unknown field) or an
absl FATAL (a bad preset). :func:`parse_flags` is the `flags_parser` of `app.run`: on
a parse failure it loads the config itself to name what is wrong, with the nearest
valid names, and exits.
"""

from __future__ import annotations

import difflib
import glob
import importlib.util
import os
import sys
from typing import NoReturn

import ml_collections
from absl import flags

EXIT_USAGE = 2
_NAME = "config"  # the config flag of ucfp.generate


def fail(message: str) -> NoReturn:
  """Prints `ucfp.generate: error: <message>` (one line) to stderr and exits with 2."""
  print(f"ucfp.generate: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with :func:`fail` instead of a traceback on bad flags."""
  try:
    rest = flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - flag parsing fails in many types
    fail(explain(argv[1:], e))
  if not isinstance(flags.FLAGS[_NAME].value, ml_collections.ConfigDict | type(None)):
    fail(explain(argv[1:], None))  # a missing config file loads lazily as an error object
  return rest


def field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every field's dotted name, parents included: ['method', ..., 'robust', 'robust.mask']."""
  out = []
  for k, v in config.items():
    out.append(prefix + k)
    if isinstance(v, ml_collections.ConfigDict):
      out += field_names(v, f"{prefix}{k}.")
  return out


def nearest(name: str, names: list[str], n: int = 3) -> list[str]:
  """Close matches of a dotted `name` by whole name, then by its last part."""
  out = difflib.get_close_matches(name, names, n=n)
  last = name.rsplit(".", 1)[-1]
  leaves = {m.rsplit(".", 1)[-1]: m for m in names}
  for m in difflib.get_close_matches(last, list(leaves), n=n, cutoff=0.75):
    if leaves[m] not in out:
      out.append(leaves[m])
  return out[:n]


def _config_arg(args: list[str]) -> str | None:
  value = None
  for i, a in enumerate(args):
    if a.startswith(f"--{_NAME}="):
      value = a.split("=", 1)[1]
    elif a == f"--{_NAME}" and i + 1 < len(args):
      value = args[i + 1]
  return value


def _overrides(args: list[str]) -> list[str]:
  out = []
  for a in args:
    for prefix in (f"--{_NAME}.", f"--no{_NAME}.", f"-{_NAME}."):
      if a.startswith(prefix):
        out.append(a[len(prefix) :].split("=", 1)[0])
  return out


def _load(arg: str):
  """(config, None) or (None, a message) for `--config=FILE[:preset]`."""
  path, _, preset = arg.partition(":")
  if not os.path.isfile(path):
    here = sorted(glob.glob(os.path.join(os.path.dirname(path) or ".", "*.py")))
    here = [p for p in here if not p.endswith("__init__.py")]
    near = difflib.get_close_matches(path, here, n=3)
    hint = f"nearest: {', '.join(near)}" if near else f"there: {', '.join(here) or 'none'}"
    return None, f"--{_NAME}={arg}: no config file {path!r}; {hint}"
  spec = importlib.util.spec_from_file_location("ucfp_cli_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return module.get_config(*([preset] if preset else [])), None
  except Exception as e:  # noqa: BLE001 - a user's config file may raise anything
    return None, f"--{_NAME}={arg}: {type(e).__name__ if not str(e) else ''}{e}"


def explain(args: list[str], error: Exception | None) -> str:
  """The one-line reason why parsing `args` (argv without the program) failed."""
  arg = _config_arg(args)
  if arg is not None:
    config, message = _load(arg)
    if message:
      return message
    names = field_names(config)
    for field in _overrides(args):
      if field not in names:
        near = nearest(field, names)
        hint = f"nearest: {', '.join(near)}" if near else "the fields are in configs/base.py"
        return f"--{_NAME}.{field}: no such config field; {hint}"
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not lines:
    return f"bad command line: {type(error).__name__}"
  return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
