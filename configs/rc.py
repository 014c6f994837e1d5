"""RC-examples: the mean loss over sampled pruned / noisy variants of the base model.

python -m ucfp.generate --config=configs/rc.py[:digits|cifar10|mnist]
"""

from configs import base


def get_config(arg: str | None = None):
  c = base.get_config(arg)
  c.method = "rc"
  return c
