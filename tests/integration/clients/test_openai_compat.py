"""The official ``openai`` SDK, sync and async, pointed at a real imagegate server's
OpenAI-compatible /v1 API (docs/openai-compat.md): each call is an imagegate job that
the job API shows, each image decodes, and errors land in the SDK's own types."""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from imagegate.sandbox.openai import API_KEY as EMULATOR_KEY
from tests.support.api import client as api_client
from tests.support.api import fetch_image, wait_for_job
from tests.support.pictures import BLUE, YELLOW, near, two_tone
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

# The emulator behind a server of its own, allowing 3 jobs an hour per workspace and
# waiting 4 s for a job.
STRICT_CONFIG = """
[providers.builtin]
enabled = false

[providers.openai]
type = "openai"
base_url = "{url}/v1"
api_key_env = "COMPAT_TEST_OPENAI_KEY"

[workspaces.ws-broke]
credits = true
"""


@pytest.fixture
def key(workspace_key: str) -> str:
    """Each test in a workspace of its own: its jobs are the ones it made."""
    return workspace_key


@pytest.fixture
def sdk(server: ServerProcess, key: str) -> Iterator[openai.OpenAI]:
    # No retries unless a test asks: an error must surface as the SDK's exception.
    with openai.OpenAI(
        api_key=key, base_url=server.url + "/v1", max_retries=0, timeout=60
    ) as client:
        yield client


@pytest.fixture
async def async_sdk(server: ServerProcess, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key=key, base_url=server.url + "/v1", max_retries=0, timeout=60
    ) as client:
        yield client


def decoded(b64: str | None) -> Image.Image:
    assert b64, "no b64_json in the response"
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def job_of(server: ServerProcess, key: str, raw: Any) -> dict[str, Any]:
    """The imagegate job behind a raw SDK response; it is listed in the job API too."""
    job_id = raw.http_response.headers["x-imagegate-job-id"]
    with api_client(server.url, key) as http:
        job: dict[str, Any] = http.get(f"/api/image/jobs/{job_id}").json()
        listed = http.get("/api/image/jobs", params={"limit": 100}).json()["data"]
    assert job_id in [j["job_id"] for j in listed]
    return job


def job_count(server: ServerProcess, key: str) -> int:
    with api_client(server.url, key) as http:
        total, cursor = 0, None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = http.get("/api/image/jobs", params=params).json()
            total += len(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return total


def counting_sdk(
    server: ServerProcess, key: str, max_retries: int
) -> tuple[openai.OpenAI, list[str]]:
    """An SDK client that retries as told, and the paths of every request it sent (its
    own retries included)."""
    sent: list[str] = []
    hooks: dict[str, list[Callable[[httpx.Request], None]]] = {
        "request": [lambda request: sent.append(request.url.path)]
    }
    client = openai.OpenAI(
        api_key=key, base_url=server.url + "/v1", max_retries=max_retries,
        http_client=httpx.Client(event_hooks=hooks, timeout=60),  # type: ignore[arg-type]
    )  # fmt: skip
    return client, sent


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# -- generations --------------------------------------------------------------------


def test_gpt_image_generate_b64_is_a_job_of_the_size_and_quality(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="gpt-image-1", prompt="a lighthouse at dusk", size="1536x1024", quality="low"
    )
    response = raw.parse()

    assert (response.size, response.quality, response.output_format) == ("1536x1024", "low", "png")
    assert len(response.data or []) == 1
    image = decoded((response.data or [])[0].b64_json)
    job = job_of(server, key, raw)
    assert job["status"] == "completed"
    # 1536x1024 is 3:2; low is imagegate's draft mode.
    assert (job["params"]["ratio"], job["params"]["mode"]) == ("3:2", "draft")
    assert image.size == (job["params"]["width"], job["params"]["height"])
    assert job["metadata"]["openai_endpoint"] == "generations"
    assert "ratelimit-remaining" in raw.http_response.headers


def test_dall_e_2_url_results_are_imagegate_signed_urls_n4(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="dall-e-2", prompt="four paper boats", n=4, size="512x512", response_format="url"
    )
    response = raw.parse()

    urls = [d.url for d in response.data or []]
    assert len(urls) == 4 and all(u and u.startswith(server.url) for u in urls)
    images = [fetch_image(str(u)) for u in urls]
    assert {i.size for i in images} == {(512, 512)}
    job = job_of(server, key, raw)
    assert job["params"]["variations"] == 4 and len(job["images"]) == 4


async def test_async_dall_e_3_hd_wide_with_revised_prompt(
    async_sdk: openai.AsyncOpenAI, server: ServerProcess, key: str
) -> None:
    raw = await async_sdk.images.with_raw_response.generate(
        model="dall-e-3", prompt="a wide harbour", size="1792x1024", quality="hd",
        response_format="b64_json",
    )  # fmt: skip
    response = raw.parse()

    item = (response.data or [])[0]
    image = decoded(item.b64_json)
    assert image.width > image.height
    assert item.revised_prompt
    job = job_of(server, key, raw)
    assert (job["params"]["ratio"], job["params"]["mode"]) == ("7:4", "standard")


async def test_async_gpt_image_four_webp(
    async_sdk: openai.AsyncOpenAI, server: ServerProcess
) -> None:
    response = await async_sdk.images.generate(
        model="gpt-image-1-mini", prompt="tiles", n=4, size="1024x1536", output_format="webp"
    )
    images = [decoded(d.b64_json) for d in response.data or []]
    assert len(images) == 4 and {i.format for i in images} == {"WEBP"}
    assert all(i.height > i.width for i in images)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "dall-e-3", "size": "1536x1024"}, "size"),
        ({"model": "gpt-image-1", "size": "256x256"}, "size"),
        ({"model": "dall-e-2", "size": "auto"}, "size"),
        ({"model": "dall-e-3", "quality": "low"}, "quality"),
        ({"model": "dall-e-3", "n": 2}, "n"),
        ({"model": "gpt-image-1", "n": 5}, "n"),
        ({"model": "no-such-model"}, "model"),
        ({"model": "gpt-image-1", "background": "transparent"}, "background"),
    ],
)
def test_bad_values_are_bad_requests_naming_the_param_and_make_no_job(
    sdk: openai.OpenAI, server: ServerProcess, key: str, fields: dict[str, Any], param: str
) -> None:
    before = job_count(server, key)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(prompt="a kite", **fields)
    assert caught.value.status_code == 400
    assert (caught.value.param, caught.value.type) == (param, "invalid_request_error")
    assert job_count(server, key) == before


def test_an_unknown_parameter_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt="a kite", extra_body={"colour": "red"})
    assert caught.value.param == "colour"


def test_a_wrong_key_is_invalid_api_key(server: ServerProcess) -> None:
    with openai.OpenAI(api_key="ig_wrong", base_url=server.url + "/v1", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.images.generate(model="gpt-image-1", prompt="a kite")
    assert caught.value.code == "invalid_api_key"
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}


def test_models_lists_the_configured_names(sdk: openai.OpenAI) -> None:
    names = {m.id for m in sdk.models.list()}
    assert {"gpt-image-1", "gpt-image-1-mini", "dall-e-2", "dall-e-3"} <= names


# -- edits and variations -----------------------------------------------------------


def test_edit_with_a_mask_repaints_only_its_transparent_pixels(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    source = two_tone(256, 256)  # blue left, yellow right
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 128, 256))  # transparent left half: repaint it
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-1", image=("scene.png", source, "image/png"),
        mask=("mask.png", png(mask), "image/png"), prompt="a red sun",
    )  # fmt: skip
    image = decoded((raw.parse().data or [])[0].b64_json).convert("RGB")

    assert image.size == (256, 256)  # a repaint keeps the source's size
    assert near(image.getpixel((200, 128)), YELLOW, 4)  # kept
    assert not near(image.getpixel((40, 128)), BLUE)  # repainted
    job = job_of(server, key, raw)
    assert job["action"] == "vary_region" and job["parent_job_id"] is None
    assert job["metadata"]["openai_endpoint"] == "edits"


def test_edit_without_a_mask_is_img2img_of_the_image(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="gpt-image-1", image=("scene.png", two_tone(128, 128), "image/png"),
        prompt="the same, at night", size="1024x1024", quality="low",
    )  # fmt: skip
    decoded((raw.parse().data or [])[0].b64_json)
    job = job_of(server, key, raw)
    assert job["action"] == "imagine"
    assert job["params"]["strength"] == 0.6 and job["params"]["source"]["upload_id"]


async def test_async_edit_of_several_images_is_a_blend(
    async_sdk: openai.AsyncOpenAI, server: ServerProcess, key: str, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png(Image.new("RGB", (96, 96), BLUE)))
    b.write_bytes(png(Image.new("RGB", (96, 96), YELLOW)))
    with a.open("rb") as first, b.open("rb") as second:
        raw = await async_sdk.images.with_raw_response.edit(
            model="gpt-image-1", image=[first, second], prompt="both colours", quality="low"
        )
    decoded((raw.parse().data or [])[0].b64_json)
    job = job_of(server, key, raw)
    assert job["action"] == "blend" and len(job["params"]["sources"]) == 2


def test_a_mask_with_several_images_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="gpt-image-1", prompt="x", mask=("m.png", two_tone(8, 8), "image/png"),
            image=[("a.png", two_tone(8, 8), "image/png"), ("b.png", two_tone(8, 8), "image/png")],
        )  # fmt: skip
    assert caught.value.param == "mask"


def test_an_edit_of_a_file_that_is_no_image_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="gpt-image-1", prompt="x", image=("a.png", b"not an image", "image/png")
        )
    assert caught.value.param == "image"


@pytest.mark.parametrize("count", [6, 7])
def test_more_images_than_a_blend_takes_is_a_bad_request(sdk: openai.OpenAI, count: int) -> None:
    files = [(f"{i}.png", two_tone(8, 8), "image/png") for i in range(count)]
    with pytest.raises(openai.BadRequestError):
        sdk.images.edit(model="gpt-image-1", prompt="x", image=files)


def test_an_edit_that_is_not_a_form_is_a_bad_request(server: ServerProcess) -> None:
    with api_client(server.url, server.admin_key) as http:
        response = http.post("/v1/images/edits", json={"prompt": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_create_variation_is_img2img_with_a_neutral_prompt(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    raw = sdk.images.with_raw_response.create_variation(
        image=("scene.png", two_tone(128, 128), "image/png"), n=2, size="256x256",
        response_format="b64_json",
    )  # fmt: skip
    images = [decoded(d.b64_json) for d in raw.parse().data or []]
    assert len(images) == 2
    job = job_of(server, key, raw)
    assert (
        job["params"]["source"]["upload_id"] and job["metadata"]["openai_endpoint"] == "variations"
    )


# -- streaming ----------------------------------------------------------------------


def test_stream_generate_yields_completed_events_that_decode(
    sdk: openai.OpenAI, server: ServerProcess, key: str
) -> None:
    stream = sdk.images.generate(
        model="gpt-image-1", prompt="a lantern", n=2, quality="low", stream=True,
        partial_images=2, output_format="jpeg",
    )  # fmt: skip
    events = list(stream)

    # imagegate's providers hand over finished images only: no partials, which
    # OpenAI allows ("the final image may be sent before the partial images").
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    images = [decoded(e.b64_json) for e in events]
    assert {i.format for i in images} == {"JPEG"}
    assert all(e.output_format == "jpeg" and e.quality == "low" for e in events)
    job_id = stream.response.headers["x-imagegate-job-id"]
    with api_client(server.url, key) as http:
        assert http.get(f"/api/image/jobs/{job_id}").json()["status"] == "completed"


async def test_async_stream_edit_with_a_mask(async_sdk: openai.AsyncOpenAI) -> None:
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 64, 128))
    stream = await async_sdk.images.edit(
        model="gpt-image-1", image=("scene.png", two_tone(128, 128), "image/png"),
        mask=("mask.png", png(mask), "image/png"), prompt="a red sun", stream=True,
        partial_images=1,
    )  # fmt: skip
    events = [event async for event in stream]

    assert [e.type for e in events] == ["image_edit.completed"]
    image = decoded(events[0].b64_json).convert("RGB")
    assert near(image.getpixel((100, 64)), YELLOW, 4)


def test_stream_with_a_dall_e_model_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="dall-e-3", prompt="a lantern", stream=True)
    assert caught.value.param == "stream"


# -- a server in front of the OpenAI emulator, with a tiny job rate ------------------


@pytest.fixture(scope="module")
def strict_server(
    tmp_path_factory: pytest.TempPathFactory, sandboxes: Callable[[str], SandboxProcess]
) -> Iterator[ServerProcess]:
    emulator = sandboxes("openai")
    data = tmp_path_factory.mktemp("openai-compat-strict")
    config = data / "imagegate.toml"
    config.write_text(STRICT_CONFIG.format(url=emulator.url))
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(config), COMPAT_TEST_OPENAI_KEY=EMULATOR_KEY,
        IMAGEGATE_RATE_LIMIT_JOBS="3/hour", IMAGEGATE_MAX_ATTEMPTS="2",
        # Under the emulator's 5 s of ``sandbox:slow`` latency.
        IMAGEGATE_OPENAI_WAIT_S="4",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def test_a_prompt_the_provider_refuses_is_moderation_blocked(
    strict_server: ServerProcess,
) -> None:
    with openai.OpenAI(
        api_key=strict_server.admin_key, base_url=strict_server.url + "/v1", max_retries=0
    ) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(model="gpt-image-1", prompt="sandbox:moderate a battle")
    assert caught.value.code == "moderation_blocked"
    assert "job_" in caught.value.message  # which job it was, for the job API


def test_a_refused_prompt_in_a_stream_is_an_error_event(strict_server: ServerProcess) -> None:
    with openai.OpenAI(
        api_key=strict_server.admin_key, base_url=strict_server.url + "/v1", max_retries=0
    ) as client:
        stream = client.images.generate(
            model="gpt-image-1", prompt="sandbox:moderate a battle", stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "moderation_blocked"


def test_a_job_that_outlasts_the_wait_is_a_504_naming_it_and_goes_on(
    strict_server: ServerProcess,
) -> None:
    with openai.OpenAI(
        api_key=strict_server.admin_key, base_url=strict_server.url + "/v1", max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.images.generate(model="gpt-image-1", prompt="sandbox:slow a kite")
    assert (caught.value.status_code, caught.value.code) == (504, "timeout")
    job_id = re.search(r"job_[A-Za-z0-9]+", caught.value.message)
    assert job_id is not None
    with api_client(strict_server.url, strict_server.admin_key) as http:
        assert wait_for_job(http, job_id[0])["status"] == "completed"


def test_over_the_job_rate_is_a_rate_limit_error(strict_server: ServerProcess) -> None:
    # A workspace of its own: the tests above spend the admin's.
    key = strict_server.create_key(f"ws-rate-{uuid.uuid4().hex[:8]}")
    client, sent = counting_sdk(strict_server, key, max_retries=2)
    with client:
        refused = None
        for i in range(4):  # 3 jobs an hour: the fourth at the latest is refused
            before = len(sent)
            try:
                client.images.generate(model="gpt-image-1", prompt=f"kite {i}", quality="low")
            except openai.RateLimitError as error:
                refused = (error, len(sent) - before)
                break
    assert refused is not None, "no call was refused"
    error, sends = refused
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    # The SDK retries a 429 itself, after its Retry-After, unless that passes its 60 s
    # cap, as an hour's window does: then it gives up at once.
    assert int(error.response.headers["retry-after"]) > 60
    assert sends == 1


def test_no_credits_is_insufficient_quota_and_the_sdk_does_not_retry(
    strict_server: ServerProcess,
) -> None:
    client, sent = counting_sdk(strict_server, strict_server.create_key("ws-broke"), 2)
    with client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.images.generate(model="gpt-image-1", prompt="a kite", quality="low")
    error = caught.value
    assert (error.code, error.type) == ("insufficient_quota", "insufficient_quota")
    assert "credits" in error.message
    assert sent == ["/v1/images/generations"]  # told not to retry, it did not


def test_a_prompt_the_policy_refuses_is_moderation_blocked_and_keeps_no_upload(
    server: ServerProcess, sdk: openai.OpenAI, key: str
) -> None:
    image = png(Image.new("RGB", (64, 64), (200, 10, 10)))
    before = job_count(server, key)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="gpt-image-1", image=("a.png", image, "image/png"),
                        prompt="explicit porn on a beach")  # fmt: skip
    assert (caught.value.code, caught.value.param) == ("moderation_blocked", "prompt")
    assert "sexual" in caught.value.message
    assert job_count(server, key) == before
    with api_client(server.url, key) as http:
        assert http.get("/api/image/uploads").json()["data"] == []


def test_output_compression_makes_smaller_files(sdk: openai.OpenAI) -> None:
    def size(compression: int) -> int:
        result = sdk.images.generate(
            model="gpt-image-1", prompt="a tiled roof --seed 3", quality="low",
            output_format="jpeg", output_compression=compression,
        )  # fmt: skip
        assert result.data and decoded(result.data[0].b64_json).format == "JPEG"
        return len(base64.b64decode(result.data[0].b64_json or ""))

    assert size(15) < size(100)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt="x", output_compression=50)
    assert caught.value.param == "output_compression"  # png has no compression level


def test_a_body_over_the_cap_is_an_openai_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt="x" * (300 * 1024))
    assert (caught.value.status_code, caught.value.code) == (413, "payload_too_large")


@pytest.fixture(scope="module")
def brisk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two jobs a second per workspace: the SDK's own retries wait out the rest."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("openai-compat-brisk"), IMAGEGATE_RATE_LIMIT_JOBS="2/second"
    ).start()
    yield proc
    proc.stop()


def test_the_sdk_retries_a_short_rate_limit_itself_and_gets_its_images(
    brisk_server: ServerProcess,
) -> None:
    key = brisk_server.create_key(f"ws-brisk-{uuid.uuid4().hex[:8]}")
    client, sent = counting_sdk(brisk_server, key, max_retries=4)
    with client:

        def one(i: int) -> openai.types.ImagesResponse:
            return client.images.generate(model="gpt-image-1", prompt=f"kite {i}",
                                          quality="low")  # fmt: skip

        with ThreadPoolExecutor(5) as pool:
            results = list(pool.map(one, range(5)))
    assert all(r.data and decoded(r.data[0].b64_json).size for r in results)
    # Three of the five were refused at first (2 a second) and sent again after the
    # Retry-After the SDK read.
    assert len(sent) > 5, sent
    assert job_count(brisk_server, key) == 5
