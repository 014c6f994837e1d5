"""Where benchmarks/quality.py caches each method's fingerprints (no flags here, so tests
can import it)."""

from __future__ import annotations

import hashlib
import json
import os

# Bumped whenever generation's results change for the same config (e.g. the variant
# noise's random draws), so that cached fingerprints from older code are not reused.
# 3: the max-pool gradient and the pool-before-bias layer (same values, other floats).
_GENERATION_VERSION = 3

# The config fields `ucfp.fingerprint` reads (besides the `robust` and `ltrc` groups).
_GENERATION_FIELDS = (
  "method", "image_shape", "num_fingerprints", "steps", "step_size", "optimizer", "loss",
  "kappa", "init", "init_sigma", "early_stop", "early_stop_margin", "seed", "shard",
)  # fmt: skip
_LATER_FIELDS = {"budget": 0.0, "oversample": 1}


def cache_path(workdir, cfg, base, refs, surs=(), key: int = 0) -> str:
  """Where a method's fingerprints are cached: a hash of all that determines them (the
  generation fields, the base model and, for the reference term, the references, the
  surrogates, and the generation key folded in where it is not 0)."""
  gen = {k: cfg[k] for k in _GENERATION_FIELDS}
  # Fields added later, in the key only when set, so that older caches stay valid.
  gen.update({k: cfg[k] for k, off in _LATER_FIELDS.items() if cfg.get(k, off) != off})
  robust = cfg.robust.to_dict()
  if not surs:  # keys from before surrogates existed, so older caches stay valid
    robust.pop("surrogates"), robust.pop("surrogate_weight")
  if not robust.get("surrogate_attacks"):  # likewise for surrogate attacks
    robust.pop("surrogate_attacks", None)
  gen.update(robust=robust, ltrc=cfg.ltrc.to_dict())
  uses_refs = cfg.method == "ltrc" and cfg.ltrc.term == "reference"
  blob = json.dumps(
    [
      _GENERATION_VERSION,
      gen,
      base.name,
      base.test_accuracy,
      [r.name for r in refs] if uses_refs else [],
    ]
    + ([[m.name for m in surs]] if surs else [])
    + ([["key", key]] if key else []),
    sort_keys=True,
    default=str,
  )
  digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
  return os.path.join(workdir, "fingerprints", f"{cfg.method}-{digest}.npz")
