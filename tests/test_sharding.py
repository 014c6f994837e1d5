"""Generation sharded over 8 fake CPU devices equals the single-device result, and resumes."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import sys
sys.path.insert(0, "tests")
import jax, numpy as np
assert len(jax.devices()) == 8, jax.devices()
from configs import ltrc
from conftest import random_model
from ucfp import fingerprint
model, ref = random_model("cnn_small", 0), random_model("mlp", 1)
c = ltrc.get_config("tiny")
c.num_fingerprints, c.steps, c.ltrc.radius, c.loss = 16, 8, 2.0, "margin"
key = jax.random.PRNGKey(0)
sharded = fingerprint(model, c, key=key, reference=[ref])
assert sharded.meta["devices"] == 8, sharded.meta["devices"]
c.shard = False
single = fingerprint(model, c, key=key, reference=[ref])
assert single.meta["devices"] == 1
np.testing.assert_array_equal(sharded.y, single.y)
diff = np.abs(sharded.x - single.x)
print("max abs difference", diff.max())
assert diff.max() <= 1e-5  # stated tolerance; measured 0.0 on XLA:CPU
from ucfp.core import variants
variants.GROUP_CPU = 1  # grouped: one compiled call per variant, sharded examples
c.robust.batching, c.robust.num_variants = "grouped", 2
grouped = [fingerprint(model, c.copy_and_resolve_references(), key=key, reference=[ref])]
c.shard = True
grouped.append(fingerprint(model, c, key=key, reference=[ref]))
assert grouped[1].meta["devices"] == 8 and grouped[1].meta["batching"] == "grouped"
assert np.abs(grouped[1].x - grouped[0].x).max() <= 1e-5
# Resumed on 8 devices (Adam: its step count is restored replicated) equals uninterrupted.
import tempfile
from ucfp.core import generation
c = ltrc.get_config("tiny")
c.method, c.num_fingerprints, c.steps, c.optimizer, c.checkpoint_every = "c", 16, 8, "adam", 4
whole = fingerprint(model, c, key=key, reference=[ref])
real, folder = generation.compiled_step, tempfile.mkdtemp()
def interrupted(*args):
  step, ran = real(*args), [0]
  def run(*a):
    ran[0] += 1
    if ran[0] > 6:
      raise KeyboardInterrupt
    return step(*a)
  return run
generation.compiled_step = interrupted
try:
  fingerprint(model, c, key=key, reference=[ref], checkpoint_dir=folder)
  raise AssertionError("not interrupted")
except KeyboardInterrupt:
  pass
generation.compiled_step = real
resumed = fingerprint(model, c, key=key, reference=[ref], checkpoint_dir=folder)
assert resumed.meta["resumed_from"] == 4 and resumed.meta["devices"] == 8, resumed.meta
np.testing.assert_array_equal(resumed.x, whole.x)
print("OK")
"""


def test_sharded_generation_matches_single_device():
  env = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
    "JAX_PLATFORMS": "cpu",
  }
  out = subprocess.run(
    [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  assert out.returncode == 0 and "OK" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
