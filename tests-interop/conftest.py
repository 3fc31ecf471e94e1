"""Interop tests: grpcurl against a live server, and buf generation / lint / format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "sdk-python" / "tests"))

from dbforge_server import DBForgeServer  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[DBForgeServer]:
    with DBForgeServer() as s:
        yield s


@pytest.fixture(scope="session")
def auth_server() -> Iterator[DBForgeServer]:
    from dbforge_server import ADMIN_KEY

    with DBForgeServer(args=(), env={"DBFORGE_ADMIN_KEY": ADMIN_KEY}) as s:
        yield s


@pytest.fixture(scope="session")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """A mutual-TLS server and the PEM files a client needs: (server, ca, cert, key)."""
    import trustme

    d = tmp_path_factory.mktemp("grpcurl-tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("grpcurl@dbforge.test")
    paths = {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    server_cert.private_key_pem.write_to_path(paths["server.key"])
    server_cert.cert_chain_pems[0].write_to_path(paths["server.pem"])
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["server.pem"], append=True)
    client_cert.private_key_pem.write_to_path(paths["client.key"])
    client_cert.cert_chain_pems[0].write_to_path(paths["client.pem"])
    args = ("--insecure-no-auth", "--tls-cert", paths["server.pem"], "--tls-key", paths["server.key"],
            "--tls-client-ca", paths["ca.pem"])
    with DBForgeServer(args=args, tls=True) as s:
        yield s, paths["ca.pem"], paths["client.pem"], paths["client.key"]
