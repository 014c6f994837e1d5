"""The main job: train or restore models, generate fingerprints, evaluate, write the report."""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from ucfp.core import scoring
from ucfp.core.fingerprints import Fingerprints
from ucfp.core.generation import fingerprint
from ucfp.core.io import atomic_write_json
from ucfp.core.mistakes import mistake_fingerprints
from ucfp.evaluation import report_md
from ucfp.evaluation.checks import validate_config
from ucfp.evaluation.data import load_dataset
from ucfp.evaluation.zoo import Zoo, build_zoo

ALPHA = 1e-3  # the report's verdicts: verify's default significance level


def evaluate(fps: Fingerprints, zoo: Zoo) -> dict:
  """Match rates of every zoo model, R, T, US, and leave-one-out binomial verdicts.

  The null rate for a model is the 95% upper confidence bound of the mean match
  rate of the *other* unassociated models (never calibrated on the model judged).
  """
  rates = {m.name: scoring.match_rate(fps, m.model) for m in zoo.all()}
  innocents = [m.name for m in zoo.unassociated]
  n = len(fps)

  def verdict(name):
    others = [rates[o] for o in innocents if o != name] or [0.0]
    null = scoring.null_rate_upper_bound(others, n)
    k = int(round(rates[name] * n))
    p = scoring.binomial_p_value(k, n, null)
    return {"null_rate": null, "p_value": p, "derived": bool(p < ALPHA)}

  def owned(m):  # the owner's models: no verdict
    return {"name": m.name, "test_accuracy": m.test_accuracy, "match_rate": rates[m.name]}

  def entry(m):
    e = owned(m)
    if m.rate is not None:
      e["rate"] = m.rate
    if m.attack:  # a derived copy: its attack, and whether it kept the base's accuracy
      e["attack"], e["useful"] = m.attack, m.useful
    return {**e, **verdict(m.name)}

  r = float(np.mean([rates[m.name] for m in zoo.pruned]))
  t = float(np.mean([rates[name] for name in innocents]))
  return {
    "base": owned(zoo.base),
    "reference": [owned(m) for m in zoo.reference],
    **({"surrogate": [owned(m) for m in zoo.surrogate]} if zoo.surrogate else {}),
    **({"validator": [owned(m) for m in zoo.validator]} if zoo.validator else {}),
    "pruned": [entry(m) for m in zoo.pruned],
    **({"derived": [entry(m) for m in zoo.derived]} if zoo.derived else {}),
    "unassociated": [entry(m) for m in zoo.unassociated],
    "robustness": r,
    "transferability": t,
    "uniqueness_score": r - t,
  }


def mistakes_set(config, zoo: Zoo, data) -> tuple[Fingerprints | None, str]:
  """The base's mistakes set (`ucfp.mistake_fingerprints` on its training images, the
  zoo's reference models, config.num_fingerprints of them) when `config.mistakes`:
  (fingerprints, "") or (None, why there is none)."""
  if not config.get("mistakes", False):
    return None, "config.mistakes is off"
  if not zoo.reference:
    return None, "no reference models (config.ltrc.term is not 'reference')"
  refs = [m.model for m in zoo.reference]
  try:
    fps = mistake_fingerprints(
      zoo.base.model, data.train_x, data.train_y, reference=refs, num=config.num_fingerprints
    )
  except ValueError as e:  # too few mistakes: a base that fits its training set
    return None, str(e)
  return fps, ""


def add_mistakes(report: dict, fps: Fingerprints, zoo: Zoo | None, path: str) -> None:
  """report["mistakes"]: the mistakes set's file and, with a zoo, its own evaluation
  (every model's match rate, leave-one-out verdicts, R, T, US); each judged entry of the
  report gains `mistakes_match_rate` and `combined` (p_value, derived): the verdict of
  both sets at alpha / 2 (`ucfp.verify_combined`, Bonferroni)."""
  report["mistakes"] = {"fingerprints": path, "num_fingerprints": len(fps)}
  if zoo is None:
    return
  sub = evaluate(fps, zoo)
  report["mistakes"].update(sub)
  for kind in ("pruned", "derived", "unassociated"):
    for e, m in zip(report.get(kind, []), sub.get(kind, []), strict=True):
      p = scoring.combined_p_value([e["p_value"], m["p_value"]])
      e["mistakes_match_rate"] = m["match_rate"]
      e["combined"] = {"p_value": p, "derived": bool(p < ALPHA)}


def format_table(report: dict) -> str:
  """The report as a text table: one row per model, `-` where a cell does not apply (the
  owner's models get no verdict; without evaluation no match rates), no trailing spaces."""

  def row(e, kind):
    p = f"{e['p_value']:.2g}" if "p_value" in e else "-"
    derived = ("yes" if e["derived"] else "no") if "derived" in e else "-"
    match = f"{e['match_rate']:.2f}" if "match_rate" in e else "-"
    return (e["name"], kind, f"{e['test_accuracy']:.4f}", match, p, derived)

  both = report_md.has_mistakes_set(report)

  def row_both(e, kind):  # with a mistakes set: its match rate, the verdict of both sets
    r = row(e, kind)
    if not both:
      return r
    m, c = report_md.mistakes_match(report, kind, e), e.get("combined")
    return (
      *r,
      "-" if m is None else f"{m:.2f}",
      "-" if c is None else "yes" if c["derived"] else "no",
    )

  header = ("model", "kind", "test acc", "match", "p-value", "derived")
  rows = [header + (("mistakes", "both") if both else ()), row_both(report["base"], "base")]
  for kind in ("reference", "surrogate", "validator", "pruned", "derived", "unassociated"):
    for e in report.get(kind, []):
      rows.append(row_both(e, kind if e.get("useful", True) else f"{kind} (not useful)"))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  if "uniqueness_score" in report:
    lines.append(
      f"robustness R = {report['robustness']:.3f}   transferability T = "
      f"{report['transferability']:.3f}   Uniqueness Score US = {report['uniqueness_score']:.3f}"
    )
  mistakes = report.get("mistakes", {})
  if both:
    hits, copies, alarms, innocents = report_md.combined_counts(report)
    lines.append(
      f"mistakes set: R = {mistakes['robustness']:.3f}   T = {mistakes['transferability']:.3f}"
      f"   both sets at alpha / 2 (column 'both'): {hits} of {copies} derived copies, "
      f"{alarms} of {innocents} innocents judged derived"
    )
  elif "skipped" in mistakes:
    lines.append(f"no mistakes set: {mistakes['skipped']}")
  return "\n".join(lines)


def run(config, workdir: str) -> dict:
  """Runs the whole job of `python -m ucfp.generate` and returns the report dict."""
  validate_config(config)
  t0 = time.perf_counter()
  seconds = {}
  writer = jax.process_index() == 0
  workdir = os.path.abspath(workdir)
  data = load_dataset(config.dataset, cache_dir=os.path.join(workdir, "data"))
  if tuple(data.info.image_shape) != tuple(config.image_shape):
    raise ValueError(
      f"config.image_shape={tuple(config.image_shape)} does not match the images of "
      f"{config.dataset!r} {data.info.image_shape}; set --config.image_shape='{data.info.image_shape}'"
    )
  seconds["data"] = time.perf_counter() - t0
  print(
    f"data: {data.info.name}, {len(data.train_x)} train / {len(data.test_x)} test images "
    f"of {data.info.image_shape}, {data.info.num_classes} classes",
    flush=True,
  )

  t = time.perf_counter()
  zoo = build_zoo(config, data, workdir, evaluation=config.evaluate)
  seconds["models"] = time.perf_counter() - t

  t = time.perf_counter()
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5EED)
  fps = fingerprint(
    zoo.base.model,
    config,
    key=key,
    reference=[m.model for m in zoo.reference],
    surrogates=[m.model for m in zoo.surrogate],
    validators=[m.model for m in zoo.validator],
    image_shape=data.info.image_shape,
    checkpoint_dir=os.path.join(workdir, "generation"),
    starts=data.train_x if config.init == "data" else None,
  )
  seconds["generate"] = time.perf_counter() - t
  print(
    f"generated {len(fps)} {config.method} fingerprints in {seconds['generate']:.1f} s "
    f"({fps.meta['steps_run']} steps)",
    flush=True,
  )
  fp_path = os.path.join(workdir, "fingerprints.npz")
  if writer:
    fps.save(fp_path)

  t = time.perf_counter()
  mistakes, why_not = mistakes_set(config, zoo, data)
  if mistakes is not None:
    seconds["mistakes"] = time.perf_counter() - t
    print(
      f"mistakes set: {len(mistakes)} of the base's mistakes on its training images", flush=True
    )
  mistakes_path = os.path.join(workdir, "mistakes.npz")
  if writer and mistakes is not None:
    mistakes.save(mistakes_path)
  elif writer and os.path.exists(mistakes_path):  # an earlier run's: not these fingerprints'
    os.remove(mistakes_path)

  report = {
    "method": config.method,
    "dataset": config.dataset,
    "num_fingerprints": len(fps),
    "config": config.to_dict(),
  }
  if config.evaluate:
    t = time.perf_counter()
    report.update(evaluate(fps, zoo))
    seconds["evaluate"] = time.perf_counter() - t
  else:
    report["base"] = {"name": zoo.base.name, "test_accuracy": zoo.base.test_accuracy}
  if mistakes is not None:
    add_mistakes(report, mistakes, zoo if config.evaluate else None, mistakes_path)
  elif config.get("mistakes", False):
    report["mistakes"] = {"skipped": why_not}
  seconds["total"] = time.perf_counter() - t0
  report["seconds"] = seconds
  report["fingerprints"] = fp_path
  print(format_table(report), flush=True)
  if writer:
    report_path = os.path.join(workdir, "report.json")
    atomic_write_json(report_path, report)
    written = [fp_path, *([mistakes_path] if mistakes is not None else []), report_path]
    print("\n".join(f"wrote {p}" for p in written), flush=True)
    t = time.perf_counter()
    md_path, figs = report_md.write_report(report, fps.x, fps.y, workdir)
    print(
      f"wrote {md_path} with {len(figs)} figures in {os.path.join(workdir, 'figures')} "
      f"({time.perf_counter() - t:.1f} s)",
      flush=True,
    )
  return report
