"""benchmarks/quality.py's tables: the threat model's attacks and innocents (issue #17),
and the methods it scores (the paper's, ucfp's, and one ablation row per lever)."""

from __future__ import annotations

import numpy as np

from configs.ltrc import PAPER_START

# Every attack family (ucfp/evaluation/attacks), at several strengths; `same` is the
# base's architecture.
THREAT_ATTACKS = (
  "prune_layer:0.5,prune_layer:0.8,prune_channel:0.25,prune_channel:0.5,prune_channel:0.75,"
  "fine_prune:0.5,fine_prune:0.8,prune_global:0.5:raw,prune_global:0.8:raw,"
  "finetune_all:same,finetune_all:other,finetune_last:same,finetune_last:other,"
  "wash:same,wash:other,new_head:all,new_head:last,quant:8,quant:4,quant:8:tensor,"
  "noise:0.1,noise:0.3,distill:same,distill:mlp,extract:same:half_b,extract:same:aug,"
  "extract:same:ood,extract:mlp:half_b,advtrain:fgsm,advtrain:pgd"
)
# Innocents per dataset: architectures, seeds, data halves, epochs (recipes) and
# scikit-learn black boxes, disjoint from the owner's reference models.
THREAT_INNOCENTS = {
  "digits": (
    "cnn_small:101,cnn_small:102,mlp:103,lenet:104,cnn_small:105:half_b,"
    "cnn_small:106:half_a,cnn_small:107:full:10,cnn_small:108:full:40,cnn_wide:109,"
    "cnn_wide:110:half_b,mlp:111:half_a,mlp:112:full:40,lenet:113:half_a,lenet:114:full:10,"
    "cnn_small:115,cnn_wide:116:full:10,"
    "sk_mlp:121:half_b,sk_logreg:122,sk_svm:123,sk_forest:124,sk_forest:125:half_a"
  ),
  # Sized for 2 CPU cores (each VGG epoch ~4 min): 17 networks of 6 architectures at 1-5
  # epochs, seeds and halves, and 4 scikit-learn black boxes (MLP, logistic regression: no SVM,
  # O(n^2) at 50,000 images, and no forest: 100 unbounded trees on 3,072 pixels).
  "cifar10": (
    "vgg:101:full:2,vgg:102:full:2,vgg:105:half_b:2,vgg:106:half_a:2,vgg:107:full:3,"
    "vgg:108:full:1,vgg_small:103:full:3,vgg_small:104:full:3,vgg_small:109:half_b:3,"
    "vgg_small:110:full:5,vgg_small:111:half_a:3,resnet20:112:full:2,resnet20:113:half_b:2,"
    "cnn_small:114:full:3,cnn_wide:115:full:3,lenet:116:full:3,mlp:117:full:5,"
    "sk_mlp:121:half_b,sk_mlp:124:half_a,sk_mlp:125,sk_logreg:122"
  ),
}
# Per dataset where THREAT_ATTACKS is too dear: on CIFAR-10 (students train the base's 10
# epochs, ~40 min each for a VGG) one strength per attack family and every family kept.
# Adversarial fine-tuning at eps 0.03 (1 epoch) left the VGG at 0.53 test accuracy (FGSM),
# no useful copy: a thief takes a radius that keeps it, so FGSM and PGD also at 0.01.
THREAT_ATTACKS_BY_DATASET = {
  "cifar10": (
    "prune_layer:0.5,prune_channel:0.25,prune_channel:0.5,fine_prune:0.5,"
    "prune_global:0.8:raw,finetune_all:same,finetune_all:other,finetune_last:same,"
    "finetune_last:other,wash:same,new_head:all,quant:8,quant:4,noise:0.1,distill:same,"
    "distill:mlp,extract:same:half_b,extract:same:aug,extract:mlp:half_b,advtrain:fgsm,"
    "advtrain:fgsm:0.01,advtrain:pgd:0.01"
  ),
}
# Other bases for the threat model (`--threat_base`): the model, the owner's references,
# the innocents and the attacks that replace the dataset's. "lenet": a CIFAR-10 LeNet (no
# BatchNorm, 10 epochs, ~0.59), cheap enough for every attack at every strength of
# THREAT_ATTACKS and CIFAR-10's eps-0.01 adversarial ones, and 21 innocents (with the
# extended zoo's black box), within the 3-hour budget from an empty cache on 2 cores.
THREAT_BASES = {
  "lenet": {
    "dataset": "cifar10",
    "model": "lenet",
    "attacks": ",".join(
      dict.fromkeys(THREAT_ATTACKS.split(",") + THREAT_ATTACKS_BY_DATASET["cifar10"].split(","))
    ),
    "references": "lenet:1001:full:5,lenet:1002:full:5,cnn_small:1004:full:3",
    "innocents": (
      "lenet:101:full:5,lenet:102:full:5,lenet:105:half_b:5,lenet:106:half_a:5,"
      "lenet:107:full:3,cnn_small:103:full:3,mlp:104:full:5,lenet:108:full:2,"
      "lenet:109:half_b:3,lenet:110:full:8,lenet:111:half_a:3,lenet:118:full:5,"
      "mlp:112:half_b:5,mlp:113:full:3,mlp:117:half_a:5,vgg_small:114:full:3,"
      "vgg_small:115:half_a:3,sk_mlp:121:half_b,sk_logreg:122,sk_mlp:124:half_a"
    ),
  },
}
# An image folder's threat tables, by its image shape.
THREAT_SHAPES = {(8, 8, 1): "digits", (32, 32, 3): "cifar10"}


def threat_dataset(dataset: str, image_shape) -> str:
  """The threat tables' name of `config.dataset`: an image folder takes its shape's
  (`image_shape` (H, W, C)), other datasets their own name."""
  name = dataset.split(":")[0]
  if name == "imagefolder":
    name = THREAT_SHAPES.get(tuple(image_shape), name)
  return name


def threat_tables(dataset: str, image_shape) -> tuple[str, str | None]:
  """(attacks, innocents or None) of the threat model for `config.dataset` and
  `config.image_shape` (H, W, C); an image folder takes its shape's dataset's."""
  name = threat_dataset(dataset, image_shape)
  return THREAT_ATTACKS_BY_DATASET.get(name, THREAT_ATTACKS), THREAT_INNOCENTS.get(name)


def apply_threat_model(config, base: str | None = None) -> None:
  """Sets config.zoo.attacks (if empty) and config.zoo.unassociated for --threat_model:
  the dataset's tables, or with `base` (a key of THREAT_BASES, --threat_base) the base's,
  which also sets config.model and config.reference.models. Raises ValueError if the
  base is for another dataset."""
  attacks, innocents = threat_tables(config.dataset, config.image_shape)
  if base is not None:
    preset = THREAT_BASES[base]
    name = threat_dataset(config.dataset, config.image_shape)
    if name != preset["dataset"]:
      raise ValueError(
        f"--threat_base={base} is a {preset['dataset']} base; --config.dataset is "
        f"{config.dataset!r} ({name}): use --config=configs/ltrc.py:{preset['dataset']}"
      )
    config.model = preset["model"]
    config.reference.models = preset["references"]
    attacks, innocents = preset["attacks"], preset["innocents"]
  if not config.zoo.attacks:
    config.zoo.attacks = attacks
  if innocents:
    config.zoo.unassociated = innocents
  else:
    print(f"no THREAT_INNOCENTS for {config.dataset!r}: config.zoo.unassociated kept", flush=True)


# The owner's students for the surrogate rows below.
OWNER_STUDENTS = "distill:same,distill:mlp,extract:same:half_a,extract:mlp:half_a"

# The paper's methods and the levers measured on ucfp's recipe before 2026-12-08 pin the
# paper's starts and loss (configs/ltrc.py starts from training images on 8x8 since),
# so that their rows mean what they meant.

# name -> (description, config overrides). "ucfp" is configs/ltrc.py as shipped.
METHODS = {
  "c": ("C-examples (paper)", {"method": "c", **PAPER_START}),
  "rc": ("RC-examples (paper)", {"method": "rc", "_paper_variants": True, **PAPER_START}),
  "ltrc_paper": (
    "LTRC-examples (paper: RC + high-pass filter)",
    {
      "method": "ltrc",
      "ltrc.term": "none",
      "_highpass": "paper",
      "_paper_variants": True,
      **PAPER_START,
    },
  ),
  "ucfp": ("ucfp LTRC (+ reference-model term, + surrogates on larger images)", {}),
  # Ablations of ucfp's recipe (the levers), each one change:
  "ucfp_1base_ref": (
    "ablation: 1 reference model of the base architecture (others kept)",
    {"_base_refs": 1},
  ),
  "ucfp_4base_refs": (
    "ablation: half the references of the base architecture (others kept)",
    {"_base_refs": 0.5},
  ),
  "ucfp_weight1": ("ablation: reference-term weight 1 instead of 3", {"ltrc.weight": 1.0}),
  "ucfp_reduce_max": (
    "ablation: max (not mean) target probability over the references",
    {"ltrc.reduce": "max"},
  ),
  "ucfp_highpass": (
    "ablation: the paper's high-pass filter switched on (off) where the default is off (on)",
    {"_highpass": "toggle"},
  ),
  "ucfp_no_variants": (
    "ablation: no model variants (noise 0, no mask: the robustness term is the C loss)",
    {"robust.noise_bound": 0.0, "robust.mask": "none", "robust.num_variants": 1},
  ),
  "ucfp_surrogates": (
    "ablation: the owner's surrogate (pruned, fine-tuned) copies switched off (on) where the "
    "default uses them (not)",
    {"_surrogate_toggle": True},
  ),
  "ucfp_v2": ("ablation: V = 2 variants per step instead of 8", {"robust.num_variants": 2}),
  "ucfp_noise05": (
    "ablation: weight-noise bound 0.05 instead of 0.01",
    {"robust.noise_bound": 0.05},
  ),
  "ucfp_prune_other": (
    "ablation: variant pruning rates U[0, 0.5] where the default is RC's U[0.3, 0.9] "
    "(8x8), and U[0.3, 0.9] where it is U[0, 0.5] (larger images)",
    {"_prune_toggle": True},
  ),
  "ucfp_prune_07": (
    "ablation: variant pruning rates U[0, 0.7]",
    {"robust.prune_rate": (0.0, 0.7)},
  ),
  "ucfp_steps_third": ("ablation: a third of the steps", {"_steps_scale": 1 / 3}),
  "ucfp_steps2x": ("ablation: twice the steps", {"_steps_scale": 2.0}),
  "ucfp_step2x": ("ablation: twice the step size", {"_step_scale": 2.0}),
  "ucfp_early_stop": (
    "ablation: early stop once every base-model margin >= 5",
    {"early_stop": True, "early_stop_margin": 5.0},
  ),
  "ucfp_margin_loss": (
    "ablation: margin (C&W) loss instead of cross-entropy (uniform-noise starts)",
    {**PAPER_START, "loss": "margin"},
  ),
  "ucfp_paper_start": (
    "ablation: uniform-noise starts and cross-entropy (the paper's; ucfp's on larger "
    "images, where this row is ucfp, and on 8x8 before 2026-12-08)",
    PAPER_START,
  ),
  # Levers for the students (distilled, label-extracted copies) of the threat model: the
  # owner's own students (robust.surrogate_attacks, seed + SURROGATE_SEED, never an
  # evaluated copy) join the robustness term. The owner extracts on half_a (the thief
  # of the threat model queries half_b).
  "ucfp_sur_students": (
    "ablation: the owner's distilled and label-extracted (half_a) students (same arch, mlp) "
    "as surrogates",
    {"robust.surrogate_attacks": OWNER_STUDENTS},
  ),
  # Against adversarial fine-tuning (CIFAR-10: FGSM at eps 0.01 left ucfp's examples at
  # 0.16): the owner's own FGSM-fine-tuned copy in the robustness term.
  "ucfp_sur_adv": (
    "ablation: the owner's FGSM-fine-tuned copy (eps 0.01) as a surrogate",
    {"robust.surrogate_attacks": "advtrain:fgsm:0.01"},
  ),
  "ucfp_sur_adv_w3": (
    "ablation: ucfp_sur_adv with surrogate weight 3",
    {"robust.surrogate_attacks": "advtrain:fgsm:0.01", "robust.surrogate_weight": 3.0},
  ),
  "ucfp_sur_students_w3": (
    "ablation: ucfp_sur_students with surrogate weight 3",
    {"robust.surrogate_attacks": OWNER_STUDENTS, "robust.surrogate_weight": 3.0},
  ),
  "ucfp_sur_students_w03": (
    "ablation: ucfp_sur_students with surrogate weight 0.3",
    {"robust.surrogate_attacks": OWNER_STUDENTS, "robust.surrogate_weight": 0.3},
  ),
  "ucfp_sur_students_ref10": (
    "ablation: ucfp_sur_students with reference-term weight 10 instead of 3",
    {"robust.surrogate_attacks": OWNER_STUDENTS, "ltrc.weight": 10.0},
  ),
  "ucfp_margin_k2": (
    "ablation: margin loss with floor kappa 2 instead of 5",
    {**PAPER_START, "loss": "margin", "kappa": 2.0},
  ),
  "ucfp_margin_k10": (
    "ablation: margin loss with floor kappa 10 instead of 5",
    {**PAPER_START, "loss": "margin", "kappa": 10.0},
  ),
  "ucfp_margin_steps_third": (
    "ablation: margin loss and a third of the steps",
    {**PAPER_START, "loss": "margin", "_steps_scale": 1 / 3},
  ),
  "ucfp_weight10": ("ablation: reference-term weight 10 instead of 3", {"ltrc.weight": 10.0}),
  # The margin loss reaches the same-architecture students, weight 10 lowers T: together?
  "ucfp_margin_weight10": (
    "ablation: margin loss (kappa 5) and reference-term weight 10",
    {**PAPER_START, "loss": "margin", "ltrc.weight": 10.0},
  ),
  "ucfp_margin_k7_weight10": (
    "ablation: margin loss with floor kappa 7 and reference-term weight 10",
    {**PAPER_START, "loss": "margin", "kappa": 7.0, "ltrc.weight": 10.0},
  ),
  "ucfp_data": (
    "ablation: examples started from training images the base puts in another class "
    "(init=data) instead of uniform noise (cross-entropy)",
    {**PAPER_START, "init": "data"},
  ),
  "ucfp_data_margin": (
    "ablation: init=data and the margin loss (kappa 5): on 8x8 ucfp's default since 2026-12-08",
    {"init": "data", "loss": "margin"},
  ),
  "ucfp_sel3": (
    "ablation: 3x candidates, the lowest base-margin third kept per class (oversample=3)",
    {"oversample": 3},
  ),
  "ucfp_weight10_sel3": (
    "ablation: reference-term weight 10 and oversample=3",
    {"ltrc.weight": 10.0, "oversample": 3},
  ),
  # Conferrable-style (Lukas et al., ICLR 2021): adversarial examples of real images
  # within a small L-inf budget that transfer to the owner's students but not to the
  # references; on the data, students follow the base more than off it.
  "ucfp_cae_b01": (
    "ablation: init=data, L-inf budget 0.1 around the start image, the owner's students "
    "as surrogates (conferrable-style)",
    {**PAPER_START, "init": "data", "budget": 0.1, "robust.surrogate_attacks": OWNER_STUDENTS},
  ),
  "ucfp_cae_b02": (
    "ablation: ucfp_cae_b01 with budget 0.2",
    {**PAPER_START, "init": "data", "budget": 0.2, "robust.surrogate_attacks": OWNER_STUDENTS},
  ),
  "ucfp_data_b02": (
    "ablation: init=data and budget 0.2, no students (ucfp_cae_b02's control)",
    {**PAPER_START, "init": "data", "budget": 0.2},
  ),
  # Not generated: the base's own mistakes on its training images that no reference
  # shares (ucfp.mistake_fingerprints), for the students; skipped where too few.
  "mistakes": (
    "the base's mistakes on its training images that no reference shares (no generation)",
    {"_mistakes": True},
  ),
  "mistakes_perturbed": (
    "ablation: the base's mistakes on perturbed training images (1-pixel shifts, noise "
    "0.3-0.5) that no reference shares: a set where the base fits its training images",
    {"_mistakes": "perturbed"},
  ),
  "ucfp_uint8": (
    "ablation: ucfp fingerprints rounded to uint8 (as an API receives them)",
    {"_uint8": True},
  ),
}


def perturbed_pool(x: np.ndarray, y: np.ndarray, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
  """Training images x (n, H, W, C) in [0, 1] and labels y (n,) -> 11n candidates for the
  `mistakes_perturbed` row: x shifted by one pixel in 8 directions (zero fill) and with
  Gaussian noise of sd 0.3, 0.4, 0.5 (clipped), with their true labels (11n,)."""
  h, w = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  moves = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
  shifted = [padded[:, 1 + a : 1 + a + h, 1 + b : 1 + b + w] for a, b in moves]
  rng = np.random.default_rng(seed)
  noisy = [np.clip(x + rng.normal(0.0, sd, x.shape), 0.0, 1.0) for sd in (0.3, 0.4, 0.5)]
  images = np.concatenate(shifted + noisy).astype(np.float32)
  return images, np.tile(np.asarray(y), len(moves) + len(noisy))
