"""ComfyUI: a workflow template filled in per request, queued with ``POST /prompt``,
followed over the ``/ws`` socket (polling ``/history/{prompt_id}`` when the socket is
down or silent), and its images fetched from ``/view``.

ComfyUI has no authentication; ``api_key``, when set, is sent as a bearer token for a
proxy in front of it. It has no moderation either: a workflow may contain a safety
checker node, and an ``execution_error`` whose exception type matches
``options.moderation_exceptions`` is read as a moderation verdict.

The workflow actions run a template each (:mod:`comfyui_actions`), their input images
uploaded with ``POST /upload/image`` just before the prompt is queued."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import urlencode

from pydantic import Field, field_validator
from websockets.asyncio.client import ClientConnection, connect

from imagegate.domain.params import STYLES, Mode
from imagegate.providers import comfyui_actions as actions
from imagegate.providers.base import (
    Action,
    Capabilities,
    Correlation,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    standard_credits,
)
from imagegate.providers.comfyui_socket import about, finished, next_message
from imagegate.providers.comfyui_workflows import Filled, Template, TemplateError
from imagegate.providers.config import ConfigError
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from imagegate.providers.fitting import fit
from imagegate.providers.http import (
    ProviderConfig,
    ResultExpiredError,
    call,
    decode_image,
    error_for,
    fetch_image,
    json_body,
    make_client,
    make_download_client,
    snippet,
)
from imagegate.providers.options import HttpOptions
from imagegate.providers.progress import PartsProgress

# ComfyUI's latents are 1/8 of the image; EmptyLatentImage takes 16..16384 in steps of 8.
_SIZE_STEP, _MIN_SIDE, _MAX_SIDE = 8, 16, 16384
_DEFAULT_MODERATION = r"(?i)nsfw|safety|content.?(filter|policy|moderat)"
_OOM = re.compile(r"(?i)OutOfMemory|out of memory")
_WS_MAX_BYTES = 16 * 1024 * 1024  # preview frames arrive as binary messages; we skip them

# Style presets, as words Stable Diffusion checkpoints respond to (appended to the prompt).
STYLE_WORDS = {
    "studio": "studio lighting, clean backdrop, professional photo",
    "cinematic": "cinematic film still, dramatic lighting, shallow depth of field",
    "photographic": "photograph, natural light, high detail",
    "anime": "anime style, cel shading, vibrant colours",
    "watercolor": "watercolor painting, soft washes, paper texture",
    "neon": "neon lights, synthwave, glowing colours at night",
    "vintage": "vintage photo, faded film, grain",
    "minimal": "minimalist, simple shapes, negative space",
    "fantasy": "fantasy art, epic, detailed illustration",
    "noir": "film noir, black and white, hard shadows",
}


def style_prompt(prompt: str, style: str) -> str:
    """The prompt with the style's words appended (``none`` and unknown styles add none)."""
    words = STYLE_WORDS.get(style)
    return f"{prompt}, {words}" if words else prompt


def snap_side(value: int) -> int:
    """The nearest side ComfyUI's latent accepts: a multiple of 8 within 16..16384."""
    return min(_MAX_SIDE, max(_MIN_SIDE, round(value / _SIZE_STEP) * _SIZE_STEP))


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a ComfyUI provider (docs/providers/comfyui.md)."""

    workflow: str | None = None  # an API-format graph; unset: the packaged txt2img.json
    # Per action (and upscale_creative): a template path, "" for none; unset: packaged.
    workflows: dict[str, str] = Field(default_factory=dict)
    nodes: dict[str, str] = Field(default_factory=dict)  # role → node id, over titles
    steps: int | None = Field(default=None, ge=1)  # unset: the template's
    draft_steps: int | None = Field(default=None, ge=1)  # unset: half of steps
    max_images: int = Field(default=4, ge=1)
    moderation_exceptions: str = _DEFAULT_MODERATION
    websocket: bool = True  # false: poll /history only (a proxy that drops WebSockets)

    @field_validator("moderation_exceptions")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from error
        return value


class ComfyUIProvider:
    """One ComfyUI server (``base_url``) and one workflow template."""

    def __init__(self, config: ProviderConfig) -> None:
        options = Options.of(config.name, config.options)
        self.name = config.name
        self._config = config
        self._options = options
        self._template = Template.load(options.workflow, options.nodes or None)
        self._actions = actions.load_templates(options.workflows)
        self._models = config.models or (self._template.checkpoint or "default",)
        self._moderation = re.compile(options.moderation_exceptions)
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._headers = headers
        self._client = make_client(config, headers, max_connections=options.max_connections)
        # /view goes through the SSRF guard like every result download (the server's
        # own base_url is trusted); the headers are passed per request, so a redirect
        # elsewhere does not carry them.
        self._downloads = make_download_client(config, max_connections=options.max_connections)
        base = (config.base_url or "").rstrip("/")
        self._ws_url = re.sub(r"^http", "ws", base) + "/ws"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=self._models,
            max_images=self._options.max_images,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=(Action.IMAGINE, *self._offered()),
            seeds=True,
            negative_prompt=self._template.has_negative,
            max_pixels=_MAX_SIDE * _MAX_SIDE,
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    def _offered(self) -> tuple[Action, ...]:
        return tuple(a for a in actions.ACTIONS if str(a) in self._actions)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._downloads.aclose()

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        filled, uploads = self._fill(request)
        prompt_id = correlation.existing
        entry, alive = await self._lookup(prompt_id) if prompt_id else (None, False)
        if not alive:
            prompt_id = None  # ComfyUI keeps queue and history in memory: a restart forgets
        if prompt_id is None:
            # The socket's client id doubles as the prompt id we ask for, so that a later
            # attempt resuming this prompt can listen on the same client id.
            wanted = str(uuid.uuid4())
            await actions.upload_all(self._client, uploads, filled.graph)
            async with self._socket(wanted) as socket:
                prompt_id = await self._submit(filled.graph, wanted)
                await correlation.record(prompt_id)
                entry = await self._wait(prompt_id, socket, len(filled.save_nodes), progress)
        elif entry is None:
            async with self._socket(prompt_id) as socket:
                entry = await self._wait(prompt_id, socket, len(filled.save_nodes), progress)
        images = await self._collect(prompt_id, entry, filled, request)
        if request.action is not Action.IMAGINE:
            images = tuple(fit(image, request.width, request.height) for image in images)
        await progress(1.0)
        return GenerationResult(images=images, provider_job_id=prompt_id)

    def _fill(self, request: GenerationRequest) -> tuple[Filled, list[actions.Upload]]:
        if request.action is not Action.IMAGINE and request.action not in self._offered():
            raise PermanentProviderError(
                f"{self.name}: no workflow for {request.action} (options.workflows)"
            )
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: unknown model {request.model!r}")
        limit = self.capabilities().max_images
        if not 1 <= len(request.seeds) <= limit:
            raise PermanentProviderError(f"{self.name}: 1 to {limit} images per job")
        options = self._options
        template = self._template
        if request.action is not Action.IMAGINE:
            kind = actions.template_kind(request)
            template = self._actions.get(kind) or self._actions["upscale"]
        steps = options.steps if options.steps is not None else template.steps
        if request.mode is Mode.DRAFT and steps is not None:
            steps = options.draft_steps or max(1, steps // 2)
        checkpoint = request.model if template.checkpoint and request.model != "default" else None
        if request.action is not Action.IMAGINE:
            prompt = style_prompt(request.prompt, request.style)
            return actions.fill(
                template, request, prompt=prompt, steps=steps, checkpoint=checkpoint
            )
        return template.fill(
            prompt=style_prompt(request.prompt, request.style),
            negative=request.negative_prompt,
            width=snap_side(request.width),
            height=snap_side(request.height),
            seeds=request.seeds,
            steps=steps,
            checkpoint=checkpoint,
        ), []

    async def _submit(self, graph: dict[str, Any], wanted: str) -> str:
        body = {"prompt": graph, "client_id": wanted, "prompt_id": wanted}
        response = await call(self._client, "POST", "/prompt", "comfyui submit", json=body)
        if response.status_code == 400:
            raise PermanentProviderError(f"comfyui rejected the workflow: {_invalid(response)}")
        if response.status_code != 200:
            raise error_for(response, "comfyui submit")
        prompt_id = _field(json_body(response, "comfyui submit"), "prompt_id")
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ProviderError(f"comfyui submit: no prompt_id in {snippet(response)!r}")
        return prompt_id

    @asynccontextmanager
    async def _socket(self, client_id: str) -> AsyncIterator[ClientConnection | None]:
        """The progress socket, or ``None`` if it cannot be opened (we poll instead)."""
        socket = None
        # ``websocket = false``: e.g. a proxy in front that does not pass WebSockets.
        if self._options.websocket:
            url = f"{self._ws_url}?{urlencode({'clientId': client_id})}"
            with suppress(Exception):  # refused, handshake rejected, no such route
                socket = await connect(
                    url, additional_headers=self._headers, open_timeout=10, max_size=_WS_MAX_BYTES
                )
        try:
            yield socket
        finally:
            if socket is not None:
                with suppress(Exception):
                    await socket.close()

    async def _wait(
        self,
        prompt_id: str,
        socket: ClientConnection | None,
        units: int,
        progress: ProgressCallback,
    ) -> dict[str, Any]:
        """The history entry of the finished prompt. The socket's messages drive progress
        and say when to look; after ``poll_interval_s`` without news of the prompt (a
        socket that is down, or a prompt submitted by another client id) we look anyway."""
        interval, deadline = self._config.poll_interval_s, time.monotonic() + self._config.timeout_s
        tracker = PartsProgress(progress, units, ceiling=0.99)
        news_at = time.monotonic()
        while True:
            if time.monotonic() > deadline:
                raise RetryableProviderError(
                    f"comfyui: prompt not finished after {self._config.timeout_s:g} s",
                    provider_job_id=prompt_id,
                    resumable=True,
                )
            wait = max(0.0, news_at + interval - time.monotonic())
            message, socket = await next_message(socket, wait)
            data = message.get("data") if message is not None else None
            if message is not None and isinstance(data, dict) and about(message, data, prompt_id):
                news_at = time.monotonic()
                if message.get("type") == "progress" and (step := _step(data)) is not None:
                    await tracker.update(str(data.get("node")), step)
                if not finished(message, data):
                    continue
            elif time.monotonic() - news_at < interval:
                continue
            news_at = time.monotonic()
            entry, alive = await self._lookup(prompt_id)
            if entry is not None:
                return entry
            if not alive:
                raise RetryableProviderError(
                    "comfyui: the prompt is neither queued nor in the history "
                    "(was the server restarted?)",
                    provider_job_id=prompt_id,
                )

    async def _lookup(self, prompt_id: str) -> tuple[dict[str, Any] | None, bool]:
        """The prompt's history entry once it has run, and whether the server has the
        prompt at all. The history is read again after the queue: a prompt that
        finishes between the two reads is in neither."""
        entry = await self._history(prompt_id)
        if entry is None and not await self._queued(prompt_id):
            entry = await self._history(prompt_id)
            return entry, entry is not None
        return entry, True

    async def _history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry once it has run, else ``None``."""
        response = await self._poll(f"/history/{prompt_id}", prompt_id)
        entry = response.get(prompt_id)
        if entry is not None and not isinstance(entry, dict):
            raise ProviderError(
                "comfyui history: malformed entry", provider_job_id=prompt_id, resumable=True
            )
        return entry

    async def _queued(self, prompt_id: str) -> bool:
        """Whether the prompt is running or waiting in the server's queue."""
        queue = await self._poll("/queue", prompt_id)
        items = [*_list(queue.get("queue_running")), *_list(queue.get("queue_pending"))]
        return any(
            isinstance(item, list) and len(item) > 1 and item[1] == prompt_id for item in items
        )

    async def _poll(self, path: str, prompt_id: str) -> dict[str, Any]:
        """A read about a live prompt: any failure leaves the prompt for the next attempt
        to pick up again (resumable)."""
        what = f"comfyui {path.split('/')[1]}"
        try:
            response = await call(self._client, "GET", path, what, provider_job_id=prompt_id)
            if response.status_code != 200:
                raise error_for(response, what, provider_job_id=prompt_id)
            body = json_body(response, what)
            if not isinstance(body, dict):
                raise ProviderError(f"{what}: expected an object, got {snippet(response)!r}")
        except ProviderError as error:
            error.provider_job_id = prompt_id
            error.resumable = not isinstance(error, PermanentProviderError)
            raise
        return body

    async def _collect(
        self, prompt_id: str, entry: dict[str, Any], filled: Filled, request: GenerationRequest
    ) -> tuple[GeneratedImage, ...]:
        self._raise_for_status(prompt_id, entry)
        outputs = _dict(entry.get("outputs"))
        images = []
        for node, seed in zip(filled.save_nodes, request.seeds, strict=False):
            refs = _list(_dict(outputs.get(node)).get("images"))
            if not refs or not isinstance(refs[0], dict):
                raise ProviderError(
                    f"comfyui: no image from node {node}", provider_job_id=prompt_id
                )
            data = await self._fetch(prompt_id, refs[0])
            # PNG, as SaveImage writes it: the runner converts to the job's format.
            images.append(decode_image(data, seed, "comfyui view"))
        return tuple(images)

    async def _fetch(self, prompt_id: str, ref: dict[str, Any]) -> bytes:
        query = {k: str(ref.get(k, "")) for k in ("filename", "subfolder", "type")}
        try:
            return await fetch_image(
                self._downloads, f"/view?{urlencode(query)}", "comfyui view",
                provider_job_id=prompt_id, headers=self._headers,
            )  # fmt: skip
        except ProviderError as error:
            # The prompt is done; unless its files are gone, the next attempt can fetch them.
            error.resumable = not isinstance(error, ResultExpiredError | PermanentProviderError)
            raise

    def _raise_for_status(self, prompt_id: str, entry: dict[str, Any]) -> None:
        status = _dict(entry.get("status"))
        if status.get("status_str", "success") == "success":
            return
        events = {
            str(item[0]): _dict(item[1])
            for item in _list(status.get("messages"))
            if isinstance(item, list) and len(item) == 2
        }
        if "execution_interrupted" in events:
            raise RetryableProviderError(
                "comfyui: the prompt was interrupted", provider_job_id=prompt_id
            )
        failure = _dict(events.get("execution_error"))
        kind, text = (
            str(failure.get("exception_type", "")),
            str(failure.get("exception_message", "")),
        )
        node = f"{failure.get('node_id')} ({failure.get('node_type')})"
        detail = f"comfyui: node {node} raised {kind}: {text.strip()}"
        if self._moderation.search(kind):
            raise ModeratedError(detail, provider_job_id=prompt_id)
        if _OOM.search(kind) or _OOM.search(text):
            raise RetryableProviderError(detail, provider_job_id=prompt_id)
        raise ProviderError(detail, provider_job_id=prompt_id)


def _invalid(response: Any) -> str:
    """ComfyUI's validation failure (``{error, node_errors}``), in one line."""
    try:
        body = response.json()
    except ValueError:
        return snippet(response)
    error = _dict(body).get("error")
    parts = [str(error.get("message")) if isinstance(error, dict) else str(error)]
    for node, found in _dict(_dict(body).get("node_errors")).items():
        for reason in _list(_dict(found).get("errors")):
            where = f"node {node} ({_dict(found).get('class_type')})"
            parts.append(f"{where}: {_dict(reason).get('message')}: {_dict(reason).get('details')}")
    return "; ".join(parts)


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


# Readers of the server's JSON that take a value of the wrong type as absent: the
# adapter then reports what is missing, instead of failing on the shape.
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def build(config: ProviderConfig) -> ComfyUIProvider:
    """The adapter for a ``type = "comfyui"`` provider table; a workflow template that
    cannot be used stops start-up."""
    try:
        return ComfyUIProvider(config)
    except TemplateError as error:
        raise ConfigError(f"providers.{config.name}: {error}") from error


def _step(data: dict[str, Any]) -> float | None:
    """A sampler node's ``value/max`` from a progress message, if both are numbers."""
    value, maximum = data.get("value"), data.get("max")
    numbers = all(isinstance(n, int | float) and not isinstance(n, bool) for n in (value, maximum))
    return value / maximum if numbers and maximum > 0 else None  # type: ignore[operator]
