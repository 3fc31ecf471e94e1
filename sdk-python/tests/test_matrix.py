"""docs/sdk-matrix.md lists every RPC of the proto with a method in each SDK, and those methods
exist: no RPC is unreachable from an SDK."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import dbforge
from dbforge.v1 import (
    access_pb2,
    backup_pb2,
    database_pb2,
    operations_pb2,
    query_pb2,
    schema_pb2,
    semantic_pb2,
    table_pb2,
    transfer_pb2,
)

REPO = Path(__file__).resolve().parents[2]


def table() -> Dict[Tuple[str, str], List[List[str]]]:
    rows = {}
    for line in (REPO / "docs" / "sdk-matrix.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].endswith("Service") and cells[0] != "Service":
            rows[(cells[0], cells[1])] = [re.findall(r"`([A-Za-z_]+)`", c) for c in cells[2:]]
    return rows


def proto_rpcs() -> Set[Tuple[str, str]]:
    out = set()
    for mod in (
        access_pb2,
        backup_pb2,
        database_pb2,
        operations_pb2,
        query_pb2,
        schema_pb2,
        semantic_pb2,
        table_pb2,
        transfer_pb2,
    ):
        for service in mod.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out.add((service.name, method.name))
    return out


def test_every_rpc_is_in_the_table() -> None:
    assert set(table()) == proto_rpcs()


def test_python_methods_exist() -> None:
    for (service, rpc), (_rust, python, _ts) in table().items():
        assert python, f"{service}.{rpc} has no Python method"
        for name in python:
            assert callable(getattr(dbforge.Client, name, None)), f"Client.{name} ({service}.{rpc})"
            assert callable(getattr(dbforge.AsyncClient, name, None)), f"AsyncClient.{name} ({service}.{rpc})"


def test_rust_methods_exist() -> None:
    # `impl Client` blocks live in several modules (client.rs, schema.rs, transfer.rs, ...).
    source = "\n".join(p.read_text() for p in sorted((REPO / "sdk-rust" / "src").glob("*.rs")))
    for (service, rpc), (rust, _python, _ts) in table().items():
        assert rust, f"{service}.{rpc} has no Rust method"
        for name in rust:
            assert f"pub async fn {name}(" in source, f"Rust Client::{name} ({service}.{rpc})"
