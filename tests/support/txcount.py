"""``imagegate`` that counts its database round trips, for tests and bench/transactions.py.

Run as a script in place of the ``imagegate`` command (``ServerProcess(program=...)``).
SQLAlchemy event listeners on the ``Engine`` and ``Pool`` classes see every engine in
the process: imagegate's own (async, over aiosqlite or psycopg) and the engine DBOS
builds for its system database (sync), so both are counted. Each transaction is filed
under the stage of the job it serves, read from its SQL (see :func:`stage_of`).

``SIGUSR1`` writes the totals so far, as JSON, to ``$IMAGEGATE_TXCOUNT_FILE``: a test
deletes the file, sends the signal and waits for the file to appear."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

if TYPE_CHECKING:
    from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
# Stages that depend on time (polls, heartbeats, sweeps) or on clients' reads, not on
# the jobs themselves: shown apart, never counted per job.
TIME_DRIVEN = frozenset({"queue poll", "background", "webhook delivery", "event feed"})

_lock = threading.Lock()
# Per DBAPI connection: (database, statements so far) of its open transaction.
_open: dict[int, tuple[str, list[str]]] = {}
# (database, stage) -> [transactions, statements]
_totals: dict[tuple[str, str], list[int]] = {}
_signatures: Counter[tuple[str, str]] = Counter()
_pings: Counter[str] = Counter()

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(?:\"?\w+\"?\.)?\"?(\w+)\"?", re.I)
# Set: every transaction's statements are appended there too (to read what one costs).
_LOG = os.environ.get("IMAGEGATE_TXCOUNT_LOG")


def _database(conn: Connection) -> str:
    # imagegate's engines are async (aiosqlite, psycopg async); DBOS's is sync.
    return "imagegate" if conn.dialect.is_async else "dbos"


def _key(conn: Connection) -> int:
    return id(conn.connection.dbapi_connection)


def _shape(statement: str) -> str:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
    tables = sorted(set(_TABLE.findall(statement)))
    return f"{verb} {','.join(tables)}"


def stage_of(database: str, shapes: list[str], statements: list[str]) -> str:
    """The job stage a transaction belongs to, from the (verb, table) pairs it has."""
    pairs = {(shape.split(" ", 1)[0], table) for shape in shapes
             for table in shape.split(" ", 1)[-1].split(",")}  # fmt: skip
    tables = {table for _, table in pairs}
    joined = " ".join(statements)
    if database == "dbos":
        return _engine_stage(pairs, tables, joined)
    for verb, table, stage in _APP_RULES:
        if (verb, table) in pairs or (verb == "*" and table in tables):
            if stage == "start?":
                stage = "start" if "started_at" in joined else "status change"
            return stage
    if "pg_notify" in joined:
        return "enqueue notify"
    return "other: " + " | ".join(shapes)


_APP_RULES = [
    ("INSERT", "jobs", "create"),
    ("INSERT", "images", "complete"),
    ("*", "idempotency_records", "create"),
    ("UPDATE", "jobs", "start?"),
    ("INSERT", "provider_calls", "provider telemetry"),
    ("*", "provider_slots", "routing slots"),
    ("*", "provider_breakers", "routing"),
    ("SELECT", "provider_calls", "routing"),
    ("INSERT", "job_events", "events"),
    ("*", "webhook_deliveries", "webhook delivery"),
    ("*", "workers", "background"),
    ("*", "leases", "background"),
    ("SELECT", "jobs", "job reads"),
    ("*", "job_events", "event feed"),
    ("*", "api_keys", "auth"),
]


def _engine_stage(pairs: set[tuple[str, str]], tables: set[str], joined: str) -> str:
    if ("INSERT", "workflow_status") in pairs:
        return "enqueue"
    if ("INSERT", "operation_outputs") in pairs:
        return "step record"
    if ("SELECT", "operation_outputs") in pairs:
        return "step check"
    if "workflow_output" in tables:
        return "workflow end"
    if ("UPDATE", "workflow_status") in pairs:
        # A poll's claim of queued runs; else a run's end; else a sweep (delays, timeouts).
        if "queue_partition_key" in joined or "count(*)" in joined:
            return "dispatch"
        return "workflow end" if "workflow_uuid = " in joined else "background"
    if "queues" in tables or "partitions" in tables:
        return "queue poll"
    if ("SELECT", "workflow_status") in pairs and "workflow_uuid IN" in joined:
        return "dispatch"  # the claimed runs' statuses, read to start them
    return "background"


def _start(conn: Connection) -> None:
    with _lock:
        _open[_key(conn)] = (_database(conn), [])


def _statement(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    with _lock:
        entry = _open.setdefault(_key(conn), (_database(conn), []))
        entry[1].append(statement)


def _end_key(key: int) -> None:
    with _lock:
        entry = _open.pop(key, None)
        if entry is None or not entry[1]:
            return
        database, statements = entry
        shapes = [_shape(s) for s in statements]
        stage = stage_of(database, shapes, statements)
        total = _totals.setdefault((database, stage), [0, 0])
        total[0] += 1
        total[1] += len(statements)
        _signatures[(database, " | ".join(shapes))] += 1
        if _LOG:
            with open(_LOG, "a") as log:
                log.write(f"--- {database} [{stage}]\n" + "\n".join(statements) + "\n")


def _end(conn: Connection) -> None:
    _end_key(_key(conn))


def _checkin(dbapi_connection: Any, _record: Any) -> None:
    # A connection given back without a commit (reads): its statements were a
    # transaction too, ended by the pool's rollback.
    _end_key(id(dbapi_connection))


def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
    pool = getattr(record, "_ConnectionRecord__pool", None)
    if pool is not None and getattr(pool, "_pre_ping", False):
        with _lock:
            _pings[str(pool._dialect.name)] += 1


def snapshot() -> dict[str, Any]:
    """The totals so far, as JSON-ready data."""
    with _lock:
        return {
            "stages": [
                {"database": db, "stage": st, "transactions": t, "statements": s}
                for (db, st), (t, s) in sorted(_totals.items())
            ],
            "signatures": [
                {"database": db, "shape": shape, "count": n}
                for (db, shape), n in _signatures.most_common(60)
            ],
            "pre_pings": dict(_pings),
        }


def _dump(*_args: Any) -> None:
    path = Path(os.environ["IMAGEGATE_TXCOUNT_FILE"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot()))
    tmp.replace(path)


def install() -> None:
    event.listen(Engine, "begin", _start)
    event.listen(Engine, "before_cursor_execute", _statement)
    event.listen(Engine, "commit", _end)
    event.listen(Engine, "rollback", _end)
    event.listen(Pool, "checkin", _checkin)
    event.listen(Pool, "checkout", _checkout)
    signal.signal(signal.SIGUSR1, _dump)


# The side of the test or bench that drives a counted server.


def counted_env(data_dir: Path, **env: str) -> dict[str, str]:
    """What a counted server needs besides ``program``: its counts file, our code."""
    return {
        "IMAGEGATE_TXCOUNT_FILE": str(data_dir / "txcount.json"),
        # The caller's PYTHONPATH first (bench/transactions.py can count another
        # checkout's code), then this one's.
        "PYTHONPATH": os.pathsep.join(
            [p for p in (os.environ.get("PYTHONPATH"), str(ROOT / "src"), str(ROOT)) if p]
        ),
        **env,
    }


PROGRAM = [sys.executable, str(Path(__file__).resolve())]


def counts(server: ServerProcess) -> dict[str, Any]:
    """The counted server's totals so far."""
    from tests.support.server import wait_until

    path = Path(server.env["IMAGEGATE_TXCOUNT_FILE"])
    path.unlink(missing_ok=True)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGUSR1)
    wait_until(path.exists, 10, what="the transaction counts")
    return dict(json.loads(path.read_text()))


def per_stage(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[tuple[str, str], list[int]]:
    """(database, stage) -> [transactions, statements] between two snapshots."""
    table: dict[tuple[str, str], list[int]] = {}
    for sign, snap in ((-1, before), (1, after)):
        for row in snap["stages"]:
            cell = table.setdefault((row["database"], row["stage"]), [0, 0])
            cell[0] += sign * row["transactions"]
            cell[1] += sign * row["statements"]
    return {k: v for k, v in table.items() if v != [0, 0]}


def job_status(server: ServerProcess, job_id: str) -> str:
    """Read from the database by a connection of the caller's process, so that waiting
    for a job costs the counted server nothing (an HTTP poll would be counted)."""
    url = server.env.get("IMAGEGATE_DATABASE_URL")
    query = "SELECT status FROM jobs WHERE id = %s"
    if url:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute(query, (job_id,)).fetchone()
    else:
        with sqlite3.connect(server.data_dir / "imagegate.db") as conn:
            row = conn.execute(query.replace("%s", "?"), (job_id,)).fetchone()
    return str(row[0]) if row else "missing"


if __name__ == "__main__":
    install()
    from imagegate.cli.main import app

    app(prog_name="imagegate")
