"""Webhook endpoints, secrets, deliveries and their attempts, in SQLAlchemy Core.

``add_deliveries`` is the outbox: it runs in the transaction that writes a job event,
so an event and its deliveries commit together or not at all, and a unique key per
(event, receiver) keeps it to one delivery each. Workers start a workflow for each
undispatched row; the workflow's id is the delivery's id, so starting it twice is
harmless. Every update of a delivery is guarded (still pending, attempt not yet
recorded), so a replayed step changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, cast, delete, func, insert, null, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret
from imagegate.domain.ids import new_id
from imagegate.domain.webhooks import (
    EVENT_TYPES,
    JOB_URL_EVENT_TYPES,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointRecord,
)

endpoints: Table = WebhookEndpoint.__table__  # type: ignore[assignment]
default_secrets: Table = WebhookSecret.__table__  # type: ignore[assignment]
deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
attempts: Table = WebhookAttempt.__table__  # type: ignore[assignment]
jobs: Table = Job.__table__  # type: ignore[assignment]

PENDING = DeliveryStatus.PENDING.value

# Called, in the writing process, whenever deliveries are added (before the caller's
# transaction commits): the dispatcher (engine.webhook_engine) subscribes to look
# soon instead of at its idle pace. A wake that comes before the commit finds
# nothing and the dispatcher looks again at its busy pace.
new_delivery_listeners: list[Callable[[], None]] = []


def _added() -> None:
    for listener in new_delivery_listeners:
        listener()


def encode_types(types: Iterable[str]) -> str:
    return "," + ",".join(types) + ","


def _endpoint(row: Mapping[Any, Any]) -> EndpointRecord:
    return EndpointRecord(
        id=row["id"],
        workspace_id=row["workspace_id"],
        url=row["url"],
        event_types=tuple(t for t in row["event_types"].split(",") if t),
        description=row["description"],
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        sealed_secret=row["secret"],
        sealed_previous_secret=row["previous_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _attempt(row: Mapping[Any, Any]) -> AttemptRecord:
    return AttemptRecord(
        **{k: row[k] for k in ("attempt", "at", "url", "status_code", "latency_ms", "error")},
        response_snippet=row["response_snippet"],
    )


def _delivery(row: Mapping[Any, Any], log: Sequence[AttemptRecord] = ()) -> DeliveryRecord:
    names = ("id", "workspace_id", "job_id", "event_id", "event_type", "event_at", "endpoint_id",
             "url", "webhook_id", "redelivery_of", "attempts", "next_attempt_at", "created_at",
             "finished_at")  # fmt: skip
    return DeliveryRecord(
        **{k: row[k] for k in names}, status=DeliveryStatus(row["status"]), attempt_log=tuple(log)
    )


# Endpoints


async def insert_endpoint(conn: AsyncConnection, values: dict[str, Any]) -> EndpointRecord:
    row = {"disabled_reason": None, "previous_secret": None,
           "previous_secret_expires_at": None, **values}  # fmt: skip
    await conn.execute(insert(endpoints), row)
    return _endpoint(row)


async def get_endpoint(
    conn: AsyncConnection, endpoint_id: str, workspace_id: str | None = None
) -> EndpointRecord | None:
    query = select(endpoints).where(endpoints.c.id == endpoint_id)
    if workspace_id is not None:
        query = query.where(endpoints.c.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    return _endpoint(row) if row is not None else None


async def list_endpoints(conn: AsyncConnection, workspace_id: str) -> list[EndpointRecord]:
    query = select(endpoints).where(endpoints.c.workspace_id == workspace_id)
    rows = await conn.execute(query.order_by(endpoints.c.id))
    return [_endpoint(r) for r in rows.mappings()]


async def count_endpoints(conn: AsyncConnection, workspace_id: str) -> int:
    query = select(func.count()).where(endpoints.c.workspace_id == workspace_id)
    return int(await conn.scalar(query) or 0)


async def update_endpoint(
    conn: AsyncConnection, workspace_id: str, endpoint_id: str, values: dict[str, Any]
) -> EndpointRecord | None:
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.workspace_id == workspace_id)
        .values(**values)
    )
    return await get_endpoint(conn, endpoint_id, workspace_id)


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime
) -> None:
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason[:300], updated_at=now)
    )


async def delete_endpoint(conn: AsyncConnection, workspace_id: str, endpoint_id: str) -> bool:
    """Remove the endpoint with its deliveries and their attempts."""
    owned = (endpoints.c.id == endpoint_id) & (endpoints.c.workspace_id == workspace_id)
    if await conn.scalar(select(func.count()).where(owned)) == 0:
        return False
    theirs = select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id)
    await conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(theirs)))
    await conn.execute(delete(deliveries).where(deliveries.c.endpoint_id == endpoint_id))
    await conn.execute(delete(endpoints).where(owned))
    return True


# The workspace's default secret


async def get_default_secret(conn: AsyncConnection, workspace_id: str) -> str | None:
    query = select(default_secrets.c.secret).where(default_secrets.c.workspace_id == workspace_id)
    value = await conn.scalar(query)
    return str(value) if value is not None else None


async def insert_default_secret(
    conn: AsyncConnection, workspace_id: str, sealed: str, now: datetime
) -> None:
    await conn.execute(
        insert(default_secrets), {"workspace_id": workspace_id, "secret": sealed, "created_at": now}
    )


# Deliveries: the outbox, dispatch, attempts


def _new_delivery(*, now: datetime, **values: Any) -> dict[str, Any]:
    return {
        "id": new_id("dlv"), **values, "status": PENDING, "attempts": 0,
        "next_attempt_at": now, "dispatched": False, "created_at": now, "updated_at": now,
        "finished_at": None,
    }  # fmt: skip


async def add_deliveries(
    conn: AsyncConnection,
    *,
    event_id: int,
    job_id: str,
    workspace_id: str,
    event_type: str,
    event_at: datetime,
) -> int:
    """One pending delivery per receiver of the event: every enabled endpoint of the
    workspace that wants its type, and the job's own URL. Returns how many."""
    if event_type not in EVENT_TYPES:
        return 0
    query = select(endpoints.c.id.label("endpoint_id"), endpoints.c.url).where(
        endpoints.c.workspace_id == workspace_id,
        endpoints.c.enabled.is_(True),
        endpoints.c.event_types.like(f"%,{event_type},%"),
    )
    if event_type in JOB_URL_EVENT_TYPES:
        job_url = select(
            cast(null(), String(40)).label("endpoint_id"), jobs.c.webhook_url.label("url")
        ).where(jobs.c.id == job_id, jobs.c.webhook_url.is_not(None))
        query = union_all(query, job_url)  # type: ignore[assignment]
    targets = (await conn.execute(query)).all()
    if not targets:
        return 0
    common = {"workspace_id": workspace_id, "job_id": job_id, "event_id": event_id,
              "event_type": event_type, "event_at": event_at, "redelivery_of": None}  # fmt: skip
    rows = [
        _new_delivery(
            now=event_at,
            endpoint_id=endpoint_id,
            url=url,
            webhook_id=new_id("msg"),
            fanout_key=f"{event_id}:{endpoint_id or 'job'}",
            **common,
        )
        for endpoint_id, url in targets
    ]
    await conn.execute(insert(deliveries), rows)
    _added()
    return len(rows)


async def insert_redelivery(
    conn: AsyncConnection, original: DeliveryRecord, url: str, now: datetime
) -> DeliveryRecord:
    """A new delivery of the same event to the same receiver, with the same
    ``webhook-id`` (receivers that have it already drop it as a duplicate)."""
    row = _new_delivery(
        workspace_id=original.workspace_id, job_id=original.job_id, event_id=original.event_id,
        event_type=original.event_type, event_at=original.event_at,
        endpoint_id=original.endpoint_id, url=url, webhook_id=original.webhook_id,
        fanout_key=None, redelivery_of=original.id, now=now,
    )  # fmt: skip
    await conn.execute(insert(deliveries), row)
    _added()
    return _delivery(row)


async def undispatched(conn: AsyncConnection, limit: int) -> list[tuple[str, str]]:
    """(delivery id, workspace id) of deliveries whose workflow has not been started."""
    query = select(deliveries.c.id, deliveries.c.workspace_id).where(
        deliveries.c.dispatched.is_(False)
    )
    rows = await conn.execute(query.order_by(deliveries.c.id).limit(limit))
    return [(r[0], r[1]) for r in rows]


async def mark_dispatched(conn: AsyncConnection, delivery_ids: Sequence[str]) -> None:
    await conn.execute(
        update(deliveries).where(deliveries.c.id.in_(delivery_ids)).values(dispatched=True)
    )


async def get_delivery(
    conn: AsyncConnection,
    delivery_id: str,
    workspace_id: str | None = None,
    *,
    with_attempts: bool = True,
) -> DeliveryRecord | None:
    query = select(deliveries).where(deliveries.c.id == delivery_id)
    if workspace_id is not None:
        query = query.where(deliveries.c.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    log = (await _attempts_of(conn, [delivery_id])).get(delivery_id, []) if with_attempts else []
    return _delivery(row, log)


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: str,
    workspace_id: str,
    attempt: AttemptRecord,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
) -> bool:
    """Log attempt number ``attempt.attempt`` and move the delivery on; ``False`` (and
    nothing written) if the delivery is no longer pending or the attempt is logged."""
    moved = await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.status == PENDING,
            deliveries.c.attempts < attempt.attempt,
        )
        .values(
            status=status.value,
            attempts=attempt.attempt,
            next_attempt_at=next_attempt_at,
            url=attempt.url,
            updated_at=attempt.at,
            finished_at=attempt.at if status.is_final() else None,
        )
    )
    if not moved.rowcount:
        return False
    await conn.execute(
        insert(attempts),
        {**attempt.__dict__, "delivery_id": delivery_id, "workspace_id": workspace_id},
    )
    return True


async def finish(
    conn: AsyncConnection, delivery_id: str, status: DeliveryStatus, now: datetime
) -> None:
    """End a pending delivery without another attempt (its endpoint went away)."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
        .values(status=status.value, next_attempt_at=None, updated_at=now, finished_at=now)
    )


async def list_deliveries(
    conn: AsyncConnection,
    workspace_id: str,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
    before_id: str | None = None,
    limit: int,
) -> list[DeliveryRecord]:
    """Newest first, with their attempts."""
    query = select(deliveries).where(deliveries.c.workspace_id == workspace_id)
    if job_id is not None:
        query = query.where(deliveries.c.job_id == job_id)
    if endpoint_id is not None:
        query = query.where(deliveries.c.endpoint_id == endpoint_id)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    rows = (await conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit))).mappings()
    found = list(rows)
    logs = await _attempts_of(conn, [r["id"] for r in found])
    return [_delivery(r, logs.get(r["id"], [])) for r in found]


async def _attempts_of(
    conn: AsyncConnection, delivery_ids: list[str]
) -> dict[str, list[AttemptRecord]]:
    if not delivery_ids:
        return {}
    rows = await conn.execute(
        select(attempts)
        .where(attempts.c.delivery_id.in_(delivery_ids))
        .order_by(attempts.c.delivery_id, attempts.c.attempt)
    )
    by_delivery: dict[str, list[AttemptRecord]] = {}
    for row in rows.mappings():
        by_delivery.setdefault(row["delivery_id"], []).append(_attempt(row))
    return by_delivery
