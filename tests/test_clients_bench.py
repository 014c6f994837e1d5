"""benchmarks/clients.py's pieces: scoring, reference choice, report, model cache."""

import os
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, random_model

import ucfp

sys.path.insert(0, ROOT)
from benchmarks import client_models as cm  # noqa: E402
from benchmarks import clients_zoo as clients  # noqa: E402
from benchmarks.clients_report import markdown  # noqa: E402

Y = np.arange(20, dtype=np.int32) % 10


def _fps():
  return ucfp.Fingerprints(np.zeros((20, 8, 8, 1), np.float32), Y, {"num_classes": 10})


def _agreeing(k):
  """A black box that returns the fingerprint label on the first k of 20 examples."""
  return lambda x: np.where(np.arange(len(x)) < k, Y[: len(x)], (Y[: len(x)] + 1) % 10)


def _zoo(innocent_hits, pruned_hits, pruned_acc=0.9):
  e = clients.Entry
  return {
    "base": [e("base", "base", _agreeing(20), 0.9)],
    "pruned": [e(f"p{i}", "pruned", _agreeing(k), pruned_acc) for i, k in enumerate(pruned_hits)],
    "derived": [e("student", "derived", _agreeing(20), 0.5)],
    "innocent": [e(f"i{i}", "innocent", _agreeing(k), 0.9) for i, k in enumerate(innocent_hits)],
    "reference": [e("r", "reference", None, 0.0)],
  }


def test_score_counts_r_t_and_false_alarms_with_leave_one_out_nulls():
  row = clients.score(_fps(), _zoo([1, 2, 1, 2, 20], [20, 19]))
  assert row["robustness"] == (1.0 + 0.95) / 2
  np.testing.assert_allclose(row["transferability"], (1 + 2 + 1 + 2 + 20) / 100)
  assert row["false_alarms"] == ["i4"]  # 20/20 against a null from 1-2 of 20
  assert row["max_innocent"] == 1.0
  # a copy below 0.85 x the base's accuracy is reported, not useful
  assert row["derived"]["student"]["useful"] is False
  assert row["derived"]["p0"]["useful"] is True
  # i4 follows every class on both of its fingerprints; i1 follows classes 0 and 1 (its
  # first 2 of 20 examples, labels 0 and 1) on one of their two fingerprints each
  assert row["innocent_classes"]["i4"] == list(range(10))
  assert row["innocent_classes"]["i1"] == [0, 1]
  rates = np.array([1, 2, 1, 2, 20]) / 20
  np.testing.assert_allclose(row["innocent_sd"], rates.std(ddof=1))
  t = rates.mean()
  np.testing.assert_allclose(row["binomial_sd"], np.sqrt(t * (1 - t) / 20))
  quiet = clients.score(_fps(), _zoo([1, 2, 1, 2, 1], [20, 19]))
  assert quiet["false_alarms"] == [] and quiet["derived"]["p0"]["detected"]
  # a useless pruned copy (accuracy < 0.85 x the base's) is left out of R
  zoo = _zoo([1, 2], [20])
  zoo["pruned"].append(clients.Entry("broken", "pruned", _agreeing(0), 0.5))
  row = clients.score(_fps(), zoo)
  assert row["robustness"] == 1.0 and row["derived"]["broken"]["useful"] is False


def test_references_same_and_mixed():
  own = [clients.Entry(f"own{i}", "reference", None, 0.0, f"own{i}") for i in range(8)]
  simple = [clients.Entry(n, "reference", None, 0.0, n) for n in ("linear", "mlp", "cnn")]
  cheap = [clients.Entry(f"cheap{i}", "reference", None, 0.0, f"cheap{i}") for i in range(4)]
  zoo = {"reference": own, "simple": simple, "cheap": cheap}
  short = [f"cheap{i}" for i in range(4)]
  assert clients.references(zoo, 0, "cheap") == short
  assert clients.references(zoo, 4, "cheap") == ["own0", "own1", "linear", "mlp", *short]
  assert clients.references(zoo, 4, "cheap_cnn") == ["own0", "own1", "linear", "mlp", *short, "cnn"]
  assert clients.references(zoo, 0, "cheap_cnn") == [*short, "cnn"]
  # configs/own.py's recipe: k of the user's own + every simple reference + the short runs
  assert clients.references(zoo, 0, "own") == ["linear", "mlp", "cnn", *short]
  assert clients.references(zoo, 2, "own") == ["own0", "own1", "linear", "mlp", "cnn", *short]
  assert clients.references(zoo, 4, "own")[:4] == ["own0", "own1", "own2", "own3"]
  assert clients.references(zoo, 0, "mixed") == []
  assert clients.references(zoo, 2, "same") == ["own0", "own1"]
  assert clients.references(zoo, 1, "mixed") == ["own0"]
  assert clients.references(zoo, 2, "mixed") == ["own0", "linear"]
  assert clients.references(zoo, 4, "mixed") == ["own0", "own1", "linear", "mlp"]
  assert clients.references(zoo, 8, "mixed") == [f"own{i}" for i in range(6)] + ["linear", "mlp"]


def test_surrogates_by_prune_rate():
  e = clients.Entry
  zoo = {
    "surrogate": [e("surrogate-0.8", "surrogate", None, 0.0, "s08")],
    "surrogate_more": [e("surrogate-0.3", "surrogate", None, 0.0, "s03")],
  }
  assert clients.surrogates(zoo, ()) == ["s08"]  # levers with `_surrogate`, no rates set
  assert clients.surrogates(zoo, (0.8,)) == ["s08"]
  assert clients.surrogates(zoo, (0.3, 0.8)) == ["s03", "s08"]
  with pytest.raises(ValueError, match=r"rates \[0\.5\] not among \['0\.3', '0\.8'\]"):
    clients.surrogates(zoo, (0.5,))


def test_markdown_collapses_rows_that_do_not_depend_on_k():
  row = clients.score(_fps(), _zoo([1, 2, 1], [20, 19]))
  other = clients.score(_fps(), _zoo([3, 2, 1], [20, 19]))
  out = {
    "setups": {
      "s": {
        "train_seconds": 1.0,
        "test_accuracy": {"base": 0.9},
        "runs": {"rc/K=0": row, "rc/K=4": row, "ucfp/K=0": row, "ucfp/K=4": other},
      }
    },
    "total_seconds": 60.0,
  }
  md = markdown(out, "digits")
  assert "| s | rc | any |" in md and "| s | rc | 0 |" not in md
  assert "| s | ucfp | 0 |" in md and "| s | ucfp | 4 |" in md
  assert "Not run" not in md
  out["setups"]["s"]["skipped"] = {"mistakes/K=0": "too few"}
  assert "- s mistakes/K=0: too few" in markdown(out, "digits")


def test_cache_restores_what_it_stored_and_quantize_keeps_levels(tmp_path):
  cache = cm.Cache(str(tmp_path))
  v = random_model("mlp", 3).variables
  calls = []
  got = cache.get_or_fit(("a", 1), lambda: calls.append(1) or v)
  again = cache.get_or_fit(("a", 1), lambda: calls.append(1) or v)
  assert calls == [1] and len(os.listdir(tmp_path)) == 1
  for a, b in zip(_leaves(got), _leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  q = cm.quantize(v, 4)
  kernels = [np.asarray(k) for k in _leaves(q) if k.ndim == 2]
  assert kernels and all(len(np.unique(k[:, j])) <= 15 for k in kernels for j in range(k.shape[1]))
  raw = [np.asarray(k) for k in _leaves(v) if k.ndim == 2]
  assert max(len(np.unique(k[:, 0])) for k in raw) > 15  # the test can tell


def _leaves(tree):
  import jax

  return jax.tree_util.tree_leaves(tree)


def test_cheap_methods_keep_the_reference_term_at_k0():
  from benchmarks.client_methods import method_config

  assert method_config("ucfp_cheap", (8, 8, 1), 0, 10).ltrc.term == "reference"
  assert method_config("ucfp", (8, 8, 1), 0, 10).ltrc.term == "none"
  assert method_config("ucfp_mixed_w10", (8, 8, 1), 0, 10) is None
  assert method_config("ucfp_cheap_data", (8, 8, 1), 4, 10).init == "data"
  own = method_config("ucfp_own", (8, 8, 1), 0, 10)
  assert own.ltrc.term == "reference" and own.oversample == 5 and own.init == "data"
  assert tuple(own.robust.validators) == (0.5, 0.9) and own.ltrc.ref_loss == "prob"
  prev = method_config("ucfp_own_prev", (8, 8, 1), 0, 10)  # the recipe before 2026-12-06
  assert prev.robust.validators == () and prev.oversample == 5 and prev.class_cap == 1.0
  # pinned: configs/own.py before its selection across classes (class_cap 2)
  pval = method_config("ucfp_own_pval", (8, 8, 1), 0, 10)
  assert own.class_cap == 2.0 and pval.class_cap == 1.0
  assert pval.to_dict() == {**own.to_dict(), "class_cap": 1.0}
  o3 = method_config("ucfp_own_o3", (8, 8, 1), 2, 10)  # the recipe pinned, 3x candidates
  assert o3.oversample == 3 and o3.ltrc.ref_loss == "prob" and o3.robust.validators == ()
  val = method_config("ucfp_own_val", (8, 8, 1), 2, 10)  # the anchor variant
  assert (val.ltrc.ref_loss, val.robust.surrogate_weight, tuple(val.robust.validators)) == (
    "anchor",
    3.0,
    (0.5, 0.9),
  )


def test_profiles_pick_recipes_by_image_shape():
  import types

  def data(shape):
    return types.SimpleNamespace(info=types.SimpleNamespace(image_shape=shape))

  digits, cifar = clients.profile_of(data((8, 8, 1))), clients.profile_of(data((32, 32, 3)))
  assert digits.setups is clients.SETUPS and digits.cheap_epochs == clients.CHEAP_EPOCHS
  assert set(cifar.setups) == set(digits.setups)
  for name, (arch, recipe, _) in cifar.setups.items():
    # the same models and optimisers as on digits, fewer epochs; short runs shorter still
    assert arch.startswith(digits.setups[name][0])
    assert recipe.optimizer == digits.setups[name][1].optimizer
    assert cifar.cheap_epochs < recipe.epochs < digits.setups[name][1].epochs
  assert cifar.default_recipe["avgcnn_wide"] == cifar.setups["avgcnn"][1]
  # the thief fine-tunes at the owner's rate except on the CIFAR-10 BatchNorm CNN (SGD 0.05)
  assert digits.thief_lr_scale == {} and cifar.thief_lr_scale == {"bncnn": 0.1}
  with pytest.raises(ValueError, match=r"image shape \(28, 28, 1\) is not one of"):
    clients.profile_of(data((28, 28, 1)))


def test_heldout_selection_prefers_fewest_votes_then_smallest_margin():
  select = clients.select_heldout
  cand_y = np.array([0, 0, 0, 0, 1, 1])
  margins = np.array([0.5, 2.0, 0.1, -1.0, 3.0, 1.0])
  votes = np.array([1, 0, 2, 0, 0, 0])
  # class 0, two slots: the unvoted hit (2.0) beats the voted ones; the miss comes last
  assert list(select(margins, votes, cand_y, np.array([0, 0, 1]))) == [1, 0, 5]
  # without votes it is configs/own.py's lowest-margin selection
  zero = np.zeros(6, np.int64)
  assert list(select(margins, zero, cand_y, np.array([0, 0]))) == [2, 0]


def test_subsets_of_class_sorted_data_hold_every_class_when_permuted():
  y = np.repeat(np.arange(10), 100)  # an image folder's order: class by class
  halves, order = clients.subsets(len(y), permute=True)
  for idx in (halves["a"], halves["b"], order[:200]):
    assert np.bincount(y[idx], minlength=10).min() > 0
  assert set(halves["a"]).isdisjoint(halves["b"]) and len(halves["a"]) + len(halves["b"]) == 1000
  # digits keep their order (their committed results): the halves are the two ends
  kept, order = clients.subsets(len(y), permute=False)
  assert list(kept["b"][:2]) == [500, 501] and list(order[:3]) == [0, 1, 2]


def test_fingerprint_cache_reuses_only_for_the_same_weights(tmp_path):
  cache = cm.FingerprintCache(str(tmp_path))
  model = random_model("mlp")
  calls = []

  def make():
    calls.append(1)
    return ucfp.Fingerprints(np.zeros((2, 8, 8, 1), np.float32), np.array([0, 1]), {"seconds": 1.5})

  first = cache.get_or_make("s", ("cfg", ("r",)), [model], make)
  again = cache.get_or_make("s", ("cfg", ("r",)), [model], make)
  assert len(calls) == 1 and again.meta["seconds"] == 1.5 and np.array_equal(again.y, first.y)
  other = ucfp.Model(model.apply_fn, jax.tree.map(lambda v: v + 1, model.variables), model.name)
  cache.get_or_make("s", ("cfg", ("r",)), [other], make)
  cache.get_or_make("s", ("cfg2", ("r",)), [model], make)
  assert len(calls) == 3


def test_beta_binomial_null_is_the_binomial_without_spread_and_wider_with_it():
  from scipy import stats

  from benchmarks.clients_stats import analyse, beta_binomial_fit, beta_binomial_p_value

  # rates spread no more than the binomial's: rho 0, the binomial's p-value at the mean
  same = [0.10, 0.11, 0.09, 0.10]
  assert beta_binomial_fit(same, 100)[1] == 0.0
  np.testing.assert_allclose(beta_binomial_p_value(20, 100, same), stats.binom.sf(19, 100, 0.1))
  # innocents at 0.0-0.3: 0.25 is an alarm for the binomial, not for the beta-binomial
  spread = [0.0, 0.05, 0.3, 0.0, 0.15, 0.1]
  mu, rho, _ = beta_binomial_fit(spread, 100)
  np.testing.assert_allclose(mu, np.mean(spread))
  assert 0.0 < rho < 1.0
  assert stats.binom.sf(24, 100, mu) < 1e-3 < beta_binomial_p_value(25, 100, spread)
  # a copy matching 0.95 stays far beyond either null
  assert beta_binomial_p_value(95, 100, spread) < 1e-6
  run = {
    "match_rate": {
      "base-x": 1.0,
      "p": 0.95,
      "distill-s": 0.3,
      **{f"i{i}": r for i, r in enumerate(spread)},
    },
    "derived": {
      "p": {"match_rate": 0.95, "useful": True, "detected": True},
      "distill-s": {"match_rate": 0.3, "useful": True, "detected": True},
    },
    "false_alarms": ["i2"],
  }
  row = analyse(run, 100)
  assert row["false_alarms_beta_binomial"] == [] and row["false_alarms_binomial"] == ["i2"]
  assert row["missed_beta_binomial"] == [] and row["students_detected_beta_binomial"] == []
  np.testing.assert_allclose(row["innocent_sd"], np.std(spread, ddof=1))


def test_client_logits_in_batches_match_one_pass():
  # accuracy / soft_labels / hard_labels evaluate `batch` images at a time (CIFAR-10's
  # 50,000 at once exhausted memory on the BatchNorm CNN); the result must not change.
  x = jax.random.uniform(jax.random.PRNGKey(1), (7, 8, 8, 1))
  v = cm.ARCHS["bncnn"].init(jax.random.PRNGKey(0), x, train=False)
  whole = np.asarray(cm.apply_fn("bncnn")(v, x))
  np.testing.assert_allclose(
    cm.logits("bncnn", v, np.asarray(x), batch=3), whole, rtol=1e-5, atol=1e-6
  )
  y = whole.argmax(-1)
  np.testing.assert_array_equal(cm.hard_labels("bncnn", v, np.asarray(x)), y)
  assert cm.accuracy("bncnn", v, np.asarray(x), y) == 1.0
  soft = cm.soft_labels("bncnn", v, np.asarray(x), 4.0)
  np.testing.assert_allclose(soft, jax.nn.softmax(whole / 4.0), rtol=1e-5, atol=1e-6)


def test_lever_names_parse_into_config_overrides():
  from benchmarks.client_methods import lever_overrides

  assert lever_overrides("refm6_w05_sw3") == {
    "ref_loss": "margin",
    "ref_kappa": 6.0,
    "weight": 0.5,
    "robust.surrogate_weight": 3.0,
  }
  assert lever_overrides("refm6_w1_s600")["steps"] == 600
  assert lever_overrides("b02") == {"budget": 0.2} and lever_overrides("b005") == {"budget": 0.05}
  assert lever_overrides("w30") == {"weight": 30.0} and lever_overrides("max") == {"reduce": "max"}
  assert lever_overrides("anc_sw3") == {"ref_loss": "anchor", "robust.surrogate_weight": 3.0}
  assert lever_overrides("ancm2") == {"ref_loss": "anchor_margin", "ref_kappa": 2.0}
  assert lever_overrides("aw3") == {"anchor_weight": 3.0}
  assert lever_overrides("prob_sw1") == {"ref_loss": "prob", "robust.surrogate_weight": 1.0}
  for not_objective in ("margin", "sur2", "val", "half4", "refm6x", "w30_"):
    assert lever_overrides(not_objective) is None


def test_sink_report_shares_and_table():
  from benchmarks.clients_report import label_shares
  from benchmarks.clients_report import sink_markdown as markdown

  np.testing.assert_allclose(label_shares(np.array([4, 4, 1, 4]), 5), [0, 0.25, 0, 0, 0.75])
  inn = {"a-s1": {"match_rate": 0.37, "follows": [1, 4], "sink": 4, "sink_share": 0.6}}
  row = {"setup": "avgcnn", "k": 0, "ref_loss": "prob", "robustness": 0.975}
  row |= {"transferability": 0.141, "uniqueness_score": 0.834, "false_alarms": ["a-s1"]}
  row |= {"set_sink": 4, "set_sink_share": 0.42, "innocents": inn}
  md = markdown({"rows": [row], "total_seconds": 60.0}, "digits")
  assert "| avgcnn | 0 | prob | 0.975 | 0.141 | 0.834 | 4 (0.42) | a-s1 |" in md
  assert "a-s1 0.37 [1, 4] 4 (0.60)" in md


def test_keys_comparison_counts_goal_cells_and_alarms_per_innocent_test():
  from benchmarks.clients_keys import compare
  from benchmarks.clients_keys import markdown as keys_markdown

  def run(us, t, alarms, pruned_hit=True, student_hit=False):
    derived = {
      "pruned-0.9": {"useful": True, "detected": pruned_hit},
      "distill-mlp": {"useful": True, "detected": student_hit},
      "pruned-0.95": {"useful": False, "detected": False},
    }
    inn = {"a": [], "b": [4], "c": []}
    return {
      "uniqueness_score": us,
      "transferability": t,
      "false_alarms": alarms,
      "derived": derived,
      "innocent_classes": inn,
    }

  k0 = {"setups": {"s": {"runs": {"m/K=0": run(0.9, 0.05, []), "m/K=2": run(0.9, 0.05, ["b"])}}}}
  k1 = {"setups": {"s": {"runs": {"m/K=0": run(0.9, 0.12, []), "m/K=2": run(0.9, 0.05, ["b"])}}}}
  k2 = {"setups": {"s": {"runs": {"m/K=0": run(0.9, 0.05, [], pruned_hit=False)}}}}
  out = compare({"k0": k0, "k1": k1}, "m")["s"]
  assert out["ks"]["0"]["met"] == 1  # k1's T is above 0.10; the student's miss does not count
  assert out["ks"]["2"]["met"] == 0
  assert out["false_alarms"] == 2 and out["innocent_tests"] == 12
  assert out["alarms_by_innocent"] == {"b": 2}
  assert list(out["ks"]) == ["2", "0"]  # larger K first
  # a missed useful pruned copy fails the goal; a cell absent from one source is left out
  out = compare({"k0": k0, "k2": k2}, "m")["s"]
  assert out["ks"]["0"]["met"] == 1 and "2" not in out["ks"]
  text = keys_markdown({"setups": compare({"k0": k0, "k1": k1}, "m")}, ["k0", "k1"], "m")
  assert "| s | 0 | **0.900 / 0.050 / 0** | 0.900 / 0.120 / 0 | 1 of 2 |" in text
  assert "| s | 2 / 12 | 0.167 | b (2) |" in text


def test_selection_levers_name_the_across_class_modifiers():
  from benchmarks.client_methods import is_selection

  assert is_selection("global") and is_selection("cap15")
  assert not is_selection("val") and not is_selection("cap")


def test_keys_comparison_reads_and_joins_selection_rows(tmp_path, monkeypatch):
  import json

  from benchmarks import clients_keys

  def rows(setup, ks, lever="val"):
    return {"rows": [{"setup": setup, "k": k, "lever": lever, "t": k} for k in ks], "command": "c"}

  for name, payload in {"a": rows("s", [0, 1]), "b": rows("s", [2]), "c": rows("u", [0])}.items():
    (tmp_path / f"clients-{name}-selection.json").write_text(json.dumps(payload))
  monkeypatch.setattr(clients_keys, "RESULTS", str(tmp_path))
  src = clients_keys.load_source("a+b+c", selection=True)
  assert sorted(src["setups"]["s"]["runs"]) == ["val/K=0", "val/K=1", "val/K=2"]
  assert src["setups"]["u"]["runs"]["val/K=0"]["t"] == 0 and src["command"] == ["c"] * 3
  with pytest.raises(clients_keys.app.UsageError, match="clients-d-selection.json"):
    clients_keys.load_source("a+d", selection=True)


def test_rows_measured_on_the_earlier_ltrc_recipe_keep_it():
  """configs/ltrc.py starts from training images with the margin loss on 8x8 digits
  (since 2026-12-08); the paper's rows and the levers measured before pin the noise
  starts and cross-entropy, in both benchmarks, and so does configs/own.py its loss."""
  from benchmarks.client_methods import method_config
  from benchmarks.quality_methods import METHODS, PAPER_START
  from configs import ltrc

  digits = ltrc.get_config("digits")
  assert (digits.init, digits.loss) == ("data", "margin")
  assert (ltrc.get_config("cifar10").init, ltrc.get_config("cifar10").loss) == ("uniform", "xent")
  ucfp = method_config("ucfp", (8, 8, 1), 2, 10)
  assert (ucfp.init, ucfp.loss) == ("data", "margin")
  for row in ("ltrc_paper", "ucfp_w10", "ucfp_mixed"):
    cfg = method_config(row, (8, 8, 1), 2, 10)
    assert (cfg.init, cfg.loss) == ("uniform", "xent"), row
  assert method_config("ucfp_data", (8, 8, 1), 2, 10).init == "data"  # its own lever kept
  assert method_config("ucfp_own", (8, 8, 1), 2, 10).loss == "xent"
  for row in ("c", "rc", "ltrc_paper", "ucfp_paper_start"):
    assert {k: METHODS[row][1][k] for k in PAPER_START} == PAPER_START, row
  assert METHODS["ucfp_margin_loss"][1] == {**PAPER_START, "loss": "margin"}
  assert METHODS["ucfp_data"][1] == {**PAPER_START, "init": "data"}
