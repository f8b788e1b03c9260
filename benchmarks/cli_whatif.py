"""``desk-sessions`` with experimental changes applied in-process, for what-if runs only.

  python benchmarks/cli_whatif.py [--preimport-pandas] -- run --seed ... (CLI args)

--preimport-pandas  import pandas before the job starts (pyarrow imports it on the first
                    pa.array(), i.e. in the middle of the fetch phase, while calls are in
                    flight on the poller thread)
Nothing here changes the package on disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    flags, cli_args = set(argv[:cut]), argv[cut + 1:]
    if "--preimport-pandas" in flags:
        import pandas  # noqa: F401
    from pipelines.tencent_desk.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
