"""Streams a 1,000,000-row result (an integer, a text and a float column: the same query as the
Rust benchmark in bench/) from a gateway through the SDK and prints rows/s.

    python sdk-python/bench_stream.py [--endpoint http://127.0.0.1:50051] [--rows 1000000] [--runs 3] [--async]

Without --endpoint (or DBFORGE_ENDPOINT) it starts a server of its own (tests/dbforge_server.py;
DBFORGE_SERVER_BIN picks the binary, e.g. a release build). The API key comes from
DBFORGE_API_KEY. Prints one JSON line per run (rows, seconds, rows_per_s and cpu_seconds: the
CPU this process used during the run, all threads) and a summary line with the best run;
dbforge-bench (phase 14) reads the JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import dbforge

SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT x, 'row-' || x, x * 0.5 FROM c"
)


def check(n: int, total: int, rows: int) -> None:
    if n != rows or total != rows * (rows + 1) // 2:
        raise SystemExit(f"wrong result: {n} rows, sum {total}")


def report(mode: str, run: int, n: int, secs: float, cpu: float) -> None:
    """One machine-readable line per run."""
    line = {
        "sdk": "python",
        "mode": mode,
        "run": run,
        "rows": n,
        "seconds": round(secs, 6),
        "rows_per_s": round(n / secs),
        "cpu_seconds": round(cpu, 6),
    }
    print(json.dumps(line), flush=True)


def run_sync(endpoint: str, rows: int, runs: int) -> float:
    best = 0.0
    with dbforge.Client(endpoint) as client:
        db = f"bench-py-{os.getpid()}"
        client.create_database(db, if_not_exists=True)
        try:
            for run in range(runs):
                t0, cpu0 = time.perf_counter(), time.process_time()
                n = total = 0
                for row in client.query(db, SQL, [rows]):
                    n += 1
                    total += row[0]
                secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                check(n, total, rows)
                best = max(best, n / secs)
                report("sync", run, n, secs, cpu)
        finally:
            client.delete_database(db, allow_missing=True)
    return best


async def run_async(endpoint: str, rows: int, runs: int) -> float:
    best = 0.0
    async with dbforge.AsyncClient(endpoint) as client:
        db = f"bench-pya-{os.getpid()}"
        await client.create_database(db, if_not_exists=True)
        try:
            for run in range(runs):
                t0, cpu0 = time.perf_counter(), time.process_time()
                n = total = 0
                async for row in await client.query(db, SQL, [rows]):
                    n += 1
                    total += row[0]
                secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                check(n, total, rows)
                best = max(best, n / secs)
                report("async", run, n, secs, cpu)
        finally:
            await client.delete_database(db, allow_missing=True)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default=os.environ.get("DBFORGE_ENDPOINT"))
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--async", dest="use_async", action="store_true")
    args = p.parse_args()
    server: Optional[object] = None
    endpoint = args.endpoint
    if not endpoint:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
        from dbforge_server import DBForgeServer

        server = DBForgeServer()
        endpoint = server.endpoint
    try:
        if args.use_async:
            best = asyncio.run(run_async(endpoint, args.rows, args.runs))
        else:
            best = run_sync(endpoint, args.rows, args.runs)
        mode = "async" if args.use_async else "sync"
        print(f"python ({mode}): best {best:,.0f} rows/s over {args.runs} runs of {args.rows:,} rows")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
