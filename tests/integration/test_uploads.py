"""POST/GET/DELETE /api/image/uploads through a real server on SQLite and PostgreSQL:
multipart, base64 JSON and URL uploads round trip (the signed link downloads and
decodes to the same size); a form's file arrives byte for byte; every hostile input,
malformed forms included, gets a 4xx with its code and leaves nothing behind (no row,
no file); EXIF GPS is gone; workspaces do not see each
other's uploads; retention deletes old uploads with their files."""

from __future__ import annotations

import base64
import io
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin

from imagegate.domain.records import Principal
from imagegate.errors import ImagegateError, InvalidRequest, UnsafeUrl, UploadNotFound
from imagegate.services import retention
from imagegate.services import uploads as service
from imagegate.services.keys import create_key
from tests.support.api import client, fetch_image
from tests.support.images import GPS, encoded, jpeg_with_gps, png_bomb, zip_archive
from tests.support.postgres import fresh_database
from tests.support.runtime import MovableClock, migrated_runtime
from tests.support.server import ServerProcess

MAX_BYTES = 256 * 1024
# The origin images are fetched from: allowlisted, unlike the rest of loopback.
ORIGIN_HOST = "127.0.0.2"

# An origin route answers (status, headers, body); a body that is a callable streams
# chunks until the client goes away.
Route = tuple[int, dict[str, str], bytes]


class Origin:
    """A plain HTTP server on 127.0.0.2 serving the routes a test sets."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()
                    try:
                        for _ in range(10_000):  # bounded: 640 MB if nobody stops reading
                            self.wfile.write(b"\x89PNG" * 16_384)
                    except OSError:
                        pass  # the client hung up, as it should
                    return
                status, headers, body = origin.routes.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((ORIGIN_HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{ORIGIN_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    running = Origin()
    yield running
    running.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def upload_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Uploads capped at 256 KiB; of all private addresses only 127.0.0.2 (the
    origin) may be fetched from."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"uploads-{request.param}"),
            IMAGEGATE_UPLOAD_MAX_BYTES=str(MAX_BYTES),
            IMAGEGATE_UPLOAD_FETCH_TIMEOUT_S="10",
            IMAGEGATE_SSRF_ALLOWLIST=f"{ORIGIN_HOST}/32",
            **database,
        ).start()
        yield proc
        proc.stop()


@pytest.fixture
def api(upload_server: ServerProcess) -> Iterator[httpx.Client]:
    with client(upload_server.url, upload_server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as c:
        yield c


def stored_files(server: ServerProcess) -> set[Path]:
    return set((server.data_dir / "files").glob("*/uploads/*"))


def multipart(api: httpx.Client, data: bytes, content_type: str = "image/png") -> httpx.Response:
    return api.post("/api/image/uploads", files={"file": ("image", data, content_type)})


def raw_form(
    api: httpx.Client,
    body: bytes | Iterator[bytes],
    content_type: str = "multipart/form-data; boundary=x",
) -> httpx.Response:
    return api.post("/api/image/uploads", content=body, headers={"Content-Type": content_type})


def as_base64(api: httpx.Client, data: bytes) -> httpx.Response:
    return api.post("/api/image/uploads", json={"data": base64.b64encode(data).decode()})


def from_url(api: httpx.Client, url: str) -> httpx.Response:
    return api.post("/api/image/uploads", json={"url": url})


def downloaded(upload: dict[str, Any]) -> Image.Image:
    image = fetch_image(upload["url"])
    assert image.size == (upload["width"], upload["height"])
    return image


# Round trips


def test_a_multipart_upload_round_trips(api: httpx.Client, upload_server: ServerProcess) -> None:
    created = multipart(api, encoded("PNG", (120, 80)))
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["upload_id"].startswith("upl_") and upload["content_type"] == "image/png"
    assert (upload["width"], upload["height"]) == (120, 80)
    assert created.headers["location"] == f"/api/image/uploads/{upload['upload_id']}"
    with downloaded(upload) as image:
        assert image.format == "PNG"
    assert api.get(f"/api/image/uploads/{upload['upload_id']}").json()["sha256"] == upload["sha256"]
    assert [u["upload_id"] for u in api.get("/api/image/uploads").json()["data"]] == [
        upload["upload_id"]
    ]


def test_a_form_file_arrives_byte_for_byte(api: httpx.Client) -> None:
    # Noise does not compress, and the text chunk is full of near misses of the form's
    # delimiter: one byte lost, added or changed and the PNG's CRCs or pixels differ.
    noise = Image.frombytes("RGB", (160, 120), random.Random(7).randbytes(160 * 120 * 3))
    info = PngImagePlugin.PngInfo()
    info.add_text("note", "\r\n--\r\n\r\n\n\r\n--edg\n--edge\r\n\r--edge--\r\n-edge" * 50)
    png = io.BytesIO()
    noise.save(png, format="PNG", pnginfo=info)
    created = api.post(
        "/api/image/uploads",
        files={"file": ("noise.png", png.getvalue(), "image/png")},
        headers={"Content-Type": "multipart/form-data; boundary=edge"},
    )
    assert created.status_code == 201, created.text
    with downloaded(created.json()) as image:
        assert image.convert("RGB").tobytes() == noise.tobytes()


def test_a_base64_upload_round_trips(api: httpx.Client) -> None:
    created = as_base64(api, encoded("JPEG", (90, 70)))
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["content_type"] == "image/jpeg"
    with downloaded(upload) as image:
        assert image.format == "JPEG" and image.size == (90, 70)


def test_a_url_upload_round_trips(api: httpx.Client, origin: Origin) -> None:
    origin.routes["/cat.webp"] = (200, {"Content-Type": "image/webp"}, encoded("WEBP", (50, 40)))
    origin.routes["/moved"] = (302, {"Location": "/cat.webp"}, b"")
    created = from_url(api, f"{origin.url}/moved")
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["source_url"] == f"{origin.url}/moved" and upload["content_type"] == "image/png"
    with downloaded(upload) as image:
        assert image.size == (50, 40)


def test_exif_gps_is_gone_after_upload(api: httpx.Client) -> None:
    source = jpeg_with_gps((64, 32), orientation=6)
    with Image.open(io.BytesIO(source)) as original:
        assert original.getexif().get_ifd(GPS)  # the input really carries a position
    upload = multipart(api, source, "image/jpeg").json()
    assert (upload["width"], upload["height"]) == (32, 64)  # turned upright
    with downloaded(upload) as image:
        assert not image.getexif().get_ifd(GPS) and not image.getexif()
        assert "xmp" not in image.info and "comment" not in image.info


def test_a_repeated_idempotency_key_replays_the_upload(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    data = encoded("PNG")
    first = api.post("/api/image/uploads", files={"file": ("a", data)}, headers=headers)
    again = api.post("/api/image/uploads", files={"file": ("a", data)}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["upload_id"] == first.json()["upload_id"]
    other = api.post("/api/image/uploads", files={"file": ("a", encoded("JPEG"))}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert len(api.get("/api/image/uploads").json()["data"]) == 1


def test_uploads_are_listed_in_pages_and_deleted(
    api: httpx.Client, upload_server: ServerProcess
) -> None:
    ids = [multipart(api, encoded("PNG", (8 + i, 8))).json()["upload_id"] for i in range(3)]
    first = api.get("/api/image/uploads", params={"limit": 2}).json()
    assert [u["upload_id"] for u in first["data"]] == ids[:0:-1] and first["has_more"]
    rest = api.get("/api/image/uploads", params={"cursor": first["next_cursor"]}).json()
    assert [u["upload_id"] for u in rest["data"]] == ids[:1] and not rest["has_more"]
    files = stored_files(upload_server)
    assert api.delete(f"/api/image/uploads/{ids[0]}").status_code == 204
    assert api.get(f"/api/image/uploads/{ids[0]}").status_code == 404
    assert len(stored_files(upload_server)) == len(files) - 1
    assert api.delete(f"/api/image/uploads/{ids[0]}").json()["code"] == "upload_not_found"


def test_another_workspaces_upload_is_not_found(
    api: httpx.Client, upload_server: ServerProcess
) -> None:
    theirs = multipart(api, encoded("PNG")).json()["upload_id"]
    with client(upload_server.url, upload_server.create_key(f"ws-{uuid.uuid4().hex}")) as other:
        for answer in (
            other.get(f"/api/image/uploads/{theirs}"),
            other.delete(f"/api/image/uploads/{theirs}"),
            other.get("/api/image/uploads/upl_%00nope"),
            other.get("/api/image/uploads/job_01ABC"),
        ):
            assert answer.status_code == 404 and answer.json()["code"] == "upload_not_found"
        assert other.get("/api/image/uploads").json()["data"] == []
    assert api.get(f"/api/image/uploads/{theirs}").status_code == 200


# Refusals: a 4xx with its code, and nothing stored

Send = Callable[[httpx.Client], httpx.Response]
REFUSALS: list[tuple[str, Send, int, str]] = [
    ("bomb", lambda a: multipart(a, png_bomb()), 422, "image_too_many_pixels"),
    ("bomb below Pillow's own limit", lambda a: multipart(a, png_bomb(7000, 7000)), 422,
     "image_too_many_pixels"),
    ("truncated png", lambda a: multipart(a, encoded("PNG", (64, 64))[:-30]), 422,
     "invalid_image"),
    ("png + zip polyglot", lambda a: multipart(a, encoded("PNG") + zip_archive()), 422,
     "invalid_image"),
    ("declared jpeg, bytes png", lambda a: multipart(a, encoded("PNG"), "image/jpeg"), 415,
     "unsupported_image"),
    ("declared html", lambda a: multipart(a, encoded("PNG"), "text/html"), 415,
     "unsupported_image"),
    ("gif", lambda a: multipart(a, encoded("GIF"), "image/gif"), 415, "unsupported_image"),
    ("bmp", lambda a: as_base64(a, encoded("BMP")), 415, "unsupported_image"),
    ("svg", lambda a: multipart(a, b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                "image/svg+xml"), 415, "unsupported_image"),
    ("file over the cap", lambda a: multipart(a, encoded("PNG") + b"\0" * MAX_BYTES), 413,
     "image_too_large"),
    ("body over the cap", lambda a: as_base64(a, b"\0" * MAX_BYTES * 2), 413,
     "payload_too_large"),
    ("not base64", lambda a: a.post("/api/image/uploads", json={"data": "%%%"}), 422,
     "validation_error"),
    ("data and url", lambda a: a.post("/api/image/uploads", json={"data": "", "url": "x"}), 422,
     "validation_error"),
    ("form without file", lambda a: a.post("/api/image/uploads", files={"other": b"x"}), 422,
     "validation_error"),
    ("two files", lambda a: a.post("/api/image/uploads", files=[
        ("file", ("a", encoded("PNG"), "image/png")), ("file", ("b", encoded("PNG"), "image/png"))
    ]), 422, "validation_error"),
    ("file as a text field", lambda a: a.post("/api/image/uploads", data={"file": "x"},
                                              files={"other": b"x"}), 422, "validation_error"),
    ("too many fields", lambda a: a.post("/api/image/uploads", files={"file": encoded("PNG")},
                                         data={f"f{i}": "v" for i in range(17)}), 422,
     "validation_error"),
    ("form without a boundary", lambda a: raw_form(a, b"--x\r\n", "multipart/form-data"), 422,
     "validation_error"),
    ("form without a delimiter", lambda a: raw_form(a, b"no delimiter at all"), 422,
     "validation_error"),
    ("form part without a name", lambda a: raw_form(a, b"--x\r\n\r\ndata\r\n--x--"), 422,
     "validation_error"),
    ("form header without a colon", lambda a: raw_form(a, b"--x\r\nnope\r\n\r\nv\r\n--x--"),
     422, "validation_error"),
    ("form cut short", lambda a: raw_form(a, b'--x\r\nContent-Disposition: form-data; '
                                             b'name="file"; filename="a"\r\n\r\n'
                                             + encoded("PNG")), 422, "validation_error"),
    ("form over the body cap", lambda a: multipart(a, b"\0" * MAX_BYTES * 2), 413,
     "payload_too_large"),
    ("chunked form over the body cap", lambda a: raw_form(
        a, iter([b"--x\r\n"] + [b"\0" * 65536] * (MAX_BYTES * 2 // 65536))), 413,
     "payload_too_large"),
    ("text body", lambda a: a.post("/api/image/uploads", content=b"hi",
                                   headers={"Content-Type": "text/plain"}), 415,
     "unsupported_media_type"),
    ("http url", lambda a: from_url(a, "http://example.com/cat.png"), 422, "unsafe_url"),
    ("loopback url", lambda a: from_url(a, "https://127.0.0.1/cat.png"), 422, "unsafe_url"),
    ("private url", lambda a: from_url(a, "https://10.1.2.3/cat.png"), 422, "unsafe_url"),
    ("metadata url", lambda a: from_url(a, "https://169.254.169.254/latest/meta-data"), 422,
     "unsafe_url"),
    ("metadata, spelled as a number", lambda a: from_url(a, "https://2852039166/"), 422,
     "unsafe_url"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "send", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_bad_upload_is_refused_and_nothing_is_stored(
    api: httpx.Client,
    upload_server: ServerProcess,
    what: str,
    send: Send,
    status: int,
    code: str,
) -> None:
    files = stored_files(upload_server)
    answer = send(api)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    assert api.get("/api/image/uploads").json()["data"] == []
    assert stored_files(upload_server) == files


@pytest.mark.parametrize(
    ("path", "route", "status", "code"),
    [
        # A redirect from the allowed origin to loopback proper is checked again.
        ("/to-loopback", (302, {"Location": "http://127.0.0.1/cat.png"}, b""), 422, "unsafe_url"),
        ("/missing", (404, {}, b"gone"), 422, "url_fetch_failed"),
        ("/page", (200, {"Content-Type": "text/html"}, b"<html></html>"), 415,
         "unsupported_image"),
        ("/sniffed", (200, {"Content-Type": "image/png"}, b"GIF89a" + b"\0" * 64), 415,
         "unsupported_image"),
        ("/endless", (200, {}, b""), 413, "image_too_large"),
    ],
)  # fmt: skip
def test_a_bad_url_is_refused_and_nothing_is_stored(
    api: httpx.Client,
    upload_server: ServerProcess,
    origin: Origin,
    path: str,
    route: Route,
    status: int,
    code: str,
) -> None:
    origin.routes[path] = route
    files = stored_files(upload_server)
    answer = from_url(api, origin.url + path)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert api.get("/api/image/uploads").json()["data"] == []
    assert stored_files(upload_server) == files


# Retention


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_retention_deletes_old_uploads_and_their_files(backend: str, tmp_path: Path) -> None:
    clock = MovableClock()
    async with migrated_runtime(backend, tmp_path, clock, upload_retention_days=7) as rt:
        key = await create_key(rt, "keeper", "k")
        me = Principal(key.key_id, key.workspace_id, "keeper", "member")
        old = await service.create_from_bytes(rt, me, encoded("PNG"), "image/png")
        clock.advance(days=6)
        recent = await service.create_from_bytes(rt, me, encoded("JPEG"), None)
        clock.advance(days=1, seconds=1)
        files = rt.settings.files_dir
        assert (files / old.storage_key).exists() and (files / recent.storage_key).exists()

        swept = await retention.sweep(rt, batch=1, max_batches=5)

        assert swept.uploads == 1 and swept.complete
        assert not (files / old.storage_key).exists()
        assert (files / recent.storage_key).exists()
        page = await service.list_uploads(rt, me, cursor=None, limit=10)
        assert [u.id for u in page.uploads] == [recent.id]


async def test_a_failed_insert_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: object) -> None:
        raise ConnectionError("the database went away")

    async with migrated_runtime("sqlite", tmp_path, MovableClock()) as rt:
        key = await create_key(rt, "keeper", "k")
        me = Principal(key.key_id, key.workspace_id, "keeper", "member")
        monkeypatch.setattr(service.uploads_repo, "insert_upload", refuse)
        with pytest.raises(ConnectionError):
            await service.create_from_bytes(rt, me, encoded("PNG"), None)
        assert list(rt.settings.files_dir.rglob("*.png")) == []
        monkeypatch.undo()
        stored = await service.create_from_bytes(rt, me, encoded("PNG"), None)
        assert [p.name for p in rt.settings.files_dir.rglob("*.png")] == [f"{stored.id}.png"]


async def test_image_refs_resolve_to_uploads_and_errors_name_the_field(tmp_path: Path) -> None:
    async with migrated_runtime("sqlite", tmp_path, MovableClock()) as rt:
        key = await create_key(rt, "keeper", "k")
        me = Principal(key.key_id, key.workspace_id, "keeper", "member")
        mine = await service.create_from_bytes(rt, me, encoded("PNG"), None)
        assert await service.resolve_image_ref(rt, me, mine.id, "init_image") == mine
        refused: list[tuple[str, type[Exception]]] = [
            ("upl_01NOSUCHUPLOAD", UploadNotFound),
            ("cat.png", InvalidRequest),
            ("https://10.0.0.1/cat.png", UnsafeUrl),
            ("http://example.com/cat.png", UnsafeUrl),
        ]
        for ref, error in refused:
            with pytest.raises(error) as caught:
                await service.resolve_image_ref(rt, me, ref, "init_image")
            assert isinstance(caught.value, ImagegateError)
            assert caught.value.extra["field"] == "init_image", ref
            assert caught.value.detail.startswith("init_image: "), caught.value.detail
