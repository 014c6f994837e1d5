"""Command line: was a suspect model derived from the fingerprinted one?

    python -m ucfp.verify --fingerprints=ucfp-work/fingerprints.npz --suspect=SUSPECT
        (--report=ucfp-work/report.json | --null_rate=P) [--alpha=1e-3]
        [--null=binomial|beta-binomial] [--mistakes=auto|none|PATH] [--json]

SUSPECT is a ucfp checkpoint (`ucfp-work/models/<name>-<key>`, its `.json` record, or
`ucfp-work/models/<name>`), `module:function` returning a `ucfp.Model` or a callable,
or an `.onnx` file (needs `pip install 'ucfp[onnx]'`); see `ucfp.evaluation.suspects`.
The null rate is `--null_rate`, or the 95% upper bound of the match rates of the
report's unassociated models (the suspect itself left out when it is one of them).
`--null=beta-binomial` (with `--report`) also takes from them how widely independent
models' match rates spread (`ucfp.null_dispersion`): the test for fingerprints that
innocents follow by whole groups (see docs/client-models.md), binomial where they
spread no wider than the binomial.
When the report names a mistakes set (`mistakes.npz`, written by `ucfp.generate` with
`config.mistakes`), both sets are tested, each at alpha / 2 against its own innocents'
null (`ucfp.verify_combined`), and the suspect is derived when either says so; the
p-value printed is then the combined one (twice the smaller). `--mistakes=none` tests
--fingerprints alone.
Prints the match rate, p-value and verdict (`--json`: one JSON object) and exits
0 (not derived), 1 (derived) or 2 (error, with a one-line message).

`import ucfp.verify` binds this module to the attribute `ucfp.verify`, where the
function `ucfp.verify` was; so the module is callable and forwards to that function
(`ucfp.core.scoring.verify`): `ucfp.verify(fps, suspect, null_rate=..., alpha=...)`
works either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types

from absl import app, flags, logging

from ucfp.core import scoring
from ucfp.core.fingerprints import Fingerprints

NOT_DERIVED, DERIVED, ERROR = 0, 1, 2

_FINGERPRINTS = flags.DEFINE_string("fingerprints", None, "The fingerprint file (.npz).")
_SUSPECT = flags.DEFINE_string(
  "suspect", None, "A ucfp checkpoint folder or record, module:function, or a .onnx file."
)
_REPORT = flags.DEFINE_string(
  "report", None, "A report.json of ucfp.generate: its innocents give the null rate."
)
_NULL_RATE = flags.DEFINE_float(
  "null_rate", None, "Match rate of independent models under the null hypothesis, in [0, 1]."
)
_ALPHA = flags.DEFINE_float("alpha", 1e-3, "Significance level: derived when p < alpha.")
_NULL = flags.DEFINE_enum(
  "null",
  "binomial",
  ["binomial", "beta-binomial"],
  "The null distribution of the matches; beta-binomial: its spread from --report's innocents.",
)
_MISTAKES = flags.DEFINE_string(
  "mistakes",
  "auto",
  "A second fingerprint set, the base's mistakes (.npz), tested with --fingerprints at "
  "alpha / 2 each: auto (the one --report names, if any) | none | a path (needs --report).",
)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")


class _CallableModule(types.ModuleType):
  """This module's class: calling it is calling `ucfp.core.scoring.verify`."""

  def __call__(self, *args, **kwargs) -> scoring.Verdict:
    return scoring.verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__wrapped__ = scoring.verify  # inspect.signature(ucfp.verify) shows the function's


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return text if isinstance(e, (ValueError, OSError)) and text else f"{type(e).__name__}: {text}"


def _error(message: str) -> int:
  if _JSON.value:
    print(json.dumps({"error": message}))
  print(f"ucfp.verify: error: {message}", file=sys.stderr)
  return ERROR


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for `app.run`: bad flags exit 2 (absl's own exit 1 means derived)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"ucfp.verify: error: {e}", file=sys.stderr)
    sys.exit(ERROR)
  except SystemExit as e:  # --help and friends exit 1 in absl: help is not a verdict
    sys.exit(0 if e.code == 1 else e.code)


def _check_flags(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name, flag in (("fingerprints", _FINGERPRINTS), ("suspect", _SUSPECT)):
    if not flag.value:
      raise ValueError(f"--{name} is required")
  if (_REPORT.value is None) == (_NULL_RATE.value is None):
    raise ValueError("give exactly one of --report=report.json or --null_rate=P")
  if _NULL_RATE.value is not None and not 0.0 <= _NULL_RATE.value <= 1.0:
    raise ValueError(f"--null_rate={_NULL_RATE.value} must be in [0, 1]")
  if not 0.0 < _ALPHA.value < 1.0:
    raise ValueError(f"--alpha={_ALPHA.value} must be in (0, 1)")
  if _MISTAKES.value not in ("auto", "none") and _REPORT.value is None:
    raise ValueError("--mistakes=PATH needs --report=report.json (its innocents give its null)")
  if _NULL.value == "beta-binomial" and _REPORT.value is None:
    raise ValueError("--null=beta-binomial needs --report=report.json (its innocents' spread)")


def _check_innocents(rates: list[float]) -> None:
  if _NULL.value == "beta-binomial" and len(rates) < 2:
    raise ValueError("--null=beta-binomial needs >= 2 unassociated models in --report")


def _mistakes_path(report: dict | None) -> str | None:
  """The mistakes set to test beside --fingerprints: --mistakes, or with auto the one the
  report names (beside the report, else where it was written); None for none."""
  if _MISTAKES.value == "none" or report is None:
    return None
  if _MISTAKES.value != "auto":
    path = _MISTAKES.value
  else:
    part = report.get("mistakes")
    recorded = part.get("fingerprints") if isinstance(part, dict) else None
    if not recorded:  # no mistakes set (off, or skipped: too few mistakes)
      return None
    beside = os.path.join(
      os.path.dirname(os.path.abspath(_REPORT.value)), os.path.basename(recorded)
    )
    path = beside if os.path.exists(beside) else recorded
    if not os.path.exists(path):
      raise ValueError(
        f"--report names a mistakes set {recorded!r} that is neither beside the report nor "
        "there; give --mistakes=PATH or --mistakes=none (the examples alone)"
      )
  if not isinstance(report.get("mistakes"), dict):
    raise ValueError("--mistakes: --report has no 'mistakes' match rates to take its null from")
  return path


def _null(report: dict | None, n: int, exclude: str) -> tuple[float, float, list[str]]:
  """(null rate, dispersion, innocents' names) of one set from its part of the report."""
  from ucfp.evaluation import suspects

  if report is None:
    return _NULL_RATE.value, 0.0, []
  rates, innocents = suspects.report_innocent_rates(report, n, exclude=exclude)
  _check_innocents(rates)  # the suspect left out
  rho = scoring.null_dispersion(rates, n) if _NULL.value == "beta-binomial" else 0.0
  return scoring.null_rate_upper_bound(rates, n), rho, innocents


def _text(result: dict, source: str) -> str:
  first, *more = result["sets"]
  lines = [
    f"suspect     {result['suspect']} ({result['suspect_kind']})",
    f"match rate  {first['match_rate']:.3f} ({first['matches']} of {first['num_fingerprints']})",
    f"null rate   {first['null_rate']:.4f} ({source})",
  ]
  if result["null"] == "beta-binomial":
    lines.append(f"null        beta-binomial, dispersion rho {first['dispersion']:.3f}")
  for s in more:
    lines.append(
      f"mistakes    {s['match_rate']:.3f} ({s['matches']} of {s['num_fingerprints']}) against "
      f"null rate {s['null_rate']:.4f}, p-value {s['p_value']:.3g} ({s['fingerprints']})"
    )
  if more:
    lines.append(
      f"p-value     {result['p_value']:.3g} (the smallest of {len(result['sets'])} sets' "
      f"p-values x {len(result['sets'])}; examples' {first['p_value']:.3g}; alpha {result['alpha']:g})"
    )
  else:
    lines.append(f"p-value     {result['p_value']:.3g} (alpha {result['alpha']:g})")
  lines.append(f"verdict     {result['verdict'].upper()}")
  return "\n".join(lines)


def run(argv: list[str]) -> int:
  """The command with flags already parsed; returns the exit status (0, 1 or 2)."""
  try:
    _check_flags(argv)
    from ucfp.evaluation import suspects

    fps = Fingerprints.load(_FINGERPRINTS.value)
    report = None
    if _REPORT.value is not None:
      try:
        with open(_REPORT.value) as f:
          report = json.load(f)
      except (OSError, ValueError) as e:
        raise ValueError(f"--report={_REPORT.value!r} is not a readable JSON file: {e}") from e
      # a bad report fails before any compute
      _check_innocents(suspects.report_innocent_rates(report, len(fps))[0])
    paths = [_FINGERPRINTS.value]
    sets, parts = [fps], [report]
    mistakes_path = _mistakes_path(report)
    if mistakes_path is not None:
      mistakes = Fingerprints.load(mistakes_path)
      _check_innocents(suspects.report_innocent_rates(report["mistakes"], len(mistakes))[0])
      paths, sets, parts = [*paths, mistakes_path], [*sets, mistakes], [*parts, report["mistakes"]]
    suspect = suspects.load_suspect(_SUSPECT.value, fps.x.shape[1:])
    nulls = [_null(part, len(s), suspect.name) for part, s in zip(parts, sets, strict=True)]
    combined = scoring.verify_combined(
      sets,
      suspect.model,
      null_rates=[r for r, _, _ in nulls],
      alpha=_ALPHA.value,
      dispersions=[d for _, d, _ in nulls],
    )
  except Exception as e:  # noqa: BLE001 - every failure is exit 2, never 1 (derived)
    return _error(_one_line(e))
  first, innocents = combined.verdicts[0], nulls[0][2]
  result = {
    "suspect": suspect.name,
    "suspect_kind": suspect.kind,
    "fingerprints": _FINGERPRINTS.value,
    "num_fingerprints": first.num_fingerprints,
    "matches": first.matches,
    "match_rate": first.match_rate,
    "null_rate": first.null_rate,
    "null_from": innocents if report is not None else "--null_rate",
    "null": _NULL.value,
    "dispersion": first.dispersion,
    # with a mistakes set: the combined (Bonferroni) p-value and verdict of both sets
    "p_value": combined.p_value,
    "alpha": combined.alpha,
    "derived": combined.derived,
    "verdict": "derived" if combined.derived else "not derived",
    "sets": [
      {"fingerprints": path, **dataclasses.asdict(v)}
      for path, v in zip(paths, combined.verdicts, strict=True)
    ],
  }
  if _JSON.value:
    print(json.dumps(result))
  else:
    source = (
      f"95% upper bound over {', '.join(innocents)} of {_REPORT.value}"
      if report is not None
      else "--null_rate"
    )
    print(_text(result, source))
  return DERIVED if combined.derived else NOT_DERIVED


def main(argv: list[str]) -> None:
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  sys.exit(run(argv))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
