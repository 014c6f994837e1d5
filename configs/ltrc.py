"""LTRC-examples: RC plus a high-pass filter on every update and a low-transferability term.

python -m ucfp.generate --config=configs/ltrc.py[:digits|cifar10|mnist]
"""

from configs import base


def get_config(arg: str | None = None):
  c = base.get_config(arg)
  c.method = "ltrc"
  c.ltrc.radius = 2.0 if c.image_shape[0] <= 8 else 4.0
  c.ltrc.term = "reference"
  c.ltrc.weight = 3.0
  return c
