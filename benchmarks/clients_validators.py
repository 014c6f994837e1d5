"""The owner's held-out derived copies that choose robust candidates (issue #20).

`config.robust.validators` (configs/own.py: 0.5, 0.9) and the `val` lever of
benchmarks/clients_selection.py: besides the surrogates in the objective
(`surrogate-0.8`, `surrogate-0.3`), the owner prunes their own model at each rate and
fine-tunes it as a thief would (the thief's recipe, other seeds: 79, 80, ...; the
thief's copies use seed 7, the surrogates 77 and 78). These copies stay out of the
objective; per class the candidates most of them still put in their class are kept
first (then the smallest base margin; `ucfp.core.select.fewest_votes`), so the kept
fingerprints are the ones pruning and fine-tuning are measured not to undo. No flags
here (tests import it).
"""

from __future__ import annotations

import dataclasses

from benchmarks import client_models as cm
from benchmarks.clients_zoo import profile_of

VALIDATOR_RATES = (0.5, 0.9)
VALIDATOR_SEED = 79  # the i-th rate fine-tunes with seed 79 + i


def validators(setup: str, data, cache: cm.Cache, base, rates=VALIDATOR_RATES) -> list:
  """ucfp.Models `validator-<rate>`: `base` (a ucfp.Model of `setup`) pruned at each of
  `rates` (global magnitude) and fine-tuned with the mask held, by the thief's recipe of
  `build_setup` (its epochs, constant rate, the profile's rate scale), seeds 79, 80, ...
  Cached in `cache` like every client model."""
  import ucfp
  from ucfp.core import prune

  prof = profile_of(data)
  arch, recipe, _ = prof.setups[setup]
  ft = dataclasses.replace(
    recipe,
    epochs=prof.finetune_epochs,
    cosine=False,
    learning_rate=recipe.learning_rate * prof.thief_lr_scale.get(setup, 1.0),
  )
  out = []
  for i, rate in enumerate(rates):
    seed = VALIDATOR_SEED + i
    masks = prune.global_magnitude_masks(base.variables, rate)
    init = prune.apply_masks(base.variables, masks)
    name = f"validator-{rate}"
    v = cache.get_or_fit(
      (setup, name, arch, dataclasses.asdict(ft), seed, "full", f"val{rate}"),
      lambda init=init, masks=masks, seed=seed: cm.fit(
        arch, ft, data.train_x, data.train_y, seed, init=init, masks=masks
      ),
    )
    out.append(ucfp.Model(cm.apply_fn(arch), v, name))
  return out
