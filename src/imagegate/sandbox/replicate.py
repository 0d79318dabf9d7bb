"""An emulator of Replicate's predictions API (``https://api.replicate.com/v1``).

Speaks: ``POST /v1/predictions`` (``version`` as ``owner/name:id``, a bare id, or
``owner/name`` for an official model), ``POST /v1/models/{owner}/{name}/predictions``,
``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``,
``GET /v1/predictions``, ``GET /v1/models/{owner}/{name}`` and its
``/versions/{id}``, with ``Prefer: wait=N``
holding a create for up to N seconds. Outputs are served by the emulator itself under
``/delivery/`` (Replicate's are on replicate.delivery) and vanish an hour after the
prediction completes, as Replicate's do.

Auth: ``Authorization: Bearer <token>`` (or the older ``Token <token>``); any token of
Replicate's form, ``r8_…``, is accepted. The models it runs are in
:mod:`imagegate.sandbox.replicate_models`."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imagegate.domain.params import OutputFormat
from imagegate.sandbox import replicate_outputs as outputs
from imagegate.sandbox.base import (
    Decision,
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
    render,
)
from imagegate.sandbox.replicate_models import (
    CATALOG,
    SINGLE_FILE,
    CatalogModel,
    find_version,
    invalid_fields,
    openapi_schema,
    output_plan,
)

OUTPUT_TTL_S = 3600.0
_PREFER = re.compile(r"^\s*wait(?:=(\d+))?\s*$")
_TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
_NSFW = {
    "flux": "All generated images contained NSFW content. Try running it again with a "
    "different prompt.",
    "sdxl": "NSFW content detected. Try running it again, or try a different prompt.",
}
_NO_VERSION = (
    "The specified version does not exist (or perhaps you don't have permission to use it?)"
)
_UNVERSIONED = "Only official models run without a version; use POST /v1/predictions."
_MEDIA = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}


def create_app() -> FastAPI:
    """A fresh Replicate emulator with its own state."""
    sandbox = Sandbox("replicate")
    app = FastAPI(title="Replicate sandbox", openapi_url=None)
    add_control_routes(app, sandbox)
    tasks: set[asyncio.Task[None]] = set()

    @app.exception_handler(_Unauthenticated)
    async def unauthenticated(request: Request, error: _Unauthenticated) -> Response:
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    async def create(
        request: Request, model: CatalogModel | None, body: dict[str, Any], version: str
    ) -> Response:
        sandbox.count("submissions")
        data = body.get("input")
        decision = sandbox.decide(data.get("prompt") if isinstance(data, dict) else None)
        if decision.timeout:
            return await hang(request, sandbox)
        await sandbox.delay(decision)
        if decision.status:
            return error_response(decision, _fault_body(decision))
        if decision.malformed:
            return malformed_response()
        if model is None:
            return _problem(422, "Invalid version or not permitted", _NO_VERSION)
        if not isinstance(data, dict):
            return _invalid(
                [{"type": "required", "field": "(root)", "description": "input is required"}]
            )
        problems = invalid_fields(model, data)
        if problems:
            return _invalid(problems)
        job = _new_job(request, model, version, data, decision)
        sandbox.jobs[job["id"]] = job
        task = asyncio.create_task(_run(sandbox, job, model))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        job["_task"] = task
        return await _answer_create(request, job)

    @app.post("/v1/predictions", dependencies=[Depends(_authorized)])
    async def create_prediction(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            return _invalid(
                [{"type": "required", "field": "(root)", "description": "version is required"}]
            )
        requested = body["version"]
        model = find_version(requested)
        # An official model run without a pinned version reports its version as hidden.
        unpinned = "/" in requested and ":" not in requested
        version = "hidden" if unpinned or model is None else model.version
        return await create(request, model, body, version)

    @app.post("/v1/models/{owner}/{name}/predictions", dependencies=[Depends(_authorized)])
    async def create_model_prediction(owner: str, name: str, request: Request) -> Response:
        model = CATALOG.get(f"{owner}/{name}")
        if model is None:
            return _problem(404, "Not found", "The requested model does not exist.")
        if not model.official:
            return _problem(404, "Not found", _UNVERSIONED)
        body = await _json(request)
        return await create(request, model, body if isinstance(body, dict) else {}, "hidden")

    @app.get("/v1/predictions/{prediction_id}", dependencies=[Depends(_authorized)])
    async def get_prediction(prediction_id: str) -> Response:
        sandbox.count("polls")
        await sandbox.delay(sandbox.decide(None, submission=False))
        job = sandbox.jobs.get(prediction_id)
        if job is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        return JSONResponse(_public(job))

    @app.post("/v1/predictions/{prediction_id}/cancel", dependencies=[Depends(_authorized)])
    async def cancel_prediction(prediction_id: str) -> Response:
        sandbox.count("cancels")  # what a client's cancel reached, for tests to check
        job = sandbox.jobs.get(prediction_id)
        if job is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if job["status"] not in _TERMINAL:
            job["_task"].cancel()
            _finish(job, "canceled")
        return JSONResponse(_public(job))

    @app.get("/v1/predictions", dependencies=[Depends(_authorized)])
    async def list_predictions() -> dict[str, Any]:
        newest = sorted(sandbox.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        results = [{k: v for k, v in _public(j).items() if k != "logs"} for j in newest[:100]]
        return {"next": None, "previous": None, "results": results}

    @app.get("/v1/models/{owner}/{name}", dependencies=[Depends(_authorized)])
    async def get_model(owner: str, name: str) -> Response:
        model = CATALOG.get(f"{owner}/{name}")
        if model is None:
            return _problem(404, "Not found", "The requested model does not exist.")
        return JSONResponse(_model_object(model))

    @app.get("/v1/models/{owner}/{name}/versions/{version_id}", dependencies=[Depends(_authorized)])
    async def get_version(owner: str, name: str, version_id: str) -> Response:
        model = CATALOG.get(f"{owner}/{name}")
        if model is None or model.version != version_id:
            return _problem(404, "Not found", "The requested version does not exist.")
        return JSONResponse(_version_object(model))

    @app.get("/delivery/{prediction_id}/{filename}")
    async def delivery(prediction_id: str, filename: str) -> Response:
        job = sandbox.jobs.get(prediction_id)
        files = job.get("_files", {}) if job and not _expired(job) else {}
        if filename not in files:
            return Response("Not Found", status_code=404, media_type="text/plain")
        extension = filename.rsplit(".", 1)[-1]
        return Response(files[filename], media_type=_MEDIA.get(extension, "image/png"))

    return app


async def _authorized(request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in {"bearer", "token"} or not token.strip().startswith("r8_"):
        raise _Unauthenticated


class _Unauthenticated(Exception):
    pass


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Replicate's error shape: RFC 7807 problem details."""
    body = {"title": title, "detail": detail, "status": status, **extra}
    return JSONResponse(body, status_code=status)


def _invalid(problems: list[dict[str, str]]) -> JSONResponse:
    detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
    return _problem(422, "Input validation failed", detail, invalid_fields=problems)


def _fault_body(decision: Decision) -> dict[str, Any]:
    if decision.status == 429:
        # A problem like every other Replicate error (the client reads title/detail).
        wait = decision.retry_after_s or 30
        return {
            "title": "Request was throttled.",
            "detail": f"Request was throttled. Your rate limit resets in ~{wait}s.",
            "status": 429,
        }
    return {
        "title": "Internal Server Error",
        "detail": "An unexpected error occurred (injected by the sandbox).",
        "status": decision.status,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _new_job(
    request: Request, model: CatalogModel, version: str, data: dict[str, Any], decision: Decision
) -> dict[str, Any]:
    """A prediction in ``starting``; keys with a leading underscore are private."""
    prediction_id = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
    api = str(request.base_url).rstrip("/") + "/v1/predictions/" + prediction_id
    return {
        "id": prediction_id,
        "model": model.owner_name,
        "version": version,
        "input": data,  # as sent; the model runs with its defaults filled in
        "_input": {**model.defaults, **data},
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "source": "api",
        "created_at": _now(),
        "started_at": None,
        "completed_at": None,
        "urls": {
            "get": api,
            "cancel": api + "/cancel",
            "web": str(request.base_url) + "p/" + prediction_id,
        },
        "_base": str(request.base_url).rstrip("/"),
        "_decision": decision,
        "_created": time.monotonic(),
        "_done": asyncio.Event(),
        "_files": {},
    }


async def _answer_create(request: Request, job: dict[str, Any]) -> Response:
    """201 with the prediction; with ``Prefer: wait=N``, first wait up to N s (at most
    60) for it to finish, answering 202 if it has not."""
    match = _PREFER.match(request.headers.get("prefer", ""))
    if match is None:
        return JSONResponse(_public(job), status_code=201)
    wait_s = min(60, max(1, int(match.group(1) or 60)))
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the wait ends (a server shutting down).
        async with asyncio.timeout(wait_s):
            await job["_done"].wait()
    except TimeoutError:
        return JSONResponse(_public(job), status_code=202)
    return JSONResponse(_public(job), status_code=201)


async def _run(sandbox: Sandbox, job: dict[str, Any], model: CatalogModel) -> None:
    """What the model does: boot, print tqdm progress to the logs, render, finish."""
    decision: Decision = job["_decision"]
    data = job["_input"]
    duration = sandbox.faults.job_duration_ms / 1000
    try:
        await asyncio.sleep(duration * 0.1)
        job.update(status="processing", started_at=_now(), _started=time.monotonic())
        seed = int(data.get("seed", secrets.randbelow(2**32)))
        job["logs"] = f"Using seed: {seed}\n"
        for step in range(model.steps + 1):
            job["logs"] += _tqdm_line(step, model.steps)
            if step < model.steps:
                await asyncio.sleep(duration * 0.9 / model.steps)
        await _outcome(job, model, seed, decision)
    except asyncio.CancelledError:
        _finish(job, "canceled")
    finally:
        job["_done"].set()


async def _outcome(job: dict[str, Any], model: CatalogModel, seed: int, decision: Decision) -> None:
    data = job["_input"]
    if decision.fail_job:
        job["logs"] += "Traceback (most recent call last):\nRuntimeError: injected failure\n"
        _finish(job, "failed", "E1000 Prediction failed (injected by sandbox:fail)")
        return
    if decision.moderated and model.kind in _NSFW and not data.get("disable_safety_checker"):
        job["logs"] += "NSFW content detected in all outputs\n"
        _finish(job, "failed", _NSFW[model.kind])
        return
    try:
        if model.kind == "caption":
            job["output"] = await asyncio.to_thread(outputs.caption, model, data)
            _finish(job, "succeeded")
            return
        plan = output_plan(model, data)
        files = await _files(model, data, seed, plan)
    except ValueError as error:
        _finish(job, "failed", str(error))
        return
    extension = plan[3]
    for index, blob in enumerate(files):
        job["_files"][f"out-{index}.{extension}"] = blob
    urls = [f"{job['_base']}/delivery/{job['id']}/{name}" for name in job["_files"]]
    job["output"] = urls[0] if model.kind in SINGLE_FILE else urls
    job["_expired_urls"] = decision.expired
    _finish(job, "succeeded")


async def _files(
    model: CatalogModel, data: dict[str, Any], seed: int, plan: tuple[int, int, int, str]
) -> list[bytes]:
    if outputs.takes_images(model, data):
        return await asyncio.to_thread(outputs.images, model, data, seed, plan)
    width, height, count, extension = plan
    fmt = OutputFormat.for_content_type(_MEDIA[extension])
    prompt = str(data.get("prompt") or model.owner_name)
    return [await render(prompt, width, height, seed + index, fmt) for index in range(count)]


def _tqdm_line(step: int, steps: int) -> str:
    percent = step * 100 // steps
    bar = ("█" * (step * 10 // steps)).ljust(10)
    return f"{percent:3d}%|{bar}| {step}/{steps} [00:00<00:00,  3.51it/s]\n"


def _finish(job: dict[str, Any], status: str, error: str | None = None) -> None:
    now = time.monotonic()
    job.update(status=status, error=error, completed_at=_now(), _completed=now)
    started = job.get("_started")
    metrics = {"total_time": round(now - job["_created"], 6)}
    if started is not None:
        metrics["predict_time"] = round(now - started, 6)
    job["metrics"] = metrics


def _expired(job: dict[str, Any]) -> bool:
    completed = job.get("_completed")
    aged = completed is not None and time.monotonic() - completed > OUTPUT_TTL_S
    return aged or bool(job.get("_expired_urls"))


def _public(job: dict[str, Any]) -> dict[str, Any]:
    """The prediction as the API shows it. After the output TTL the input, output and
    logs are removed; an injected ``expired`` fault only breaks the file URLs."""
    public = {k: v for k, v in job.items() if not k.startswith("_")}
    # Replicate leaves out the times a prediction has not reached yet (its schema
    # types them as date-time strings, never null).
    for moment in ("started_at", "completed_at"):
        if public.get(moment) is None:
            public.pop(moment, None)
    completed = job.get("_completed")
    if completed is not None and time.monotonic() - completed > OUTPUT_TTL_S:
        public.update(input={}, output=None, logs="", data_removed=True)
    return public


def _model_object(model: CatalogModel) -> dict[str, Any]:
    owner, name = model.owner_name.split("/")
    return {
        "url": f"https://replicate.com/{model.owner_name}",
        "owner": owner,
        "name": name,
        "description": f"{model.owner_name} (emulated)",
        "visibility": "public",
        "is_official": model.official,
        "run_count": 0,
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": _version_object(model),
    }


# The date the emulated versions were pushed: fixed, as a real version's is.
_VERSION_CREATED = "2024-08-01T00:00:00.000000Z"


def _version_object(model: CatalogModel) -> dict[str, Any]:
    """A model version as Replicate shows it: the replicate client requires
    ``created_at`` and an ``openapi_schema`` object."""
    return {
        "id": model.version,
        "created_at": _VERSION_CREATED,
        "cog_version": "0.9.0",
        "openapi_schema": openapi_schema(model),
    }
