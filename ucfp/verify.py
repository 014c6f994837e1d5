"""Command line: was a suspect model derived from the fingerprinted one?

    python -m ucfp.verify --fingerprints=ucfp-work/fingerprints.npz --suspect=SUSPECT
        (--report=ucfp-work/report.json | --null_rate=P) [--alpha=1e-3]
        [--null=binomial|beta-binomial] [--json]

SUSPECT is a ucfp checkpoint (`ucfp-work/models/<name>-<key>`, its `.json` record, or
`ucfp-work/models/<name>`), `module:function` returning a `ucfp.Model` or a callable,
or an `.onnx` file (needs `pip install 'ucfp[onnx]'`); see `ucfp.evaluation.suspects`.
The null rate is `--null_rate`, or the 95% upper bound of the match rates of the
report's unassociated models (the suspect itself left out when it is one of them).
`--null=beta-binomial` (with `--report`) also takes from them how widely independent
models' match rates spread (`ucfp.null_dispersion`): the test for fingerprints that
innocents follow by whole groups (see docs/client-models.md), binomial where they
spread no wider than the binomial.
Prints the match rate, p-value and verdict (`--json`: one JSON object) and exits
0 (not derived), 1 (derived) or 2 (error, with a one-line message).

`import ucfp.verify` binds this module to the attribute `ucfp.verify`, where the
function `ucfp.verify` was; so the module is callable and forwards to that function
(`ucfp.core.scoring.verify`): `ucfp.verify(fps, suspect, null_rate=..., alpha=...)`
works either way.
"""

from __future__ import annotations

import json
import sys
import types

from absl import app, flags, logging

from ucfp.core import scoring

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
  if _NULL.value == "beta-binomial" and _REPORT.value is None:
    raise ValueError("--null=beta-binomial needs --report=report.json (its innocents' spread)")


def _check_innocents(rates: list[float]) -> None:
  if _NULL.value == "beta-binomial" and len(rates) < 2:
    raise ValueError("--null=beta-binomial needs >= 2 unassociated models in --report")


def run(argv: list[str]) -> int:
  """The command with flags already parsed; returns the exit status (0, 1 or 2)."""
  try:
    _check_flags(argv)
    from ucfp.core.fingerprints import Fingerprints
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
    suspect = suspects.load_suspect(_SUSPECT.value, fps.x.shape[1:])
    rho = 0.0
    if report is None:
      null_rate, innocents = _NULL_RATE.value, []
    else:
      rates, innocents = suspects.report_innocent_rates(report, len(fps), exclude=suspect.name)
      _check_innocents(rates)  # the suspect left out
      null_rate = scoring.null_rate_upper_bound(rates, len(fps))
      if _NULL.value == "beta-binomial":
        rho = scoring.null_dispersion(rates, len(fps))
    verdict = scoring.verify(
      fps, suspect.model, null_rate=null_rate, alpha=_ALPHA.value, dispersion=rho
    )
  except Exception as e:  # noqa: BLE001 - every failure is exit 2, never 1 (derived)
    return _error(_one_line(e))
  result = {
    "suspect": suspect.name,
    "suspect_kind": suspect.kind,
    "fingerprints": _FINGERPRINTS.value,
    "num_fingerprints": verdict.num_fingerprints,
    "matches": verdict.matches,
    "match_rate": verdict.match_rate,
    "null_rate": verdict.null_rate,
    "null_from": innocents if report is not None else "--null_rate",
    "null": _NULL.value,
    "dispersion": verdict.dispersion,
    "p_value": verdict.p_value,
    "alpha": verdict.alpha,
    "derived": verdict.derived,
    "verdict": "derived" if verdict.derived else "not derived",
  }
  if _JSON.value:
    print(json.dumps(result))
  else:
    source = (
      f"95% upper bound over {', '.join(innocents)} of {_REPORT.value}"
      if report is not None
      else "--null_rate"
    )
    print(
      f"suspect     {suspect.name} ({suspect.kind})\n"
      f"match rate  {verdict.match_rate:.3f} ({verdict.matches} of {verdict.num_fingerprints})\n"
      f"null rate   {verdict.null_rate:.4f} ({source})\n"
      + (
        f"null        beta-binomial, dispersion rho {verdict.dispersion:.3f}\n"
        if _NULL.value == "beta-binomial"
        else ""
      )
      + f"p-value     {verdict.p_value:.3g} (alpha {verdict.alpha:g})\n"
      f"verdict     {result['verdict'].upper()}"
    )
  return DERIVED if verdict.derived else NOT_DERIVED


def main(argv: list[str]) -> None:
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  sys.exit(run(argv))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
