"""Moderation: prompts screened at create, provider verdicts kept, decisions listed.

The prompt stage runs before anything is written or charged: a refused prompt is 422
``content_policy_violation`` naming the category, and the decision is recorded for the
workspace's admins (``GET /api/image/moderation``). The rules come from the
configuration file's ``[moderation]`` table (docs/moderation.md); the matching is
domain.moderation's. Provider refusals are recorded by the engine when a job fails
with ``content_policy_violation`` (engine.runner), into the same table."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.db import moderation_repo
from imagegate.domain import moderation
from imagegate.domain.ids import new_id
from imagegate.domain.records import ModerationRecord, Principal
from imagegate.errors import ContentPolicyViolation, Forbidden, InvalidRequest
from imagegate.runtime import Runtime
from imagegate.services.pagination import decode_cursor, encode_cursor

PREFIX = "mod"
EXCERPT_CHARS = 500
STAGES = ("prompt", "provider", "output")


async def screen_prompt(
    rt: Runtime, principal: Principal, prompt: str, *, user: str | None = None
) -> None:
    """Refuse ``prompt`` (ContentPolicyViolation) if the workspace's rules catch it,
    after recording the decision. Only the prompt is screened: a negative prompt
    (``--no nudity``) names what the picture must not show."""
    rules = rt.providers.config.moderation.rules_for(principal.workspace_name)
    if rules is None:
        return
    verdict = moderation.screen(rules, prompt)
    if verdict is None:
        return
    private = rt.providers.config.private_prompts(principal.workspace_name)
    decision = ModerationRecord(
        id=new_id(PREFIX), workspace_id=principal.workspace_id,
        stage="prompt", category=verdict.category, reason=verdict.term[:EXCERPT_CHARS],
        job_id=None, key_id=principal.key_id, end_user=user,
        excerpt=None if private else prompt[:EXCERPT_CHARS], created_at=rt.clock.now(),
    )  # fmt: skip
    async with rt.db.begin() as conn:
        await moderation_repo.insert_decision(conn, decision)
    raise ContentPolicyViolation(
        f"the prompt was refused by this workspace's content policy (category: "
        f"{verdict.category}); nothing was created or charged",
        field="prompt",
        category=verdict.category,
    )


@dataclass(frozen=True)
class Page:
    decisions: list[ModerationRecord]
    next_cursor: str | None


async def list_decisions(
    rt: Runtime,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    stage: str | None = None,
    category: str | None = None,
) -> Page:
    """The workspace's decisions, newest first; admins only (they hold prompts)."""
    if not principal.is_admin:
        raise Forbidden("moderation decisions are shown to admin keys only")
    if stage is not None and stage not in STAGES:
        raise InvalidRequest(f"stage must be one of {', '.join(STAGES)}", field="stage")
    if category is not None and category not in moderation.CATEGORIES:
        raise InvalidRequest(
            f"category must be one of {', '.join(moderation.CATEGORIES)}", field="category"
        )
    before = decode_cursor(cursor, PREFIX) if cursor else None
    async with rt.db.connect() as conn:
        found = await moderation_repo.list_decisions(
            conn, principal.workspace_id, before_id=before, limit=limit + 1,
            stage=stage, category=category,
        )  # fmt: skip
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor(page[-1].id) if more and page else None)
