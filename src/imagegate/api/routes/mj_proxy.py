"""/mj: the midjourney-proxy protocol (novicezk's and the trueai fork's), so that
clients written for it (new-api relays, chatgpt-web-midjourney-proxy,
lobe-midjourney-webui) switch to imagegate by changing the base URL and the key.

Every task is an imagegate job, made by the same services as the job API (so it is
rate-limited, charged, logged and seen by ``GET /api/image/jobs`` with its lineage).
The protocol answers in its own shape, not RFC 9457: a submit answers HTTP 200 with a
``code``; a wrong secret is a bare 401. Its router catches imagegate's errors itself
(:class:`MjRoute`) rather than changing the app's error handlers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from imagegate.api import mj_schemas as body_of
from imagegate.api.deps import RuntimeDep, with_client
from imagegate.api.errors import status_for
from imagegate.api.rate_limit_headers import remember
from imagegate.domain.jobs import JobStatus
from imagegate.domain.records import JobRecord, Principal
from imagegate.errors import (
    ContentPolicyViolation,
    Forbidden,
    ImagegateError,
    InsufficientCredits,
    InvalidRequest,
    InvalidState,
    JobNotFound,
    NotFound,
    NotInPlan,
    RateLimited,
    Unauthenticated,
)
from imagegate.runtime import Runtime
from imagegate.services import actions as actions_service
from imagegate.services import jobs as jobs_service
from imagegate.services import mj_proxy as mj
from imagegate.services import rate_limits
from imagegate.services import uploads as uploads_service
from imagegate.services.actions import ActionSpec
from imagegate.services.keys import Authenticator
from imagegate.services.mj_proxy import Code
from imagegate.services.submission import JobSpec
from imagegate.settings import Settings

PREFIX = "/mj"
# The submits that carry base64 images, and how many each may carry.
_IMAGE_PATHS = {"imagine": 1, "blend": 5, "describe": 1, "modal": 1}


def body_caps(settings: Settings) -> dict[str, int]:
    """Body caps of the submits that carry base64 images (4/3 of the upload cap per
    image, plus room for the rest of the body)."""
    one = settings.upload_max_bytes * 4 // 3 + 1024
    return {f"{PREFIX}/submit/{name}": n * one + 64 * 1024 for name, n in _IMAGE_PATHS.items()}


def too_large(cap: int) -> Response:
    """A body over its cap: a validation error, as the protocol answers one (HTTP 200,
    code 4)."""
    return JSONResponse(
        mj.answer(Code.VALIDATION_ERROR, f"the request body is over {cap} bytes"),
        status_code=200,
    )


class MjRoute(APIRoute):
    """Answers imagegate's errors in the protocol's shape: a submit's failure is HTTP
    200 with its code (3 not found, 4 validation, 23 queue full or over a quota, 24 a
    prompt the content policy refused, 9 anything else: no credits, not in the plan);
    a read of an unknown task is 404 with code 3; a bad secret is a bare 401, a
    read-only key a bare 403."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        submit = self.path.startswith(f"{PREFIX}/submit/")

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                return Response(status_code=401)
            except Forbidden as error:
                if not isinstance(error, NotInPlan):
                    return Response(status_code=403)
                return JSONResponse(mj.answer(Code.FAILURE, error.detail))
            except RequestValidationError as error:
                return JSONResponse(mj.answer(Code.VALIDATION_ERROR, _first(error)))
            except ContentPolicyViolation as error:
                # The protocol's banned-prompt answer, with the category where the
                # original names the word (imagegate does not echo matched terms).
                found = mj.answer(Code.BANNED_PROMPT, error.detail,
                                  category=error.extra.get("category"))  # fmt: skip
                return JSONResponse(found)
            except ImagegateError as error:
                code, status = _code(error)
                headers = {}
                if isinstance(error, RateLimited) and error.extra.get("retry_after"):
                    headers["Retry-After"] = str(error.extra["retry_after"])
                return JSONResponse(
                    mj.answer(code, error.detail), status_code=200 if submit else status,
                    headers=headers,
                )  # fmt: skip

        return guarded


def _code(error: ImagegateError) -> tuple[Code, int]:
    """The protocol's code for an error, and the HTTP status a read answers with."""
    status = status_for(error)
    if isinstance(error, NotFound):
        return Code.NOT_FOUND, status
    if isinstance(error, RateLimited):
        return Code.QUEUE_FULL, status
    if isinstance(error, InsufficientCredits):
        return Code.FAILURE, status
    # Whatever else the client can correct (a bad field, an unusable image, a task
    # not finished yet) is a validation error to the protocol.
    return (Code.VALIDATION_ERROR if 400 <= status < 500 else Code.FAILURE), status


def _first(error: RequestValidationError) -> str:
    found = error.errors()[0] if error.errors() else {}
    where = ".".join(str(p) for p in found.get("loc", ())[1:])
    return f"{where}: {found.get('msg', 'invalid request')}" if where else "invalid request"


async def mj_principal(request: Request) -> Principal:
    """The key in ``mj-api-secret`` (the protocol's header), else in
    ``Authorization`` (``Bearer <key>``, or the bare key as the fork takes it)."""
    secret = request.headers.get("mj-api-secret")
    if not secret:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        secret = token.strip() if scheme.lower() == "bearer" else scheme or None
    authenticate: Authenticator = request.app.state.authenticator
    principal = with_client(request, await authenticate(secret or None))
    remember(request, await rate_limits.check_request(request.app.state.runtime, principal))
    return principal


# Left out of /openapi.json: these routes answer in another protocol's shapes, not
# imagegate's problems (docs/mj-proxy.md describes them).
router = APIRouter(prefix=PREFIX, route_class=MjRoute, include_in_schema=False)
Caller = Depends(mj_principal)


def _present(rt: Runtime) -> Callable[[JobRecord], dict[str, Any]]:
    return lambda job: mj.task_for(job, rt.storage)


def _metadata(
    state: str | None, bot_type: str = mj.BotType.MID_JOURNEY, notify: bool = False
) -> dict[str, str]:
    found = {mj.BOT_TYPE_KEY: str(bot_type)}
    if state:
        found[mj.STATE_KEY] = state
    if notify:
        found[mj.NOTIFY_KEY] = "1"
    return found


def _delivery(
    body: body_of.Submit, bot_type: str = mj.BotType.MID_JOURNEY, parent: JobRecord | None = None
) -> dict[str, Any]:
    """A new task's ``webhook_url`` (its notifyHook) and ``metadata`` (its state, bot
    type and whether its URL gets the task). Without a notifyHook an action's task
    keeps its parent's, as imagegate's actions do, and so its format too."""
    hook = (body.notifyHook or "").strip() or None  # clients send "" for none
    inherits = parent is not None and parent.metadata.get(mj.NOTIFY_KEY) == "1"
    notify = hook is not None or inherits
    return {"webhook_url": hook, "metadata": _metadata(body.state, bot_type, notify)}


async def _upload(made: uploads_service.Provisional, value: str, field: str) -> str:
    data, declared = mj.decode_image(value, field)
    return (await made.from_bytes(data, declared, field=field)).id


async def _create(rt: Runtime, principal: Principal, spec: JobSpec) -> JSONResponse:
    result = await jobs_service.submit(rt, principal, spec, present=_present(rt))
    return await _submitted(rt, principal, result.job_id)


async def _submitted(rt: Runtime, principal: Principal, job_id: str) -> JSONResponse:
    """Code 1, or 22 with ``numberOfQueues`` when the task waits behind others of the
    workspace (its concurrency cap is full; clients show "in queue", and both codes
    are a success to them)."""
    ahead = await jobs_service.waiting_behind(rt, principal, job_id)
    if ahead:
        return JSONResponse(mj.answer(
            Code.IN_QUEUE, f"In queue, there are {ahead} tasks ahead", job_id,
            numberOfQueues=ahead,
        ))  # fmt: skip
    return JSONResponse(mj.answer(Code.SUCCESS, "Submit success", job_id))


@router.post("/submit/imagine", operation_id="mj_imagine")
async def imagine(body: body_of.Imagine, rt: RuntimeDep, principal: Principal = Caller) -> Response:
    """Imagine: ``prompt`` (Midjourney flags work), ``base64Array`` (one image prompt),
    ``botType`` NIJI_JOURNEY adds ``--niji``."""
    prompt = body.prompt
    if body.botType == mj.BotType.NIJI_JOURNEY and "--niji" not in prompt:
        prompt += " --niji"
    if len(body.base64Array) > 1:
        raise InvalidRequest(
            "imagegate takes one image prompt; to combine images use /mj/submit/blend",
            field="base64Array",
        )
    async with uploads_service.Provisional(rt, principal) as made:
        init = None
        if body.base64Array:
            init = await _upload(made, body.base64Array[0], "base64Array")
        spec = JobSpec(prompt=prompt, init_image=init, **_delivery(body, body.botType))
        return await _create(rt, principal, spec)


@router.post("/submit/blend", operation_id="mj_blend")
async def blend(body: body_of.Blend, rt: RuntimeDep, principal: Principal = Caller) -> Response:
    """Blend two to five images into one picture of ``dimensions``."""
    async with uploads_service.Provisional(rt, principal) as made:
        images = [await _upload(made, b, "base64Array") for b in body.base64Array]
        spec = JobSpec(
            action="blend", images=tuple(images), dimensions=body.dimensions.lower(),
            prompt="--niji" if body.botType == mj.BotType.NIJI_JOURNEY else "",
            **_delivery(body, body.botType),
        )  # fmt: skip
        return await _create(rt, principal, spec)


@router.post("/submit/describe", operation_id="mj_describe")
async def describe(
    body: body_of.Describe, rt: RuntimeDep, principal: Principal = Caller
) -> Response:
    """Describe an image: four prompts in the task's ``properties.finalPrompt``."""
    async with uploads_service.Provisional(rt, principal) as made:
        image = await _upload(made, body.base64, "base64")
        spec = JobSpec(action="describe", images=(image,), **_delivery(body))
        return await _create(rt, principal, spec)


@router.post("/submit/action", operation_id="mj_action")
async def action(body: body_of.Action, rt: RuntimeDep, principal: Principal = Caller) -> Response:
    """Press a button of a task: its ``customId`` from the task's ``buttons``.
    Custom Zoom and Vary (Region) answer code 21 and a MODAL task; finish them with
    ``/mj/submit/modal``."""
    return await _press(rt, principal, body.taskId, body.customId, body)


@router.post("/submit/change", operation_id="mj_change")
async def change(body: body_of.Change, rt: RuntimeDep, principal: Principal = Caller) -> Response:
    """U1-U4, V1-V4 or reroll, the original protocol's way."""
    custom_id = mj.change_custom_id(body.action, body.index, body.taskId)
    return await _press(rt, principal, body.taskId, custom_id, body)


@router.post("/submit/simple-change", operation_id="mj_simple_change")
async def simple_change(
    body: body_of.SimpleChange, rt: RuntimeDep, principal: Principal = Caller
) -> Response:
    """``content``: ``"<task id> U2"``, ``"<task id> V3"`` or ``"<task id> R"``."""
    task_id, what, index = mj.simple_change(body.content)
    custom_id = mj.change_custom_id(what, index, task_id)
    return await _press(rt, principal, task_id, custom_id, body)


async def _press(
    rt: Runtime, principal: Principal, task_id: str, custom_id: str, body: body_of.Submit
) -> Response:
    button = mj.parse_custom_id(custom_id)
    parent = await jobs_service.get(rt, principal, task_id)
    if button.modal is not None:
        if parent.status is not JobStatus.COMPLETED:
            raise InvalidState(f"the task is {parent.status}; buttons apply to finished tasks")
        modal_id = mj.new_modal_id(button.modal, parent.id, button.index)
        return JSONResponse(
            mj.answer(Code.EXISTED, "Waiting for window confirm", modal_id,
                      finalPrompt=parent.prompt, remix=True)
        )  # fmt: skip
    assert button.spec is not None
    bot = parent.metadata.get(mj.BOT_TYPE_KEY, mj.BotType.MID_JOURNEY.value)
    spec = replace(button.spec, **_delivery(body, bot, parent))
    result = await actions_service.act(rt, principal, parent.id, spec, present=_present(rt))
    return await _submitted(rt, principal, result.job_id)


@router.post("/submit/modal", operation_id="mj_modal")
async def modal(body: body_of.Modal, rt: RuntimeDep, principal: Principal = Caller) -> Response:
    """Finish a dialog: Custom Zoom's ``prompt`` (with ``--zoom 1-2``; no other text
    reuses the parent's prompt), Vary (Region)'s ``maskBase64`` (white repaints)."""
    ref = mj.parse_modal_id(body.taskId)
    if ref is None:
        raise JobNotFound(f"no modal task {body.taskId[:128]!r}")
    parent = await jobs_service.get(rt, principal, ref.parent_id)
    done = await _modal_child(rt, principal, body.taskId, ref)
    if done is not None:
        return JSONResponse(mj.answer(Code.SUCCESS, "Submit success", done.id))
    prompt = (body.prompt or "").strip()
    delivery = _delivery(body, parent.metadata.get(mj.BOT_TYPE_KEY, "MID_JOURNEY"), parent)
    delivery["metadata"][mj.MODAL_KEY] = body.taskId
    if ref.kind is mj.ModalKind.ZOOM:
        factor, text = mj.custom_zoom(prompt)
        spec = ActionSpec(
            "zoom_out", index=ref.index, factor=factor, variations=mj.GRID_VARIATIONS,
            prompt=text if text and text != parent.prompt else None, **delivery,
        )  # fmt: skip
    else:
        if not body.maskBase64:
            raise InvalidRequest("Vary (Region) needs maskBase64", field="maskBase64")
        async with uploads_service.Provisional(rt, principal) as made:
            mask = await _upload(made, body.maskBase64, "maskBase64")
            spec = ActionSpec(
                "vary_region", index=ref.index, mask={"upload_id": mask},
                variations=mj.GRID_VARIATIONS, **delivery,
                prompt=prompt if prompt and prompt != parent.prompt else None,
            )  # fmt: skip
            result = await actions_service.act(rt, principal, parent.id, spec,
                                               present=_present(rt))  # fmt: skip
        return await _submitted(rt, principal, result.job_id)
    result = await actions_service.act(rt, principal, parent.id, spec, present=_present(rt))
    return await _submitted(rt, principal, result.job_id)


async def _modal_child(
    rt: Runtime, principal: Principal, modal_id: str, ref: mj.ModalRef
) -> JobRecord | None:
    """The job a modal task's dialog created, if it was submitted."""
    page = await jobs_service.list_jobs(
        rt, principal, statuses=[], dead_letter=None, cursor=None, limit=100,
        parent_job_id=ref.parent_id,
    )  # fmt: skip
    return next((j for j in page.jobs if j.metadata.get(mj.MODAL_KEY) == modal_id), None)


async def _task(rt: Runtime, principal: Principal, task_id: str) -> dict[str, Any]:
    ref = mj.parse_modal_id(task_id)
    if ref is None:
        return mj.task_for(await jobs_service.get(rt, principal, task_id), rt.storage)
    parent = await jobs_service.get(rt, principal, ref.parent_id)
    child = await _modal_child(rt, principal, task_id, ref)
    if child is not None:
        return mj.task_for(child, rt.storage)
    return mj.modal_task(task_id, ref, parent)


@router.get("/task/{task_id}/fetch", operation_id="mj_fetch")
async def fetch(task_id: str, rt: RuntimeDep, principal: Principal = Caller) -> dict[str, Any]:
    """One task."""
    return await _task(rt, principal, task_id)


@router.post("/task/list-by-condition", operation_id="mj_list_by_condition")
async def list_by_condition(
    body: body_of.Condition, rt: RuntimeDep, principal: Principal = Caller
) -> list[dict[str, Any]]:
    """The tasks of ``ids`` that exist (unknown ids are left out), as new-api polls."""
    found = []
    for task_id in dict.fromkeys(body.ids):
        try:
            found.append(await _task(rt, principal, task_id))
        except NotFound:
            continue
    return found


@router.get("/task/list", operation_id="mj_list")
async def list_tasks(rt: RuntimeDep, principal: Principal = Caller) -> list[dict[str, Any]]:
    """The workspace's 100 newest tasks."""
    page = await jobs_service.list_jobs(
        rt, principal, statuses=[], dead_letter=None, cursor=None, limit=100
    )
    return [mj.task_for(j, rt.storage) for j in page.jobs]


@router.get("/task/queue", operation_id="mj_queue")
async def queue(rt: RuntimeDep, principal: Principal = Caller) -> list[dict[str, Any]]:
    """The workspace's queued and running tasks (100 at most)."""
    page = await jobs_service.list_jobs(
        rt, principal, statuses=[JobStatus.QUEUED, JobStatus.RUNNING], dead_letter=None,
        cursor=None, limit=100,
    )  # fmt: skip
    return [mj.task_for(j, rt.storage) for j in page.jobs]


@router.post("/task/{task_id}/cancel", operation_id="mj_cancel")
async def cancel(task_id: str, rt: RuntimeDep, principal: Principal = Caller) -> dict[str, Any]:
    """Cancel a queued or running task."""
    job = await jobs_service.cancel(rt, principal, task_id)
    return mj.answer(Code.SUCCESS, "Success", job.id)


@router.get("/task/{task_id}/image-seed", operation_id="mj_image_seed")
async def image_seed(task_id: str, rt: RuntimeDep, principal: Principal = Caller) -> dict[str, Any]:
    """The seed of a finished task's image (its grid's first seed for a grid)."""
    task = mj.task_for(await jobs_service.get(rt, principal, task_id), rt.storage)
    if task["seed"] is None:
        raise InvalidState("the task has no seed yet")
    return mj.answer(Code.SUCCESS, "Success", task["seed"])
