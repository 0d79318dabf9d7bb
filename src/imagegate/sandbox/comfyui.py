"""An emulator of ComfyUI's server API: ``POST /prompt`` queues a node graph, one
prompt runs at a time, progress goes out over ``/ws?clientId=…`` with ComfyUI's own
message sequence, results are read from ``/history/{prompt_id}`` and fetched from
``/view``. Every route is served under ``/api`` too, as the real server does.

ComfyUI has no authentication and no moderation. The emulator can stand in for an
authenticating reverse proxy (``POST /_sandbox/comfyui/token``: a bearer token is then
required, 401 without it). ``sandbox:moderate`` stands in for a safety-checker node in
the workflow: the prompt fails with ``execution_error`` of type ``…NSFWContentError``.
``sandbox:oom`` makes the sampler run out of GPU memory (``torch.OutOfMemoryError``);
``sandbox:fail`` makes it raise a ``RuntimeError``.

``POST /upload/image`` stores input files (:mod:`comfyui_uploads`); the graph's nodes
run on real pixels (:mod:`comfyui_nodes`): LoadImage reads the uploaded file, the
samplers render, ImagePadForOutpaint pads, ImageScale resizes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from imagegate.sandbox import comfyui_graph as graphs
from imagegate.sandbox.base import (
    HANG_S,
    Decision,
    add_control_routes,
    malformed_response,
)
from imagegate.sandbox.comfyui_queue import ComfySandbox, enqueue, queue_item, run_queue
from imagegate.sandbox.comfyui_uploads import add_upload_routes


def create_app() -> FastAPI:
    sandbox = ComfySandbox("comfyui")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(run_queue(sandbox))
        yield
        worker.cancel()

    app = FastAPI(title="ComfyUI emulator (imagegate sandbox)", lifespan=lifespan)
    add_control_routes(app, sandbox)
    _add_proxy_auth(app, sandbox)
    router = APIRouter()
    routes = (_prompt_routes, _queue_routes, _history_routes, _file_routes, _socket_route)
    for add in (*routes, add_upload_routes):
        add(router, sandbox)
    app.include_router(router)
    app.include_router(router, prefix="/api")
    return app


def _add_proxy_auth(app: FastAPI, sandbox: ComfySandbox) -> None:
    @app.post("/_sandbox/comfyui/token")
    async def set_token(body: dict[str, str | None]) -> dict[str, bool]:
        sandbox.token = body.get("token")
        return {"auth_required": sandbox.token is not None}

    @app.middleware("http")
    async def bearer(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/_sandbox") or _authorized(sandbox, request.headers):
            response: Response = await call_next(request)
            return response
        return PlainTextResponse(
            "401: Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )


def _has_input(sandbox: ComfySandbox, name: str) -> bool:
    subfolder, _, filename = name.rpartition("/")
    return ("input", subfolder, filename) in sandbox.files


def _authorized(sandbox: ComfySandbox, headers: Any) -> bool:
    return sandbox.token is None or headers.get("authorization") == f"Bearer {sandbox.token}"


def _prompt_routes(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.post("/prompt")
    async def post_prompt(request: Request) -> Response:
        body = await _json_or_empty(request)
        graph = body.get("prompt")
        decision = sandbox.decide(graphs.prompt_text(graph))
        if decision.timeout:
            await _hang(request)
        await sandbox.delay(replace(decision, timeout=False))
        if decision.status is not None:
            return _http_error(decision)
        if decision.malformed:
            return malformed_response()
        if graph is None:
            no_prompt = graphs.error("no_prompt", "No prompt provided", "No prompt provided")
            return JSONResponse({"error": no_prompt, "node_errors": {}}, status_code=400)
        problem, node_errors, outputs = graphs.validate(graph, partial(_has_input, sandbox))
        if problem is not None:
            return JSONResponse({"error": problem, "node_errors": node_errors}, status_code=400)
        return JSONResponse(await enqueue(sandbox, body, graph, outputs, decision))

    @router.get("/prompt")
    async def get_prompt() -> dict[str, Any]:
        return sandbox.queue_info()

    @router.post("/interrupt")
    async def interrupt(request: Request) -> Response:
        wanted = (await _json_or_empty(request)).get("prompt_id")
        if sandbox.running is not None and wanted in (None, sandbox.running):
            sandbox.interrupted = True
        return Response(status_code=200)


def _queue_routes(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.get("/queue")
    async def get_queue() -> dict[str, Any]:
        sandbox.count("polls")
        jobs = sorted(sandbox.jobs.values(), key=lambda job: job["number"])
        return {
            "queue_running": [queue_item(j) for j in jobs if j["state"] == "running"],
            "queue_pending": [queue_item(j) for j in jobs if j["state"] == "pending"],
        }

    @router.post("/queue")
    async def post_queue(body: dict[str, Any]) -> Response:
        doomed = [pid for pid, job in sandbox.jobs.items() if job["state"] == "pending"]
        if not body.get("clear"):
            doomed = [pid for pid in doomed if pid in body.get("delete", [])]
        for prompt_id in doomed:
            del sandbox.jobs[prompt_id]
        await sandbox.status()
        return Response(status_code=200)


def _history_routes(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.get("/history")
    async def get_history(max_items: int | None = None) -> dict[str, Any]:
        items = list(sandbox.history.items())
        return dict(items[-max_items:] if max_items else items)

    @router.get("/history/{prompt_id}")
    async def get_history_item(prompt_id: str) -> dict[str, Any]:
        sandbox.count("polls")
        entry = sandbox.history.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    @router.post("/history")
    async def post_history(body: dict[str, Any]) -> Response:
        if body.get("clear"):
            sandbox.history.clear()
        for prompt_id in body.get("delete", []):
            sandbox.history.pop(prompt_id, None)
        return Response(status_code=200)


def _file_routes(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.get("/view")
    async def view(
        filename: str, subfolder: str = "", kind: str = Query("output", alias="type")
    ) -> Response:
        if not filename or filename.startswith("/") or ".." in filename:
            return Response(status_code=400)
        data = sandbox.files.get((kind, subfolder, filename))
        if data is None:
            return Response(status_code=404)
        headers = {"Content-Disposition": f'filename="{filename}"'}
        return Response(data, media_type="image/png", headers=headers)

    @router.get("/models")
    async def model_types() -> list[str]:
        return ["checkpoints", "loras", "vae"]

    @router.get("/models/{folder}")
    async def models(folder: str) -> Response:
        found = {"checkpoints": list(graphs.CHECKPOINTS), "loras": [], "vae": []}.get(folder)
        return JSONResponse(found) if found is not None else Response(status_code=404)

    @router.get("/system_stats")
    async def system_stats() -> dict[str, Any]:
        return {
            "system": {"os": "posix", "comfyui_version": "emulated", "python_version": "3.11"},
            "devices": [{"name": "sandbox", "type": "cpu", "vram_total": 0, "vram_free": 0}],
        }


def _socket_route(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.websocket("/ws")
    async def socket(websocket: WebSocket, clientId: str = "") -> None:
        if not _authorized(sandbox, websocket.headers):
            await websocket.close(code=1008)  # before accept: the handshake is refused
            return
        await websocket.accept()
        sid = clientId or uuid.uuid4().hex
        sandbox.sockets[sid] = websocket  # a reconnecting client replaces its old socket
        try:
            await sandbox.send("status", {"status": sandbox.queue_info(), "sid": sid}, sid)
            while True:
                await websocket.receive_text()  # clients may send feature flags; ignored
        except WebSocketDisconnect:
            pass
        finally:
            if sandbox.sockets.get(sid) is websocket:
                del sandbox.sockets[sid]


async def _json_or_empty(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _hang(request: Request) -> None:
    """Never answer, until the client gives up: a handler still sleeping would hold up
    the server's shutdown."""

    async def disconnected() -> None:
        # A blocking receive, not Request.is_disconnected(): under the middleware's
        # wrapped receive, that instant check never sees the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    with suppress(TimeoutError):
        async with asyncio.timeout(HANG_S):  # not wait_for: see comfyui_socket.next_message
            await disconnected()


def _http_error(decision: Decision) -> Response:
    """An injected status, worded as aiohttp (or a proxy in front) words it."""
    assert decision.status is not None
    headers = {"Retry-After": str(decision.retry_after_s)} if decision.retry_after_s else {}
    text = {429: "429: Too Many Requests", 503: "503: Service Unavailable"}.get(
        decision.status, f"{decision.status}: Server got itself in trouble"
    )
    return PlainTextResponse(text, status_code=decision.status, headers=headers)
