"""Starts a real dbforge-server for the tests (no mocks): builds it with cargo when needed,
binds 127.0.0.1:0 and reads the bound address from its log.

Used by the SDK tests (conftest.py), the interop tests (tests-interop/) and bench_stream.py.
Set DBFORGE_SERVER_BIN to use a prebuilt binary instead of `cargo build -p dbforge-server
--features graph` (with the graph engine, which the memory and materialize tests use; it needs
libclang, as scripts/test installs).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
_ADDR = re.compile(r"addr=(\S+:\d+)")

#: The admin key of the test servers that require API keys.
ADMIN_KEY = "test-admin-key-0123456789abcdef"


def unique(prefix: str = "t") -> str:
    """A database name unique to this run."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
_build_lock = threading.Lock()
_built: Optional[Path] = None


def server_binary() -> Path:
    """The server binary: $DBFORGE_SERVER_BIN, else built once with cargo."""
    global _built
    explicit = os.environ.get("DBFORGE_SERVER_BIN")
    if explicit:
        return Path(explicit)
    with _build_lock:
        if _built is None:
            subprocess.run(
                ["cargo", "build", "--quiet", "-p", "dbforge-server", "--features", "graph"],
                cwd=REPO,
                check=True,
            )
            target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
            if not target.is_absolute():
                target = REPO / target
            _built = target / "debug" / "dbforge-server"
        return _built


_cli_built: Optional[Path] = None


def cli_binary() -> Path:
    """The `dbforge` CLI binary: $DBFORGE_CLI_BIN, else built once with cargo."""
    global _cli_built
    explicit = os.environ.get("DBFORGE_CLI_BIN")
    if explicit:
        return Path(explicit)
    with _build_lock:
        if _cli_built is None:
            subprocess.run(["cargo", "build", "--quiet", "-p", "dbforge-cli"], cwd=REPO, check=True)
            target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
            if not target.is_absolute():
                target = REPO / target
            _cli_built = target / "debug" / "dbforge"
        return _cli_built


class DBForgeServer:
    """One server process on a free loopback port with its own data directory."""

    def __init__(
        self,
        args: Sequence[str] = ("--insecure-no-auth",),
        env: Optional[Dict[str, str]] = None,
        tls: bool = False,
    ) -> None:
        full_env = {**os.environ, **(env or {})}
        # Under load, a child forked from this process (which runs gRPC's threads) has died
        # before exec, leaving only gRPC's complaint about its poller: start it again then. A
        # server that fails for a reason of its own fails the same way three times.
        attempts = 3
        for attempt in range(1, attempts + 1):
            self.data_dir = tempfile.mkdtemp(prefix="dbforge-test-")
            cmd: List[str] = [
                str(server_binary()),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                self.data_dir,
                "--log",
                "warn,dbforge_server::server=info",
                "--shutdown-grace",
                "2s",
                *args,
            ]
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=full_env,
                text=True,
            )
            self.log: List[str] = []
            try:
                self.addr = self._wait_for_addr()
                break
            except RuntimeError:
                if attempt == attempts:
                    raise
        self.endpoint = f"{'https' if tls else 'http'}://{self.addr}"
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_addr(self) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.log.append(line)
            m = _ADDR.search(line)
            if m:
                return m.group(1)
        self.stop()
        raise RuntimeError("dbforge-server did not start:\n" + "".join(self.log))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> DBForgeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    # `python dbforge_server.py [server args...]`: start a server, print its endpoint, wait.
    import sys

    srv = DBForgeServer(sys.argv[1:] or ("--insecure-no-auth",))
    print(srv.endpoint, flush=True)
    try:
        srv.proc.wait()
    except KeyboardInterrupt:
        srv.stop()
