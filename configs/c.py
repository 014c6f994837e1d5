"""C-examples (vanilla): minimise the loss of the base model alone.

python -m ucfp.generate --config=configs/c.py[:digits|cifar10|mnist]
"""

from configs import base


def get_config(arg: str | None = None):
  c = base.get_config(arg)
  c.method = "c"
  return c
