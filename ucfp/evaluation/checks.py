"""Validation of a full run's fields (data, models, zoo), after the generation fields.

Each error is a ValueError that names the field (`config.<field>`) and what is allowed.
"""

from __future__ import annotations

from ucfp.core.validate import number, positive_int, validate_generation
from ucfp.evaluation.attacks import parse_attacks
from ucfp.evaluation.data import check_dataset_name
from ucfp.evaluation.model_list import parse_model_list
from ucfp.evaluation.models import check_model_name
from ucfp.evaluation.parallel import check_workers


def validate_config(config) -> None:
  """Checks every field of a full run (generation, data, models, zoo)."""
  validate_generation(config)
  check_dataset_name(config.dataset)
  check_model_name(config.model)
  t = config.train
  positive_int(t.epochs, "train.epochs")
  positive_int(t.batch_size, "train.batch_size")
  number(t.learning_rate, "train.learning_rate", 0, low_open=True)
  number(t.weight_decay, "train.weight_decay", 0)
  check_workers(t.workers)
  refs = parse_model_list(config.reference.models, "config.reference.models")
  innocents = parse_model_list(config.zoo.unassociated, "config.zoo.unassociated", blackbox=True)
  shared = sorted({(e.arch, e.seed) for e in refs} & {(e.arch, e.seed) for e in innocents})
  if shared:
    raise ValueError(
      f"config.reference.models and config.zoo.unassociated share {shared}: the owner's "
      "reference models must never be the models used for evaluation"
    )
  if (config.model, config.seed) in {(e.arch, e.seed) for e in refs + innocents}:
    raise ValueError(
      f"config.seed={config.seed} with config.model={config.model!r} is also a reference or "
      "unassociated model: give it another seed"
    )
  for rate in config.zoo.prune_rates:
    number(rate, "zoo.prune_rates", 0, 1)
    if rate >= 1:
      raise ValueError(f"config.zoo.prune_rates: {rate} must be < 1")
  positive_int(config.zoo.finetune_epochs, "zoo.finetune_epochs")
  if not isinstance(config.get("mistakes", False), bool):
    raise ValueError(f"config.mistakes={config.mistakes!r} must be True or False")
  for attack in parse_attacks(config.zoo.attacks, "config.zoo.attacks"):
    if attack.kind == "prune_global" and attack.args[1] == "finetune":
      if attack.rate in [float(r) for r in config.zoo.prune_rates]:
        raise ValueError(
          f"config.zoo.attacks: {attack.text!r} is the pruned copy of config.zoo.prune_rates "
          f"(pruned-{attack.rate:g}) already"
        )
  parse_attacks(config.robust.surrogate_attacks, "config.robust.surrogate_attacks")
  number(config.zoo.finetune_learning_rate, "zoo.finetune_learning_rate", 0, low_open=True)
  if config.method == "ltrc" and config.ltrc.term == "reference" and not config.reference.models:
    raise ValueError(
      "config.reference.models is empty but config.ltrc.term='reference' needs reference models"
    )
