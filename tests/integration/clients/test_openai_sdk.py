"""The official ``openai`` Python SDK against the OpenAI Images emulator (a real
process on loopback): its ordinary calls parse, its errors land in the SDK's own
exception types, and what the emulator answers conforms to OpenAI's OpenAPI document."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from imagegate.sandbox.openai import API_KEY
from tests.support.openapi import assert_conforms
from tests.support.sandbox import SandboxProcess

SPEC = "openai-images"


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("openai")


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[openai.OpenAI]:
    # No retries unless a test asks: a fault must surface as the SDK's exception.
    with openai.OpenAI(
        api_key=API_KEY, base_url=sandbox.url + "/v1", max_retries=0, timeout=20
    ) as sdk:
        yield sdk


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (40, 90, 160, 255)[: len(mode)]).save(out, format="PNG")
    return out.getvalue()


def decoded(b64: str | None) -> Image.Image:
    assert b64, "no b64_json in the response"
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_gpt_image_generate_parses_every_field_and_matches_the_spec(
    client: openai.OpenAI,
) -> None:
    raw = client.images.with_raw_response.generate(
        model="gpt-image-1", prompt="a lighthouse at dusk", size="1536x1024",
        quality="low", output_format="webp",
    )  # fmt: skip
    response = raw.parse()

    assert_conforms(SPEC, "ImagesResponse", raw.http_response.json(), closed=True)
    assert raw.headers["x-request-id"].startswith("req_")
    assert (response.size, response.quality, response.output_format) == (
        "1536x1024", "low", "webp",
    )  # fmt: skip
    assert response.background == "opaque" and response.created > 0
    [item] = response.data
    image = decoded(item.b64_json)
    assert (image.format, image.size) == ("WEBP", (1536, 1024))
    assert item.url is None
    usage = response.usage
    assert usage is not None and usage.input_tokens_details.text_tokens >= 1
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_auto_size_and_quality_come_back_as_what_was_made(client: openai.OpenAI) -> None:
    # OpenAI's ImagesResponse allows no "auto": the answer names the size and quality used.
    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="a quiet harbour")
    assert_conforms(SPEC, "ImagesResponse", raw.http_response.json(), closed=True)
    response = raw.parse()
    assert (response.size, response.quality) == ("1024x1024", "medium")
    assert decoded(response.data[0].b64_json).size == (1024, 1024)


def test_dall_e_3_answers_a_url_the_client_can_download(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model="dall-e-3", prompt="a red kite", size="1792x1024", response_format="url"
    )
    assert_conforms(SPEC, "ImagesResponse", raw.http_response.json(), closed=True)
    [item] = raw.parse().data
    assert item.b64_json is None and item.revised_prompt == "a red kite"
    assert item.url is not None
    download = httpx.get(item.url, timeout=10)
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(download.content)) as image:
        assert (image.format, image.size) == ("PNG", (1792, 1024))


def test_dall_e_2_b64_json(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model="dall-e-2", prompt="a small boat", size="256x256", response_format="b64_json", n=3
    )
    assert [decoded(item.b64_json).size for item in response.data] == [(256, 256)] * 3
    assert response.usage is None


def test_edit_with_an_image_file_and_a_mask(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.edit(
        model="gpt-image-1",
        image=("photo.png", png(64, 64), "image/png"),
        mask=("mask.png", png(64, 64), "image/png"),
        prompt="add a sailing boat",
        size="1024x1536",
        quality="high",
    )
    assert_conforms(SPEC, "ImagesResponse", raw.http_response.json(), closed=True)
    [item] = raw.parse().data
    assert decoded(item.b64_json).size == (1024, 1536)


def test_edit_repaints_where_the_mask_is_transparent(client: openai.OpenAI) -> None:
    # The left half of the mask is transparent: that half is repainted, the right kept.
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    response = client.images.edit(
        model="gpt-image-1", image=("photo.png", png(64, 64), "image/png"),
        mask=("mask.png", out.getvalue(), "image/png"), prompt="a red sun", size="1024x1024",
    )  # fmt: skip
    picture = decoded(response.data[0].b64_json).convert("RGB")
    assert picture.size == (1024, 1024)
    assert picture.getpixel((900, 512)) == (40, 90, 160)  # kept, pixel for pixel
    assert picture.getpixel((100, 512)) != (40, 90, 160)  # repainted


def test_an_edit_whose_mask_does_not_match_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="gpt-image-1", image=("photo.png", png(64, 64), "image/png"),
            mask=("mask.png", png(32, 32), "image/png"), prompt="a boat",
        )  # fmt: skip
    assert (caught.value.status_code, caught.value.param) == (400, "mask")
    assert_conforms(SPEC, "ErrorResponse", caught.value.response.json())


def test_a_moderated_edit_is_a_bad_request_with_its_code(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="gpt-image-1", image=("photo.png", png(64, 64), "image/png"),
            prompt="a fox sandbox:moderate",
        )  # fmt: skip
    assert caught.value.code == "moderation_blocked"


def test_dall_e_2_edit_of_a_transparent_square(client: openai.OpenAI) -> None:
    response = client.images.edit(
        model="dall-e-2", image=("in.png", _transparent(64), "image/png"),
        prompt="a lighthouse", size="256x256", response_format="b64_json",
    )  # fmt: skip
    assert decoded(response.data[0].b64_json).size == (256, 256)


def _transparent(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def test_edit_with_several_images_from_disk(client: openai.OpenAI, tmp_path: Path) -> None:
    paths = []
    for index in range(2):
        path = tmp_path / f"ref-{index}.png"
        path.write_bytes(png(32, 32, "RGB"))
        paths.append(path)
    with paths[0].open("rb") as first, paths[1].open("rb") as second:
        response = client.images.edit(
            model="gpt-image-1", image=[first, second], prompt="both in one scene", n=2
        )
    assert len(response.data) == 2 and all(decoded(i.b64_json) for i in response.data)


def test_create_variation_on_dall_e_2(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.create_variation(
        image=("in.png", png(256, 256), "image/png"), n=2, size="512x512"
    )
    assert_conforms(SPEC, "ImagesResponse", raw.http_response.json(), closed=True)
    urls = [item.url for item in raw.parse().data]
    assert len(urls) == 2 and all(urls)
    with Image.open(io.BytesIO(httpx.get(str(urls[0]), timeout=10).content)) as image:
        assert image.size == (512, 512)


def test_a_rate_limit_is_a_rate_limit_error_with_the_envelope(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model="gpt-image-1", prompt="sandbox:429")
    error = caught.value
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    assert error.request_id and error.request_id.startswith("req_")
    assert error.response.headers["retry-after"] == "1"
    assert_conforms(SPEC, "ErrorResponse", error.response.json())


def test_the_sdk_retries_a_429_and_gets_the_image(sandbox: SandboxProcess) -> None:
    sandbox.faults(error_count=1, error_status=429)
    with openai.OpenAI(api_key=API_KEY, base_url=sandbox.url + "/v1", max_retries=2) as sdk:
        response = sdk.images.generate(model="dall-e-2", prompt="x", response_format="b64_json")
    assert decoded(response.data[0].b64_json).size == (1024, 1024)
    stats = sandbox.stats()
    assert (stats["requests"], stats["submissions"]) == (2, 1)


@pytest.mark.parametrize(
    ("call", "kind", "status", "code", "param"),
    [
        ({"model": "dall-e-3", "prompt": "x", "n": 2}, openai.BadRequestError, 400, None, "n"),
        ({"model": "dall-e-2", "prompt": "x", "size": "9x9"}, openai.BadRequestError, 400,
         "invalid_value", "size"),
        ({"model": "gpt-image-1", "prompt": "sandbox:moderate"}, openai.BadRequestError, 400,
         "moderation_blocked", None),
        ({"model": "gpt-image-1", "prompt": "sandbox:500"}, openai.InternalServerError, 500,
         None, None),
        ({"model": "gpt-image-1", "prompt": "sandbox:503"}, openai.InternalServerError, 503,
         None, None),
    ],
)  # fmt: skip
def test_errors_parse_into_the_sdks_exception_types(
    client: openai.OpenAI,
    call: dict[str, object],
    kind: type[openai.APIStatusError],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    with pytest.raises(kind) as caught:
        client.images.generate(**call)  # type: ignore[call-overload]
    error = caught.value
    assert (error.status_code, error.code, error.param) == (status, code, param)
    assert isinstance(error.body, dict) and error.message
    assert_conforms(SPEC, "ErrorResponse", error.response.json())


def test_a_wrong_key_is_an_authentication_error(sandbox: SandboxProcess) -> None:
    with openai.OpenAI(api_key="sk-wrong", base_url=sandbox.url + "/v1", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk.images.generate(model="gpt-image-1", prompt="x")
    assert caught.value.code == "invalid_api_key"
    assert_conforms(SPEC, "ErrorResponse", caught.value.response.json())


def test_models_list(client: openai.OpenAI) -> None:
    assert {model.id for model in client.models.list()} == {"gpt-image-1", "dall-e-3", "dall-e-2"}
