"""/api/image/uploads: images a workspace gives imagegate (for img2img, masks, blends,
describe and style references), as a multipart file, base64 JSON or an https URL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.upload_schemas import (
    UploadCreate,
    UploadPublic,
    UploadsPublic,
    request_body_schema,
)
from imagegate.domain.records import Principal
from imagegate.errors import InvalidRequest, UploadNotFound
from imagegate.runtime import Runtime
from imagegate.services import idempotency
from imagegate.services import uploads as service
from imagegate.services.idempotency import Answer
from imagegate.settings import Settings

PATH = "/api/image/uploads"
# Room for the form's part headers or the JSON around the base64 text.
BODY_SLACK_BYTES = 64 * 1024
# A form carries one file; a few small fields beside it are tolerated, never read.
MAX_FORM_FIELDS = 16
MAX_FORM_FIELD_BYTES = 8 * 1024

router = APIRouter(prefix=PATH, tags=["uploads"])

READ_ONE = problems(*AUTHENTICATED, 404)
CREATE = problems(*AUTHENTICATED, *WITH_BODY, 415)
PAGE = problems(*AUTHENTICATED, 400)


def max_body_bytes(settings: Settings) -> int:
    """The body cap of the create route: the largest file, as base64, and some slack."""
    return -(-settings.upload_max_bytes // 3) * 4 + BODY_SLACK_BYTES


@dataclass(frozen=True)
class _Source:
    data: bytes | None = None
    declared_type: str | None = None
    url: str | None = None

    def fingerprint(self) -> str:
        if self.url is not None:
            return f"url:{self.url}"
        digest = hashlib.sha256(self.data or b"").hexdigest()
        return f"sha256:{digest}:{self.declared_type or ''}"


def _media_type(content_type: str) -> str:
    """A Content-Type without its parameters, lower case."""
    return content_type.split(";")[0].strip().lower()


async def _source(request: Request, settings: Settings) -> _Source:
    """The image the body carries: a form's ``file`` part, or a JSON body's ``data``
    (base64) or ``url``."""
    kind = _media_type(request.headers.get("content-type", ""))
    if kind == "multipart/form-data":
        return await _form_file(request, settings.upload_max_bytes)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            body = UploadCreate.model_validate_json(await request.body())
            return _Source(body.decoded()) if body.url is None else _Source(url=body.url)
        except ValidationError as error:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
            ) from None
        except ValueError as error:
            raise InvalidRequest(str(error), field="data") from None
    raise HTTPException(415, "Send multipart/form-data (a `file` part) or application/json.")


async def _form_file(request: Request, max_bytes: int) -> _Source:
    """The form's one ``file`` part, parsed by Starlette with python-multipart.

    Starlette keeps a file part in memory up to 1 MiB and spools the rest to a
    temporary file, which closing the form removes. The part is read up to one byte
    past the upload cap: intake refuses a longer file (``image_too_large``) without
    this route holding more of it."""
    try:
        form = await request.form(
            max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES
        )
    except HTTPException as error:
        # Starlette answers a form it cannot parse, or one past the limits, with a 400.
        raise InvalidRequest(f"body: the multipart form is refused: {error.detail}") from None
    try:
        files = form.getlist("file")
        if not files:
            raise InvalidRequest("file: the form has no `file` part", field="file")
        file = files[0]
        if len(files) > 1 or isinstance(file, str):
            raise InvalidRequest(
                "file: send one `file` part, a file (with a filename)", field="file"
            )
        return _Source(await file.read(max_bytes + 1), file.content_type)
    finally:
        await form.close()


async def _public(rt: Runtime, principal: Principal, answer: Answer) -> JSONResponse:
    """The created upload; a replay shows it as it is now, with a fresh link."""
    if answer.replayed and answer.resource_id:
        try:
            upload = await service.get(rt, principal, answer.resource_id)
        except UploadNotFound:
            pass  # deleted since: the first answer is still what this key answered
        else:
            body = UploadPublic.from_record(upload, rt.storage).model_dump(mode="json")
            answer = Answer(answer.status_code, body, answer.resource_id, replayed=True)
    return respond(answer, {"Location": f"{PATH}/{answer.resource_id}"})


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    operation_id="create_upload",
    responses=CREATE,
    openapi_extra={"requestBody": request_body_schema()},
)
async def create_upload(
    request: Request,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Upload an image: validated, re-encoded without metadata (docs/uploads.md)."""
    source = await _source(request, rt.settings)

    async def create() -> Answer:
        if source.url is not None:
            upload = await service.create_from_url(rt, principal, source.url)
        else:
            data = source.data or b""
            upload = await service.create_from_bytes(rt, principal, data, source.declared_type)
        public = UploadPublic.from_record(upload, rt.storage)
        return Answer(201, public.model_dump(mode="json"), upload.id)

    claim = idempotent(idempotency_key, "create_upload", source=source.fingerprint())
    return await _public(rt, principal, await idempotency.run(rt, principal, claim, create))


@router.get("", response_model=UploadsPublic, operation_id="list_uploads", responses=PAGE)
async def list_uploads(
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> UploadsPublic:
    """Your workspace's uploads, newest first."""
    page = await service.list_uploads(rt, principal, cursor=cursor, limit=limit)
    return UploadsPublic(
        data=[UploadPublic.from_record(u, rt.storage) for u in page.uploads],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.get(
    "/{upload_id}", response_model=UploadPublic, operation_id="get_upload", responses=READ_ONE
)
async def get_upload(upload_id: str, rt: RuntimeDep, principal: PrincipalDep) -> UploadPublic:
    """One upload, with a fresh download link."""
    return UploadPublic.from_record(await service.get(rt, principal, upload_id), rt.storage)


@router.delete("/{upload_id}", status_code=204, operation_id="delete_upload", responses=READ_ONE)
async def delete_upload(upload_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Response:
    """Delete the upload and its file. Jobs that already used it keep their results."""
    await service.delete(rt, principal, upload_id)
    return Response(status_code=204)
