"""Every read from a provider is bounded: a result image too big, endless, slow, of the
wrong type or redirected to a forbidden address fails the attempt with a clear
provider error (never a 500, never a hang, never the whole body in memory); so does
an oversized JSON answer. And shutting down closes every adapter's HTTP pool.

The provider is a real HTTP server on loopback that misbehaves on purpose
(tests/support/misbehaving.py), called by the real adapters, and by a real server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.domain.params import Mode
from imagegate.providers.base import GenerationRequest, NoCorrelation
from imagegate.providers.errors import ProviderError
from imagegate.providers.http import MAX_IMAGE_BYTES, ProviderConfig, ReadLimits
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.replicate import ReplicateProvider
from imagegate.runtime import Runtime
from imagegate.settings import Settings
from tests.support.api import client, wait_for_job
from tests.support.misbehaving import MB, MisbehavingProvider
from tests.support.server import ServerProcess, wait_until


@pytest.fixture
def provider() -> Iterator[MisbehavingProvider]:
    server = MisbehavingProvider().start()
    yield server
    server.stop()


Make = Callable[..., Any]


@pytest.fixture
async def make(provider: MisbehavingProvider) -> AsyncIterator[Make]:
    made: list[Any] = []

    def build(cls: type = OpenAIProvider, **limits: Any) -> Any:
        base = provider.url + "/v1"
        # Each adapter checks its own options: only OpenAI's has response_format.
        options = {"response_format": "url"} if cls is OpenAIProvider else {}
        config = ProviderConfig(
            name="misbehaving", type="openai", base_url=base, api_key="sk-test",
            timeout_s=30, poll_interval_s=0.02, options=options,
            reads=ReadLimits(**limits),
        )  # fmt: skip
        made.append(cls(config))
        return made[-1]

    yield build
    for adapter in made:
        await adapter.aclose()


def request(model: str = "dall-e-2") -> GenerationRequest:
    return GenerationRequest(
        prompt="a lighthouse", negative_prompt=None, width=256, height=256, seeds=(1,),
        style="none", mode=Mode.DRAFT, model=model,
    )  # fmt: skip


async def fails(adapter: Any, model: str = "dall-e-2") -> ProviderError:
    async def progress(_: float) -> None:
        pass

    with pytest.raises(ProviderError) as caught:
        await adapter.generate(request(model), progress, NoCorrelation())
    return caught.value


async def test_a_200_mb_chunked_image_stops_at_the_image_cap(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/big"
    error = await fails(make())
    assert error.code == "provider_response_too_large"
    assert f"over the {MAX_IMAGE_BYTES}-byte limit" in error.message
    # The read stopped at the cap: the rest of the 200 MB was never sent.
    assert provider.bytes_sent["/big"] < MAX_IMAGE_BYTES + 16 * MB


async def test_a_declared_200_mb_image_is_refused_before_its_body(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/big-declared"
    error = await fails(make())
    assert error.code == "provider_response_too_large"
    assert f"answer of {200 * MB} bytes" in error.message
    assert provider.bytes_sent["/big-declared"] < 16 * MB


async def test_an_endless_image_stops_at_the_cap(make: Make, provider: MisbehavingProvider) -> None:
    provider.result_path = "/endless"
    error = await fails(make(max_image_bytes=4 * MB))
    assert error.code == "provider_response_too_large"
    assert provider.bytes_sent["/endless"] < 20 * MB


async def test_a_trickling_image_ends_at_the_download_deadline(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/trickle"
    started = time.monotonic()
    error = await fails(make(download_timeout_s=1.0))
    assert error.code == "provider_unavailable"
    assert "did not finish within 1 s" in error.message
    assert time.monotonic() - started < 10


async def test_a_redirect_to_cloud_metadata_is_never_followed(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/to-metadata"
    error = await fails(make())
    assert error.code == "provider_unsafe_url"
    assert not error.retryable
    assert "169.254.169.254 is a link-local address" in error.message


async def test_a_redirect_to_another_loopback_port_is_refused(
    make: Make, provider: MisbehavingProvider
) -> None:
    # The provider's own base_url is trusted (an emulator, a self-hosted server); a
    # redirect to anything else on loopback is not.
    other = MisbehavingProvider().start()
    try:
        provider.result_path = f"/to-port/{other.url.rsplit(':', 1)[1]}"
        error = await fails(make())
        assert error.code == "provider_unsafe_url"
        assert "loopback" in error.message
        assert sum(other.hits.values()) == 0
    finally:
        other.stop()


async def test_a_redirect_on_the_providers_own_host_is_followed(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/hop"

    async def progress(_: float) -> None:
        pass

    result = await make().generate(request(), progress, NoCorrelation())
    assert [(i.width, i.height) for i in result.images] == [(64, 64)]
    assert provider.hits["/hop"] == 1 and provider.hits["/png"] == 1


async def test_a_redirect_loop_ends_after_the_hop_limit(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/loop"
    error = await fails(make())
    assert "more than 5 redirects" in error.message
    assert provider.hits["/loop"] == 6


async def test_a_web_page_where_an_image_should_be_is_refused(
    make: Make, provider: MisbehavingProvider
) -> None:
    provider.result_path = "/html"
    error = await fails(make())
    assert error.code == "provider_bad_response"
    assert "'text/html', not an image" in error.message


@pytest.mark.parametrize("answer", ["big-json", "endless-json"])
async def test_an_oversized_json_answer_stops_at_the_json_cap(
    make: Make, provider: MisbehavingProvider, answer: str
) -> None:
    provider.replicate_answer = answer
    error = await fails(make(ReplicateProvider), model="black-forest-labs/flux-schnell")
    assert error.code == "provider_response_too_large"
    assert f"over the {4 * MB}-byte limit" in error.message
    assert sum(provider.bytes_sent.values()) < 4 * MB + 16 * MB


# Through a real server: the job fails with the provider's code, not an internal error.

CONFIG = """
[providers.builtin]
enabled = false

[providers.openai]
base_url = "{url}/v1"
api_key_env = "READS_TEST_KEY"
models = ["dall-e-2"]

[providers.openai.options]
response_format = "url"
"""


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[MisbehavingProvider]:
    server = MisbehavingProvider().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reads_server(
    misbehaving: MisbehavingProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("reads")
    config = root / "imagegate.toml"
    config.write_text(CONFIG.format(url=misbehaving.url))
    server = ServerProcess(
        root / "data", IMAGEGATE_CONFIG=str(config), READS_TEST_KEY="sk-test",
        IMAGEGATE_MAX_ATTEMPTS="1", IMAGEGATE_PROVIDER_DOWNLOAD_TIMEOUT_S="3",
        # A small cap, so that /big and /endless reach it long before the deadline that
        # /trickle is about, however busy the machine.
        IMAGEGATE_PROVIDER_MAX_IMAGE_BYTES=str(4 * MB),
    ).start()  # fmt: skip
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/big", "provider_response_too_large"),
        ("/endless", "provider_response_too_large"),
        ("/trickle", "provider_unavailable"),
        ("/to-metadata", "provider_unsafe_url"),
        ("/html", "provider_bad_response"),
    ],
)
def test_a_job_whose_provider_misbehaves_fails_with_the_providers_code(
    reads_server: ServerProcess, misbehaving: MisbehavingProvider, path: str, code: str
) -> None:
    misbehaving.result_path = path
    with client(reads_server.url, reads_server.admin_key) as http:
        body = {
            "prompt": f"a lighthouse {path}",
            "model": "openai:dall-e-2",
            "mode": "draft",
            "variations": 1,
        }
        created = http.post("/api/image/jobs", json=body)
        assert created.status_code in (201, 202), created.text
        job = wait_for_job(http, created.json()["job_id"], timeout=60)
        assert job["status"] == "failed", job
        assert job["error"]["code"] == code, job["error"]
        # The server is still well: the next request is answered as usual.
        assert http.get("/readyz").status_code == 200


# Shutdown closes the pools.


async def test_closing_the_runtime_closes_every_adapters_connections(
    provider: MisbehavingProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(url=provider.url))
    monkeypatch.setenv("READS_TEST_KEY", "sk-test")
    rt = Runtime.build(Settings(data_dir=tmp_path / "data", config=config))
    provider.result_path = "/png"

    async def progress(_: float) -> None:
        pass

    adapter = rt.providers.get("openai")
    await adapter.generate(request(), progress, NoCorrelation())
    # One kept-alive connection to the API, one to the result URL's host.
    assert wait_until(lambda: provider.open_connections == 2, 5, what="two connections")
    await rt.close()
    assert wait_until(lambda: provider.open_connections == 0, 5, what="closed connections")
