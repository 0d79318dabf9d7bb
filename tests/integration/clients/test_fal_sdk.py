"""The official ``fal-client`` against the fal queue emulator (a real process on
loopback): submit, status (with and without logs), result, cancel and subscribe,
sync and async, and its HTTP errors as ``FalClientHTTPError``."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import fal_client
import fal_client.client
import httpx
import pytest
from fal_client import Completed, InProgress, Queued
from fal_client.client import FalClientHTTPError
from PIL import Image

from tests.support.sandbox import SandboxProcess

KEY = "sdk-tests:secret"
DEV = "fal-ai/flux/dev"


@pytest.fixture
def sandbox(
    sandboxes: Callable[[str], SandboxProcess], monkeypatch: pytest.MonkeyPatch
) -> SandboxProcess:
    proc = sandboxes("fal")
    # fal-client builds its queue address once, at import, as
    # https://{FAL_QUEUE_RUN_HOST}/: the host can come from the environment but the
    # scheme cannot, so the plain-http loopback emulator goes in the module constant.
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", proc.url + "/")
    return proc


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[fal_client.SyncClient]:
    sdk = fal_client.SyncClient(key=KEY, default_timeout=20)
    yield sdk
    sdk._client.close()


def image_at(url: str) -> Image.Image:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_submit_status_and_result(client: fal_client.SyncClient, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=600)
    handle = client.submit(DEV, {"prompt": "a fox", "num_images": 2, "image_size": "square"})

    assert handle.status() == Queued(position=0)
    events = list(handle.iter_events(with_logs=True, interval=0.05))

    kinds = [type(event) for event in events]
    assert kinds[0] is Queued and kinds[-1] is Completed and InProgress in kinds
    running = next(event for event in events if isinstance(event, InProgress))
    assert isinstance(running.logs, list)
    done = events[-1]
    assert isinstance(done, Completed) and done.error is None
    assert done.logs and done.logs[-1]["message"].strip().endswith("28/28")
    assert done.metrics["inference_time"] > 0

    result = handle.get()
    assert len(result["images"]) == 2 and result["has_nsfw_concepts"] == [False, False]
    for item in result["images"]:
        assert (item["width"], item["height"], item["content_type"]) == (512, 512, "image/jpeg")
        assert image_at(item["url"]).size == (512, 512)


def test_subscribe_to_an_upscale_with_a_data_uri(client: fal_client.SyncClient) -> None:
    source = Image.new("RGB", (40, 24), (200, 40, 40))
    result = client.subscribe(
        "fal-ai/esrgan",
        {"image_url": fal_client.encode_image(source, format="png"), "scale": 4},
        client_timeout=20,
    )
    image = result["image"]
    assert (image["width"], image["height"]) == (160, 96)
    assert image_at(image["url"]).size == (160, 96)


def test_status_without_logs_has_none(client: fal_client.SyncClient) -> None:
    handle = client.submit(DEV, {"prompt": "quick"})
    status = handle.status(with_logs=False)
    assert isinstance(status, Completed) and status.logs is None
    assert isinstance(handle.status(with_logs=True), Completed)
    assert handle.status(with_logs=True).logs  # type: ignore[attr-defined]


def test_queue_positions_count_the_requests_ahead(
    client: fal_client.SyncClient, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=20_000)
    first = client.submit(DEV, {"prompt": "first"})
    second = client.submit("fal-ai/fast-sdxl", {"prompt": "second"})
    assert first.status() == Queued(position=0)
    assert second.status() == Queued(position=1)


def test_status_and_result_by_request_id(client: fal_client.SyncClient) -> None:
    # These build the address themselves: under the app (fal-ai/flux), not the endpoint.
    request_id = client.submit(DEV, {"prompt": "by id", "seed": 42}).request_id
    assert isinstance(client.status(DEV, request_id), Completed)
    assert client.result(DEV, request_id)["seed"] == 42


def test_cancel_a_queued_request(client: fal_client.SyncClient, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=20_000)
    handle = client.submit(DEV, {"prompt": "cancel me"})
    handle.cancel()
    status = handle.status()
    assert isinstance(status, Completed) and status.error_type == "client_cancelled"
    with pytest.raises(FalClientHTTPError) as caught:
        handle.get()
    assert (caught.value.status_code, caught.value.error_type) == (499, "client_cancelled")


def test_subscribe_reports_the_queue_and_returns_the_result(
    client: fal_client.SyncClient, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=300)
    enqueued: list[str] = []
    updates: list[object] = []
    result = client.subscribe(
        "fal-ai/flux/schnell", {"prompt": "subscribed", "output_format": "png"},
        with_logs=True, on_enqueue=enqueued.append, on_queue_update=updates.append,
    )  # fmt: skip
    assert len(enqueued) == 1 and isinstance(updates[-1], Completed)
    assert result["images"][0]["content_type"] == "image/png"


async def test_the_async_client(sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    sdk = fal_client.AsyncClient(key=KEY, default_timeout=20)
    try:
        handle = await sdk.submit("fal-ai/fast-sdxl", {"prompt": "async"})
        assert isinstance(await handle.status(), Queued)
        updates = [event async for event in handle.iter_events(interval=0.05)]
        assert isinstance(updates[-1], Completed)
        result = await handle.get()
        assert result["images"][0]["url"].startswith(sandbox.url)
        subscribed = await sdk.subscribe(DEV, {"prompt": "async subscribe"})
        assert len(subscribed["images"]) == 1
    finally:
        await sdk._client.aclose()


def test_invalid_input_fails_the_result_with_the_models_complaint(
    client: fal_client.SyncClient,
) -> None:
    with pytest.raises(FalClientHTTPError) as caught:
        client.subscribe(DEV, {"prompt": "x", "num_images": 99})
    error = caught.value
    assert error.status_code == 422
    assert isinstance(error.message, list) and error.message[0]["loc"] == ["body", "num_images"]


@pytest.mark.parametrize(
    ("key", "app", "prompt", "status", "error_type"),
    [
        (KEY, DEV, "sandbox:500", 500, "internal_error"),
        (KEY, DEV, "sandbox:503", 503, "runner_scheduling_failure"),
        ("no-secret", DEV, "x", 401, None),
        (KEY, "fal-ai/no-such-app", "x", 404, None),
    ],
)
def test_http_errors_are_fal_client_http_errors(
    sandbox: SandboxProcess, key: str, app: str, prompt: str, status: int, error_type: str | None
) -> None:
    sdk = fal_client.SyncClient(key=key, default_timeout=10)
    with pytest.raises(FalClientHTTPError) as caught:
        sdk.submit(app, {"prompt": prompt})
    assert (caught.value.status_code, caught.value.error_type) == (status, error_type)
    assert caught.value.message


def test_the_client_retries_a_429_and_the_request_is_queued(
    client: fal_client.SyncClient, sandbox: SandboxProcess
) -> None:
    sandbox.faults(error_count=1, error_status=429)
    handle = client.submit(DEV, {"prompt": "after a 429"})
    assert handle.request_id
    assert sandbox.stats()["submissions"] == 2  # the refused one and the retry
