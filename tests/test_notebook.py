"""notebooks/colab_tpu.ipynb: stored without outputs, and run top to bottom on the tiny preset."""

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "colab_tpu.ipynb")


def _stdout(nb) -> str:
  return "".join(
    o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
  )


def test_notebook_is_stored_without_outputs_and_defaults_to_cifar10():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.kernelspec.name == "python3"
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.outputs == [] and c.execution_count is None for c in code)
  sources = "\n".join(c.source for c in code)
  assert 'os.environ.get("UCFP_NOTEBOOK_PRESET", "cifar10")' in sources
  assert code[0].source.splitlines()[-1].startswith("REPO = ")


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_tiny_with_two_devices(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  workdir = tmp_path / "work"
  flags = os.environ.get("XLA_FLAGS", "")
  env = {
    **os.environ,
    "UCFP_NOTEBOOK_PRESET": "tiny",
    "UCFP_NOTEBOOK_WORKDIR": str(workdir),
    "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2".strip(),
  }
  # python3 is ipykernel's kernelspec in this venv; jupyter_client runs it with sys.executable.
  client = NotebookClient(
    nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  )
  client.execute(env=env)  # raises CellExecutionError on the first failing cell

  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.execution_count is not None for c in code)
  assert not [o for c in code for o in c.outputs if o.output_type == "error"]
  out = _stdout(nb)
  assert "skipping the install" in out
  assert f"ucfp from {os.path.join(ROOT, 'ucfp', '__init__.py')}" in out  # this checkout
  assert "2 device(s)" in out and "preset 'tiny'" in out
  assert "Uniqueness Score US" in out  # the main job's table
  assert "devices used: 2" in out  # ucfp.fingerprint sharded the examples over both
  assert "examples 0..9" in out and "examples 10..19" in out
  assert "derived" in out and "Verdict(" in out
  report = json.loads((workdir / "report.json").read_text())
  assert report["num_fingerprints"] == 20
  assert (workdir / "notebook-fingerprints.npz").exists()
  images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
  figures = list((workdir / "figures").glob("*.png")) if (workdir / "figures").exists() else []
  assert len(images) == 1 + len(figures)  # the fingerprints plot and every report figure
  if not (workdir / "report.md").exists():
    assert "no " + str(workdir / "report.md") in out
