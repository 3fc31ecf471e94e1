"""The sync client is generated from the asyncio one (scripts/gen-sync-client) and the two stay in
step: client.py is what the generator makes of aio.py, and `Client` / `AsyncClient`,
`Transaction` / `AsyncTransaction` have the same public methods with the same signatures, the
async ones awaited."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Set

import dbforge

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "sdk-python" / "src" / "dbforge"


def generator() -> ModuleType:
    path = REPO / "scripts" / "gen-sync-client"
    loader = importlib.machinery.SourceFileLoader("gen_sync_client", str(path))
    spec = importlib.util.spec_from_loader("gen_sync_client", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_client_py_is_what_the_generator_makes_of_aio_py() -> None:
    gen = generator()
    want = gen.to_sync((SDK / "aio.py").read_text())
    assert (SDK / "client.py").read_text() == want, "client.py is stale: run scripts/gen-sync-client"


def test_the_generator_drops_async_and_renames_async_types() -> None:
    source = '''"""Async docs."""
async def f(rows: AsyncRows) -> AsyncIterator[int]:
    """`AsyncClient` is prose; `async with dbforge.AsyncClient() as c: await c.x()` is code."""
    async with rows:  # an AsyncRows
        async for r in await rows.more():
            yield [x async for x in r]
'''
    out = generator().to_sync(source)
    assert out.startswith('"""The synchronous client.')
    assert out.split('"""\n', 1)[1] == '''def f(rows: Rows) -> Iterator[int]:
    """`AsyncClient` is prose; `with dbforge.Client() as c: c.x()` is code."""
    with rows:  # an Rows
        for r in rows.more():
            yield [x for x in r]
'''


def _public(cls: type) -> Dict[str, Callable[..., Any]]:
    out = {}
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name)
        if callable(attr) and (not name.startswith("_") or name in ("__init__", "__enter__", "__aenter__")):
            out[name] = getattr(cls, name)
    return out


def _sync_text(text: str) -> str:
    renames = generator().RENAMES
    return re.sub(r"\b(" + "|".join(renames) + r")\b", lambda m: renames[m.group(1)], text)


def _same_shape(sync_cls: type, async_cls: type, async_only: Set[str]) -> None:
    sync, aio = _public(sync_cls), _public(async_cls)
    assert set(sync) == {_sync_text(n) for n in aio} - async_only
    for async_name, afn in aio.items():
        name = _sync_text(async_name)
        if name in async_only:
            continue
        fn = sync[name]
        want = _sync_text(str(inspect.signature(afn)))
        assert str(inspect.signature(fn)) == want, f"{sync_cls.__name__}.{name}"
        is_async = inspect.iscoroutinefunction(afn) or inspect.isasyncgenfunction(afn)
        assert not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)), name
        if name not in ("__init__", "transaction"):
            assert is_async, f"{async_cls.__name__}.{async_name} is not awaited"
        assert inspect.isgeneratorfunction(fn) == inspect.isasyncgenfunction(afn), name


def test_client_and_async_client_have_the_same_methods_and_signatures() -> None:
    _same_shape(dbforge.Client, dbforge.AsyncClient, async_only={"connect"})
    assert len(_public(dbforge.Client)) >= 35  # the comparison above saw every call


def test_transaction_and_async_transaction_have_the_same_methods_and_signatures() -> None:
    _same_shape(dbforge.Transaction, dbforge.AsyncTransaction, async_only={"begin"})
