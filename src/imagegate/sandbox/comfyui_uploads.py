"""The ComfyUI emulator's ``POST /upload/image``: a multipart form with the file in
``image`` and optional ``type`` (``input``, the default, ``temp`` or ``output``),
``subfolder`` and ``overwrite``; the answer ``{name, subfolder, type}``. As ComfyUI
does, a name already taken (without ``overwrite``) is stored as ``name (1).ext``, and
the file is kept as sent (it is read when a LoadImage runs). The body is capped at
ComfyUI's default ``--max-upload-size`` (100 MB): larger is a 413. Injected faults apply
to uploads too (``uploads`` counts them in the stats)."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from imagegate.sandbox.comfyui_queue import ComfySandbox

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
_TYPES = ("input", "temp", "output")


def add_upload_routes(router: APIRouter, sandbox: ComfySandbox) -> None:
    @router.post("/upload/image")
    async def upload_image(request: Request) -> Response:
        sandbox.count("uploads")
        decision = sandbox.decide(None)
        if decision.status is not None:
            text = f"{decision.status}: Server got itself in trouble"
            return PlainTextResponse(text, status_code=decision.status)
        body = await _body(request)
        if body is None:
            return PlainTextResponse("413: Request Entity Too Large", status_code=413)
        fields, files = _form(request.headers.get("content-type", ""), body)
        image = files.get("image")
        kind = fields.get("type", "input")
        subfolder = fields.get("subfolder", "").strip("/")
        if image is None or kind not in _TYPES or ".." in subfolder:
            return Response(status_code=400)
        filename, data = image
        filename = filename.rsplit("/", 1)[-1]
        if not filename or filename.startswith("."):
            return Response(status_code=400)
        if fields.get("overwrite", "").lower() not in ("true", "1"):
            filename = _free_name(sandbox, kind, subfolder, filename)
        sandbox.files[kind, subfolder, filename] = data
        return JSONResponse({"name": filename, "subfolder": subfolder, "type": kind})


async def _body(request: Request) -> bytes | None:
    """The body, or ``None`` past the cap (read no further than that)."""
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _free_name(sandbox: ComfySandbox, kind: str, subfolder: str, filename: str) -> str:
    stem, dot, extension = filename.rpartition(".")
    stem, extension = (stem, f".{extension}") if dot else (filename, "")
    name, number = filename, 1
    while (kind, subfolder, name) in sandbox.files:
        name, number = f"{stem} ({number}){extension}", number + 1
    return name


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart form's fields and files, parsed with the standard library's MIME
    parser; anything else is an empty form."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not content_type.startswith("multipart/form-data"):
        return fields, files
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files
