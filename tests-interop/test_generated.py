"""Generation from proto/: buf lint, buf format, and the committed SDK code is what a fresh
`buf generate` (scripts/generate) writes."""

from __future__ import annotations

import filecmp
import os
import subprocess
import tempfile
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
GENERATED = [
    # (committed folder, pattern of generated files in it)
    ("sdk-python/src/dbforge/v1", ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")),
    ("sdk-typescript/src/gen", ("_pb.ts",)),
]


def buf(*args: str) -> subprocess.CompletedProcess[str]:
    exe = REPO / "node_modules" / ".bin" / "buf"
    assert exe.exists(), "buf is missing: npm ci at the repository root"
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_buf_lint() -> None:
    proc = buf("lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_buf_format() -> None:
    proc = buf("format", "--diff", "--exit-code")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def files(root: Path, suffixes: tuple) -> List[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes)
    )


def test_committed_code_is_fresh() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [str(REPO / "scripts" / "generate"), tmp], cwd=REPO, capture_output=True, text=True, timeout=300,
            env={**os.environ},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for folder, suffixes in GENERATED:
            fresh, committed = Path(tmp) / folder, REPO / folder
            assert files(fresh, suffixes), f"nothing generated into {folder}"
            assert files(committed, suffixes) == files(fresh, suffixes), (
                f"{folder}: the generated file set changed; run scripts/generate and commit"
            )
            stale = [
                f for f in files(fresh, suffixes) if not filecmp.cmp(fresh / f, committed / f, shallow=False)
            ]
            assert not stale, f"{folder}: stale generated code in {stale}; run scripts/generate and commit"
