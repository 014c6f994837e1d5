"""Fine-tuning attacks: all layers or the last one, on the same or other data, at a large
learning rate ("washing"), and transfer to a new head (Adi et al., 2018: FTAL, FTLL,
RTAL, RTLL)."""

from __future__ import annotations

from ucfp.core.types import Model
from ucfp.evaluation.attacks.base import Attack, Context, Derivation, TrainInputs
from ucfp.evaluation.data import Dataset

# Weight washing fine-tunes at this multiple of config.zoo.finetune_learning_rate.
WASH_FACTOR = 10.0


def data_changes(ctx: Context, data_arg: str) -> dict:
  """same: the train split, the base's augmentation, zoo.finetune_epochs. other: the
  disjoint half `half_b` of the train split with flips and translations, twice the
  epochs (as the zoo's `finetuned-other-data` copy always was)."""
  if data_arg == "same":
    return {}
  return {"subset": "half_b", "augment": True, "epochs": 2 * ctx.finetune_epochs}


def finetune_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """finetune_all / finetune_last / wash: fine-tunes the base on `attack.args[0]` data;
  finetune_last trains only the last dense layer, wash every layer at WASH_FACTOR times
  the fine-tuning learning rate."""
  changes = data_changes(ctx, attack.args[0])
  if attack.kind == "finetune_last":
    changes["trainable"] = "head"
  if attack.kind == "wash":
    changes["learning_rate"] = WASH_FACTOR * ctx.finetune_learning_rate
  spec = ctx.finetune_spec(**changes)
  indices = {"full": None, "half_b": ctx.halves[1]}[spec.subset]
  inputs = lambda: TrainInputs(data.train_x, data.train_y, indices, init=base.variables)
  return Derivation(spec.arch, spec=spec, inputs=inputs)


def new_head_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """Transfer to a new head: the last dense layer re-initialised, then every layer
  (`all`) or only that one (`last`) trained on the train split for zoo.finetune_epochs
  at the base's learning rate (a fresh head learns slowly at the fine-tuning rate:
  digits, 5 epochs, last layer only: 0.80 test accuracy at 1e-3, 0.97 at 3e-3)."""
  trainable = "head" if attack.args[0] == "last" else "all"
  spec = ctx.finetune_spec(
    reinit_head=True, trainable=trainable, learning_rate=ctx.base_spec.learning_rate
  )
  inputs = lambda: TrainInputs(data.train_x, data.train_y, init=base.variables)
  return Derivation(spec.arch, spec=spec, inputs=inputs)
