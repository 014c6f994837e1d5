"""What a student of the base learns beyond the task: the measured reason behind the
threat model's students (issue #17).

    python benchmarks/student_labels.py --config=configs/ltrc.py --workdir=W --tag=digits
    python benchmarks/student_labels.py --config=configs/ltrc.py:cifar10 \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.tar.gz --workdir=W --tag=cifar10

A label-extracted student trains on the base's hard labels for the thief's queries.
Where those labels are the true ones, its training set is an innocent's (the same
images, the same labels): it carries nothing of the base, and no fingerprint can tell
it from an innocent trained on those images without accusing that innocent as well.
So the first table counts, per query set, the labels the base gets wrong: the only
bits of the base in the student's data. A distilled student also sees the base's soft
labels (temperature 4); the second table measures how far they are from a
same-architecture innocent's (total variation, mean over the train images) against
how far two such innocents are from each other: the part of the soft labels that is
the base's own.

It also trains, for each label-extracted student whose queries are a half of the train
split, its twin (an innocent of the student's recipe and seed on the same half, with the
true labels) and compares the two weight for weight; with --quality, the ROC AUCs of those
results without the twins, and how many twins each method accused.

Restores the zoo of `benchmarks/quality.py --threat_model` from --workdir (training
whatever is missing, or with --cached_only only what is there: it needs the base and its
same-architecture innocents, not the students). Writes benchmarks/results/students-<tag>.json and .md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_results  # noqa: E402
from benchmarks.quality_methods import threat_tables  # noqa: E402
from benchmarks.quality_report import auc_split  # noqa: E402
from ucfp.core.predict import predict_logits  # noqa: E402
from ucfp.evaluation import attacks  # noqa: E402
from ucfp.evaluation.attacks.distill import augmented_queries, teacher_probs  # noqa: E402
from ucfp.evaluation.checks import validate_config  # noqa: E402
from ucfp.evaluation.data import load_dataset, split_halves  # noqa: E402
from ucfp.evaluation.model_list import parse_model_list  # noqa: E402
from ucfp.evaluation.models import get_module  # noqa: E402
from ucfp.evaluation.train import train  # noqa: E402
from ucfp.evaluation.zoo import ZooBuilder, build_zoo, restore_zoo  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltrc.py", "the quality run's config")
_WORKDIR = flags.DEFINE_string("workdir", "ucfp-work", "the quality run's work directory")
_TAG = flags.DEFINE_string("tag", None, "results name suffix (default: the dataset)")
_TEMPERATURE = flags.DEFINE_float("temperature", 4.0, "the distillation temperature")
_THREAT = flags.DEFINE_bool(
  "threat_model", True, "the zoo of quality.py --threat_model (else the config's own zoo)"
)
_CACHED_ONLY = flags.DEFINE_bool(
  "cached_only", False, "restore what --workdir has cached, training nothing (a build in progress)"
)
_QUALITY = flags.DEFINE_list(
  "quality",
  [],
  "quality.py --threat_model results JSONs of this zoo: their ROC AUCs without the twins",
)
# ZooBuilder's split of the train split into the halves half_a / half_b.
HALVES_SEED = 12345


def label_errors(pred: np.ndarray, truth: np.ndarray) -> dict:
  """How many of the labels `pred` (n,) differ from `truth` (n,)."""
  wrong = int(np.sum(np.asarray(pred) != np.asarray(truth)))
  return {"queries": len(truth), "wrong": wrong, "fraction": wrong / max(len(truth), 1)}


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
  """Mean over rows of 0.5 * sum |p - q| for probabilities p, q (n, K)."""
  return float(np.mean(0.5 * np.abs(p - q).sum(-1)))


def _same_arch_innocents(config, zoo) -> dict:
  """{label: ZooModel} of the innocents of the base's architecture trained on the full
  train split (label: the name, and the epochs where they differ from the base's)."""
  by_name = {m.name: m for m in zoo.unassociated}
  out = {}
  for e in parse_model_list(config.zoo.unassociated, "config.zoo.unassociated", True):
    name = f"innocent-{e.arch}-s{e.seed}"
    if e.arch == config.model and e.subset == "full" and name in by_name:
      out[name + (f" ({e.epochs} epochs)" if e.epochs else "")] = by_name[name]
  return out


def twins(config, data, workdir: str, zoo) -> dict:
  """Each label-extracted student of the zoo whose queries are a half of the train split,
  against its twin: an innocent trained with the student's recipe and seed on the same
  half, with the true labels. {name: {queries, labels_differ, seed, max_weight_diff,
  disagree}}: how many of the student's labels differ from the true ones, the largest absolute
  difference between the two models' variables, and the fraction of the test images
  and of 1000 uniform-noise images (where noise-started fingerprints begin) they label
  differently. Where no label differs, the twin is the student, weight for weight."""
  ctx = ZooBuilder(config, data, workdir, restore_only=True).context()
  students = {m.name: m for m in zoo.derived}
  noise = np.random.default_rng(0).uniform(0, 1, (1000, *data.train_x.shape[1:]))
  probe = np.concatenate([data.test_x, noise.astype(data.train_x.dtype)])
  label = lambda m, v: np.asarray(predict_logits(m.apply_fn, v, probe)).argmax(-1)
  out = {}
  for attack in attacks.parse_attacks(config.zoo.attacks):
    if attack.kind != "extract" or attack.args[1] not in ("half_a", "half_b"):
      continue
    student = students.get(attack.name)
    if student is None:  # --cached_only, not built yet
      continue
    d = attacks.derive(attack, zoo.base.model, data, ctx)
    inputs = d.inputs()
    idx = inputs.indices
    spec = dataclasses.replace(d.spec, labels="data", parent="")
    module = get_module(d.arch, data.info.num_classes)
    twin = train(module, spec, data.train_x, data.train_y, indices=idx, name="twin")
    s_vars = student.model.variables
    diff = max(
      float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))
      for a, b in zip(jax.tree.leaves(s_vars), jax.tree.leaves(twin), strict=True)
    )
    m = student.model
    out[attack.name] = {
      "queries": len(idx),
      "labels_differ": int(np.sum(inputs.y[idx] != data.train_y[idx])),
      "seed": spec.seed,
      "max_weight_diff": diff,
      "disagree": float(np.mean(label(m, s_vars) != label(m, twin))),
    }
  return out


def near_base(base, zoo, data, temperature: float, peers, train_probs: dict) -> dict:
  """{name: {kind, train, test, noise}}: each student of the zoo (distilled, extracted)
  and each model of `peers`, the mean total variation between its probabilities and
  the base's at `temperature` on the train images, the test images and 1000
  uniform-noise images. `train_probs`: {model name: (n, K) probabilities on the train
  images} already computed (the base's among them), not computed again."""
  noise = np.random.default_rng(1).uniform(0, 1, (1000, *data.train_x.shape[1:]))
  sets = {"train": data.train_x, "test": data.test_x, "noise": noise.astype(data.train_x.dtype)}

  def probs(m, k):
    if k == "train" and m.name in train_probs:
      return train_probs[m.name]
    return teacher_probs(m, sets[k], temperature)

  ref = {k: probs(base, k) for k in sets}
  students = [m for m in zoo.derived if m.attack.split(":")[0] in ("distill", "extract")]
  out = {}
  for m in [*students, *peers]:
    kind = m.attack.split(":")[0] if m.kind == "derived" else "innocent"
    out[m.name] = {"kind": kind, **{k: total_variation(ref[k], probs(m.model, k)) for k in sets}}
  return out


def aucs_without(path: str, names) -> dict:
  """{method: (AUC over every useful copy, AUC without the copies `names`, how many of
  `names` verify judged derived)} of a quality.py results JSON (match rate, useful
  derived copies vs innocents). A twin judged derived is an innocent accused."""
  with open(path) as f:
    methods = json.load(f)["methods"]
  out = {}
  for method, r in methods.items():
    per = r["per_model"]
    rest = {k: v for k, v in per.items() if k not in names}
    accused = sum(bool(per[n].get("derived")) for n in names if n in per)
    out[method] = (auc_split(per)["auc"], auc_split(rest)["auc"], accused)
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # not orbax's per-restore throughput lines
  config = _CONFIG.value
  if _THREAT.value:
    config.zoo.attacks, innocents = threat_tables(config.dataset, config.image_shape)
    config.zoo.unassociated = innocents or config.zoo.unassociated
  validate_config(config)
  data = load_dataset(config.dataset, cache_dir=os.path.join(_WORKDIR.value, "data"))
  if _CACHED_ONLY.value:
    zoo, missing = restore_zoo(config, data, _WORKDIR.value)
    print(f"--cached_only: {len(missing)} models not built yet, left out", flush=True)
  else:
    zoo = build_zoo(config, data, _WORKDIR.value)
  base = zoo.base.model
  logits = lambda m, x: np.asarray(predict_logits(m.apply_fn, m.variables, x))
  t = _TEMPERATURE.value
  base_soft = teacher_probs(base, data.train_x, t)  # the distillation targets
  train_pred = base_soft.argmax(-1)
  half_a, half_b = split_halves(len(data.train_x), seed=HALVES_SEED)
  aug_x = augmented_queries(data.train_x[half_b])
  aug_truth = np.concatenate([data.train_y[half_b]] * 2)
  labels = {
    "train (distillation's images)": label_errors(train_pred, data.train_y),
    "half_a": label_errors(train_pred[half_a], data.train_y[half_a]),
    "half_b (extraction's queries)": label_errors(train_pred[half_b], data.train_y[half_b]),
    "aug (half_b + a flipped, shifted copy)": label_errors(
      logits(base, aug_x).argmax(-1), aug_truth
    ),
    "test (for comparison)": label_errors(logits(base, data.test_x).argmax(-1), data.test_y),
  }
  peers = _same_arch_innocents(config, zoo)
  soft = {n: teacher_probs(m.model, data.train_x, t) for n, m in peers.items()}
  base_vs = {n: total_variation(base_soft, p) for n, p in soft.items()}
  between = {
    f"{a} / {b}": total_variation(soft[a], soft[b]) for a, b in itertools.combinations(soft, 2)
  }
  payload = {
    "dataset": config.dataset,
    "base": base.name,
    "labels": labels,
    "temperature": t,
    "tv_base_vs_innocent": base_vs,
    "tv_innocent_pairs": between,
  }
  lines = [
    f"# What a student learns of the base: {config.dataset}",
    "",
    f"Base `{base.name}`. The base's hard labels on each query set against the true "
    "labels: an extracted student's data differs from an innocent's (same images, true "
    "labels) only where the base is wrong.",
    "",
    "| query set | queries | base label wrong | fraction |",
    "|---|---|---|---|",
    *(f"| {k} | {v['queries']} | {v['wrong']} | {v['fraction']:.4f} |" for k, v in labels.items()),
    "",
    f"Soft labels at temperature {t:g} over the {len(data.train_x)} train images (base: "
    f"{config.train.epochs} epochs): mean "
    "total variation between the base's and each same-architecture innocent's (what a "
    "distilled student sees that the innocent would not), and between two innocents "
    "(what any two independent trainings differ by).",
    "",
    "| pair | mean total variation |",
    "|---|---|",
    *(f"| base / {n} | {v:.4f} |" for n, v in base_vs.items()),
    *(f"| {n} | {v:.4f} |" for n, v in between.items()),
  ]
  mlps = [m for m in zoo.unassociated if m.name.startswith("innocent-mlp-")]
  known = {base.name: base_soft, **{m.model.name: soft[n] for n, m in peers.items()}}
  closeness = near_base(base, zoo, data, t, [*peers.values(), *mlps], known)
  payload["tv_to_base"] = closeness
  lines += [
    "",
    f"How close each student and each same-architecture or MLP innocent comes to the base: mean "
    f"total variation of the probabilities at temperature {t:g} on the train images (a "
    "distilled student's targets), the test images (held out by all) and 1000 "
    "uniform-noise images (off the data, where noise-started fingerprints begin).",
    "",
    "| model | kind | train | test | noise |",
    "|---|---|---|---|---|",
    *(
      f"| {n} | {v['kind']} | {v['train']:.4f} | {v['test']:.4f} | {v['noise']:.4f} |"
      for n, v in closeness.items()
    ),
  ]
  twin = twins(config, data, _WORKDIR.value, zoo)
  payload["twins"] = twin
  lines += [
    "",
    "Each label-extracted student on a half of the train split against its twin: an "
    "innocent trained with the student's recipe and seed on the same half, with the "
    "true labels. Where none of the student's labels differs from the true ones, the "
    "two are one model (weight difference 0): the student *is* an innocent, and any "
    "fingerprint of the base scores it as it scores that innocent.",
    "",
    "| student | queries | its labels that differ from the true ones | seed "
    "| largest weight difference | test + 1000 noise images labelled differently |",
    "|---|---|---|---|---|---|",
    *(
      f"| {n} | {v['queries']} | {v['labels_differ']} | {v['seed']} "
      f"| {v['max_weight_diff']:.3g} | {v['disagree']:.4f} |"
      for n, v in twin.items()
    ),
  ]
  same = [n for n, v in twin.items() if v["labels_differ"] == 0 and v["disagree"] == 0]
  if _QUALITY.value and same:
    aucs = {path: aucs_without(path, set(same)) for path in _QUALITY.value}
    payload["auc_without_twins"] = {"left_out": same, "auc": aucs}
    lines += [
      "",
      "ROC AUC of each method of the quality results below (match rate, useful derived "
      "copies vs innocents) over every useful copy, and without the copies that are "
      f"their twins ({', '.join(same)}): innocents by construction, which no fingerprint "
      "can rank above the innocents without ranking their twins there too; and how "
      "many twins verify (alpha 1e-3) judged derived: innocents accused.",
      "",
      "| results | method | AUC, every useful copy | AUC without the twins | twins accused |",
      "|---|---|---|---|---|",
      *(
        f"| {os.path.basename(path)} | {m} | {a:.3f} | {b:.3f} | {c} |"
        for path, table in aucs.items()
        for m, (a, b, c) in table.items()
      ),
    ]
  print("\n".join(lines))
  print(
    "wrote", *write_results(f"students-{_TAG.value or config.dataset}", payload, "\n".join(lines))
  )


if __name__ == "__main__":
  app.run(main)
