"""Fixtures: live dbforge-server processes (plain, with API keys, with TLS and mutual TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Dict, Iterator

import pytest
import trustme

import dbforge
from dbforge_server import ADMIN_KEY, DBForgeServer, unique


@pytest.fixture(scope="session")
def server() -> Iterator[DBForgeServer]:
    with DBForgeServer() as s:
        yield s


@pytest.fixture(scope="session")
def auth_server() -> Iterator[DBForgeServer]:
    """A server that requires API keys; ADMIN_KEY is its admin key."""
    with DBForgeServer(args=(), env={"DBFORGE_ADMIN_KEY": ADMIN_KEY}) as s:
        yield s


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (PEM files)."""
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("agent@dbforge.test")
    files = {
        "ca": d / "ca.pem",
        "server_cert": d / "server.pem",
        "server_key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.private_key_pem.write_to_path(str(files["server_key"]))
    with open(files["server_cert"], "wb") as f:
        for blob in server_cert.cert_chain_pems:
            f.write(blob.bytes())
    client_cert.private_key_pem.write_to_path(str(files["client_key"]))
    with open(files["client_cert"], "wb") as f:
        for blob in client_cert.cert_chain_pems:
            f.write(blob.bytes())
    other = trustme.CA()  # a CA the server does not trust, for the refused-client test
    stranger = other.issue_cert("stranger@dbforge.test")
    files["stranger_cert"] = d / "stranger.pem"
    files["stranger_key"] = d / "stranger.key"
    stranger.private_key_pem.write_to_path(str(files["stranger_key"]))
    with open(files["stranger_cert"], "wb") as f:
        for blob in stranger.cert_chain_pems:
            f.write(blob.bytes())
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="session")
def tls_server(tls_files: Dict[str, str]) -> Iterator[DBForgeServer]:
    """TLS (server certificate only)."""
    args = ("--insecure-no-auth", "--tls-cert", tls_files["server_cert"], "--tls-key", tls_files["server_key"])
    with DBForgeServer(args=args, tls=True) as s:
        yield s


@pytest.fixture(scope="session")
def mtls_server(tls_files: Dict[str, str]) -> Iterator[DBForgeServer]:
    """Mutual TLS: clients must present a certificate signed by the test CA."""
    args = (
        "--insecure-no-auth",
        "--tls-cert",
        tls_files["server_cert"],
        "--tls-key",
        tls_files["server_key"],
        "--tls-client-ca",
        tls_files["ca"],
    )
    with DBForgeServer(args=args, tls=True) as s:
        yield s


@pytest.fixture
def client(server: DBForgeServer) -> Iterator[dbforge.Client]:
    with dbforge.Client(server.endpoint, timeout=60) as c:
        yield c


@pytest.fixture
async def aclient(server: DBForgeServer) -> AsyncIterator[dbforge.AsyncClient]:
    async with dbforge.AsyncClient(server.endpoint, timeout=60) as c:
        yield c


@pytest.fixture
def db(client: dbforge.Client) -> Iterator[str]:
    """A fresh SQLite database, pruned afterwards."""
    name = unique("py")
    client.create_database(name)
    yield name
    client.delete_database(name, allow_missing=True)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
