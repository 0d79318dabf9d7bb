"""An emulator of fal.ai's queue API (``https://queue.fal.run``).

``POST /{model_id}`` (JSON input, e.g. ``/fal-ai/flux/dev``) queues a request and
answers ``{request_id, status_url, response_url, cancel_url, queue_position}``. As on
fal, the other calls live under the model's *app* (owner/app, without the endpoint's
sub-path, so ``fal-ai/flux`` for ``fal-ai/flux/dev``):
``GET …/requests/{id}/status[?logs=1]`` (202 ``IN_QUEUE`` / ``IN_PROGRESS``, 200
``COMPLETED``), ``GET …/requests/{id}`` (the model's output, or the model's error with
its status code), ``PUT …/requests/{id}/cancel``. Images are served by the emulator at
``/media/{id}/{n}.{ext}``, standing in for fal's CDN.

Keys: any ``Authorization: Key <id>:<secret>`` is accepted; anything else is a 401.
Faults (sandbox/base.py) apply to submissions: statuses, timeouts and malformed bodies
at once; ``moderate`` makes the safety checker flag the images (black images,
``has_nsfw_concepts: true``); ``fail`` makes the run fail (the result is a 500);
``expired`` makes the image URLs 404. Besides the shared markers, ``sandbox:policy`` has
the model refuse the prompt (422 ``content_policy_violation`` in the result)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imagegate.sandbox import fal_edits, fal_models
from imagegate.sandbox.base import (
    Decision,
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
)

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
# fal keeps a request's result for an hour after it completes.
RESULT_TTL_S = 3600.0
# The share of a job's duration spent waiting in the queue before a runner takes it.
QUEUED_SHARE = 0.3
_POLICY = re.compile(r"sandbox:policy", re.IGNORECASE)
_NOT_FOUND = {"detail": "Request not found"}
_ERROR_TYPES = {500: "internal_error", 502: "runner_incomplete_response",
                503: "runner_scheduling_failure", 504: "request_timeout"}  # fmt: skip


class Refused(Exception):
    """Ends a request early with the API's own answer (raised from helpers)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def create_app() -> FastAPI:
    sandbox = Sandbox("fal")
    app = FastAPI(title="fal queue API emulator (imagegate sandbox)")
    add_control_routes(app, sandbox)  # before the catch-all submit route below

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> Response:
        return exc.response

    @app.get("/{owner}/{app_name}/requests/{request_id}/status")
    async def status(owner: str, app_name: str, request_id: str, request: Request) -> Response:
        _authorise(request)
        job = await _poll(sandbox, f"{owner}/{app_name}", request_id)
        # fal-client sends ``logs=true``/``logs=false``, curl users ``logs=1``.
        logs = request.query_params.get("logs", "").lower() in {"1", "true"}
        return _status(sandbox, job, request_id, str(request.base_url), logs)

    @app.get("/{owner}/{app_name}/requests/{request_id}")
    async def result(owner: str, app_name: str, request_id: str, request: Request) -> Response:
        _authorise(request)
        job = await _poll(sandbox, f"{owner}/{app_name}", request_id)
        return await _result(sandbox, job, request_id, str(request.base_url))

    @app.put("/{owner}/{app_name}/requests/{request_id}/cancel")
    async def cancel(owner: str, app_name: str, request_id: str, request: Request) -> Response:
        _authorise(request)
        sandbox.count("cancels")  # what a client's cancel reached, for tests to check
        job = sandbox.jobs.get(request_id)
        if job is None or job["root"] != f"{owner}/{app_name}":
            return JSONResponse({"status": "NOT_FOUND"}, 404)
        if _phase(job) == COMPLETED:
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        job["cancelled"] = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)

    @app.get("/media/{request_id}/{name}")
    async def media(request_id: str, name: str) -> Response:
        job = sandbox.jobs.get(request_id)
        index = name.split(".", 1)[0]
        files = job["files"] if job else None
        if job is None or files is None or job["decision"].expired or not index.isdigit():
            return JSONResponse({"detail": "Not Found"}, 404)
        if int(index) >= len(files):
            return JSONResponse({"detail": "Not Found"}, 404)
        return Response(files[int(index)], media_type=job["inputs"].fmt.content_type)

    @app.post("/{model_id:path}")
    async def submit(model_id: str, request: Request) -> Response:
        _authorise(request)
        model = fal_models.MODELS.get(model_id)
        if model is None:
            return JSONResponse({"detail": f"Application '{model_id}' not found"}, 404)
        body = await _json_object(request)
        decision = await _admit(sandbox, request, body.get("prompt"))
        inputs, problems = (
            fal_models.check(model, body)
            if model.kind == "t2i"
            else fal_edits.check(model.kind, body)
        )
        request_id = str(uuid.uuid4())
        sandbox.jobs[request_id] = {
            "root": _app_root(model_id), "model": model, "inputs": inputs,
            "problems": problems, "decision": decision, "seq": len(sandbox.jobs),
            "policy": bool(_POLICY.search(str(body.get("prompt", "")))),
            "seed": _seed(sandbox, inputs), "started": time.monotonic(),
            "started_at": fal_models.now(), "duration_s": sandbox.faults.job_duration_ms / 1000,
            "cancelled": False, "files": None,
        }  # fmt: skip
        job = sandbox.jobs[request_id]
        answer = _urls(job, request_id, str(request.base_url))
        answer |= {"status": IN_QUEUE, "queue_position": _queue_position(sandbox, job)}
        return JSONResponse(answer)

    @app.get("/{path:path}")
    async def unknown(path: str) -> Response:
        # Reads under anything but an app's /requests/{id} (an endpoint's sub-path, say)
        # find no request, rather than the submit route's "method not allowed".
        return JSONResponse(_NOT_FOUND, 404)

    return app


def _authorise(request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise Refused(JSONResponse({"detail": "Missing authorization header"}, 401))
    scheme, _, credentials = header.partition(" ")
    key_id, _, secret = credentials.partition(":")
    if scheme != "Key" or not key_id or not secret:
        raise Refused(JSONResponse({"detail": "No user found for Key ID and Secret"}, 401))


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        problem = {
            "loc": ["body"],
            "msg": "Input should be a valid dictionary",
            "type": "dict_type",
        }
        raise Refused(JSONResponse({"detail": [problem]}, 422))
    return body


async def _admit(sandbox: Sandbox, request: Request, prompt: Any) -> Decision:
    """Counts the submission and applies the faults that refuse it outright."""
    sandbox.count("submissions")
    decision = sandbox.decide(prompt if isinstance(prompt, str) else None)
    if decision.timeout:
        raise Refused(await hang(request, sandbox))
    await sandbox.delay(decision)
    if decision.status is not None:
        body: dict[str, Any] = {"detail": f"injected HTTP {decision.status}"}
        if decision.status == 429:
            body["detail"] = "Rate limit exceeded: too many concurrent requests"
        error_type = _ERROR_TYPES.get(decision.status)
        if error_type:
            body["error_type"] = error_type
        response = error_response(decision, body)
        if error_type:
            response.headers["X-Fal-Error-Type"] = error_type
        raise Refused(response)
    if decision.malformed:
        raise Refused(malformed_response())
    return decision


def _seed(sandbox: Sandbox, inputs: fal_models.Inputs | fal_edits.Edit | None) -> int:
    if inputs is not None and inputs.seed is not None:
        return inputs.seed
    return sandbox.rng.randint(0, 2**31 - 1)  # the model picks one and reports it


def _app_root(model_id: str) -> str:
    return "/".join(model_id.split("/")[:2])


def _urls(job: dict[str, Any], request_id: str, base_url: str) -> dict[str, Any]:
    base = f"{base_url.rstrip('/')}/{job['root']}/requests/{request_id}"
    return {
        "request_id": request_id,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
    }


async def _poll(sandbox: Sandbox, root: str, request_id: str) -> dict[str, Any]:
    sandbox.count("polls")
    await sandbox.delay(sandbox.decide(None, submission=False))
    job = sandbox.jobs.get(request_id)
    if job is None or job["root"] != root:
        raise Refused(JSONResponse(_NOT_FOUND, 404))
    return job


def _elapsed(job: dict[str, Any]) -> float:
    return time.monotonic() - float(job["started"])


def _phase(job: dict[str, Any]) -> str:
    elapsed, duration = _elapsed(job), float(job["duration_s"])
    if job["cancelled"] or elapsed >= duration:
        return COMPLETED
    return IN_QUEUE if elapsed < duration * QUEUED_SHARE else IN_PROGRESS


def _queue_position(sandbox: Sandbox, job: dict[str, Any]) -> int:
    ahead = [j for j in sandbox.jobs.values() if j["seq"] < job["seq"] and _phase(j) == IN_QUEUE]
    return len(ahead)


def _status(
    sandbox: Sandbox, job: dict[str, Any], request_id: str, base_url: str, logs: bool
) -> Response:
    phase = _phase(job)
    body = _urls(job, request_id, base_url) | {"status": phase}
    if phase == IN_QUEUE:
        # fal-client reads the position of every queued status (a KeyError without it).
        body["queue_position"] = _queue_position(sandbox, job)
        return JSONResponse(body, 202)
    duration = float(job["duration_s"])
    run_share = max(duration * (1 - QUEUED_SHARE), 1e-9)
    fraction = min(1.0, (_elapsed(job) - duration * QUEUED_SHARE) / run_share)
    model: fal_models.Model = job["model"]
    body["logs"] = fal_models.logs(model, fraction, job["started_at"]) if logs else None
    if phase == IN_PROGRESS:
        return JSONResponse(body, 202)
    body["metrics"] = {"inference_time": round(duration * (1 - QUEUED_SHARE), 3)}
    failure = _failure(job)
    if failure is not None:
        body["error"], body["error_type"] = failure.message, failure.error_type
    return JSONResponse(body)


@dataclass(frozen=True)
class _Failure:
    """How a completed request failed: its result's status and body, and the summary
    the status call gives (``error``, ``error_type``)."""

    status: int
    body: dict[str, Any]
    message: str
    error_type: str


def _failure(job: dict[str, Any]) -> _Failure | None:
    if job["cancelled"]:
        body = {"detail": "Request was cancelled", "error_type": "client_cancelled"}
        return _Failure(499, body, body["detail"], "client_cancelled")
    problems: list[dict[str, Any]] = job["problems"]
    if not problems and job["policy"]:
        problems = [fal_models.policy_violation(job["inputs"].prompt)]
    if problems:
        return _Failure(422, {"detail": problems}, problems[0]["msg"], problems[0]["type"])
    if job["decision"].fail_job:
        body = {"detail": "The model failed while running", "error_type": "runner_server_error"}
        return _Failure(500, body, body["detail"], "runner_server_error")
    return None


async def _result(
    sandbox: Sandbox, job: dict[str, Any], request_id: str, base_url: str
) -> Response:
    if _phase(job) != COMPLETED:
        return JSONResponse({"detail": "Request is still in progress"}, 400)
    if _elapsed(job) - float(job["duration_s"]) > RESULT_TTL_S:
        return JSONResponse(_NOT_FOUND, 404)
    failure = _failure(job)
    if failure is not None:
        headers = {"X-Fal-Error-Type": failure.error_type} if failure.status != 422 else {}
        return JSONResponse(failure.body, failure.status, headers=headers)
    inputs = job["inputs"]
    if isinstance(inputs, fal_edits.Edit):
        return await _edit_result(sandbox, job, request_id, base_url)
    flagged = job["decision"].moderated and inputs.safety_checker
    if job["files"] is None:
        job["files"] = await fal_models.draw(inputs, job["seed"], flagged)
        sandbox.stats["images"] += inputs.num_images
    base = base_url.rstrip("/")
    return JSONResponse({
        "images": [
            {"url": f"{base}/media/{request_id}/{i}.{inputs.fmt.extension}",
             "width": inputs.width, "height": inputs.height,
             "content_type": inputs.fmt.content_type}
            for i in range(inputs.num_images)
        ],
        "timings": {"inference": round(float(job["duration_s"]) * (1 - QUEUED_SHARE), 3)},
        "seed": job["seed"],
        "has_nsfw_concepts": [flagged] * inputs.num_images,
        "prompt": inputs.prompt,
    })  # fmt: skip


async def _edit_result(
    sandbox: Sandbox, job: dict[str, Any], request_id: str, base_url: str
) -> Response:
    """The result of an action model: text for a captioner, else its images."""
    edit: fal_edits.Edit = job["inputs"]
    if edit.kind == "caption":
        return JSONResponse({"results": await asyncio.to_thread(fal_edits.caption, edit)})
    flagged = job["decision"].moderated and edit.safety_checker and edit.kind in ("i2i", "fill")
    files: list[bytes] | None = job["files"]
    if files is None:
        files = job["files"] = await asyncio.to_thread(fal_edits.draw, edit, job["seed"], flagged)
        sandbox.stats["images"] += len(files)
    base = base_url.rstrip("/")
    urls = [f"{base}/media/{request_id}/{i}.{edit.fmt.extension}" for i in range(len(files))]
    return JSONResponse(fal_edits.result(edit, urls, job["seed"], flagged))
