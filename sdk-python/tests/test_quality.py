"""The SDK's own code keeps to Python 3.9 (vermin) and lints clean (ruff). mypy --strict runs in
scripts/test-sdks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_python_39_compatible() -> None:
    files = sorted(str(p) for p in (SDK / "src" / "dbforge").rglob("*.py"))
    proc = subprocess.run(
        [str(BIN / "vermin"), "-t=3.9-", "--no-tips", "--eval-annotations", "--violations", *files],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff() -> None:
    proc = subprocess.run(
        [str(BIN / "ruff"), "check", "--config", str(SDK / "pyproject.toml"), str(SDK)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
