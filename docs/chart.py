"""The front page's chart: the queue notebook executed on the demo database, one of its
figures saved as it drew it (``make chart``, after ``make demo``)."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.notebooks import KERNEL, execute, install_kernel_spec  # noqa: E402

FIGURE = 1  # the queue notebook's second figure: queue length over time
OUT = ROOT / "docs" / "img" / "queue-length.png"


def main() -> None:
    os.environ.setdefault("DESK_DUCKDB", str(ROOT / "demo.duckdb"))
    os.environ["MPLBACKEND"] = "Agg"
    with tempfile.TemporaryDirectory() as kernels:
        os.environ["JUPYTER_PATH"] = str(install_kernel_spec(Path(kernels)))
        nb = execute("queue")
    images = [out["data"]["image/png"] for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if "image/png" in out.get("data", {})]
    OUT.write_bytes(base64.b64decode(images[FIGURE]))
    print(f"{OUT.relative_to(ROOT)} from {KERNEL}: figure {FIGURE + 1} of {len(images)}")


if __name__ == "__main__":
    main()
