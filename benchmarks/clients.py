"""Fingerprint quality on models ucfp did not train: "client" setups (issue #20).

    python benchmarks/clients.py [--dataset=digits] [--setups=avgcnn,bncnn,mlp]
        [--ks=0,1,2,4] [--methods=ucfp,ltrc_paper,...] [--workdir=/tmp/ucfp-clients]
        [--key=0]

Each setup is a model definition and training loop a user writes
(benchmarks/client_models.py, independent of ucfp's models and trainer): the base,
its derived copies (pruned + fine-tuned, int8, fine-tuned, distilled, extracted),
>= 8 innocents (other seeds, a data half, another recipe, other architectures, a wider
model, scikit-learn black boxes) and reference models of the user's own architecture
and recipe (other seeds), of which the first K are given to `ucfp.fingerprint`
(`mixed` methods: some replaced by `ucfp.simple_references`' linear model and MLP,
see `references`), and the owner's own 0.8-pruned fine-tuned copy for the methods
that use a surrogate (and 0.5- and 0.9-pruned ones, held out of the objective, for a
config with `robust.validators`: benchmarks/clients_validators.py). The levers run on
one setup at K = 2, 4 (`--levers`), and a few methods with K = 8, 16 (`--scale`). Per setup, K and method: R (pruned copies), T (innocents),
US = R - T, and verification with the null rate from the innocents (leave-one-out
Clopper-Pearson bound over the other innocents for each innocent, all innocents for
each derived copy; alpha 1e-3): false alarms and detected copies.

`--key` draws other starts and noise for the same models (the spread of one cell over
keys: benchmarks/clients_keys.py). Writes benchmarks/results/clients-<dataset>.json and
.md. CIFAR-10 (recipes sized for
a 2-core CPU in benchmarks/clients_zoo.py's PROFILES; every model is cached, so an
interrupted run resumes, and so are the fingerprints, keyed by the config, the models'
names and their weights' hashes, not by ucfp's code: empty <workdir>/fingerprints after
changing the generation code):

    python benchmarks/clients.py --dataset=imagefolder:../shared/data/cifar10-jpeg.tar.gz \
        --tag=cifar10 --workdir=/tmp/ucfp-clients-cifar10
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks import client_models as cm  # noqa: E402
from benchmarks.client_methods import (  # noqa: E402
  METHODS,
  method_config,
  refs_of,
  uses_mistakes,
  uses_surrogate,
)
from benchmarks.clients_report import markdown  # noqa: E402
from benchmarks.clients_validators import validators  # noqa: E402
from benchmarks.clients_zoo import (  # noqa: E402
  build_setup,
  profile_of,
  references,
  score,
  surrogates,
)
from benchmarks.common import write_results  # noqa: E402

_DATASET = flags.DEFINE_string(
  "dataset", "digits", "digits, or CIFAR-10 as imagefolder:<folder or .tar.gz> (32x32x3)"
)
_SETUPS = flags.DEFINE_list("setups", ["avgcnn", "bncnn", "mlp"], "client setups")
_KS = flags.DEFINE_list("ks", ["0", "1", "2", "4"], "numbers of reference models")
# The paper's methods, ucfp's default and configs/own.py (under 30 minutes from an empty
# cache). The levers that led to configs/own.py are in earlier runs' tables:
# clients-digits-levers.md (first run, --levers=... and --scale=...), clients-digits-r2.md,
# clients-digits-r3.md (--methods=c,rc,ltrc_paper,ucfp,ucfp_w10,ucfp_mixed_w10_sur,
# ucfp_cheap,ucfp_cheap_data,ucfp_cheap_data_cnn,ucfp_cheap_data_sel3,ucfp_own_cheap_cnn
# with oversample 3) and clients-digits-own-o3.md (--methods=ucfp_own_o3).
MAIN = "c,rc,ltrc_paper,ucfp,ucfp_own"
_METHODS = flags.DEFINE_list("methods", MAIN.split(","), f"of {', '.join(METHODS)}")
_LEVERS = flags.DEFINE_list("levers", [], "more methods, at K = 2, 4 (e.g. ucfp_data,ucfp_comp)")
_SCALE = flags.DEFINE_list(
  "scale",
  [],
  "methods run with more references on the lever setup (e.g. ucfp,ucfp_cheap_data)",
)
_LEVER_KS = flags.DEFINE_list("lever_ks", ["8", "16"], "their numbers of references")
_LEVER_SETUP = flags.DEFINE_string("lever_setup", "avgcnn", "the setup the levers run on")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ucfp-clients", "model cache")
_TAG = flags.DEFINE_string("tag", "", "results file suffix (default: the dataset)")
_N = flags.DEFINE_integer("num_fingerprints", 100, "N")
_KEY = flags.DEFINE_integer(
  "key", 0, "generation key (PRNGKey): another key draws other starts and noise, same models"
)


def main(argv):
  del argv
  import jax

  import ucfp
  from ucfp.evaluation.data import load_dataset

  if _DATASET.value != "digits" and not _TAG.value:
    raise app.UsageError(f"--dataset={_DATASET.value} needs --tag (e.g. --tag=cifar10)")
  if _KEY.value < 0:
    raise app.UsageError(f"--key={_KEY.value}: a generation key is an integer >= 0")
  if _KEY.value and not _TAG.value:  # would overwrite the key-0 results file
    raise app.UsageError(f"--key={_KEY.value} needs --tag (e.g. --tag=digits-key{_KEY.value})")
  data = load_dataset(_DATASET.value, cache_dir=os.path.join(_WORKDIR.value, "data"))
  prof = profile_of(data)
  unknown = [s for s in _SETUPS.value if s not in prof.setups]
  if unknown:
    raise app.UsageError(f"--setups: {unknown} not of {', '.join(prof.setups)}")
  cache = cm.Cache(os.path.join(_WORKDIR.value, "models"))
  fingerprints = cm.FingerprintCache(os.path.join(_WORKDIR.value, "fingerprints"))
  results, t0 = {}, time.perf_counter()
  for setup in _SETUPS.value:
    t = time.perf_counter()
    lever = setup == _LEVER_SETUP.value
    more = lever and _SCALE.value
    zoo = build_setup(setup, data, cache, max(map(int, _LEVER_KS.value)) if more else 4)
    train_s = time.perf_counter() - t
    accs = {e.name: e.test_accuracy for k in zoo for e in zoo[k]}
    results[setup] = {"train_seconds": train_s, "test_accuracy": accs, "runs": {}}
    plan = [(m, k) for m in _METHODS.value for k in map(int, _KS.value)]
    if lever:
      plan += [(m, k) for m in _LEVERS.value for k in (2, 4)]
      plan += [(m, k) for m in _SCALE.value for k in map(int, _LEVER_KS.value)]
    base = zoo["base"][0].model
    done = {}  # a config + references already run (e.g. every method at K = 0): reused
    for method, k in plan:
      config = method_config(method, data.info.image_shape, k, _N.value)
      if config is None:
        continue
      refs = references(zoo, k, refs_of(method)) if config.ltrc.term == "reference" else []
      rates = config.robust.surrogates
      surs = surrogates(zoo, rates) if uses_surrogate(method) else []
      val_rates = tuple(config.robust.get("validators", ()))
      vals = validators(setup, data, cache, base, val_rates) if val_rates else []
      ident = (config.to_json(), tuple(r.name for r in refs + surs + vals))
      if _KEY.value:  # key 0 keeps the cache keys of the runs before the flag
        ident += (("key", _KEY.value),)
      make = lambda config=config, refs=refs, surs=surs, vals=vals, base=base: ucfp.fingerprint(
        base,
        config,
        key=jax.random.PRNGKey(_KEY.value),
        reference=refs,
        surrogates=surs,
        validators=vals,
        starts=data.train_x if config.init == "data" else None,
      )
      if uses_mistakes(method):
        ident = ("mistakes", _N.value, tuple(r.name for r in refs))
        make = lambda refs=refs, base=base: ucfp.mistake_fingerprints(
          base, data.train_x, data.train_y, reference=refs, num=_N.value
        )
      if ident not in done:
        try:
          fps = fingerprints.get_or_make(setup, ident, [base, *refs, *surs, *vals], make)
        except ValueError as e:  # mistakes: too few (a base that fits its training set)
          if not uses_mistakes(method):
            raise
          print(f"{setup:8s} {method:18s} K={k} skipped: {e}", flush=True)
          results[setup].setdefault("skipped", {})[f"{method}/K={k}"] = str(e)
          continue
        # generate_seconds: as stored with the fingerprints (this run's if made now)
        done[ident] = {**score(fps, zoo), "generate_seconds": fps.meta["seconds"]}
      row = done[ident]
      results[setup]["runs"][f"{method}/K={k}"] = row
      print(
        f"{setup:8s} {method:18s} K={k} R {row['robustness']:.3f} T {row['transferability']:.3f}"
        f" US {row['uniqueness_score']:.3f} max-inn {row['max_innocent']:.2f}"
        f" alarms {len(row['false_alarms'])} missed "
        f"{[d for d, v in row['derived'].items() if v['useful'] and not v['detected']]}",
        flush=True,
      )
    # Written after every setup (a long CIFAR-10 run keeps what it has measured).
    out = {"setups": results, "total_seconds": time.perf_counter() - t0}
    out["complete"] = len(results) == len(_SETUPS.value)
    tag = _TAG.value or _DATASET.value
    write_results(f"clients-{tag}", out, markdown(out, tag))


if __name__ == "__main__":
  app.run(main)
