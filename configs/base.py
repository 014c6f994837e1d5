"""Every ucfp config field, declared once with its default. Presets pick a dataset.

    python -m ucfp.generate --config=configs/ltrc.py[:digits|cifar10|mnist]

`c.py`, `rc.py` and `ltrc.py` import this file and change only what differs.
A local image folder: `--config.dataset=imagefolder:/path/to/folder_or.tar.gz`
(with `--config.image_shape='(H, W, C)'` if the preset's shape differs).
"""

import difflib

import ml_collections

PRESETS = ("digits", "cifar10", "mnist", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  preset = arg or "digits"
  if preset not in PRESETS:
    near = difflib.get_close_matches(preset, PRESETS, n=1)
    hint = f" (nearest: {near[0]})" if near else ""
    raise ValueError(f"config preset {preset!r} is not one of {', '.join(PRESETS)}{hint}")
  c = ml_collections.ConfigDict()

  # --- What to run.
  c.method = "ltrc"  # c | rc | ltrc
  c.dataset = "digits"  # digits | cifar10 | mnist | imagefolder:<folder or .tar.gz>
  c.image_shape = (8, 8, 1)  # (H, W, C) of the dataset's images
  c.model = "cnn_small"  # the owner's (base) architecture, see ucfp.evaluation.models.MODELS
  c.seed = 0  # root seed: base model and generation keys derive from it
  c.evaluate = True  # build the zoo and score the fingerprints

  # --- Generation (the only fields ucfp.fingerprint reads, with image_shape).
  c.num_fingerprints = 100  # N; targets are balanced over the classes
  c.steps = 300  # T optimiser steps
  c.step_size = 0.01  # alpha (learning rate of the optimiser)
  c.optimizer = "sign"  # sign (sign-gradient descent) | adam | sgd
  c.loss = "xent"  # xent | margin
  c.kappa = 5.0  # margin loss floor: max(max_{j!=y} z_j - z_y, -kappa)
  # uniform on [0, 1] | gaussian (mean 0.5, std init_sigma, clipped) | data: each example
  # starts from one of the owner's training images that the model puts in another class
  # than the example's target (fewer fingerprints transfer to innocents on client models:
  # benchmarks/results/clients-digits-r3.md)
  c.init = "uniform"
  c.init_sigma = 0.15
  # L-inf bound on how far an example moves from its starting noise (0: none).
  c.budget = 0.0
  # Generate oversample * N candidates and keep, per target class, the N / K that the base
  # model puts in their class by the smallest margin (ucfp/core/select.py): on client
  # models with few references the deepest candidates were the ones innocents followed
  # (configs/own.py uses 5); on ucfp's digits zoo with 11 references it raised T
  # (0.030 -> 0.040, benchmarks/results/quality-digits-threat-oversample.md). 1: none.
  c.oversample = 1
  # With oversample > 1: the most fingerprints of one target class kept, as a multiple
  # of N / K. 1: N / K per class (labels balanced, the default). c > 1: candidates ranked
  # across classes, at most ceil(c N / K) of one (ucfp.core.select.across_classes): fewer
  # fingerprints of classes the base falls into deeply, which innocents of its family
  # followed on client models (benchmarks/results/clients-digits-across-*.md).
  c.class_cap = 1.0
  c.early_stop = False  # stop once every example's base-model margin >= early_stop_margin
  c.early_stop_margin = 5.0
  # Checkpoint the generation state every this many steps (0: never), so that a rerun
  # resumes an interrupted run (under <workdir>/generation/ from the command line).
  c.checkpoint_every = 50

  c.robust = ml_collections.ConfigDict()
  c.robust.num_variants = 8  # V variants per step (rc, ltrc)
  c.robust.noise_bound = 0.01  # eps of the weight noise (0: none)
  c.robust.noise_kind = "relative"  # relative: eps*|theta|*u | absolute: eps*u
  c.robust.mask = "magnitude"  # magnitude | bernoulli | none
  c.robust.prune_rate = (0.3, 0.9)  # rate drawn uniformly from [low, high]
  c.robust.batching = "auto"  # auto | vmap | loop | unrolled | grouped
  c.robust.chunk = 0  # examples per gradient evaluation; 0: auto (CHUNK_CPU on CPU, else all)
  # The owner's own derived copies (rc, ltrc): the base pruned at each of these rates and
  # fine-tuned like an adversary would, with another data order (seed + SURROGATE_SEED).
  # Their C-loss, weighted by surrogate_weight, joins the robustness term.
  c.robust.surrogates = ()  # prune rates in (0, 1), e.g. (0.8,); () for none
  c.robust.surrogate_weight = 1.0
  # More owner's copies for that term, derived by the evaluation's attacks (specs as in
  # zoo.attacks, e.g. "distill:same,extract:mlp:half_a"), each with the seed
  # seed + SURROGATE_SEED, so that none is an evaluated copy; "" for none.
  c.robust.surrogate_attacks = ""
  # The owner's held-out copies (rc, ltrc; needs oversample > 1): the base pruned at each
  # of these rates and fine-tuned like a surrogate (seed + VALIDATOR_SEED), kept out of
  # the objective; per class the candidates most of them still put in their class are
  # kept first, then the smallest base margin (ucfp.core.select). () for none.
  c.robust.validators = ()

  c.ltrc = ml_collections.ConfigDict()
  c.ltrc.radius = 0.0  # high-pass radius r (frequency units; 0: no filter)
  c.ltrc.term = "none"  # none | spectral | reference
  c.ltrc.weight = 1.0  # lambda of the low-transferability term
  c.ltrc.reduce = "mean"  # mean | max of the target probability over the reference models
  # The reference models' penalty: prob (p_r(y|x)) | complement (-log(1 - p_r(y|x)))
  # | margin (max(z_y - max_{j != y} z_j + ref_kappa, 0): kept ref_kappa logits short of y)
  # | anchor (-log p_r(a|x), a: the class other than y the reference reads in the start x0)
  # | anchor_margin (max(max_{j != a} z_j - z_a + ref_kappa, 0): reads a by ref_kappa).
  c.ltrc.ref_loss = "prob"
  c.ltrc.ref_kappa = 0.0
  # Weight of the anchor penalty added beside ref_loss's (0: none; see ref_loss anchor).
  c.ltrc.anchor_weight = 0.0
  # Relative weight noise on each reference model, drawn afresh every step (0: none).
  c.ltrc.ref_noise = 0.0

  # --- Training of every model in the zoo.
  c.train = ml_collections.ConfigDict()
  c.train.epochs = 20
  c.train.batch_size = 64
  c.train.learning_rate = 3e-3
  c.train.weight_decay = 1e-4
  c.train.augment = False  # random flips and translations (32x32 presets)
  # Processes that train the zoo's models side by side (ucfp/evaluation/parallel.py):
  # 1 this one; N > 1 that many, each on its share of the cores (CPU backend only);
  # 0 one per core on a CPU (up to 4), else 1. On a 2-core CPU two single-threaded
  # workers train VGGs ~1.5x the images/s of one process (benchmarks/results/train-speed.md).
  c.train.workers = 1

  # Also a second fingerprint set from the base's own mistakes (ucfp.mistake_fingerprints):
  # num_fingerprints of its training images that it labels wrongly and no reference model
  # labels the same way, saved as mistakes.npz; students of its labels (distilled,
  # extracted) learn them where they lose the examples, and `ucfp.verify` tests both sets
  # at alpha / 2 (CIFAR-10: every useful copy of 21 attacks detected, 0 of 22 false
  # alarms, benchmarks/results/quality-cifar10-threat.md). Needs reference models; skipped,
  # with the reason in report.json, where the base makes too few mistakes (8x8 digits).
  c.mistakes = False

  # --- The owner's reference models (never evaluated as innocents).
  c.reference = ml_collections.ConfigDict()
  # arch:seed[:subset[:epochs]], trained only when ltrc.term = 'reference'. Many of the
  # base architecture: with few, examples still transfer to its other seeds (digits: other
  # seeds matched up to 0.22 with 1 such reference, 0.09 with 4, 0.04 with 8).
  c.reference.models = (
    "cnn_small:1001,cnn_small:1004,cnn_small:1005,cnn_small:1006,cnn_small:1008,cnn_small:1009,"
    "cnn_small:1010,cnn_small:1011,mlp:1002,lenet:1003,cnn_wide:1007"
  )

  # --- The evaluation zoo (DESIGN section 2).
  c.zoo = ml_collections.ConfigDict()
  c.zoo.prune_rates = (0.3, 0.5, 0.7, 0.9)
  c.zoo.finetune_epochs = 5
  c.zoo.finetune_learning_rate = 1e-3
  c.zoo.unassociated = "cnn_small:101,cnn_small:102,mlp:103,lenet:104,cnn_small:105:half_b"
  # Also channel-pruned, int8-quantised and fine-tuned-on-other-data copies, and a
  # scikit-learn black-box innocent (benchmarks/quality.py turns this on).
  c.zoo.extended = False
  # Attacks deriving more copies of the base, comma-separated specs such as
  # "prune_channel:0.3,fine_prune:0.5,finetune_last:other,quant:4,distill:mlp:4,
  # extract:same:ood,advtrain:pgd" (the grammar: ucfp/evaluation/attacks/__init__.py).
  # A copy below 0.85 x the base's test accuracy is reported, not counted as a theft.
  # zoo.unassociated also takes scikit-learn black boxes: sk_mlp, sk_logreg, sk_svm, sk_forest.
  c.zoo.attacks = ""

  # --- Execution.
  c.distributed = False  # call jax.distributed.initialize() (multi-host TPU)
  c.shard = True  # split the examples over all devices (when N divides evenly)

  if preset == "cifar10":
    # Sized for a 2-core CPU (benchmarks/quality.py from an empty cache in < 3 h): the
    # base trains 10 epochs (>= 0.80 test accuracy); innocents and references are
    # trained shorter (2-3 epochs, each >= 0.65).
    c.dataset = "cifar10"
    c.image_shape = (32, 32, 3)
    c.model = "vgg"
    c.steps = 150  # half the digits steps: a step costs ~50x more here
    c.step_size = 0.01
    c.ltrc.radius = 0.0
    c.train.epochs = 10
    c.train.batch_size = 128
    c.train.learning_rate = 2e-3
    c.train.augment = True
    c.train.workers = 0  # one worker process per core (CPU)
    c.zoo.finetune_epochs = 1
    c.reference.models = "vgg:1001:full:2,vgg:1002:full:2,vgg_small:1004:full:3"
    c.zoo.unassociated = (
      "vgg:101:full:2,vgg:102:full:2,vgg_small:103:full:3,vgg_small:104:full:3,vgg:105:half_b:2"
    )
  elif preset == "mnist":
    c.dataset = "mnist"
    c.image_shape = (28, 28, 1)
    c.model = "lenet"
    c.train.epochs = 3
    c.train.batch_size = 128
    c.reference.models = "lenet:1001,mlp:1002,cnn_small:1003"
    c.zoo.unassociated = "lenet:101,lenet:102,mlp:103,cnn_small:104,lenet:105:half_b"
  elif preset == "tiny":  # for tests: seconds on a CPU
    c.num_fingerprints = 20
    c.steps = 20
    c.step_size = 0.02
    c.robust.num_variants = 2
    c.train.epochs = 2
    c.zoo.prune_rates = (0.5,)
    c.zoo.finetune_epochs = 1
    c.reference.models = "mlp:1002"
    c.zoo.unassociated = "mlp:103,mlp:104:half_b"
  c.lock()
  return c
