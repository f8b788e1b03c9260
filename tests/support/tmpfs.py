"""A small real filesystem for full-disk tests: a tmpfs mounted by the test (as root),
filled with a filler file to leave exactly as much room as a test wants, then freed."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Disk:
    path: Path

    @property
    def filler(self) -> Path:
        return self.path / ".filler"

    def available(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all the room but ``leave`` bytes (tmpfs counts whole pages)."""
        with open(self.filler, "ab") as f:
            chunk = b"\0" * (1 << 20)
            while self.available() > leave:
                want = min(len(chunk), self.available() - leave)
                try:
                    f.write(chunk[:max(want, 1)])
                    f.flush()
                except OSError:
                    break

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True,
                       capture_output=True)


@contextlib.contextmanager
def mounted(folder: Path, size: str) -> Iterator[Disk]:
    """A tmpfs of ``size`` at ``folder``; skips the test where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): "
                    f"{done.stderr.strip() or done.returncode}")
    try:
        yield Disk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
