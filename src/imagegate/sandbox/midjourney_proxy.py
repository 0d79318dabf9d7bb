"""Emulator of a midjourney-proxy upstream (novicezk/midjourney-proxy and the forks that
keep its protocol): ``POST /mj/submit/imagine`` and ``POST /mj/submit/action``
answer ``{code, description, result: <task id>, properties}``; ``GET
/mj/task/{id}/fetch`` reports the Task (``NOT_START`` → ``SUBMITTED`` →
``IN_PROGRESS`` with ``progress`` "NN%" → ``SUCCESS`` or ``FAILURE``), and
``POST /mj/task/list-by-condition`` several. ``imageUrl`` serves what Midjourney
would: a 2x2 grid of four pictures for an imagine, a variation, a zoom or a pan, one
picture for an upscale (``U1``..``U4`` crop the parent's grid; the ``2x`` buttons
double it). Buttons carry the customIds the real service hands out
(``MJ::JOB::upsample::2::<hash>``, ``MJ::Outpaint::50::1::<hash>::SOLO`` …); an action
must name one of its parent's.

The pictures are drawn small (a quadrant of about 512x512 at the prompt's ``--ar``),
deterministically from the prompt and ``--seed``. The secret is ``mj-sandbox`` unless
``IMAGEGATE_SANDBOX_MJ_SECRET`` names another; a wrong ``mj-api-secret`` is HTTP 401
with an empty body, as upstream.

Faults (sandbox/base.py): ``sandbox:banned`` or ``sandbox:moderate`` in the prompt, or
the global ``moderation`` fault, is return code 24 (banned prompt); ``sandbox:queuefull``
or an injected 429 is code 23 (queue full; the protocol answers HTTP 200 for both);
``sandbox:fail`` ends the task in ``FAILURE``, ``sandbox:modal`` leaves it in the fork's
``MODAL`` (waiting for a remix confirmation); other statuses, ``sandbox:timeout``,
``sandbox:malformed``, latency and ``job_duration_ms`` (how long a task runs) as in the
other emulators. ``/_sandbox/stats`` counts ``submissions`` (tasks accepted),
``imagine``, ``action`` and ``polls``."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from imagegate.imaging import encode
from imagegate.render import render_image
from imagegate.sandbox.base import (
    Decision,
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
)

API_SECRET = "mj-sandbox"  # noqa: S105 (the emulator's documented secret)
SECRET_ENV = "IMAGEGATE_SANDBOX_MJ_SECRET"  # noqa: S105 (a variable's name)
QUADRANT_PIXELS = 512 * 512
_FLAG = re.compile(r"--(\w+)(?:\s+([^\s-][^\s]*))?")
_GRID, _SINGLE = "grid", "single"
_ACTIONS = {"Outpaint": "ZOOM", "reroll": "REROLL"}


@dataclass
class _Task:
    id: str
    action: str
    prompt: str
    size: tuple[int, int]  # one picture (a quadrant of the grid)
    seed: int
    kind: str
    ending: str
    submitted: float
    duration: float
    fail_reason: str | None = None
    parent: _Task | None = None
    index: int = 0  # of the parent's quadrant an upscale shows
    scale: int = 1
    state: str | None = None
    hash: str = field(default_factory=lambda: str(uuid.uuid4()))
    image: bytes | None = None


def flags(prompt: str) -> dict[str, str]:
    """The ``--name value`` flags of a Midjourney prompt (a switch maps to "")."""
    return {name.lower(): value or "" for name, value in _FLAG.findall(prompt)}


def text_of(prompt: str) -> str:
    return prompt.split(" --", 1)[0].strip()


def quadrant_size(prompt: str) -> tuple[int, int]:
    """One picture's size at the prompt's ``--ar`` (1:1 without one)."""
    ratio = flags(prompt).get("ar", "1:1")
    try:
        width, _, height = ratio.partition(":")
        aspect = Fraction(int(width), int(height))
    except (ValueError, ZeroDivisionError):
        aspect = Fraction(1)
    w = round(math.sqrt(QUADRANT_PIXELS * aspect) / 8) * 8
    h = round(math.sqrt(QUADRANT_PIXELS / aspect) / 8) * 8
    return max(8, w), max(8, h)


def _seed(prompt: str) -> int:
    value = flags(prompt).get("seed", "")
    if value.isdigit():
        return int(value) % 2**32
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")


def _buttons(task: _Task) -> list[dict[str, Any]]:
    """What Discord shows under the message: U/V and reroll under a grid; the 2x
    upscalers, vary, zoom and pan under an upscaled picture."""
    h = task.hash
    if task.kind == _GRID:
        specs = [(f"MJ::JOB::upsample::{n}::{h}", f"U{n}", "") for n in range(1, 5)]
        specs.append((f"MJ::JOB::reroll::0::{h}::SOLO", "", "🔄"))
        specs += [(f"MJ::JOB::variation::{n}::{h}", f"V{n}", "") for n in range(1, 5)]
    else:
        specs = [
            (f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)", ""),
            (f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO", "Upscale (Creative)", ""),
            (f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", "🪄"),
            (f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", "🪄"),
            (f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", "🔍"),
            (f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", "🔍"),
        ]
        specs += [
            (f"MJ::JOB::pan_{d}::1::{h}::SOLO", "", arrow)
            for d, arrow in (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))
        ]
    return [
        {"customId": cid, "emoji": emoji, "label": label, "type": 2, "style": 2}
        for cid, label, emoji in specs
    ]


class _Emulator:
    def __init__(self, sandbox: Sandbox, secret: str) -> None:
        self.sandbox, self.secret = sandbox, secret
        self._ids = itertools.count(int(time.time() * 1000) * 1000)

    @property
    def tasks(self) -> dict[str, _Task]:
        return {key: job["task"] for key, job in self.sandbox.jobs.items()}

    def task(self, task_id: str) -> _Task | None:
        job = self.sandbox.jobs.get(task_id)
        return job["task"] if job else None

    def authorized(self, request: Request) -> bool:
        return request.headers.get("mj-api-secret") == self.secret

    async def _faults(self, request: Request, decision: Decision) -> Response | None:
        """The answer an injected fault gives instead of accepting the submission."""
        if decision.timeout:
            return await hang(request, self.sandbox, 504)
        await self.sandbox.delay(decision)
        if decision.status == 429:
            return _answer(23, "队列已满, 请稍后尝试", properties={"numberOfQueues": 1})
        if decision.status is not None:
            return error_response(decision, {"error": f"Injected HTTP {decision.status}"})
        if decision.malformed:
            return malformed_response()
        return None

    async def imagine(self, request: Request) -> Response:
        if not self.authorized(request):
            return Response(status_code=401)
        body = await _json(request)
        prompt = str(body.get("prompt") or "").strip()
        if not prompt:
            return _answer(4, "prompt不能为空")
        decision = self.sandbox.decide(prompt)
        refused = await self._faults(request, decision)
        if refused is not None:
            return refused
        lowered = prompt.lower()
        if decision.moderated or "sandbox:banned" in lowered:
            return _answer(24, "可能包含敏感词", properties={
                "promptEn": prompt, "bannedWord": "sandbox"})  # fmt: skip
        if "sandbox:queuefull" in lowered:
            return _answer(23, "队列已满, 请稍后尝试", properties={"numberOfQueues": 1})
        task = self._task("IMAGINE", prompt, quadrant_size(prompt), _seed(prompt), _GRID,
                          decision, body.get("state"))  # fmt: skip
        self.sandbox.count("imagine")
        return self._accepted(task)

    async def action(self, request: Request) -> Response:
        if not self.authorized(request):
            return Response(status_code=401)
        body = await _json(request)
        parent = self.task(str(body.get("taskId") or ""))
        custom_id = str(body.get("customId") or "")
        if parent is None:
            return _answer(3, "关联任务不存在或已失效")
        if parent.ending != "SUCCESS" or self._status(parent)[0] != "SUCCESS":
            return _answer(4, "关联任务状态错误")
        if custom_id not in {b["customId"] for b in _buttons(parent)}:
            return _answer(4, "customId参数错误")
        decision = self.sandbox.decide(None)
        refused = await self._faults(request, decision)
        if refused is not None:
            return refused
        task = self._child(parent, custom_id, decision, body.get("state"))
        self.sandbox.count("action")
        return self._accepted(task)

    def _child(self, parent: _Task, custom_id: str, decision: Decision, state: Any) -> _Task:
        parts = custom_id.split("::")
        kind = parts[2] if parts[1] == "JOB" else parts[1]
        width, height = parent.size
        if kind == "upsample":
            task = self._task("UPSCALE", parent.prompt, parent.size, parent.seed, _SINGLE,
                              decision, state)  # fmt: skip
            task.index = int(parts[3])
        elif kind.startswith("upsample_"):
            task = self._task("UPSCALE", parent.prompt, (width * 2, height * 2), parent.seed,
                              _SINGLE, decision, state)  # fmt: skip
            task.scale = 2
        else:
            if kind.startswith("pan_"):
                horizontal = kind in ("pan_left", "pan_right")
                width, height = (width * 3 // 2, height) if horizontal else (width, height * 3 // 2)
            action = "PAN" if kind.startswith("pan_") else _ACTIONS.get(kind, "VARIATION")
            task = self._task(action, parent.prompt, (width, height), parent.seed + 1, _GRID,
                              decision, state)  # fmt: skip
        task.parent = parent
        return task

    def _task(
        self, action: str, prompt: str, size: tuple[int, int], seed: int, kind: str,
        decision: Decision, state: Any,
    ) -> _Task:  # fmt: skip
        ending, reason = "SUCCESS", None
        if decision.fail_job:
            ending, reason = "FAILURE", "Midjourney reported an error (injected by the sandbox)"
        elif "sandbox:modal" in prompt.lower():
            ending = "MODAL"  # the fork's remix confirmation, left unanswered
        elif self.sandbox.faults.moderation:
            ending, reason = "FAILURE", "Request cancelled due to output filters"
        task = _Task(
            id=str(next(self._ids)), action=action, prompt=prompt, size=size, seed=seed,
            kind=kind, ending=ending, submitted=time.time(), fail_reason=reason,
            duration=self.sandbox.faults.job_duration_ms / 1000,
            state=state if isinstance(state, str) else None,
        )  # fmt: skip
        # Kept in the sandbox's jobs, so that /_sandbox/reset forgets them too.
        self.sandbox.jobs[task.id] = {"task": task}
        self.sandbox.count("submissions")
        return task

    def _accepted(self, task: _Task) -> Response:
        running = sum(1 for t in self.tasks.values() if self._status(t)[0] == "IN_PROGRESS")
        if running > 1:
            return _answer(22, f"排队中, 前面还有{running - 1}个任务", task.id,
                           {"numberOfQueues": running - 1})  # fmt: skip
        return _answer(1, "提交成功", task.id, {"discordInstanceId": "sandbox"})

    def _status(self, task: _Task) -> tuple[str, int]:
        elapsed = time.time() - task.submitted
        if task.ending == "MODAL":
            return "MODAL", 0
        if task.duration <= 0 or elapsed >= task.duration:
            return task.ending, 100
        fraction = elapsed / task.duration
        if fraction < 0.1:
            return "SUBMITTED", 0
        return "IN_PROGRESS", min(99, int(fraction * 100))

    def view(self, task: _Task, request: Request) -> dict[str, Any]:
        status, percent = self._status(task)
        done = status in ("SUCCESS", "FAILURE")
        image_url = f"{request.base_url}mj/image/{task.id}.png" if status == "SUCCESS" else None
        return {
            "id": task.id, "action": task.action, "status": status,
            "prompt": text_of(task.prompt), "promptEn": text_of(task.prompt),
            "description": _description(task),
            "state": task.state,
            "submitTime": int(task.submitted * 1000),
            "startTime": int(task.submitted * 1000) + 1 if status != "SUBMITTED" else None,
            "finishTime": int((task.submitted + task.duration) * 1000) if done else None,
            "imageUrl": image_url, "progress": f"{percent}%" if status != "FAILURE" else "",
            "failReason": task.fail_reason if status == "FAILURE" else None,
            "properties": {"finalPrompt": task.prompt, "messageHash": task.hash},
            "buttons": _buttons(task) if status == "SUCCESS" else [],
            "parentId": task.parent.id if task.parent else None, "seed": str(task.seed),
            "botType": "NIJI_JOURNEY" if "niji" in flags(task.prompt) else "MID_JOURNEY",
        }  # fmt: skip

    async def fetch(self, request: Request, task_id: str) -> Response:
        if not self.authorized(request):
            return Response(status_code=401)
        self.sandbox.count("polls")
        await self.sandbox.delay(self.sandbox.decide(None, submission=False))
        task = self.task(task_id)
        # The original answers an unknown id with an empty 200 (a null Task).
        return JSONResponse(self.view(task, request)) if task else Response(status_code=200)

    async def list_by_condition(self, request: Request) -> Response:
        if not self.authorized(request):
            return Response(status_code=401)
        self.sandbox.count("polls")
        ids = (await _json(request)).get("ids") or []
        found = [t for t in (self.task(str(i)) for i in ids) if t is not None]
        return JSONResponse([self.view(t, request) for t in found])

    async def image(self, task_id: str) -> Response:
        task = self.task(task_id)
        if task is None or self._status(task)[0] != "SUCCESS":
            return Response(status_code=404)
        return Response(await self.picture(task), media_type="image/png")

    async def picture(self, task: _Task) -> bytes:
        if task.image is None:
            if task.kind == _SINGLE and task.parent is not None:
                task.image = await asyncio.to_thread(
                    _upscaled, await self.picture(task.parent), task.index, task.scale
                )
            else:
                task.image = await asyncio.to_thread(_grid, task.prompt, task.size, task.seed)
        return task.image


def _description(task: _Task) -> str:
    if task.parent is None:
        return f"/imagine {task.prompt}"
    return f"/{task.action.lower()} {task.parent.id}"


def _grid(prompt: str, size: tuple[int, int], seed: int) -> bytes:
    """Four pictures of ``size`` in a 2x2 grid, as Midjourney shows a job."""
    width, height = size
    grid = Image.new("RGB", (width * 2, height * 2))
    for n in range(4):
        picture = render_image(text_of(prompt), None, "none", seed + n, width, height)
        grid.paste(picture, ((n % 2) * width, (n // 2) * height))
    return encode(grid)


def _upscaled(parent: bytes, index: int, scale: int) -> bytes:
    """Quadrant ``index`` (1..4) of a grid, or the whole picture (0), ``scale`` times."""
    with Image.open(io.BytesIO(parent)) as image:
        picture = image.convert("RGB")
    if index:
        w, h = picture.width // 2, picture.height // 2
        left, top = ((index - 1) % 2) * w, ((index - 1) // 2) * h
        picture = picture.crop((left, top, left + w, top + h))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale))
    return encode(picture)


def _answer(
    code: int, description: str, result: str | None = None,
    properties: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    # The protocol answers HTTP 200 whatever the code says.
    body = {"code": code, "description": description, "result": result,
            "properties": properties or {}}  # fmt: skip
    return JSONResponse(body)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def create_app(secret: str | None = None) -> FastAPI:
    """A fresh midjourney-proxy emulator (its own faults, stats and tasks)."""
    emulator = _Emulator(
        Sandbox("midjourney_proxy"), secret or os.environ.get(SECRET_ENV) or API_SECRET
    )
    app = FastAPI(title="imagegate sandbox: midjourney-proxy", docs_url=None, redoc_url=None)
    add_control_routes(app, emulator.sandbox)
    app.post("/mj/submit/imagine")(emulator.imagine)
    app.post("/mj/submit/action")(emulator.action)
    app.get("/mj/task/{task_id}/fetch")(emulator.fetch)
    app.post("/mj/task/list-by-condition")(emulator.list_by_condition)
    app.get("/mj/image/{task_id}.png")(emulator.image)
    return app
