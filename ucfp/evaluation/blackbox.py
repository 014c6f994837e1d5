"""Innocents outside JAX: scikit-learn classifiers on flat pixels, queried for labels only.

They are cheap on 8x8 digits (seconds) and retrained on every run (scikit-learn
models are not stored: saving them would need pickle).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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


def fit_blackbox(arch: str, seed: int, x: np.ndarray, y: np.ndarray) -> Callable:
  """Fits BLACKBOXES[arch] on images x (n, H, W, C) and labels y (n,); returns
  `predict(images (m, H, W, C)) -> labels (m,)`."""
  if arch not in BLACKBOXES:
    raise ValueError(f"black box {arch!r} is not one of {', '.join(BLACKBOXES)}")
  clf = BLACKBOXES[arch](seed)
  clf.fit(_flat(x), np.asarray(y))
  return lambda images: clf.predict(_flat(images))
