"""S3-compatible storage against a real S3 server on loopback (moto's server mode):
the storage contract on both backends, presigned and public links, and a whole job
stored in a bucket by a real imagegate server."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagegate.settings import Settings
from imagegate.storage.base import ObjectNotFound, Storage
from imagegate.storage.factory import build_storage
from imagegate.storage.local import LocalStorage
from imagegate.storage.s3 import S3Storage
from imagegate.storage.signing import UrlSigner
from tests.support.api import client, wait_for_job
from tests.support.s3_server import S3Server
from tests.support.server import ServerProcess, wait_until

BUCKET = "imagegate-tests"
KEY = "ws_1/job_1/1.png"


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto")).start()
    # imagegate never creates buckets: operators own them, as here.
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def s3_settings(s3: S3Server, storage_url: str, public_base_url: str | None = None) -> Settings:
    return Settings(
        storage_url=storage_url,
        s3_endpoint_url=s3.url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        storage_public_base_url=public_base_url,
    )


def build_s3(settings: Settings) -> S3Storage:
    storage, local = build_storage(settings, UrlSigner(b"unused", 60))
    assert isinstance(storage, S3Storage) and local is None
    return storage


@pytest.fixture
def prefix() -> str:
    """Each test writes under a prefix of its own, so bucket listings are its alone."""
    return f"t-{uuid.uuid4().hex[:8]}/images"


@pytest.fixture
def s3_storage(s3: S3Server, prefix: str) -> Iterator[S3Storage]:
    storage = build_s3(s3_settings(s3, f"s3://{BUCKET}/{prefix}"))
    yield storage
    storage.close()


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files", "http://127.0.0.1:9", UrlSigner(b"k", 60))


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    store: Storage = request.getfixturevalue(f"{request.param}_storage")
    return store


def png(width: int = 64, height: int = 48, colour: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_put_get_delete_round_trip(storage: Storage) -> None:
    first, second = png(colour="teal"), png(colour="orange")
    await storage.put(KEY, first, "image/png")
    assert await storage.get(KEY) == first
    await storage.put(KEY, second, "image/png")
    assert await storage.get(KEY) == second
    assert Image.open(io.BytesIO(await storage.get(KEY))).size == (64, 48)
    await storage.delete(KEY)
    with pytest.raises(ObjectNotFound):
        await storage.get(KEY)


async def test_missing_keys(storage: Storage) -> None:
    await storage.delete("ws_1/job_404/1.png")  # absent is fine
    with pytest.raises(ObjectNotFound) as raised:
        await storage.get("ws_1/job_404/1.png")
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == "no stored object under 'ws_1/job_404/1.png'"


async def test_delete_prefix_removes_one_job_s_folder(storage: Storage) -> None:
    for job in ("job_1", "job_10", "job_2"):
        for name in ("1.png", "grid.png", "previews/1.jpg"):
            await storage.put(f"ws_1/{job}/{name}", png(), "image/png")
    assert await storage.delete_prefix("ws_1/job_1/") == 3
    for name in ("1.png", "grid.png", "previews/1.jpg"):
        with pytest.raises(ObjectNotFound):
            await storage.get(f"ws_1/job_1/{name}")
        # job_10 shares the prefix's letters but not its folder: it stays.
        assert await storage.get(f"ws_1/job_10/{name}") == png()
        assert await storage.get(f"ws_1/job_2/{name}") == png()
    assert await storage.delete_prefix("ws_1/job_1/") == 0
    assert await storage.delete_prefix("ws_1/job_404/") == 0


async def test_objects_land_under_the_prefix(
    s3: S3Server, s3_storage: S3Storage, prefix: str
) -> None:
    for name in ("1.png", "2.png", "grid.png"):
        await s3_storage.put(f"ws_1/job_1/{name}", png(), "image/png")
    mine = [key for key in s3.keys(BUCKET) if key.startswith(prefix + "/")]
    assert mine == [f"{prefix}/ws_1/job_1/{n}" for n in ("1.png", "2.png", "grid.png")]


async def test_a_bucket_without_prefix_stores_at_the_root(s3: S3Server) -> None:
    bucket = s3.create_bucket(f"bare-{uuid.uuid4().hex[:8]}")
    storage = build_s3(s3_settings(s3, f"s3://{bucket}"))
    await storage.put(KEY, png(), "image/png")
    assert s3.keys(bucket) == [KEY]
    storage.close()


async def test_presigned_url_serves_the_image(s3: S3Server, s3_storage: S3Storage) -> None:
    data = png(width=80, height=60)
    await s3_storage.put(KEY, data, "image/png")
    url = s3_storage.url(KEY)
    assert url.startswith(f"{s3.url}/{BUCKET}/{s3_storage.prefix}/{KEY}?")
    assert "X-Amz-Expires=3600" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (80, 60)


def test_public_base_url_links_are_plain(s3: S3Server) -> None:
    cdn = "https://cdn.example.com/media/"
    storage = build_s3(s3_settings(s3, f"s3://{BUCKET}/site/images", public_base_url=cdn))
    assert storage.url(KEY) == f"https://cdn.example.com/media/site/images/{KEY}"
    storage.close()


async def test_readiness_check(s3: S3Server, s3_storage: S3Storage) -> None:
    assert await s3_storage.check() is None
    missing = build_s3(s3_settings(s3, "s3://no-such-bucket/x"))
    assert await missing.check() == "bucket 'no-such-bucket' does not exist"
    missing.close()


# A whole job through a real imagegate server that stores into the bucket.

E2E_BUCKET = "imagegate-e2e"
E2E_PREFIX = "prod/images"


@pytest.fixture(scope="module")
def s3_server(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s3.create_bucket(E2E_BUCKET)
    proc = ServerProcess(
        tmp_path_factory.mktemp("s3-server"),
        IMAGEGATE_BUILTIN_PROCESSES="0",
        **s3.env(f"s3://{E2E_BUCKET}/{E2E_PREFIX}"),
    ).start()
    yield proc
    proc.stop()


def test_a_job_is_stored_in_the_bucket(s3: S3Server, s3_server: ServerProcess) -> None:
    key = s3_server.create_key(f"ws-{uuid.uuid4().hex[:10]}")
    with client(s3_server.url, key) as http:
        body = {"prompt": "a red kite over the sea", "variations": 2, "mode": "draft"}
        created = http.post("/api/image/jobs", json=body)
        assert created.status_code == 202
        job = wait_for_job(http, created.json()["job_id"])
    assert job["status"] == "completed", job

    assert job["result_urls"] == [image["url"] for image in job["images"]]
    for image in job["images"]:
        assert image["url"].startswith(f"{s3.url}/{E2E_BUCKET}/{E2E_PREFIX}/")
        fetched = fetch(image["url"])
        assert fetched.size == (image["width"], image["height"])
    first = job["images"][0]
    assert fetch(job["grid_url"]).size == (first["width"], first["height"])

    stored = [k for k in s3.keys(E2E_BUCKET) if job["job_id"] in k]
    assert [k.rsplit("/", 1)[1] for k in stored] == ["1.png", "2.png", "grid.png"]
    assert all(k.startswith(E2E_PREFIX + "/") for k in stored)
    files = s3_server.data_dir / "files"
    assert not files.exists() or not any(files.iterdir())
    # Links point at the bucket; this server serves no files at all.
    for path in (stored[0].removeprefix(E2E_PREFIX + "/"), "a/b/1.png?exp=9999999999&sig=x"):
        response = httpx.get(f"{s3_server.url}/files/{path}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_readiness_follows_the_bucket(s3: S3Server, s3_server: ServerProcess) -> None:
    def readiness(key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(s3_server.url + "/readyz", headers=headers)
        body: dict[str, str] = response.json()
        assert response.status_code == (200 if body["status"] == "ready" else 503)
        return body

    assert readiness() == {
        "status": "ready",
        "database": "ok",
        "storage": "ok",
        "counters": "ok (memory)",
    }
    s3.delete_bucket(E2E_BUCKET)
    try:
        # The server caches its answer for a few seconds, so the change shows up late.
        wait_until(lambda: readiness()["status"] != "ready", 20, 0.2, "readyz to fail")
        # Which dependency is down, for anyone; why, only for an admin key.
        assert readiness() == {
            "status": "unavailable",
            "database": "ok",
            "storage": "unavailable",
            "counters": "ok (memory)",
        }
        assert readiness(s3_server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) == readiness()
        assert readiness(s3_server.admin_key) == {
            "status": "unavailable",
            "database": "ok",
            "storage": f"bucket {E2E_BUCKET!r} does not exist",
            "counters": "ok (memory)",
        }
    finally:
        s3.create_bucket(E2E_BUCKET)
    wait_until(lambda: readiness()["status"] == "ready", 20, 0.2, "readyz to recover")


def fetch(url: str) -> Image.Image:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image
