"""The attack harness (ucfp.evaluation.attacks): each attack derives what it says, the
spec grammar and its errors, checkpoint names, and the zoo's cached derived copies."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import c as c_config
from ucfp.core import prune
from ucfp.core.types import Model
from ucfp.evaluation import attacks
from ucfp.evaluation.attacks.distill import augmented_queries, ood_queries
from ucfp.evaluation.attacks.pruning import channel_prune_masks, last_conv_activity
from ucfp.evaluation.attacks.quantize import quantize, quantize_int8
from ucfp.evaluation.checks import validate_config
from ucfp.evaluation.data import split_halves
from ucfp.evaluation.models import accuracy, get_module, inference_apply
from ucfp.evaluation.store import spec_key
from ucfp.evaluation.train import TrainSpec, adversarial_examples, kd_loss, train


def _ctx(arch="mlp", n=1437, **kw):
  spec = TrainSpec(arch, 0, kw.pop("epochs", 1))
  halves = split_halves(n, 12345)
  return attacks.Context(spec, "parentkey", kw.pop("finetune_epochs", 1), 1e-3, halves, 10)


@pytest.fixture(scope="module")
def base(digits):
  """An MLP trained 2 epochs on digits (a few seconds)."""
  module = get_module("mlp", 10)
  v = train(module, TrainSpec("mlp", 0, 2), digits.train_x, digits.train_y)
  return Model(inference_apply(module), v, "base")


def _layers(model):
  return model.variables["params"]


def test_legacy_checkpoint_names_unchanged():
  # pinned at main 7cddea0: new TrainSpec fields must not enter the hash at their defaults
  assert spec_key(TrainSpec("cnn_small", 0, 20), "data123") == "bbcecf3193f33b1b"
  ctx = attacks.Context(TrainSpec("cnn_small", 0, 20), "abc", 5, 1e-3, split_halves(10), 10)
  derive = lambda s: attacks.derive(attacks.parse_attack(s), None, None, ctx)
  assert spec_key(derive("prune_channel:0.5").spec, "data123") == "06027141b80624f9"
  assert spec_key(derive("finetune_all:other").spec, "data123") == "9fe010938097b76a"
  names = [attacks.parse_attack(s).name for s in attacks.EXTENDED]
  assert names == ["channel-pruned-0.5", "quantized-int8", "finetuned-other-data"]
  # a non-default new field changes the name
  assert spec_key(TrainSpec("cnn_small", 0, 20, trainable="head"), "data123") != "bbcecf3193f33b1b"


def test_grammar_fills_defaults_and_names_models():
  a = attacks.parse_attack("distill:mlp")
  assert (a.text, a.name, a.args) == ("distill:mlp:4", "distilled-mlp-T4", ("mlp", 4.0))
  a = attacks.parse_attack("prune_layer:0.3:raw")
  assert (a.text, a.name, a.rate) == ("prune_layer:0.3:raw", "layer-pruned-0.3-raw", 0.3)
  assert attacks.parse_attack("quant:4").name == "quantized-int4-per-channel"
  assert [a.name for a in attacks.parse_attacks(" new_head , advtrain:pgd:0.1,")] == [
    "new-head-all",
    "advtrained-pgd-0.1",
  ]


BAD_SPECS = [
  ("prune_magic:0.5", r"config\.zoo\.attacks: unknown attack 'prune_magic' .*allowed: prune_global:RATE\[:FT\]"),
  ("prune_global:1.5", r"config\.zoo\.attacks: 'prune_global:1\.5': RATE must be a number in \(0, 1\)"),
  ("prune_global", r"'prune_global' is not prune_global:RATE\[:FT\]"),
  ("finetune_all:mine", r"DATA must be same or other"),
  ("quant:3", r"BITS must be 8 or 4"),
  ("distill:vit", r"ARCH must be same or one of"),
  ("extract:mlp:web", r"QUERIES must be half_a or half_b or aug or ood"),
  ("advtrain:cw", r"KIND must be fgsm or pgd"),
  ("noise:0", r"SCALE must be a positive number"),
  ("quant:8,quant:8:channel", r"'quant:8:channel' is given twice"),
  ("prune_global:0.5", r"'prune_global:0\.5:finetune' is the pruned copy of config\.zoo\.prune_rates"),
]  # fmt: skip


@pytest.mark.parametrize("text,message", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_attack_specs_name_the_field(text, message):
  cfg = c_config.get_config("tiny")  # zoo.prune_rates = (0.5,)
  cfg.zoo.attacks = text
  with pytest.raises(ValueError, match=message):
    validate_config(cfg)


def test_blackbox_innocents_are_not_references():
  cfg = c_config.get_config("tiny")
  cfg.zoo.unassociated = "sk_svm:3,sk_forest:4:half_a"
  validate_config(cfg)
  cfg.reference.models = "sk_svm:5"
  with pytest.raises(ValueError, match=r"config\.reference\.models: model 'sk_svm' is not one"):
    validate_config(cfg)


@pytest.mark.parametrize("arch", ["sk_mlp", "sk_logreg"])
def test_blackbox_stored_as_arrays_answers_as_scikit_learn(arch, digits, tmp_path, monkeypatch):
  """The MLP / logistic regression stored as .npz (no pickle) gives scikit-learn's own
  labels, and a restore fits nothing."""
  from ucfp.evaluation import blackbox

  x, y = digits.train_x[:600], digits.train_y[:600]
  clf = blackbox.BLACKBOXES[arch](0).fit(x.reshape(len(x), -1), y)
  cache = str(tmp_path / f"{arch}.npz")
  fitted = blackbox.fit_blackbox(arch, 0, x, y, cache)
  want = clf.predict(digits.test_x.reshape(len(digits.test_x), -1))
  np.testing.assert_array_equal(fitted(digits.test_x), want)
  assert fitted.fit_seconds > 0
  monkeypatch.setitem(blackbox.BLACKBOXES, arch, lambda seed: 1 / 0)  # no fit from here on
  restored = blackbox.fit_blackbox(arch, 0, x, y, cache)
  np.testing.assert_array_equal(restored(digits.test_x), want)
  assert restored.fit_seconds == fitted.fit_seconds


def test_raw_pruning_sparsity(cnn_model, digits):
  ctx = _ctx("cnn_small")
  g = attacks.run_attack("prune_global:0.6:raw", cnn_model, digits, ctx)
  assert prune.sparsity(g.variables) == pytest.approx(0.6, abs=0.01)
  lay = attacks.run_attack("prune_layer:0.5:raw", cnn_model, digits, ctx)
  for k in prune.kernels(lay.variables):
    assert float(jnp.mean(k == 0)) == pytest.approx(0.5, abs=0.01)
  assert g.apply_fn(g.variables, digits.test_x[:5]).shape == (5, 10)


def test_channel_prune_masks_drop_whole_low_norm_channels(cnn_model):
  v = cnn_model.variables
  pruned = prune.apply_masks(v, channel_prune_masks(v, 0.5))
  k = np.asarray(pruned["params"]["Conv_1"]["kernel"])  # (3, 3, 32, 64)
  dead = np.all(k == 0, axis=(0, 1, 2))
  assert dead.sum() == 32
  norms = np.abs(np.asarray(v["params"]["Conv_1"]["kernel"])).sum(axis=(0, 1, 2))
  assert norms[dead].max() <= norms[~dead].min()
  np.testing.assert_array_equal(
    pruned["params"]["Dense_0"]["kernel"], v["params"]["Dense_0"]["kernel"]
  )


def test_fine_pruning_removes_the_least_active_last_conv_channels(cnn_model, digits):
  m = attacks.run_attack("fine_prune:0.25:raw", cnn_model, digits, _ctx("cnn_small"))
  path, activity = last_conv_activity(
    get_module("cnn_small", 10), cnn_model.variables, digits.train_x
  )
  assert path == ("Conv_1",) and activity.shape == (64,)
  conv = m.variables["params"]["Conv_1"]
  dead = np.all(np.asarray(conv["kernel"]) == 0, axis=(0, 1, 2))
  assert dead.sum() == 16 and np.all(np.asarray(conv["bias"])[dead] == 0)
  assert activity[dead].max() <= activity[~dead].min()
  np.testing.assert_array_equal(  # the first conv is untouched
    m.variables["params"]["Conv_0"]["kernel"], cnn_model.variables["params"]["Conv_0"]["kernel"]
  )


def test_quantisation(cnn_model):
  v = cnn_model.variables
  q = quantize_int8(v)  # per tensor, as the zoo's quantized-int8 copy always was
  for a, b in zip(prune.kernels(v), prune.kernels(q), strict=True):
    s = float(jnp.max(jnp.abs(a))) / 127
    assert len(np.unique(np.round(np.asarray(b) / s))) <= 255
    assert float(jnp.max(jnp.abs(a - b))) <= s / 2 + 1e-6
  np.testing.assert_array_equal(q["params"]["Dense_0"]["bias"], v["params"]["Dense_0"]["bias"])
  q4 = quantize(v, 4, per_channel=True)
  for a, b in zip(prune.kernels(v), prune.kernels(q4), strict=True):
    b = np.asarray(b).reshape(-1, b.shape[-1])
    assert max(len(np.unique(b[:, j])) for j in range(b.shape[1])) <= 16
    s = np.max(np.abs(np.asarray(a)).reshape(-1, a.shape[-1]), axis=0) / 7
    assert np.all(np.abs(np.asarray(a).reshape(b.shape) - b) <= s / 2 + 1e-6)


def test_weight_noise_scales_with_each_kernel(mlp_model, digits):
  m = attacks.run_attack("noise:0.2", mlp_model, digits, _ctx())
  for a, b in zip(prune.kernels(mlp_model.variables), prune.kernels(m.variables), strict=True):
    assert float(jnp.std(b - a) / jnp.std(a)) == pytest.approx(0.2, rel=0.15)
  np.testing.assert_array_equal(
    _layers(m)["Dense_0"]["bias"], _layers(mlp_model)["Dense_0"]["bias"]
  )


def test_last_layer_finetuning_and_new_head(base, digits):
  ctx = _ctx(finetune_epochs=2)
  last = attacks.run_attack("finetune_last:same", base, digits, ctx)
  new = attacks.run_attack("new_head:last", base, digits, ctx)
  for m in (last, new):
    for layer in ("Dense_0", "Dense_1"):  # bit-identical below the head
      for k in ("kernel", "bias"):
        np.testing.assert_array_equal(_layers(m)[layer][k], _layers(base)[layer][k])
  moved = lambda m: float(
    jnp.linalg.norm(_layers(m)["Dense_2"]["kernel"] - _layers(base)["Dense_2"]["kernel"])
  )
  assert 0 < moved(last) and moved(new) > 10 * moved(last)  # the new head starts afresh
  assert accuracy(new.apply_fn, new.variables, digits.test_x, digits.test_y) > 0.5


def test_extraction_never_reads_the_true_labels(base, digits):
  rng = np.random.default_rng(0)
  shuffled = dataclasses.replace(digits, train_y=rng.permutation(digits.train_y))
  a = attacks.run_attack("extract:mlp:half_b", base, digits, _ctx())
  b = attacks.run_attack("extract:mlp:half_b", base, shuffled, _ctx())
  for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables), strict=True):
    np.testing.assert_array_equal(x, y)
  assert a.apply_fn(a.variables, digits.test_x[:3]).shape == (3, 10)


def test_query_sets():
  ood = ood_queries(50, (8, 8, 1))
  assert ood.shape == (50, 8, 8, 1) and ood.dtype == np.float32
  assert 0 <= ood.min() and ood.max() <= 1 and ood.std() > 0.05
  assert ood_queries(4, (32, 32, 3)).shape == (4, 32, 32, 3)
  x = np.random.default_rng(0).random((10, 8, 8, 1), np.float32)
  aug = augmented_queries(x)
  assert (
    aug.shape == (20, 8, 8, 1) and np.array_equal(aug[:10], x) and not np.array_equal(aug[10:], x)
  )


def test_distillation_loss_and_student(base, digits):
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, 10))
  y = jnp.arange(6)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  assert float(kd_loss(logits, jax.nn.one_hot(y, 10), 1.0)) == pytest.approx(float(xent), rel=1e-6)
  student = attacks.run_attack("distill:cnn_small:2", base, digits, _ctx())
  assert "Conv_0" in _layers(student)  # another architecture than the base
  assert accuracy(student.apply_fn, student.variables, digits.test_x, digits.test_y) > 0.5


def test_adversarial_examples_stay_in_the_ball(mlp_model, digits):
  x, y = jnp.asarray(digits.test_x[:16]), jnp.asarray(digits.test_y[:16])
  loss = lambda xa: optax.softmax_cross_entropy_with_integer_labels(
    mlp_model.apply_fn(mlp_model.variables, xa), y
  ).mean()
  for kind, steps in (("fgsm", 0), ("pgd", 5)):
    make = jax.jit(adversarial_examples, static_argnums=(0, 3, 4, 5))
    xa = make(loss, x, jax.random.PRNGKey(0), kind, 0.05, steps)
    assert float(jnp.max(jnp.abs(xa - x))) <= 0.05 + 1e-6
    assert 0 <= float(xa.min()) and float(xa.max()) <= 1
    assert float(loss(xa)) > float(loss(x))


def test_adversarial_finetuning_runs(base, digits):
  m = attacks.run_attack("advtrain:pgd:0.05", base, digits, _ctx())
  assert m.name == "advtrained-pgd-0.05"
  changed = [
    not np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(m.variables), jax.tree.leaves(base.variables), strict=True)
  ]
  assert all(changed)


def test_zoo_caches_derived_copies_and_flags_useless_ones(tmp_path, digits):
  from ucfp.core.fingerprints import Fingerprints
  from ucfp.evaluation.zoo import build_zoo
  from ucfp.pipeline import evaluate, format_table

  cfg = c_config.get_config("tiny")
  cfg.model = "mlp"
  cfg.zoo.unassociated = "sk_logreg:3:half_a"
  cfg.zoo.attacks = "prune_layer:0.5,noise:50,quant:4"
  validate_config(cfg)
  zoo = build_zoo(cfg, digits, str(tmp_path))
  names = [m.name for m in zoo.derived]
  assert names == ["layer-pruned-0.5", "noise-50", "quantized-int4-per-channel"]
  layer, noise, q4 = zoo.derived
  assert layer.attack == "prune_layer:0.5:finetune" and layer.seconds > 0 and layer.useful
  assert not noise.useful and noise.test_accuracy < 0.85 * zoo.base.test_accuracy
  for k in prune.kernels(layer.model.variables):  # the mask held through fine-tuning
    assert float(jnp.mean(k == 0)) == pytest.approx(0.5, abs=0.01)
  assert zoo.pruned[0].attack == "prune_global:0.5:finetune"
  (innocent,) = zoo.unassociated
  assert innocent.name == "innocent-sk_logreg-s3-half_a" and innocent.test_accuracy > 0.8
  report = evaluate(Fingerprints(digits.test_x[:10], digits.test_y[:10]), zoo)
  assert [(e["attack"], e["useful"]) for e in report["derived"]][1] == ("noise:50", False)
  assert "not useful" in format_table(report)
  again = build_zoo(cfg, digits, str(tmp_path))
  assert all(m.seconds == 0 for m in again.all() if m.kind != "unassociated")
  for a, b in zip(
    jax.tree.leaves(layer.model.variables),
    jax.tree.leaves(again.derived[0].model.variables),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b)


def test_useless_copies_are_no_positives_in_figures_and_report():
  from ucfp.evaluation import figures, report_md

  copy = lambda name, m, useful: {"name": name, "test_accuracy": 0.5, "match_rate": m,
                                  "p_value": 0.5, "derived": False, "attack": "x", "useful": useful}  # fmt: skip
  rep = {
    "method": "ltrc", "dataset": "digits", "num_fingerprints": 10, "robustness": 1.0,
    "transferability": 0.0, "uniqueness_score": 1.0, "fingerprints": "fp.npz",
    "base": {"name": "base", "test_accuracy": 0.9, "match_rate": 1.0},
    "pruned": [copy("pruned-0.5", 1.0, True)],
    "derived": [copy("noise-50", 0.1, False), copy("quant", 0.9, True)],
    "unassociated": [copy("innocent", 0.0, True)],
  }  # fmt: skip
  assert figures.roc_scores(rep) == ([1.0, 0.9], [0.0])
  text = report_md.markdown(rep, {})
  assert "0 of 2 derived copies flagged (1 not useful, no theft)" in text
  assert "| noise-50 | derived (not useful) |" in text
