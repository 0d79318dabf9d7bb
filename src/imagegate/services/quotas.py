"""Plans and quotas: a workspace's plan decides which jobs it may make and how many
images and credits it, and each of its end users, may spend per day and per month
(docs/plans.md).

The plan is the one the operator assigned (``PUT /api/image/workspaces/{name}/plan``),
else the configuration file's ``[workspaces.<name>] plan``, else ``default_plan``;
none means no limits. What a job may be is checked before anything is written (403
``not_in_plan``); what it spends is counted in the transaction that creates it, with a
guarded update per limit (db.quotas_repo), so a refused create (429
``quota_exceeded``, with the limit, what is used, when it resets, ``Retry-After`` and
the RateLimit headers) leaves nothing behind and two creates never both take the last
unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import accounts_repo, quotas_repo
from imagegate.domain import plans
from imagegate.domain.plans import Limit, Plan
from imagegate.domain.rates import Allowance
from imagegate.domain.records import Principal
from imagegate.errors import Forbidden, InvalidRequest, NotFound, NotInPlan, QuotaExceeded
from imagegate.runtime import Runtime
from imagegate.services import audit
from imagegate.services.audit import Actor

MAX_USER_ID = 200


def plan_for(rt: Runtime, principal: Principal) -> Plan | None:
    config = rt.providers.config
    return config.plan_named(principal.plan or config.configured_plan(principal.workspace_name))


def check_job(
    rt: Runtime, principal: Principal, *, mode: str, action: str, variations: int
) -> dict[str, bool]:
    """Refuse (NotInPlan) a job its plan does not allow; the params the plan freezes
    into the job (``watermark``)."""
    plan = plan_for(rt, principal)
    if plan is None:
        return {}
    refused = plan.refusal(mode, action, variations)
    if refused is not None:
        field, why = refused
        raise NotInPlan(why, field=field, plan=plan.name)
    return {"watermark": True} if plan.watermark else {}


def _subject(limit: Limit, user: str | None) -> str | None:
    if limit.scope == "workspace":
        return "workspace"
    return f"user:{user[:MAX_USER_ID]}" if user else None


async def spend(
    conn: AsyncConnection,
    rt: Runtime,
    principal: Principal,
    *,
    user: str | None,
    images: int,
    credits: int,
) -> None:
    """Count the job against every limit of the plan, in the creating transaction;
    QuotaExceeded (which rolls it back) at the first that it would pass."""
    plan = plan_for(rt, principal)
    if plan is None:
        return
    now = rt.clock.now()
    for limit in plan.limits:
        subject = _subject(limit, user)
        if subject is None:  # a per-user limit, and the job names no user
            continue
        amount = images if limit.unit == "images" else credits
        period = plans.period_key(now, limit.period)
        total = await quotas_repo.spend(
            conn, principal.workspace_id, subject, period, limit.unit, amount, limit.amount, now
        )
        if total is None:
            used = await quotas_repo.used(conn, principal.workspace_id, subject, period, limit.unit)
            raise _exceeded(plan, limit, used, amount, now, user)


def _exceeded(
    plan: Plan, limit: Limit, used: int, wanted: int, now: datetime, user: str | None
) -> QuotaExceeded:
    resets = plans.resets_at(now, limit.period)
    wait = max(1, int((resets - now).total_seconds()) + 1)
    window = 86_400 if limit.period == "day" else 31 * 86_400
    allowance = Allowance(limit=limit.amount, window_s=window,
                          remaining=max(0, limit.amount - used), reset_s=wait,
                          retry_after_s=wait)  # fmt: skip
    who = f"end user {user!r}" if limit.scope == "user" else "the workspace"
    return QuotaExceeded(
        f"the {plan.name} plan allows {limit.amount} {limit.unit} a {limit.period} for {who}; "
        f"{used} used, this job needs {wanted}; it resets at {resets:%Y-%m-%dT%H:%MZ}",
        allowance, quota=limit.name, limit=limit.amount, used=used,
        resets_at=resets.isoformat().replace("+00:00", "Z"), plan=plan.name,
    )  # fmt: skip


@dataclass(frozen=True)
class Standing:
    limit: Limit
    used: int
    resets_at: datetime


async def standing(
    rt: Runtime, principal: Principal, user: str | None = None
) -> tuple[Plan | None, list[Standing]]:
    """The plan and where the workspace (and ``user``) stands against each limit."""
    plan = plan_for(rt, principal)
    if plan is None:
        return None, []
    now = rt.clock.now()
    found: list[Standing] = []
    async with rt.db.connect() as conn:
        for limit in plan.limits:
            subject = _subject(limit, user)
            if subject is None:
                continue
            period = plans.period_key(now, limit.period)
            used = await quotas_repo.used(conn, principal.workspace_id, subject, period, limit.unit)
            found.append(Standing(limit, used, plans.resets_at(now, limit.period)))
    return plan, found


async def assign(
    rt: Runtime, principal: Principal, actor: Actor, workspace: str, plan: str | None
) -> None:
    """The operator puts a workspace on ``plan`` (None: back to the configuration's).
    Keys already cached by a server see it within IMAGEGATE_KEY_CACHE_TTL_S."""
    if not principal.is_operator:
        raise Forbidden("assigning plans needs the operator key")
    if plan is not None and plan not in rt.providers.config.plans:
        known = ", ".join(sorted(rt.providers.config.plans)) or "none configured"
        raise InvalidRequest(f"no plan named {plan!r} (plans: {known})", field="plan")
    async with rt.sessions.begin() as session:
        workspace_id = await accounts_repo.set_plan(session, workspace, plan)
        if workspace_id is None:
            raise NotFound(f"no workspace named {workspace!r}")
        await audit.record(session, rt, workspace_id, actor, "plan.changed", None, plan=plan)
