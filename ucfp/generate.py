"""Command line: train or restore the models, generate fingerprints, evaluate.

    python -m ucfp.generate --config=configs/ltrc.py[:digits|cifar10|mnist] \
        [--workdir=ucfp-work] [--config.KEY=VALUE ...]
"""

from __future__ import annotations

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from ucfp import pipeline
from ucfp.cli_errors import fail, parse_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "A config file: configs/{c,rc,ltrc}.py[:preset].", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", "ucfp-work", "Where models, data caches, fingerprints.npz and report.json go."
)


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None:
    fail("--config is required, e.g. --config=configs/ltrc.py")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  if config.distributed:
    jax.distributed.initialize()
  logging.info(
    "JAX devices: %s (process %d of %d)", jax.devices(), jax.process_index(), jax.process_count()
  )
  try:
    pipeline.run(config, _WORKDIR.value)
  except ValueError as e:
    fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
