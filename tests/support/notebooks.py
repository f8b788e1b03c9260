"""Executing the real notebooks in a kernel of this interpreter (the venv's)."""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupytext
import matplotlib
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


@dataclass
class Ran:
    """What a notebook showed: its text (printed, and each cell's last value), the PNGs it
    drew, and the warnings it raised; run in this process, the names it left."""

    text: str
    images: int
    warned: list[str]
    names: dict[str, Any] = field(default_factory=dict)


def run_inline(name: str) -> Ran:
    """Run a notebook's cells in this process, as its kernel would: each cell's last
    expression shown, and every figure open at a cell's end drawn and closed (the inline
    backend's way, less its PNG). The kernel's start and imports are what make a notebook cost
    seconds; this runs the same cells on many shapes for a fraction of that."""
    import matplotlib.pyplot as plt

    cells = [c.source for c in jupytext.read(NOTEBOOKS / f"{name}.py").cells
             if c.cell_type == "code"]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    shown, images = io.StringIO(), 0
    path = list(sys.path)
    plt.close("all")
    try:
        with (warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(shown),
              matplotlib.rc_context()):
            warnings.simplefilter("default")
            for n, source in enumerate(cells):
                # a line magic (%matplotlib inline) is the kernel's business
                code = ast.parse("\n".join(line for line in source.splitlines()
                                           if not line.lstrip().startswith("%")))
                last = code.body.pop() if code.body and isinstance(code.body[-1], ast.Expr) \
                    else None
                exec(compile(code, f"<{name} cell {n}>", "exec"), namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), f"<{name} cell {n}>",
                                         "eval"), namespace)
                    if value is not None:
                        print(repr(value))
                for number in plt.get_fignums():
                    # every artist drawn, as a PNG would be; the encoding and the tight
                    # box's second pass (a fifth of the time) are matplotlib's, left to the
                    # kernel cases
                    plt.figure(number).canvas.draw()
                    images += 1
                plt.close("all")
    finally:
        sys.path[:] = path
        desk = namespace.get("desk")
        if desk is not None:
            desk.source.close()
    # as a kernel shows them: a library's deprecation notes are not the notebook's warnings
    warned = [f"{w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
              or w.filename.startswith("<")]
    return Ran(shown.getvalue(), images, warned, namespace)
