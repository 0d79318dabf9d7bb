"""The official ``replicate`` Python client against the Replicate emulator (a real
process on loopback): predictions create / wait / get / cancel, model predictions,
``replicate.run``, its exception types, and the emulator's JSON checked against
Replicate's OpenAPI document."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError

from imagegate.sandbox.replicate_models import CATALOG
from tests.support.openapi import assert_conforms
from tests.support.sandbox import SandboxProcess

TOKEN = "r8_sdk_tests"
SPEC = "replicate"
SCHNELL = "black-forest-labs/flux-schnell"
DEV = "black-forest-labs/flux-dev"
SDXL = "stability-ai/sdxl"


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("replicate")


@pytest.fixture
def client(sandbox: SandboxProcess) -> replicate.Client:
    sdk = replicate.Client(api_token=TOKEN, base_url=sandbox.url, timeout=20)
    sdk.poll_interval = 0.05  # the emulator's jobs take milliseconds
    return sdk


def raw_prediction(sandbox: SandboxProcess, prediction_id: str) -> dict[str, Any]:
    """The prediction as the wire carries it (the client's model is lenient)."""
    response = httpx.get(
        f"{sandbox.url}/v1/predictions/{prediction_id}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def image_at(url: str) -> Image.Image:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_create_wait_and_read_an_official_model(
    client: replicate.Client, sandbox: SandboxProcess
) -> None:
    prediction = client.predictions.create(
        model=SCHNELL, input={"prompt": "a fox", "num_outputs": 2, "aspect_ratio": "16:9"}
    )
    assert prediction.status == "starting"
    assert (prediction.version, prediction.model) == ("hidden", SCHNELL)
    assert_conforms(SPEC, "schemas_prediction_response", raw_prediction(sandbox, prediction.id),
                    closed=True)  # fmt: skip

    prediction.wait()

    assert prediction.status == "succeeded" and prediction.error is None
    assert prediction.progress is not None and prediction.progress.percentage == 1.0
    assert prediction.metrics and prediction.metrics["predict_time"] >= 0
    assert isinstance(prediction.output, list) and len(prediction.output) == 2
    assert [image_at(url).size for url in prediction.output] == [(1344, 768)] * 2
    again = client.predictions.get(prediction.id)
    assert (again.status, again.output) == ("succeeded", prediction.output)
    assert_conforms(SPEC, "schemas_prediction_response", raw_prediction(sandbox, prediction.id),
                    closed=True)  # fmt: skip


def test_create_a_community_model_by_version_id(client: replicate.Client) -> None:
    version = CATALOG[SDXL].version
    prediction = client.predictions.create(
        version=version, input={"prompt": "a lamp", "width": 512, "height": 384}
    )
    prediction.wait()
    assert (prediction.status, prediction.version) == ("succeeded", version)
    [url] = prediction.output
    assert image_at(url).size == (512, 384)


def test_models_predictions_create_then_get(client: replicate.Client) -> None:
    prediction = client.models.predictions.create(model=DEV, input={"prompt": "a bridge"})
    assert prediction.model == DEV
    fetched = client.predictions.get(prediction.id)
    assert fetched.id == prediction.id and fetched.status in {"starting", "processing", "succeeded"}
    fetched.wait()
    assert fetched.status == "succeeded"


def test_prefer_wait_returns_the_finished_prediction(client: replicate.Client) -> None:
    # (predictions.create(model=...) drops ``wait`` in replicate 1.0.7, so the model
    # route is called directly.)
    by_model = client.models.predictions.create(model=SCHNELL, input={"prompt": "x"}, wait=5)
    assert by_model.status == "succeeded" and by_model.output
    version = CATALOG[SDXL].version
    by_version = client.predictions.create(version=version, input={"prompt": "y"}, wait=5)
    assert by_version.status == "succeeded" and by_version.output


def test_the_model_and_its_version_parse(client: replicate.Client, sandbox: SandboxProcess) -> None:
    model = client.models.get(SDXL)
    assert (model.owner, model.name, model.visibility) == ("stability-ai", "sdxl", "public")
    assert model.latest_version is not None and model.latest_version.id == CATALOG[SDXL].version
    version = model.versions.get(CATALOG[SDXL].version)
    output = version.openapi_schema["components"]["schemas"]["Output"]
    assert output["type"] == "array"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=sandbox.url + "/v1", headers=headers, timeout=10) as raw:
        assert_conforms(SPEC, "schemas_model_response", raw.get(f"/models/{SDXL}").json(),
                        closed=True)  # fmt: skip
        body = raw.get(f"/models/{SDXL}/versions/{version.id}").json()
    assert_conforms(SPEC, "schemas_version_response", body, closed=True)


def test_run_an_official_model_and_a_pinned_version(client: replicate.Client) -> None:
    # Loopback URLs are http, so the client hands them back as strings (it wraps
    # only https and data: URLs in FileOutput).
    [url] = client.run(SCHNELL, input={"prompt": "a cat", "megapixels": "0.25"})
    assert image_at(url).size == (512, 512)
    pinned = f"{SDXL}:{CATALOG[SDXL].version}"
    [url] = client.run(pinned, input={"prompt": "a dog", "width": 256, "height": 256})
    assert image_at(url).size == (256, 256)


def test_run_an_upscale_with_a_file_input(client: replicate.Client) -> None:
    # The client sends a file object as a data URL with the base64 strategy (its
    # default uploads to the files API, which the emulator does not have); the
    # upscaler answers one URL, not a list, as its Output schema says.
    source = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 120, 200)).save(source, "PNG")
    source.seek(0)
    upscaler = f"nightmareai/real-esrgan:{CATALOG['nightmareai/real-esrgan'].version}"
    url = client.run(upscaler, input={"image": source, "scale": 4}, use_file_output=False,
                     file_encoding_strategy="base64")  # fmt: skip
    assert isinstance(url, str) and image_at(url).size == (192, 128)
    caption = client.run(
        f"salesforce/blip:{CATALOG['salesforce/blip'].version}",
        input={"image": io.BytesIO(source.getvalue())},
        file_encoding_strategy="base64",
    )
    assert isinstance(caption, str) and caption.startswith("Caption: a wide picture in blue")


def test_a_failed_run_raises_model_error(client: replicate.Client) -> None:
    with pytest.raises(ModelError) as caught:
        client.run(SCHNELL, input={"prompt": "sandbox:fail"})
    assert caught.value.prediction.status == "failed"
    assert "injected" in str(caught.value)


def test_cancel_a_running_prediction(client: replicate.Client, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=10_000)
    prediction = client.predictions.create(model=DEV, input={"prompt": "slow"})
    prediction.cancel()
    prediction.reload()
    assert prediction.status == "canceled" and prediction.output is None
    prediction.wait()  # returns at once: canceled is terminal for the client
    assert_conforms(SPEC, "schemas_prediction_response", raw_prediction(sandbox, prediction.id),
                    closed=True)  # fmt: skip
    assert client.predictions.cancel(prediction.id).status == "canceled"


def test_invalid_input_is_a_replicate_error_with_the_problem(client: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as caught:
        client.predictions.create(model=SCHNELL, input={"prompt": "x", "aspect_ratio": "7:1"})
    error = caught.value
    assert (error.status, error.title) == (422, "Input validation failed")
    assert error.detail and "input.aspect_ratio" in error.detail


@pytest.mark.parametrize(
    ("token", "prompt", "status", "title"),
    [
        ("not-a-token", "x", 401, "Unauthenticated"),
        (TOKEN, "sandbox:429", 429, "Request was throttled."),
        (TOKEN, "sandbox:500", 500, "Internal Server Error"),
    ],
)
def test_http_errors_are_replicate_errors(
    sandbox: SandboxProcess, token: str, prompt: str, status: int, title: str
) -> None:
    sdk = replicate.Client(api_token=token, base_url=sandbox.url, timeout=10)
    with pytest.raises(ReplicateError) as caught:
        sdk.predictions.create(model=SCHNELL, input={"prompt": prompt})
    assert (caught.value.status, caught.value.title) == (status, title)
    assert caught.value.detail


def test_list_predictions(client: replicate.Client) -> None:
    created = client.predictions.create(model=SCHNELL, input={"prompt": "listed"})
    page = client.predictions.list()
    assert created.id in [p.id for p in page.results]


async def test_the_async_calls(client: replicate.Client) -> None:
    prediction = await client.predictions.async_create(model=SCHNELL, input={"prompt": "async"})
    await prediction.async_wait()
    assert prediction.status == "succeeded"
    [url] = await client.async_run(SCHNELL, input={"prompt": "async run"})
    assert url.startswith("http://127.0.0.1:")
