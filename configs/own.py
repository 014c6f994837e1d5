"""LTRC for a model ucfp did not train, with few reference models of the user's own.

    config = own.get_config("digits")   # or python -m ucfp.generate --config=configs/own.py

`configs/ltrc.py` is measured on ucfp's own zoo, with 11 reference models on digits. On
a user's own model (benchmarks/clients.py: Flax modules and optax loops written apart
from ucfp) with K <= 4 of the user's references, its fingerprints transfer to
independently trained models (benchmarks/results/clients-digits.md). This config is
the recipe measured there (`ucfp_own`: US >= 0.85, T <= 0.10 and no false alarm on the
digits avg-pool CNN at K = 1, 2, its BatchNorm CNN at K = 0, 2, 4, its MLP at K = 1, 2, 4:
benchmarks/results/clients-digits-own-val.md; on the CIFAR-10 avg-pool client at K = 2,
4: clients-cifar10-val-selection.md; with K = 0 innocents of the model's own family
still follow the fingerprints on 3 of the 4 setups measured); pass as `reference=` the
user's K >= 2 models plus

- `ucfp.simple_references(train_x, train_y)`: a linear model, an MLP and a small CNN;
- 4 short runs (a tenth of the epochs) of the user's own training, other seeds
  (`ucfp.train_references(apply_fn, short_train_fn, 4, seeds=range(3001, 3005))`);

as `surrogates=` the owner's own copy pruned at 0.8 and fine-tuned, as `validators=`
two more of the owner's copies, pruned at 0.5 and 0.9 and fine-tuned (held out of the
objective: per class the candidates both still put in their class are kept first), and
as `starts=` the training images. On 8x8 digits the main job (`python -m ucfp.generate`)
runs it on ucfp's zoo with the preset's references (`starts`: the training split; the
zoo trains the surrogate and the validators).

Since 2026-12-06 the references' penalty is the anchor (each reference keeps reading
the class of the example's start image, so that the references are not all pushed into
the class nearest the target, the "sink" every innocent of a CNN family then follows),
the surrogate weighs 3 and the validators choose: measured against the previous recipe
(`prob` penalty, surrogate weight 1, margin selection) on the same client models, the
goal was met in 8 of 12 digits cells against 5 (US higher in 10), and in 2 of 4 CIFAR-10
avg-pool cells against 3 (benchmarks/results/clients-digits-val-*-selection.md,
clients-cifar10-val-selection.md; docs/client-models.md).

The references' margin hinge (`c.ltrc.ref_loss = "margin"`, `c.ltrc.ref_kappa = 6`,
`c.ltrc.weight = 1`, `c.robust.surrogate_weight = 3`) met the goal at every K on the
MLP client but lost R on the BatchNorm CNN and kept alarms on the avg-pool CNN
(benchmarks/results/clients-digits-own-margin.md): an option, not this default.
"""

from configs import ltrc


def get_config(arg: str | None = None):
  c = ltrc.get_config(arg)
  c.ltrc.weight = 10.0  # the reference term weighs more with few references
  c.init = "data"  # start from training images of another class, not from noise
  c.oversample = 5  # keep the lowest base-margin fifth of 5x candidates
  c.robust.surrogates = (0.8,)  # the owner's own pruned, fine-tuned copy
  c.robust.surrogate_weight = 3.0  # wins back the robustness the anchor costs
  c.ltrc.ref_loss = "anchor"  # each reference keeps reading its start image's class
  c.robust.validators = (0.5, 0.9)  # held-out owner's copies choose robust candidates
  return c
