"""Levers against the K <= 1 false alarms of configs/own.py on client models (issue #20).

    python benchmarks/clients_selection.py [--setups=avgcnn,mlp] [--ks=0,1]
        [--levers=margin,fill2,half4,quarter4] [--workdir=/tmp/ucfp-clients]

configs/own.py generates 5 N candidates and keeps, per class, the N the base model puts
in their class by the smallest margin. With K <= 1 of the user's full-length references
one innocent of the base's family still follows 0.22-0.28 of the fingerprints on the
avg-pool CNN and the MLP client (benchmarks/results/clients-digits.md). The levers:

- `margin`: configs/own.py as shipped (the baseline; the same candidates as the others;
  any validators it configures are off: `val` turns them on);
- `heldout_short`: 4 more short runs of the user's recipe (seeds 3005-3008), not in the
  objective, choose: per class the candidates the fewest of them put in their class,
  then the smallest base margin (a validation set of independent models, in the spirit
  of conferrable examples);
- `heldout_full` (K >= 1): the user's K-th full-length reference leaves the objective
  and chooses the candidates instead;
- `short8`: the 4 more short runs join the objective (8 short runs), margin selection;
- `max`: the reference term's maximum over the references instead of their mean
  (`ltrc.reduce = "max"`): with 7 helpers and K full runs the mean gives each of the
  full runs, which the fingerprints fool last, 1 / (7 + K) of the weight;
- `w30`: the reference weight 30 instead of 10;
- `fill2` (K <= 1): ucfp tops the user's K up to 2 full-length runs of their recipe
  (seeds 1101, 1102);
- `half4` / `quarter4`: 4 runs at half / a quarter of the epochs (seeds 3101-3104 /
  3201-3204) instead of the 4 short runs (a tenth); `halfq8`: both sets (8 runs);
- `subset4` / `subset2`: 4 runs of the user's full recipe (all epochs, seeds 3301-3304)
  on disjoint quarters of the training data / on its two halves (2 seeds each) instead
  of the 4 short runs: converged models for the steps of 1 / 2 full trainings;
- objective levers, `_`-joined tokens (`client_methods.lever_overrides`): `refm<kappa>` the references' margin
  hinge (`ltrc.ref_loss = "margin"`, `ltrc.ref_kappa`), `anc` the anchor penalty
  (`ltrc.ref_loss = "anchor"`: each reference keeps reading the start image's class),
  `prob` the `prob` penalty (configs/own.py's), `ancm<kappa>` its hinge, `aw<weight>` the anchor beside `prob` (`ltrc.anchor_weight`), `w<weight>` the reference weight,
  `sw<s>` the surrogate weight, `s<steps>`, `b<budget>` an L-inf bound around the start
  image (e.g. `refm6_w1_sw3`, `b02`; a leading 0 reads as a fraction: `w05` = 0.5);
- `sur2`: the owner's 0.3-pruned, fine-tuned copy joins the 0.8 one as a surrogate;
- `val`: the owner's own copies pruned at 0.5 and 0.9 and fine-tuned, held out of the
  objective (`benchmarks/clients_validators.py`), choose: per class the candidates most
  of them still put in their class first (a validation of robustness, as
  `heldout_short` validates transfer), then the smallest base margin (`anc_sw3+val`
  is the method `ucfp_own_val` of benchmarks/client_methods.py);
- `a+b[+c]`: a reference lever's models, an objective lever's config and `sur2`
  together (e.g. `quarter4+sur2+refm6_w1_sw3`).

`--levers` picks them (default the first six).

All candidates come from one `ucfp.fingerprint` run per (setup, K, objective) with
`oversample = 1` and 5 N examples; the selection is the one of `ucfp.core.select` with
the held-out votes as the first key. Scored as benchmarks/clients.py scores (null rate
from the innocents, alpha 1e-3). Writes benchmarks/results/clients-<tag>-selection.*.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks import client_models as cm  # noqa: E402
from benchmarks.client_methods import (  # noqa: E402
  CAP,
  is_selection,
  method_config,
)
from benchmarks.client_methods import lever_overrides as overrides  # noqa: E402
from benchmarks.clients_validators import VALIDATOR_RATES, validators  # noqa: E402
from benchmarks.clients_zoo import (  # noqa: E402
  build_setup,
  profile_of,
  score,
  select_heldout,
  surrogates,
  user_runs,
)
from benchmarks.common import write_results  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "digits", "digits or imagefolder:<folder or .tar.gz>")
_SETUPS = flags.DEFINE_list("setups", ["avgcnn", "mlp"], "client setups")
_KS = flags.DEFINE_list("ks", ["0", "1"], "numbers of the user's full-length references")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ucfp-clients", "model cache (clients.py's)")
_TAG = flags.DEFINE_string("tag", "", "results file suffix (default: the dataset)")
_N = flags.DEFINE_integer("num_fingerprints", 100, "N (5 N candidates)")
OVERSAMPLE = 5
LEVERS = (
  "margin",
  "heldout_short",
  "heldout_full",
  "short8",
  "max",
  "w30",
  "fill2",
  "half4",
  "quarter4",
  "halfq8",
  "subset4",
  "subset2",
  "sur2",
  "val",
)
_LEVERS = flags.DEFINE_list("levers", list(LEVERS[:6]), f"of {', '.join(LEVERS)}")
_KEY = flags.DEFINE_integer("key", 0, "the generation PRNGKey (> 0 needs --tag)")


def main(argv):
  del argv
  # "<references>+<objective>": a reference lever's models with an objective lever's config
  parts = {p for lever in _LEVERS.value for p in lever.split("+")}
  bad = sorted(p for p in parts if p not in LEVERS and overrides(p) is None and not is_selection(p))
  if bad:
    raise ValueError(
      f"--levers: {bad} not among {', '.join(LEVERS)} nor objective levers "
      "(`_`-joined refm<kappa>, anc, prob, ancm<kappa>, aw<weight>, w<weight>, sw<s>, s<steps>, "
      "b<budget>, e.g. refm6_w1_sw3)"
    )
  import jax
  import numpy as np

  import ucfp
  from ucfp.core.scoring import predict_labels
  from ucfp.core.select import across_classes, base_margins, votes_key
  from ucfp.evaluation.data import load_dataset

  if _KEY.value < 0 or (_KEY.value and not _TAG.value):
    raise app.UsageError(f"--key={_KEY.value}: an integer >= 0; > 0 needs --tag")
  data = load_dataset(_DATASET.value, cache_dir=os.path.join(_WORKDIR.value, "data"))
  prof = profile_of(data)
  cache = cm.Cache(os.path.join(_WORKDIR.value, "models"))
  rows, t0, accuracies = [], time.perf_counter(), {}
  for setup in _SETUPS.value:
    zoo = build_setup(setup, data, cache, 4)
    arch, recipe, _ = prof.setups[setup]
    full = recipe.epochs

    def train_runs(epochs, seeds, prefix, a=arch, s=setup, parts=1):
      models = user_runs(s, data, cache, epochs, seeds, prefix, parts)
      for m in models:
        accuracies[f"{s}/{m.name}"] = cm.accuracy(a, m.variables, data.test_x, data.test_y)
      return models

    # 4 more short runs, trained only for the levers that use them
    wants_extra = {"heldout_short", "short8"} & parts
    extra = train_runs(prof.cheap_epochs, range(3005, 3009), "cheap") if wants_extra else []
    simple = [e.model for e in zoo["simple"]]
    helpers = simple + [e.model for e in zoo["cheap"]]
    base = zoo["base"][0].model
    owner_checks = []
    if "val" in parts:  # configs/own.py's validator rates if it sets any, else 0.5, 0.9
      own = method_config("ucfp_own", data.info.image_shape, 0, _N.value)
      rates = tuple(own.robust.validators) or VALIDATOR_RATES
      owner_checks = validators(setup, data, cache, base, rates)
    runs = {}  # (config, objective references) -> (candidates, margins, seconds)
    # runs of half / a quarter of the epochs: the same for every K
    half = train_runs(full // 2, range(3101, 3105), "half") if {"half4", "halfq8"} & parts else []
    quarter = (
      train_runs(full // 4, range(3201, 3205), "quarter") if {"quarter4", "halfq8"} & parts else []
    )
    subsets = {
      f"subset{p}": train_runs(full, range(3301, 3305), f"subset{p}", parts=p)
      for p in (4, 2)
      if f"subset{p}" in parts
    }
    for k in map(int, _KS.value):
      user = [e.model for e in zoo["reference"][:k]]
      plans = {
        "margin": (user + helpers, []),
        "heldout_short": (user + helpers, extra),
        "short8": (user + helpers + extra, []),
      }
      if k >= 1:
        plans["heldout_full"] = (user[:-1] + helpers, user[-1:])
      if k < 2 and "fill2" in parts:
        plans["fill2"] = (user + train_runs(full, range(1101, 1103 - k), "ref") + helpers, [])
      if "half4" in parts:
        plans["half4"] = (user + simple + half, [])
      if "quarter4" in parts:
        plans["quarter4"] = (user + simple + quarter, [])
      if "halfq8" in parts:
        plans["halfq8"] = (user + simple + half + quarter, [])
      for name, models in subsets.items():
        plans[name] = (user + simple + models, [])
      for lever in _LEVERS.value:
        # "+"-joined parts: a reference plan (default margin's), an objective, sur2
        bits = lever.split("+")
        plan = next((b for b in bits if b in plans), "margin")
        objective = next((b for b in bits if b not in plans and overrides(b)), None)
        if plan not in plans or any(
          b not in plans
          and overrides(b) is None
          and b not in ("sur2", "val")
          and not is_selection(b)
          for b in bits
        ):
          continue
        refs, held = plans[plan]
        config = method_config("ucfp_own", data.info.image_shape, k, _N.value * OVERSAMPLE)
        config.unlock()
        config.oversample = 1  # the selection below chooses (`val`: with validators)
        config.class_cap = 1.0  # ... per class, or across classes (`global`, `cap<n>`)
        config.robust.validators = ()
        for field, value in (overrides(objective) if objective else {}).items():
          group, _, name = field.rpartition(".")  # "steps", "robust.x"; bare: ltrc's
          (config[group] if group else config if name in config else config.ltrc)[name] = value
        config.lock()
        surs = surrogates(zoo, config.robust.surrogates)
        if "sur2" in bits and "surrogate-0.3" not in [m.name for m in surs]:
          surs += surrogates(zoo, (0.3,))
        ident = (config.to_json(), tuple(r.name for r in refs + surs))
        if ident not in runs:
          t = time.perf_counter()
          fps = ucfp.fingerprint(
            base,
            config,
            key=jax.random.PRNGKey(_KEY.value),
            reference=refs,
            surrogates=surs,
            starts=data.train_x,
          )
          x, y = np.asarray(fps.x), np.asarray(fps.y)
          m = base_margins(base.apply_fn, base.variables, x, y)
          runs[ident] = (fps, m, time.perf_counter() - t)
        fps, m, seconds = runs[ident]
        x, y = np.asarray(fps.x), np.asarray(fps.y)
        votes = np.zeros(len(y), np.int64)
        for h in held:
          votes += np.asarray(predict_labels(h, x)) == y
        checks = owner_checks if "val" in bits else []
        for v in checks:  # robust first: a validator that misses the candidate votes 1
          votes += np.asarray(predict_labels(v, x)) != y
        target = np.sort(y)[::OVERSAMPLE]  # the N labels configs/own.py's run would draw
        sel = next((b for b in bits if is_selection(b)), None)
        if sel is None:
          keep = select_heldout(m, votes, y, target)
        else:  # fewest_votes' sort key, ranked across classes (config.class_cap's)
          cap = CAP.fullmatch(sel)
          cap = int(cap[1]) if cap else len(target)
          keep = across_classes(votes_key(m, votes), y, len(target), cap)
        result = score(ucfp.Fingerprints(x[keep], y[keep], dict(fps.meta)), zoo)
        row = {
          "setup": setup,
          "k": k,
          "lever": lever,
          "references": [r.name for r in refs],
          "held_out": [h.name for h in held + checks],
          "held_out_votes_kept": float(votes[keep].mean()) if held or checks else None,
          "generate_seconds": seconds,
          "class_counts": np.bincount(y[keep], minlength=int(y.max()) + 1).tolist(),
          **{key: result[key] for key in result if key != "derived"},
          "derived": result["derived"],
        }
        rows.append(row)
        print(
          f"{setup} K={k} {lever:14s} R {row['robustness']:.3f} T {row['transferability']:.3f}"
          f" US {row['uniqueness_score']:.3f} max {row['max_innocent']:.2f}"
          f" alarms {row['false_alarms']}",
          flush=True,
        )
  out = {"rows": rows, "accuracies": accuracies, "total_seconds": time.perf_counter() - t0}
  out["key"] = _KEY.value
  tag = _TAG.value or _DATASET.value
  write_results(f"clients-{tag}-selection", out, markdown(out, tag))


def markdown(out: dict, tag: str) -> str:
  lines = [
    f"# Client models: {tag}, levers against the K <= 1 false alarms",
    "",
    "configs/own.py's references (the user's K full-length runs + ucfp.simple_references +",
    "4 short runs); 5 N candidates, N kept per class. `margin`: as shipped; `heldout_short`:",
    "4 more short runs not in the objective choose (fewest of them following first);",
    "`heldout_full`: the user's K-th full run chooses instead of being in the objective;",
    "`short8`: the 4 more short runs in the objective; `max`: the reference term's maximum",
    "over the references, not their mean; `w30`: reference weight 30; `fill2`: the user's K",
    "topped up to 2 full-length runs; `half4` / `quarter4`: 4 runs of half / a quarter of the",
    "epochs instead of the 4 short runs (`halfq8`: both); `subset4` / `subset2`: 4 runs of",
    "all the epochs on disjoint quarters / halves of the training data instead; `refm<kappa>`, `w<weight>`, `sw<s>`, `s<steps>`,",
    "`b<budget>` (`_`-joined): the references' margin hinge (`ltrc.ref_loss = margin`,",
    "`ref_kappa`; `anc`: the anchor penalty, each reference keeps reading the start image's",
    "class; `prob`: the prob penalty; `ancm<kappa>`: the anchor's hinge; `aw<weight>`: the",
    "anchor beside `prob`), reference weight, surrogate weight, steps, L-inf budget around the start",
    "image (leading 0: a fraction, `b02` = 0.2); `sur2`: the owner's 0.3-pruned, fine-tuned copy joins the",
    "0.8 one as a surrogate; `val`: the owner's 0.5- and 0.9-pruned, fine-tuned copies (out of",
    "the objective) choose, the candidates most of them follow first (their misses are the",
    "held-out votes); `global`: ranked across classes, not N / C per class; `cap<n>`:",
    "so, with at most n of one class; `a+b`: both. Null rate from the innocents (leave-one-out for",
    "false alarms), alpha 1e-3. Weakest copy: the pruned, int8 or fine-tuned copy the",
    "fingerprints match least.",
    "",
    "| setup | K | lever | R | T | US | max innocent | false alarms | weakest copy |"
    " held-out votes kept |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in out["rows"]:
    votes = "-" if r["held_out_votes_kept"] is None else f"{r['held_out_votes_kept']:.2f}"
    copies = {
      name: v["match_rate"]
      for name, v in r["derived"].items()
      if name.startswith(("pruned", "quant", "finetune"))
    }
    weak = min(copies, key=copies.get) if copies else None
    weak = f"{weak} {copies[weak]:.2f}" if weak else "-"
    lines.append(
      f"| {r['setup']} | {r['k']} | {r['lever']} | {r['robustness']:.3f} | "
      f"{r['transferability']:.3f} | **{r['uniqueness_score']:.3f}** | "
      f"{r['max_innocent']:.2f} | {', '.join(r['false_alarms']) or '0'} | {weak} | {votes} |"
    )
  if out.get("accuracies"):
    accs = ", ".join(f"{name} {acc:.3f}" for name, acc in out["accuracies"].items())
    lines += ["", f"Test accuracy of the runs trained for the levers: {accs}."]
  lines += ["", f"Generation key {out.get('key', 0)}. Total {out['total_seconds'] / 60:.1f} min."]
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
