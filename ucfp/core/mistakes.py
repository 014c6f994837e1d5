"""Fingerprints from the model's own mistakes on labelled images (beyond the paper).

A student trained on a model's outputs (distillation, label-only extraction) learns
the model's labels on its queries, mistakes included; an independently trained model
saw the true labels. So the images of the owner's training set that the model labels
wrongly, and that no reference model labels the same way, carry the model's own
labels: characteristic examples that need no optimisation. They complement
`ucfp.fingerprint`'s (which reach copies of the weights, not students): where the
model fits its training set exactly (8x8 digits) there are none, and a student's
training data is then an innocent's (benchmarks/results/students-digits-threat.md).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import special

from ucfp.core.fingerprints import Fingerprints
from ucfp.core.generation import architecture
from ucfp.core.predict import predict_logits
from ucfp.core.scoring import Suspect, predict_labels
from ucfp.core.types import Model


def select_mistakes(
  probs: np.ndarray, labels: np.ndarray, ref_labels: np.ndarray, num: int
) -> np.ndarray:
  """Indices (at most num,) of the images whose model label (argmax of probs) is not
  their true label and is given by no reference, the model's most confident first.

  Args:
    probs: (n, K) the model's probabilities (or any scores monotone per row).
    labels: (n,) the true labels.
    ref_labels: (R, n) the reference models' labels.
    num: how many to keep.
  """
  probs, labels, ref_labels = np.asarray(probs), np.asarray(labels), np.asarray(ref_labels)
  pred = probs.argmax(-1)
  candidates = (pred != labels) & ~np.any(ref_labels == pred[None], axis=0)
  idx = np.nonzero(candidates)[0]
  confidence = probs[idx, pred[idx]]
  return idx[np.argsort(-confidence, kind="stable")[:num]]


# Below this many references of the model's own architecture (full-length runs of its
# training), the mistakes kept were ones independent models of the family make too: on the
# CIFAR-10 BatchNorm client 4 and 1 false alarms with 0 and 1 full runs (and 4 short runs
# and 3 simple models), none with 2 or 4 (docs/threat-model.md); the CIFAR-10 preset's 3
# references (2 of the base's VGG) gave none of 22.
MIN_OWN_REFERENCES = 2


def mistakes_warning(model: Model, reference: Sequence[Suspect]) -> str | None:
  """Why the references may be too few to filter out the mistakes every model makes."""
  arch = architecture(model.variables)
  own = sum(isinstance(r, Model) and architecture(r.variables) == arch for r in reference)
  if own >= MIN_OWN_REFERENCES:
    return None
  return (
    f"ucfp.mistake_fingerprints: {own} white-box reference model(s) of the model's own "
    f"architecture (< {MIN_OWN_REFERENCES}): with fewer than 2 full-length runs of its "
    "training the mistakes kept were ones independent models make too (false alarms on a "
    "CIFAR-10 client, docs/threat-model.md); short runs do not count"
  )


def mistake_fingerprints(
  model: Model,
  images: np.ndarray,
  labels: np.ndarray,
  *,
  reference: Sequence[Suspect],
  num: int = 100,
) -> Fingerprints:
  """`num` fingerprints (images, the model's labels) from the model's mistakes.

  Args:
    model: the owner's model (white-box: its logits rank the mistakes).
    images: (n, H, W, C) float32 in [0, 1], labelled images, e.g. the training set.
    labels: (n,) their true labels, ints in [0, K).
    reference: independently trained models (Model or label callables); at least one:
      without, the mistakes kept are the ones most models make. Warns (UserWarning)
      with fewer than 2 white-box ones of the model's own architecture (measured).
    num: N, the number of fingerprints.

  Raises:
    ValueError: (before any compute) bad shapes, negative or non-integer labels, num,
      no reference; (after predicting) a label beyond the model's classes, fewer than
      num usable mistakes.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 4 or labels.shape != (len(images),):
    raise ValueError(
      f"images must be (n, H, W, C) and labels (n,); got {images.shape} and {labels.shape}"
    )
  if labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
    raise ValueError("labels must be non-negative integers (the true classes)")
  if isinstance(num, bool) or not isinstance(num, int | np.integer) or num < 1:
    raise ValueError(f"num={num!r} must be a positive integer")
  if len(reference) == 0:
    raise ValueError(
      "reference: mistake_fingerprints needs at least one independently trained model "
      "(without, the mistakes kept are the ones most models make)"
    )
  why = mistakes_warning(model, reference)
  if why:
    warnings.warn(why, UserWarning, stacklevel=2)
  t0 = time.perf_counter()
  logits = np.asarray(predict_logits(model.apply_fn, model.variables, images), np.float64)
  k = logits.shape[1]
  if labels.max(initial=0) >= k:
    raise ValueError(f"labels must be in [0, {k}) (the model has {k} classes)")
  probs = special.softmax(logits, axis=-1)
  # The references label only the model's mistakes (the other images are never kept):
  # on CIFAR-10's 50,000 training images, a tenth of the passes.
  wrong = np.nonzero(probs.argmax(-1) != labels)[0]
  idx = wrong[:0]
  if len(wrong) >= num:  # else too few whatever the references say
    refs = np.stack([predict_labels(r, images[wrong], k) for r in reference])
    idx = wrong[select_mistakes(probs[wrong], labels[wrong], refs, num)]
  if len(idx) < num:
    usable = f" and {len(idx)} of those as no reference does" if len(wrong) >= num else ""
    raise ValueError(
      f"num={num}: the model labels {len(wrong)} of {len(labels)} images wrongly{usable}; "
      "too few for the fingerprints (a model that fits these images carries no mistakes "
      "to copy)"
    )
  x = images[idx].astype(np.float32)
  y = probs.argmax(-1)[idx].astype(np.int32)
  meta = {
    "method": "mistakes",
    "num_classes": k,
    "steps_run": 0,
    "seconds": time.perf_counter() - t0,
  }
  return Fingerprints(x, y, meta)
