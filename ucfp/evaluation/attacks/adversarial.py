"""Adversarial fine-tuning: a few epochs of FGSM or PGD training on the base, known to
erase adversarial-example fingerprints. The examples are made inside the jitted
training step (`ucfp.evaluation.train.adversarial_examples`)."""

from __future__ import annotations

from ucfp.core.types import Model
from ucfp.evaluation.attacks.base import Attack, Context, Derivation, TrainInputs
from ucfp.evaluation.data import Dataset

# PGD's steps per batch (step size 2.5 eps / steps).
PGD_STEPS = 5


def advtrain_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """advtrain:KIND:EPS: the base fine-tuned (zoo.finetune_epochs, the train split) on
  KIND (fgsm | pgd) adversarial examples of L-inf radius EPS of each batch."""
  kind, eps = attack.args
  spec = ctx.finetune_spec(
    adversarial=kind, adv_eps=eps, adv_steps=PGD_STEPS if kind == "pgd" else 0
  )
  inputs = lambda: TrainInputs(data.train_x, data.train_y, init=base.variables)
  return Derivation(spec.arch, spec=spec, inputs=inputs)
