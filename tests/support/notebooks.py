"""Executing the real notebooks in a kernel of this interpreter (the venv's)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from ipykernel.kernelspec import install as install_kernel
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["queue", "agent_occupancy", "staffing", "records", "planning"]
KERNEL = "tencent-desk-tests"


def install_kernel_spec(prefix: Path) -> Path:
    """A kernel spec running this interpreter; put the returned folder on JUPYTER_PATH."""
    install_kernel(kernel_name=KERNEL, prefix=str(prefix))
    return prefix / "share" / "jupyter"


def execute(name: str) -> nbformat.NotebookNode:
    """Run a notebook top to bottom (raises on the first cell that fails); returns it with
    its outputs."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def figures(nb: nbformat.NotebookNode) -> int:
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    return len([out for out in outputs if "image/png" in out.get("data", {})])
