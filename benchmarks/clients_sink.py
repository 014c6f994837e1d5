"""Why innocents follow whole target classes on client models (issue #20): the labels
independent models read on the fingerprints.

    python benchmarks/clients_sink.py [--setups=avgcnn,mlp] [--ks=0] \
        [--losses=prob,anchor] [--workdir=/tmp/ucfp-clients]

For configs/own.py's fingerprints of a client setup (benchmarks/clients.py's zoo, K of
the user's references + ucfp's helpers) under each reference penalty
(`ltrc.ref_loss`): per innocent, its match rate, the target classes it follows (on at
least half of their fingerprints), and the labels it gives the fingerprints: the share
of its most common label (a "sink": a class the whole set drifts to for models other
than the base) and the share of the set's most common label over all innocents. With
the `prob` penalty the references are pushed out of the target class into whatever
class is nearest; if that is one class for the whole family, the fingerprints aimed
at it are the ones a sink-prone innocent follows. `anchor` keeps each reference
reading the class it reads in the start image instead.

Writes benchmarks/results/clients-<tag>-sink.json and .md.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarks import client_models as cm  # noqa: E402
from benchmarks.client_methods import method_config  # noqa: E402
from benchmarks.clients_report import label_shares, sink_markdown  # noqa: E402
from benchmarks.clients_validators import validators  # noqa: E402
from benchmarks.clients_zoo import build_setup, references, score, surrogates  # noqa: E402
from benchmarks.common import write_results  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "digits", "digits or imagefolder:<folder or .tar.gz>")
_SETUPS = flags.DEFINE_list("setups", ["avgcnn", "mlp"], "client setups")
_KS = flags.DEFINE_list("ks", ["0"], "numbers of the user's full-length references")
_LOSSES = flags.DEFINE_list("losses", ["prob", "anchor"], "ltrc.ref_loss values")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ucfp-clients", "model cache (clients.py's)")
_TAG = flags.DEFINE_string("tag", "", "results file suffix (default: the dataset)")
_N = flags.DEFINE_integer("num_fingerprints", 100, "N")


def main(argv):
  del argv
  import jax
  import numpy as np

  import ucfp
  from ucfp.core.objectives import REF_LOSSES
  from ucfp.core.scoring import predict_labels
  from ucfp.evaluation.data import load_dataset

  bad = [x for x in _LOSSES.value if x not in REF_LOSSES]
  if bad:
    raise app.UsageError(f"--losses: {bad} not of {', '.join(REF_LOSSES)}")
  data = load_dataset(_DATASET.value, cache_dir=os.path.join(_WORKDIR.value, "data"))
  cache = cm.Cache(os.path.join(_WORKDIR.value, "models"))
  classes = data.info.num_classes
  rows, t0 = [], time.perf_counter()
  for setup in _SETUPS.value:
    zoo = build_setup(setup, data, cache, 4)
    base = zoo["base"][0].model
    for k in map(int, _KS.value):
      refs = references(zoo, k, "own")
      for loss in _LOSSES.value:
        config = method_config("ucfp_own", data.info.image_shape, k, _N.value)
        config.unlock()
        config.ltrc.ref_loss = loss
        config.lock()
        fps = ucfp.fingerprint(
          base,
          config,
          key=jax.random.PRNGKey(0),
          reference=refs,
          surrogates=surrogates(zoo, config.robust.surrogates),
          validators=validators(setup, data, cache, base, tuple(config.robust.validators))
          if len(config.robust.validators)
          else [],
          starts=data.train_x,
        )
        x = np.asarray(fps.x)
        result = score(fps, zoo)
        innocents, pooled = {}, np.zeros(classes)
        for e in zoo["innocent"]:
          labels = np.asarray(predict_labels(e.predict, x, fps.num_classes, classes))
          shares = label_shares(labels, classes)
          pooled += shares / len(zoo["innocent"])
          innocents[e.name] = {
            "match_rate": result["match_rate"][e.name],
            "follows": result["innocent_classes"][e.name],
            "sink": int(shares.argmax()),
            "sink_share": float(shares.max()),
          }
        row = {
          "setup": setup,
          "k": k,
          "ref_loss": loss,
          **{key: result[key] for key in ("robustness", "transferability", "uniqueness_score")},
          "false_alarms": result["false_alarms"],
          "set_sink": int(pooled.argmax()),
          "set_sink_share": float(pooled.max()),
          "innocents": innocents,
        }
        rows.append(row)
        print(
          f"{setup} K={k} {loss:8s} T {row['transferability']:.3f} sink {row['set_sink']}"
          f" ({row['set_sink_share']:.2f}) alarms {row['false_alarms']}",
          flush=True,
        )
  out = {"rows": rows, "total_seconds": time.perf_counter() - t0}
  tag = _TAG.value or _DATASET.value
  write_results(f"clients-{tag}-sink", out, sink_markdown(out, tag))


if __name__ == "__main__":
  app.run(main)
