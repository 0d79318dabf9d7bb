"""Upload use cases: take an image (bytes, or an https URL fetched through the SSRF
guard), clean it (imaging.intake), store it and record it; read, list, delete; and
resolve the image references jobs name (``init_image``, masks, blend sources, style
references), which are an upload id or a URL.

Nothing is stored on any error: the file is written only once the image is clean,
and removed again if its row cannot be recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from imagegate.db import uploads_repo
from imagegate.domain.ids import new_id, well_formed
from imagegate.domain.records import Principal, UploadRecord
from imagegate.errors import (
    ImageTooLarge,
    InvalidRequest,
    UnsafeUrl,
    UnsupportedImage,
    UploadNotFound,
    UrlFetchFailed,
)
from imagegate.imaging.intake import CleanImage, IntakeLimits, intake
from imagegate.net.ssrf import UrlGuard, UrlPolicy
from imagegate.observability.logging import get_logger
from imagegate.providers import http as provider_http
from imagegate.providers.errors import (
    BadResponseError,
    ProviderError,
    ResponseTooLargeError,
    UnsafeResultUrlError,
)
from imagegate.runtime import Runtime
from imagegate.services.keys import require_writer
from imagegate.services.pagination import decode_cursor, encode_cursor
from imagegate.settings import Settings
from imagegate.storage.base import upload_key

log = get_logger("imagegate.uploads")

PREFIX = "upl"


@dataclass(frozen=True)
class Page:
    uploads: list[UploadRecord]
    next_cursor: str | None


def limits(settings: Settings) -> IntakeLimits:
    return IntakeLimits(settings.upload_max_bytes, settings.upload_max_pixels)


async def create_from_bytes(
    rt: Runtime,
    principal: Principal,
    data: bytes,
    declared_type: str | None,
    *,
    field: str = "file",
    source_url: str | None = None,
) -> UploadRecord:
    """Clean ``data`` and keep it as a new upload of the caller's workspace."""
    require_writer(principal)
    async with rt.decodes:  # each holds a decoded bitmap: bounded per process
        clean = await asyncio.to_thread(intake, data, declared_type, limits(rt.settings), field)
    return await _store(rt, principal, clean, source_url)


class Provisional:
    """The uploads one request stores to make a job of them (the facades' base64 and
    multipart images): removed again if the block fails before the job exists (a
    refused prompt, a rate limit, no credits), so a refused request leaves no file
    and no upload behind. Use as ``async with Provisional(rt, principal) as made:``."""

    def __init__(self, rt: Runtime, principal: Principal) -> None:
        self._rt, self._principal = rt, principal
        self._made: list[UploadRecord] = []

    async def __aenter__(self) -> Provisional:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is None:
            return
        for upload in self._made:
            try:
                await delete(self._rt, self._principal, upload.id)
            except Exception as failure:  # the request's own error is the one to answer
                log.warning("upload.cleanup_failed", upload_id=upload.id, error=repr(failure))

    async def from_bytes(
        self, data: bytes, declared_type: str | None, *, field: str
    ) -> UploadRecord:
        upload = await create_from_bytes(self._rt, self._principal, data, declared_type,
                                         field=field)  # fmt: skip
        self._made.append(upload)
        return upload


async def create_from_url(
    rt: Runtime, principal: Principal, url: str, *, field: str = "url"
) -> UploadRecord:
    """Fetch ``url`` (https, public addresses only, each redirect checked again, the
    body streamed under the upload byte cap and the fetch timeout) and keep the image
    as a new upload. The type the server declares is not trusted: the bytes decide."""
    require_writer(principal)
    data = await _fetch(rt.settings, url, field)
    return await create_from_bytes(rt, principal, data, None, field=field, source_url=url)


async def get(
    rt: Runtime, principal: Principal, upload_id: str, *, field: str | None = None
) -> UploadRecord:
    if well_formed(upload_id, PREFIX):
        async with rt.db.connect() as conn:
            found = await uploads_repo.get_upload(conn, principal.workspace_id, upload_id)
        if found is not None:
            return found
    where = f"{field}: " if field else ""
    raise UploadNotFound(f"{where}no upload {upload_id!r} in your workspace", field=field)


async def list_uploads(
    rt: Runtime, principal: Principal, *, cursor: str | None, limit: int
) -> Page:
    """The workspace's uploads, newest first, ``limit`` at a time."""
    before = decode_cursor(cursor, PREFIX) if cursor else None
    async with rt.db.connect() as conn:
        found = await uploads_repo.list_uploads(
            conn, principal.workspace_id, before_id=before, limit=limit + 1
        )
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor(page[-1].id) if more and page else None)


async def delete(rt: Runtime, principal: Principal, upload_id: str) -> None:
    """Forget the upload, then remove its file. Jobs that already read it keep their
    results; a queued job that names it fails its next attempt (input missing)."""
    upload = await get(rt, principal, upload_id)
    async with rt.db.begin() as conn:
        await uploads_repo.delete_upload(conn, principal.workspace_id, upload.id)
    await rt.storage.delete(upload.storage_key)


async def resolve_image_ref(
    rt: Runtime, principal: Principal, ref: str, field: str
) -> UploadRecord:
    """The upload an image reference in a job body names: an upload id of the
    caller's workspace, or an https URL, fetched into a new upload. Errors name
    ``field``."""
    if ref.startswith(PREFIX + "_"):
        return await get(rt, principal, ref, field=field)
    if "://" in ref:
        return await create_from_url(rt, principal, ref, field=field)
    raise InvalidRequest(f"{field}: expected an upload id (upl_...) or an https URL", field=field)


async def _store(
    rt: Runtime, principal: Principal, clean: CleanImage, source_url: str | None
) -> UploadRecord:
    upload_id = new_id(PREFIX)
    upload = UploadRecord(
        id=upload_id,
        workspace_id=principal.workspace_id,
        storage_key=upload_key(principal.workspace_id, upload_id, clean.content_type),
        content_type=clean.content_type,
        width=clean.width,
        height=clean.height,
        size_bytes=len(clean.data),
        sha256=clean.sha256,
        created_at=rt.clock.now(),
        source_url=source_url,
    )
    await rt.storage.put(upload.storage_key, clean.data, clean.content_type)
    try:
        async with rt.db.begin() as conn:
            await uploads_repo.insert_upload(conn, upload)
    except BaseException:
        # Shielded: a cancelled request must still not leave a file no row names.
        await asyncio.shield(rt.storage.delete(upload.storage_key))
        raise
    log.info("upload.created", upload_id=upload_id, workspace_id=principal.workspace_id,
             size_bytes=upload.size_bytes, from_url=source_url is not None)  # fmt: skip
    return upload


async def _fetch(settings: Settings, url: str, field: str) -> bytes:
    """The body at ``url``, through the provider download path (providers.http):
    the guarded transport, redirects followed by hand and each hop checked, a byte
    cap while streaming and a deadline on the whole fetch. Its provider errors are
    translated to the caller's errors here."""
    policy = UrlPolicy(settings.ssrf_networks, False, settings.ssrf_resolve_timeout_s)
    await UrlGuard(policy).check(url, field)  # refused here, naming the field
    reads = provider_http.ReadLimits(
        max_image_bytes=settings.upload_max_bytes,
        download_timeout_s=settings.upload_fetch_timeout_s,
        allowlist=settings.ssrf_networks,
        resolve_timeout_s=settings.ssrf_resolve_timeout_s,
    )
    config = provider_http.ProviderConfig(
        name="uploads", type="url", timeout_s=settings.upload_fetch_timeout_s, reads=reads
    )
    async with provider_http.make_download_client(config, max_connections=4) as client:
        try:
            return await provider_http.fetch_image(client, url, field)
        except UnsafeResultUrlError as error:
            cause = error.__cause__
            why = cause.detail if isinstance(cause, UnsafeUrl) else str(error)
            raise UnsafeUrl(f"{field}: a redirect was refused: {why}", field=field) from None
        except ResponseTooLargeError:
            cap = settings.upload_max_bytes
            raise ImageTooLarge(
                f"{field}: the answer is over the {cap}-byte upload limit", field=field
            ) from None
        except BadResponseError as error:
            raise UnsupportedImage(str(error), field=field) from None
        except ProviderError as error:
            raise UrlFetchFailed(str(error), field=field) from None
