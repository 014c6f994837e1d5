"""What every attack shares: the parsed spec, the adversary's context, the derivation.

An attack is a pure function `derive(attack, base, data, ctx) -> Derivation`: either
the derived variables at once (pruning without fine-tuning, quantisation, noise), or
a training spec and the inputs that train the derived model (`ucfp.evaluation.train`),
so that the zoo can name, cache and restore it like every other model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ucfp.evaluation.train import TrainSpec

# Students (distillation, extraction) are initialised from config.seed + STUDENT_SEED:
# a thief does not have the owner's initialisation.
STUDENT_SEED = 4001


@dataclasses.dataclass(frozen=True)
class Attack:
  """A parsed attack spec (see `ucfp.evaluation.attacks`)."""

  kind: str  # the registry name, e.g. prune_global
  args: tuple  # parsed arguments, defaults filled in
  text: str  # canonical spec, e.g. prune_global:0.5:finetune
  name: str  # the derived model's name in the zoo and reports
  rate: float | None = None  # the pruning rate of pruning attacks


@dataclasses.dataclass(frozen=True)
class Context:
  """How the adversary works: the base's recipe, and the fine-tuning recipe of the zoo.

  `base_spec` is the base model's TrainSpec (architecture, seed, epochs, batch,
  learning rate, weight decay, augmentation); `base_key` its checkpoint key, the
  `parent` of every derived spec; `halves` the two disjoint halves of the train split.
  """

  base_spec: TrainSpec
  base_key: str
  finetune_epochs: int
  finetune_learning_rate: float
  halves: tuple[np.ndarray, np.ndarray]
  num_classes: int

  def finetune_spec(self, **changes) -> TrainSpec:
    """The zoo's fine-tuning of the base (as its pruned copies are fine-tuned), changed."""
    spec = dataclasses.replace(
      self.base_spec,
      epochs=self.finetune_epochs,
      learning_rate=self.finetune_learning_rate,
      parent=self.base_key,
    )
    return dataclasses.replace(spec, **changes)

  def student_spec(self, arch: str, **changes) -> TrainSpec:
    """A model trained from scratch with the base's recipe, as a thief's student."""
    spec = dataclasses.replace(
      self.base_spec,
      arch=arch,
      seed=self.base_spec.seed + STUDENT_SEED,
      augment=False,
      parent=self.base_key,
    )
    return dataclasses.replace(spec, **changes)


@dataclasses.dataclass
class TrainInputs:
  """Arguments of `train`: images x (n, H, W, C), labels y (n,) or probabilities
  (n, K), the indices trained on, the initial variables and fixed pruning masks."""

  x: np.ndarray
  y: np.ndarray
  indices: np.ndarray | None = None
  init: Any = None
  masks: Any = None


@dataclasses.dataclass
class Derivation:
  """What an attack derives: `variables` at once, or a `spec` with lazily built `inputs`.

  `arch` is the derived model's architecture (a student's may differ from the base's).
  """

  arch: str
  variables: Any = None
  spec: TrainSpec | None = None
  inputs: Callable[[], TrainInputs] | None = None
