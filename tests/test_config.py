import jax
import pytest

from configs import base, c, ltrc, own, rc
from ucfp import fingerprint
from ucfp.evaluation.checks import validate_config


@pytest.mark.parametrize("mod", [c, rc, ltrc])
@pytest.mark.parametrize("preset", [None, "digits", "cifar10", "mnist", "tiny"])
def test_configs_validate(mod, preset):
  cfg = mod.get_config(preset)
  validate_config(cfg)
  assert cfg.method == mod.__name__.split(".")[-1]


@pytest.mark.parametrize("preset", [None, "cifar10", "tiny"])
def test_own_config_is_ltrc_with_the_client_recipe(preset):
  cfg = own.get_config(preset)
  validate_config(cfg)
  assert cfg.method == "ltrc" and cfg.ltrc.term == "reference"
  cap = 2.0 if cfg.image_shape[0] <= 8 else 1.0  # across classes on 8x8 only
  assert (cfg.init, cfg.oversample, cfg.class_cap, cfg.ltrc.weight) == ("data", 5, cap, 10.0)
  assert cfg.loss == "xent"
  assert tuple(cfg.robust.surrogates) == (0.8,)
  assert (cfg.ltrc.ref_loss, cfg.robust.surrogate_weight, tuple(cfg.robust.validators)) == (
    "prob",
    1.0,
    (0.5, 0.9),
  )


def test_config_is_locked():
  cfg = base.get_config()
  with pytest.raises(AttributeError):
    cfg.not_a_field = 1
  with pytest.raises(ValueError, match="preset"):
    base.get_config("imagenet")


BAD = [
  ("budget", -0.1, r"config\.budget=-0\.1"),
  ("ltrc.ref_noise", -1.0, r"config\.ltrc\.ref_noise=-1\.0"),
  ("ltrc.ref_kappa", -1.0, r"config\.ltrc\.ref_kappa=-1\.0"),
  ("ltrc.anchor_weight", -1.0, r"config\.ltrc\.anchor_weight=-1\.0"),
  (
    "ltrc.ref_loss",
    "logit",
    r"config\.ltrc\.ref_loss=.logit. is not one of prob, complement, margin, anchor, anchor_margin",
  ),
  ("method", "xc", r"config\.method='xc' is not one of c, rc, ltrc"),
  ("dataset", "svhn", r"config\.dataset='svhn' is not one of digits"),
  ("model", "vit", r"config\.model='vit' is not one of"),
  ("steps", 0, r"config\.steps=0 must be a positive integer"),
  ("oversample", 0, r"config\.oversample=0 must be a positive integer"),
  ("num_fingerprints", -3, r"config\.num_fingerprints=-3 must be a positive"),
  ("step_size", 0.0, r"config\.step_size"),
  ("loss", "hinge", r"config\.loss='hinge' is not one of xent, margin"),
  ("optimizer", "lbfgs", r"config\.optimizer"),
  ("init", "zeros", r"config\.init"),
  ("seed", -1, r"config\.seed"),
  ("robust.num_variants", 0, r"config\.robust\.num_variants"),
  ("robust.noise_bound", -0.1, r"config\.robust\.noise_bound"),
  ("robust.prune_rate", (0.9, 0.3), r"config\.robust\.prune_rate"),
  ("robust.prune_rate", (0.3, 1.0), r"config\.robust\.prune_rate"),
  ("robust.batching", "pmap", r"config\.robust\.batching='pmap' is not one of auto"),
  ("robust.chunk", -1, r"config\.robust\.chunk=-1 must be a non-negative integer"),
  ("robust.mask", "random", r"config\.robust\.mask"),
  ("robust.surrogates", (0.8, 1.0), r"config\.robust\.surrogates=\(0\.8, 1\.0\) must be a tuple"),
  ("robust.surrogates", (0.0,), r"config\.robust\.surrogates=\(0\.0,\) must be a tuple"),
  ("robust.surrogate_weight", -1.0, r"config\.robust\.surrogate_weight"),
  ("robust.validators", (0.5, True), r"config\.robust\.validators=\(0\.5, True\) must be a tuple"),
  (
    "robust.validators",
    (0.5,),
    r"config\.robust\.validators=\(0\.5,\) choose .*config\.oversample >= 2",
  ),
  ("robust.surrogate_attacks", "distill:vit", r"config\.robust\.surrogate_attacks: 'distill:vit'"),
  ("ltrc.radius", 6.0, r"config\.ltrc\.radius=6\.0 must be in \[0, 5\.657\]"),
  ("ltrc.term", "lowpass", r"config\.ltrc\.term"),
  ("ltrc.weight", -1.0, r"config\.ltrc\.weight"),
  ("ltrc.reduce", "median", r"config\.ltrc\.reduce"),
  ("train.epochs", 0, r"config\.train\.epochs"),
  ("zoo.unassociated", "mlp:x", r"config\.zoo\.unassociated"),
  ("zoo.unassociated", "vit:3", r"config\.zoo\.unassociated: model 'vit'"),
  ("reference.models", "mlp:1:quarter", r"config\.reference\.models"),
  ("zoo.prune_rates", (0.5, 1.0), r"config\.zoo\.prune_rates"),
  ("image_shape", (8, 8), r"config\.image_shape"),
  ("reference.models", "mlp:103", r"config\.reference\.models and config\.zoo\.unassociated share"),
  ("seed", 101, r"config\.seed=101 .* is also a reference or unassociated model"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_each_bad_field_is_named(field, value, message):
  cfg = ltrc.get_config()
  node = cfg
  *parents, leaf = field.split(".")
  for p in parents:
    node = node[p]
  with cfg.unlocked():
    node[leaf] = value
  with pytest.raises(ValueError, match=message):
    validate_config(cfg)


def test_fingerprint_validates_before_compute(cnn_model):
  cfg = ltrc.get_config()
  cfg.ltrc.radius = 9.0
  with pytest.raises(ValueError, match="ltrc.radius"):
    fingerprint(cnn_model, cfg, key=jax.random.PRNGKey(0))


def test_reference_term_without_reference_models():
  cfg = ltrc.get_config()
  cfg.reference.models = ""
  with pytest.raises(ValueError, match="config.reference.models is empty"):
    validate_config(cfg)
