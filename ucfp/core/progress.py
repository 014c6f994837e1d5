"""Progress of long loops (training, generation, benchmarks) with tqdm; silent unless switched on.

The library prints nothing by default: `show_progress()` switches progress on for the
process (the command line and the benchmark scripts do). Then, when stderr is a
terminal, a loop draws a tqdm bar with its rate and ETA; when stderr is a log file or
a pipe, it writes one whole line (count, rate, ETA, no carriage returns) every
`LOG_INTERVAL` seconds and a last one when it ends. `note` prints a status line
(stdout) that does not break a bar being drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import tqdm

# Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 15.0
_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit}s ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_enabled = False  # switched on by show_progress (the command line, the benchmarks)


def show_progress(on: bool = True) -> None:
  """Switches progress bars and status lines on (or off) for this process."""
  global _enabled
  _enabled = bool(on)


def progress_enabled() -> bool:
  return _enabled


class LogLines(tqdm.tqdm):
  """A tqdm for logs: each display is one whole line (no bar, no carriage return), at
  most one per `mininterval` seconds (the rate and ETA from a moving average over
  these intervals, as tqdm's), and a last line at close with the average rate."""

  def display(self, msg=None, pos=None):
    if msg == "":  # tqdm clears a finished bar with an empty message: nothing to clear
      return False
    self.fp.write((self.__str__() if msg is None else msg) + "\n")
    self.fp.flush()
    return True

  def clear(self, nolock=False):
    pass

  def close(self):
    if not self.disable and self.n != self.last_print_n:  # the last line: the average rate
      self.display(self.format_meter(**{**self.format_dict, "rate": None}))
    super().close()


def bar(
  iterable: Iterable | None = None,
  *,
  total: int | None = None,
  desc: str = "",
  unit: str = "step",
  initial: int = 0,
  leave: bool | None = None,
  file=None,
) -> tqdm.tqdm:
  """A tqdm progress bar (`update`, `set_postfix`, `close`, or iterate it), disabled
  unless `show_progress()` was called.

  Args:
    iterable: what to iterate over (optional, as in tqdm).
    total: the number of units (steps, models, ...).
    desc: what the loop does, e.g. "training base-cnn_small".
    unit: the name of one unit.
    initial: units already done (a resumed loop); the rate counts only the new ones.
    leave: keep the finished bar on a terminal (None: only when it is not nested).
    file: where to draw (default: sys.stderr); a terminal gets a bar, anything else
      one line per `LOG_INTERVAL` seconds.
  """
  file = sys.stderr if file is None else file
  kw = dict(total=total, desc=desc, unit=unit, initial=initial, file=file)
  if not _enabled:
    return tqdm.tqdm(iterable, disable=True, **kw)
  if _isatty(file):
    return tqdm.tqdm(iterable, leave=leave, dynamic_ncols=True, **kw)
  return LogLines(
    iterable,
    leave=False,
    mininterval=LOG_INTERVAL,
    miniters=1,
    bar_format=_LOG_FORMAT,
    **kw,
  )


def note(message: str) -> None:
  """Prints a status line to stdout when progress is on (above any bar being drawn)."""
  if not _enabled:
    return
  if _isatty(sys.stderr):
    tqdm.tqdm.write(message, file=sys.stdout)
  else:
    print(message, flush=True)


def _isatty(file) -> bool:
  try:
    return bool(file.isatty())
  except (AttributeError, ValueError):  # no isatty, or a closed file
    return False
