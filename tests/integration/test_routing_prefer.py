"""``[routing.prefer]`` and ``min_compliance`` in the router, on a real SQLite database:
which provider an ``auto`` job's attempt goes to, and the reason it gives, with the
circuit breakers and the fallback chain in play (tests/e2e/test_routing_prefer.py runs
the same through a server and two emulators)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.db import jobs_repo, providers_repo
from imagegate.db.migrate import upgrade
from imagegate.domain.ids import new_id
from imagegate.domain.params import Mode
from imagegate.domain.records import JobRecord
from imagegate.engine import routing
from imagegate.providers.base import (
    Action,
    Capabilities,
    Correlation,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from imagegate.providers.config import ConfigFile
from imagegate.providers.registry import ProviderEntry, ProviderRegistry
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from imagegate.services.submission import JobSpec, resolve
from imagegate.settings import Settings


class Able:
    """A provider that can imagine and upscale; the router never calls it here."""

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=("m",), max_images=4, modes=(Mode.DRAFT, Mode.STANDARD), styles=(),
            actions=(Action.IMAGINE, Action.UPSCALE),
        )  # fmt: skip

    def estimate_credits(self, request: GenerationRequest) -> int:
        return 1

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        raise AssertionError("not called")


CONFIG: dict[str, Any] = {
    "routing": {
        "prefer": {
            "styles": {"anime": ["b"], "photographic": "cheapest"},
            "actions": {"upscale": "cheapest"},
        },
        "workspaces": {"strict": {"min_compliance": 3}},
    },
    "providers": {
        # a comes first by priority and costs the most; b is a low-compliance wrapper.
        "a": {"type": "openai", "priority": 10, "prices": {"m": {"draft": 0.04, "upscale": 0.05}},
              "facts": {"compliance_comfort": 4}},
        "b": {"type": "openai", "prices": {"m": {"draft": 0.02, "upscale": 0.01}},
              "facts": {"compliance_comfort": {"score": 1, "note": "unofficial wrapper"}}},
        "c": {"type": "openai", "prices": {"m": {"draft": 0.01}}},
    },
}  # fmt: skip


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=tmp_path)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    config = ConfigFile.model_validate(CONFIG)
    runtime.providers = ProviderRegistry(
        [
            ProviderEntry(name, "openai", Able(), table, order)
            for order, (name, table) in enumerate(config.providers.items())
        ],
        config,
    )
    try:
        yield runtime
    finally:
        await runtime.close()


async def _job(rt: Runtime, style: str, action: str = "imagine", **params: Any) -> JobRecord:
    key = await create_key(rt, "w", "k")
    resolved = resolve(JobSpec(prompt="x", variations=1, mode="draft", style=style))
    values = {**resolved.params, "model": "auto", "requested_model": "auto", **params}
    if action != "imagine":
        values["action"] = action
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        return await jobs_repo.insert_job(
            conn,
            {
                "id": new_id("job"), "workspace_id": key.workspace_id,
                "api_key_id": key.key_id, "end_user": None, "status": "queued",
                "action": action, "prompt": "x", "negative_prompt": None, "params": values,
                "provider": "a", "model": "m", "estimated_credits": 1, "metadata": {},
                "created_at": now, "updated_at": now,
            },
        )  # fmt: skip


async def _route(rt: Runtime, job: JobRecord) -> routing.Route:
    route = await routing.choose(rt, job, holder=f"{job.id}:1")
    assert isinstance(route, routing.Route), route
    return route


async def test_without_a_preference_the_policy_decides(rt: Runtime) -> None:
    route = await _route(rt, await _job(rt, "cinematic"))
    assert (route.provider, route.reason) == ("a", "highest priority capable")


async def test_the_preferred_provider_takes_the_style(rt: Runtime) -> None:
    route = await _route(rt, await _job(rt, "anime"))
    assert (route.provider, route.reason) == ("b", "style anime prefers b")


async def test_a_style_can_name_a_policy(rt: Runtime) -> None:
    route = await _route(rt, await _job(rt, "photographic"))
    assert (route.provider, route.reason) == ("c", "cheapest capable for style photographic")


async def test_upscales_go_to_the_cheapest_capable_one(rt: Runtime) -> None:
    source = {"key": "k", "width": 64, "height": 64, "content_type": "image/png"}
    job = await _job(rt, "anime", "upscale", source=source, upscale_factor=2)
    route = await _route(rt, job)
    # b's upscale price, not its draft one; the action wins over the anime style.
    assert (route.provider, route.reason) == ("b", "cheapest capable for upscale")


async def test_an_open_circuit_sends_the_style_to_the_fallback(rt: Runtime) -> None:
    async with rt.db.begin() as conn:
        assert await providers_repo.trip(conn, "b", rt.clock.now())
    route = await _route(rt, await _job(rt, "anime"))
    assert (route.provider, route.reason) == ("a", "fallback: b open (style anime prefers b)")


async def test_a_provider_that_failed_the_job_is_passed_over(rt: Runtime) -> None:
    job = await _job(rt, "anime")
    async with rt.db.begin() as conn:
        await providers_repo.add_call(
            conn,
            {
                "provider": "b", "model": "m", "job_id": job.id, "workspace_id": None,
                "attempt": 1, "started_at": rt.clock.now(), "duration_ms": 5,
                "outcome": providers_repo.FAILED, "error_code": "provider_unavailable",
                "error_message": None, "images": 0, "cost_usd": 0.0,
            },
        )  # fmt: skip
    # The job's second attempt: the first one's call failed on b.
    route = await _route(rt, dataclasses.replace(job, attempts=1))
    assert (route.provider, route.reason) == ("a", "fallback: b failed (style anime prefers b)")


async def test_a_compliance_floor_keeps_low_and_unrated_providers_out(rt: Runtime) -> None:
    job = await _job(rt, "anime", min_compliance=3)
    assert [e.name for e, _ in routing.candidates_for(rt, job.params)] == ["a"]
    route = await _route(rt, job)
    assert (route.provider, route.reason) == (
        "a",
        "style anime prefers b, none capable; highest priority capable",
    )
    assert rt.providers.config.min_compliance_for("strict") == 3
    assert rt.providers.config.min_compliance_for("w") is None


async def test_a_named_provider_says_it_was_asked_for(rt: Runtime) -> None:
    job = await _job(rt, "anime", requested_model="c", model="c:m")
    route = await _route(rt, job)
    assert (route.provider, route.reason) == ("c", "requested c")
