"""Full (generation-2) garbage collections during one desk-sessions command, in process:
with the threshold cli.main sets (``new``) or with Python's default left alone (``old``:
gc.set_threshold made a no-op before the CLI runs). Why cli.main sets it: a command imports
some 1,500 modules, and each full collection scans them all again.

  .venv/bin/python benchmarks/gc_collections.py old|new -- <desk-sessions arguments>
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("old", "new") or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    mode, args = argv[0], argv[2:]
    if mode == "old":
        gc.set_threshold = lambda *_: None  # the CLI's call then changes nothing
    full = {"n": 0, "cpu": 0.0, "since": 0.0}

    def count(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            full["since"] = time.process_time()
        else:
            full["n"] += 1
            full["cpu"] += time.process_time() - full["since"]

    gc.callbacks.append(count)
    from tencent_desk import cli

    t0 = time.process_time()
    with contextlib.suppress(SystemExit):  # the command's exit code is not the figure
        cli.main(args)
    print(f"{mode}: {full['n']:.0f} full collections, {full['cpu']:.3f} CPU-s of "
          f"{time.process_time() - t0:.2f} CPU-s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
