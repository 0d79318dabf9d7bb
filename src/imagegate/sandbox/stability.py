"""An emulator of Stability AI's REST API v2beta (the ``stable-image`` family).

It speaks what an integration calls, as multipart forms:
``POST /v2beta/stable-image/generate/{ultra|core|sd3}``,
``POST /v2beta/stable-image/edit/{outpaint|inpaint}`` (the source on a grown canvas,
or repainted where the mask is white),
``POST /v2beta/stable-image/upscale/{fast|conservative}`` (synchronous) and
``POST /v2beta/stable-image/upscale/creative`` (asynchronous: ``{id}``, then
``GET /v2beta/results/{id}``: 202 while running, 200 with the image, 404 once gone).
``Accept: application/json`` answers ``{image (base64), finish_reason, seed}``;
``image/*`` (the default) answers the bytes with ``finish-reason`` and ``seed`` headers.
Errors have the API's shape ``{id, name, errors: [...]}``.

Keys: any ``Authorization: Bearer sk-…`` is accepted; anything else is answered 401,
as a wrong key is. Faults (sandbox/base.py) apply to every submission. Besides the
shared markers, ``sandbox:filtered`` fires the *output* filter (200, finish_reason
``CONTENT_FILTERED``, a blurred image), while ``sandbox:moderate`` is the *prompt*
refusal (403 ``content_moderation``). Images are inline, so ``sandbox:expired`` only
affects the creative upscale, whose result is then gone (404) when it is fetched."""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imagegate.domain.params import OutputFormat
from imagegate.sandbox import stability_images as images
from imagegate.sandbox.base import (
    Decision,
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
)
from imagegate.sandbox.stability_forms import (
    Form,
    Invalid,
    Upscale,
    creative_spec,
    generation_spec,
    inpaint_spec,
    outpaint_spec,
    read_form,
    upscale_spec,
)

# Results of asynchronous jobs are kept this long, as the API documents.
RESULT_TTL_S = 24 * 3600
_FILTERED = re.compile(r"sandbox:filtered", re.IGNORECASE)
_MODERATION_MESSAGE = (
    "Your request was flagged by our content moderation system, as a result your request "
    "was denied and you were not charged."
)
_ERROR_NAMES = {
    400: "bad_request", 401: "unauthorized", 403: "content_moderation", 404: "not_found",
    413: "payload_too_large", 422: "invalid_language", 429: "rate_limit_exceeded",
    500: "internal_error",
}  # fmt: skip
_ERROR_MESSAGES = {
    429: "You have exceeded the rate limit of 150 requests within a 10 second period.",
    500: "An unexpected server error has occurred, please try again later.",
}


class Refused(Exception):
    """Ends a request early with the API's own answer (raised from helpers)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def error(status: int, name: str, *messages: str) -> JSONResponse:
    """The API's error body: a fresh id, a machine name, human-readable messages."""
    return JSONResponse({"id": uuid.uuid4().hex, "name": name, "errors": list(messages)}, status)


def create_app() -> FastAPI:
    sandbox = Sandbox("stability")
    app = FastAPI(title="Stability AI v2beta emulator (imagegate sandbox)")
    add_control_routes(app, sandbox)

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> Response:
        return exc.response

    @app.exception_handler(Invalid)
    async def invalid(_: Request, exc: Invalid) -> Response:
        return error(exc.status, exc.name, *exc.messages)

    @app.post("/v2beta/stable-image/generate/{model}")
    async def generate(model: str, request: Request) -> Response:
        as_json = _authorise(request)
        if model not in ("ultra", "core", "sd3"):
            raise Refused(error(404, "not_found", f"no such endpoint: generate/{model}"))
        spec = generation_spec(model, await read_form(request))
        decision = await _admit(sandbox, request, spec.prompt)
        if decision.fail_job:
            raise Refused(error(500, "internal_error", _ERROR_MESSAGES[500]))
        seed = spec.seed or _random_seed(sandbox)
        data = await images.generate(spec, seed)
        return await _image_response(sandbox, spec.prompt, data, spec.fmt, seed, as_json)

    @app.post("/v2beta/stable-image/upscale/{kind}")
    async def upscale(kind: str, request: Request) -> Response:
        as_json = _authorise(request)
        if kind == "creative":
            return await _start_creative(sandbox, request, await read_form(request))
        if kind not in ("fast", "conservative"):
            raise Refused(error(404, "not_found", f"no such endpoint: upscale/{kind}"))
        spec = upscale_spec(kind, await read_form(request))
        decision = await _admit(sandbox, request, spec.prompt)
        if decision.fail_job:
            raise Refused(error(500, "internal_error", _ERROR_MESSAGES[500]))
        seed = spec.seed or _random_seed(sandbox)
        data = await images.upscale(spec)
        return await _image_response(sandbox, spec.prompt or "", data, spec.fmt, seed, as_json)

    @app.post("/v2beta/stable-image/edit/{kind}")
    async def edit(kind: str, request: Request) -> Response:
        as_json = _authorise(request)
        if kind not in ("outpaint", "inpaint"):
            raise Refused(error(404, "not_found", f"no such endpoint: edit/{kind}"))
        form = await read_form(request)
        spec = outpaint_spec(form) if kind == "outpaint" else inpaint_spec(form)
        decision = await _admit(sandbox, request, spec.prompt)
        if decision.fail_job:
            raise Refused(error(500, "internal_error", _ERROR_MESSAGES[500]))
        seed = spec.seed or _random_seed(sandbox)
        data = await images.edit(replace(spec, seed=seed))
        return await _image_response(sandbox, spec.prompt, data, spec.fmt, seed, as_json)

    @app.get("/v2beta/results/{job_id}")
    async def result(job_id: str, request: Request) -> Response:
        return await _result(sandbox, job_id, _authorise(request))

    # The path the creative upscale's results had before /v2beta/results, still served.
    @app.get("/v2beta/stable-image/upscale/creative/result/{job_id}")
    async def legacy_result(job_id: str, request: Request) -> Response:
        return await _result(sandbox, job_id, _authorise(request))

    return app


def _authorise(request: Request) -> bool:
    """Checks the key as the API does; True when the caller wants JSON back."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.startswith("sk-") or len(key) < 4:
        raise Refused(error(401, "unauthorized", "authorization: invalid or missing header value"))
    accept = request.headers.get("accept", "image/*")
    if "application/json" in accept:
        return True
    if "image/" in accept or "*/*" in accept:
        return False
    raise Refused(error(400, "bad_request", "accept: must be image/* or application/json"))


async def _admit(sandbox: Sandbox, request: Request, prompt: str | None) -> Decision:
    """Counts a valid, paid submission (and, for a test to see which endpoint was
    called, one per path) and applies the faults chosen for it."""
    sandbox.count("submissions")
    sandbox.count(request.url.path.removeprefix("/v2beta/stable-image/"))
    decision = sandbox.decide(prompt)
    if decision.timeout:
        raise Refused(await hang(request, sandbox))
    await sandbox.delay(decision)
    if decision.status is not None:
        name = _ERROR_NAMES.get(decision.status, "error")
        message = _ERROR_MESSAGES.get(decision.status, f"injected HTTP {decision.status}")
        body = {"id": uuid.uuid4().hex, "name": name, "errors": [message]}
        raise Refused(error_response(decision, body))
    if decision.malformed:
        raise Refused(malformed_response())
    if decision.moderated:
        raise Refused(error(403, "content_moderation", _MODERATION_MESSAGE))
    return decision


def _random_seed(sandbox: Sandbox) -> int:
    # Seed 0 asks the API to choose; the answer reports the seed it used.
    return sandbox.rng.randint(1, 4_294_967_294)


async def _image_response(
    sandbox: Sandbox, prompt: str, data: bytes, fmt: OutputFormat, seed: int, as_json: bool
) -> Response:
    filtered = bool(_FILTERED.search(prompt))
    if filtered:
        data = await images.blur(data, fmt)
    sandbox.count("images")
    reason = "CONTENT_FILTERED" if filtered else "SUCCESS"
    headers = {"x-request-id": uuid.uuid4().hex}
    if as_json:
        body = {"image": base64.b64encode(data).decode(), "finish_reason": reason, "seed": seed}
        media_type = f"application/json; type={fmt.content_type}"
        return JSONResponse(body, headers=headers, media_type=media_type)
    headers |= {"finish-reason": reason, "seed": str(seed)}
    return Response(data, media_type=fmt.content_type, headers=headers)


async def _start_creative(sandbox: Sandbox, request: Request, form: Form) -> Response:
    spec = creative_spec(form)
    decision = await _admit(sandbox, request, spec.prompt)
    job_id = secrets.token_hex(32)
    sandbox.jobs[job_id] = {
        "spec": spec,
        "decision": decision,
        "seed": spec.seed or _random_seed(sandbox),
        "started": time.monotonic(),
        "duration_s": sandbox.faults.job_duration_ms / 1000,
        "image": None,
    }
    return JSONResponse({"id": job_id}, headers={"x-request-id": uuid.uuid4().hex})


async def _result(sandbox: Sandbox, job_id: str, as_json: bool) -> Response:
    sandbox.count("polls")
    await sandbox.delay(sandbox.decide(None, submission=False))
    job = sandbox.jobs.get(job_id)
    gone = error(404, "not_found", f"id: no result found for {job_id}; results are kept 24 hours")
    if job is None:
        return gone
    elapsed = time.monotonic() - job["started"]
    if elapsed < job["duration_s"]:
        return JSONResponse({"id": job_id, "status": "in-progress"}, 202)
    decision: Decision = job["decision"]
    if decision.expired or elapsed > RESULT_TTL_S:
        return gone
    if decision.fail_job:
        return error(500, "internal_error", _ERROR_MESSAGES[500])
    spec: Upscale = job["spec"]
    if job["image"] is None:
        job["image"] = await images.upscale(spec)
    prompt = spec.prompt or ""
    return await _image_response(sandbox, prompt, job["image"], spec.fmt, job["seed"], as_json)
