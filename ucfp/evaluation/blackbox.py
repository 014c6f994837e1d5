"""Innocents outside JAX: scikit-learn classifiers on flat pixels, queried for labels only.

The MLP and the logistic regression are plain arrays once fitted: `fit_blackbox` with a
`cache` path stores those as .npz (never pickle) and restores them, answering with the
same numpy forward pass either way (on CIFAR-10 their fits take minutes). The SVM and
the forest (digits only, seconds) are refitted on every run: storing them would need
pickle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable

import numpy as np

from ucfp.core.io import atomic_write_npz


def _mlp(seed):
  from sklearn.neural_network import MLPClassifier

  return MLPClassifier((128,), early_stopping=True, max_iter=100, random_state=seed)


def _logreg(seed):
  from sklearn.linear_model import LogisticRegression

  return LogisticRegression(C=1.0, max_iter=500, random_state=seed)


def _svm(seed):
  from sklearn.svm import SVC

  return SVC(C=10.0, gamma="scale", random_state=seed)


def _forest(seed):
  from sklearn.ensemble import RandomForestClassifier

  return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)


# Architecture names usable in config.zoo.unassociated (arch:seed[:subset]).
BLACKBOXES: dict[str, Callable] = {
  "sk_mlp": _mlp,
  "sk_logreg": _logreg,
  "sk_svm": _svm,
  "sk_forest": _forest,
}


def _flat(x) -> np.ndarray:
  x = np.asarray(x)
  return x.reshape(len(x), -1)


# Black boxes whose fitted state is arrays: (weights, biases) of their layers.
STORABLE = ("sk_mlp", "sk_logreg")


def _arrays(arch: str, clf) -> dict[str, np.ndarray]:
  """A fitted STORABLE classifier's layers as arrays: w<i> (d_i, d_i+1), b<i>, classes."""
  if arch == "sk_mlp":  # ReLU hidden layers (MLPClassifier's default activation)
    ws, bs = clf.coefs_, clf.intercepts_
  else:
    ws, bs = [clf.coef_.T], [clf.intercept_]
  out = {f"w{i}": np.asarray(w) for i, w in enumerate(ws)}
  out |= {f"b{i}": np.asarray(b) for i, b in enumerate(bs)}
  return out | {"classes": np.asarray(clf.classes_)}


def _forward(arrays: dict) -> Callable:
  """predict(images (m, H, W, C)) -> labels (m,) of the layers in `arrays` (`_arrays`)."""
  n = sum(k[0] == "w" and k[1:].isdigit() for k in arrays)
  layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n)]
  classes = arrays["classes"]

  def predict(images):
    h = _flat(images).astype(np.float64)
    for i, (w, b) in enumerate(layers):
      h = h @ w + b
      if i < n - 1:
        h = np.maximum(h, 0.0)
    # one output column: a binary classifier's decision function
    return classes[(h[:, 0] > 0).astype(int)] if h.shape[1] == 1 else classes[h.argmax(1)]

  predict.fit_seconds = float(arrays.get("fit_seconds", 0.0))  # when it was fitted
  return predict


def blackbox_key(entry, data_key: str) -> str:
  """The cache name of a black box: a hash of its entry (arch, seed, subset), the data's
  id and scikit-learn's version (another version may fit another model)."""
  import sklearn  # only for its version: not at import time

  text = json.dumps([dataclasses.asdict(entry), data_key, sklearn.__version__], sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit_blackbox(
  arch: str, seed: int, x: np.ndarray, y: np.ndarray, cache: str | None = None
) -> Callable:
  """Fits BLACKBOXES[arch] on images x (n, H, W, C) and labels y (n,); returns
  `predict(images (m, H, W, C)) -> labels (m,)`. With `cache` (an .npz path) a STORABLE
  one is restored from there when present, else fitted and stored."""
  if arch not in BLACKBOXES:
    raise ValueError(f"black box {arch!r} is not one of {', '.join(BLACKBOXES)}")
  if cache and arch in STORABLE and os.path.exists(cache):
    with np.load(cache, allow_pickle=False) as z:
      return _forward({k: z[k] for k in z.files})
  start = time.perf_counter()
  clf = BLACKBOXES[arch](seed)
  clf.fit(_flat(x), np.asarray(y))
  if arch not in STORABLE:
    return lambda images: clf.predict(_flat(images))
  arrays = _arrays(arch, clf) | {"fit_seconds": np.float64(time.perf_counter() - start)}
  if cache:
    atomic_write_npz(cache, **arrays)
  return _forward(arrays)
