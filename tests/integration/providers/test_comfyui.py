"""The ComfyUI adapter against its emulator (``imagegate sandbox comfyui``), and the
emulator itself over plain HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.asyncio.client import connect

from imagegate.domain.actions import Direction, UpscaleMode, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.comfyui import ComfyUIProvider, build
from imagegate.providers.comfyui_workflows import Template
from imagegate.providers.config import ConfigError
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.http import ProviderConfig, ResultExpiredError
from tests.support.pictures import box_mask, decoded, max_difference, scene
from tests.support.sandbox import SandboxProcess
from tests.support.server import wait_until

MODEL = "sd_xl_base_1.0.safetensors"


def request(prompt: str = "a red fox in snow", **changes: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "prompt": prompt, "negative_prompt": "blurry", "width": 300, "height": 203,
        "seeds": (5, 6), "style": "none", "mode": Mode.STANDARD, "model": MODEL,
    }  # fmt: skip
    return GenerationRequest(**{**fields, **changes})


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("comfyui")


@pytest.fixture
def make(sandbox: SandboxProcess) -> Callable[..., ComfyUIProvider]:
    made: list[ComfyUIProvider] = []

    def make_provider(**changes: Any) -> ComfyUIProvider:
        fields: dict[str, Any] = {
            "name": "comfyui", "type": "comfyui", "base_url": sandbox.url,
            "timeout_s": 20.0, "poll_interval_s": 0.1,
        }  # fmt: skip
        made.append(build(ProviderConfig(**{**fields, **changes})))
        return made[-1]

    return make_provider


@pytest.fixture
async def provider(make: Callable[..., ComfyUIProvider]) -> AsyncIterator[ComfyUIProvider]:
    adapter = make()
    yield adapter
    await adapter.aclose()


def history(sandbox: SandboxProcess, prompt_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{sandbox.url}/history/{prompt_id}", timeout=5).json()
    return body


def submitted_graph(sandbox: SandboxProcess, prompt_id: str) -> dict[str, Any]:
    graph: dict[str, Any] = history(sandbox, prompt_id)[prompt_id]["prompt"][2]
    return graph


# --- the happy path -----------------------------------------------------------------


async def test_images_are_decoded_at_the_snapped_size_one_per_seed(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation()
    result = await provider.generate(request(), Progress(), correlation)

    assert [image.seed for image in result.images] == [5, 6]
    for image in result.images:
        with Image.open(io.BytesIO(image.data)) as opened:
            assert opened.format == "PNG"
            assert opened.size == (304, 200)  # 300x203 → nearest multiples of 8
        assert (image.content_type, image.width, image.height) == ("image/png", 304, 200)
    assert result.images[0].data != result.images[1].data
    assert result.provider_job_id is not None
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1


async def test_the_workflow_carries_prompt_seeds_size_and_draft_steps(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    result = await provider.generate(
        request(style="noir", mode=Mode.DRAFT), Progress(), NoCorrelation()
    )

    graph = submitted_graph(sandbox, str(result.provider_job_id))
    samplers = [node["inputs"] for node in graph.values() if node["class_type"] == "KSampler"]
    assert sorted(s["seed"] for s in samplers) == [5, 6]
    assert {s["steps"] for s in samplers} == {12}  # draft: half the template's 25
    latent = next(n["inputs"] for n in graph.values() if n["class_type"] == "EmptyLatentImage")
    assert (latent["width"], latent["height"], latent["batch_size"]) == (304, 200, 1)
    texts = {
        n["_meta"]["title"]: n["inputs"]["text"] for n in graph.values() if "text" in n["inputs"]
    }
    assert texts["imagegate.prompt"].startswith("a red fox in snow, film noir")
    assert texts["imagegate.negative"] == "blurry"


async def test_the_same_seed_gives_the_same_image(provider: ComfyUIProvider) -> None:
    first = await provider.generate(request(seeds=(42,)), Progress(), NoCorrelation())
    second = await provider.generate(request(seeds=(42,)), Progress(), NoCorrelation())

    assert first.images[0].data == second.images[0].data
    assert first.provider_job_id != second.provider_job_id


async def test_progress_follows_the_sampler_and_only_moves_forward(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=300)
    progress = Progress()

    await provider.generate(request(), progress, NoCorrelation())

    assert len(progress.values) > 10  # 2 samplers x 25 steps, reported over the socket
    assert progress.values == sorted(set(progress.values))
    assert 0 < progress.values[0] < 0.1
    assert progress.values[-1] == 1.0


async def test_without_the_socket_it_polls_the_history(
    make: Callable[..., ComfyUIProvider], sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=300)
    adapter = make(options={"websocket": False})
    progress = Progress()

    result = await adapter.generate(request(), progress, NoCorrelation())
    await adapter.aclose()

    assert len(result.images) == 2
    assert progress.values == [1.0]
    assert sandbox.stats()["polls"] >= 2


async def test_a_users_workflow_file_with_nodes_named_in_the_config(
    make: Callable[..., ComfyUIProvider], tmp_path: Path
) -> None:
    graph = {
        "ckpt": node("CheckpointLoaderSimple", ckpt_name=MODEL),
        "size": node("EmptyLatentImage", width=512, height=512, batch_size=4),
        "pos": node("CLIPTextEncode", text="", clip=["ckpt", 1]),
        "neg": node("CLIPTextEncode", text="", clip=["ckpt", 1]),
        "sample": node(
            "KSamplerAdvanced", model=["ckpt", 0], add_noise="enable", noise_seed=0, steps=10,
            cfg=6.0, sampler_name="euler", scheduler="karras", positive=["pos", 0],
            negative=["neg", 0], latent_image=["size", 0], start_at_step=0, end_at_step=10000,
            return_with_leftover_noise="disable",
        ),
        "decode": node("VAEDecode", samples=["sample", 0], vae=["ckpt", 2]),
        "out": node("SaveImage", images=["decode", 0], filename_prefix="mine"),
    }  # fmt: skip
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(graph))
    nodes = {
        "prompt": "pos",
        "negative": "neg",
        "latent": "size",
        "sampler": "sample",
        "save": "out",
    }
    adapter = make(models=("custom",), options={"workflow": str(path), "nodes": nodes})

    result = await adapter.generate(
        request(model="custom", seeds=(3, 4, 5)), Progress(), NoCorrelation()
    )
    await adapter.aclose()

    assert [(i.seed, i.width, i.height) for i in result.images] == [
        (3, 304, 200),
        (4, 304, 200),
        (5, 304, 200),
    ]
    assert len({i.data for i in result.images}) == 3


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def test_a_template_missing_a_node_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    config = ProviderConfig(
        name="mine", type="comfyui", options={"workflow": str(path), "nodes": {"save": "1"}}
    )

    with pytest.raises(ConfigError, match=r"providers\.mine: .*no prompt node"):
        build(config)


# --- correlation and resuming -------------------------------------------------------


class CheckingCorrelation(NoCorrelation):
    """Records ids, noting whether the prompt had already finished when it was told."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.finished_when_recorded: list[bool] = []

    async def record(self, provider_job_id: str) -> None:
        await super().record(provider_job_id)
        async with httpx.AsyncClient() as client:
            found = (await client.get(f"{self.sandbox.url}/history/{provider_job_id}")).json()
        self.finished_when_recorded.append(bool(found))


async def test_the_prompt_id_is_recorded_before_the_prompt_finishes(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=500)
    correlation = CheckingCorrelation(sandbox)

    result = await provider.generate(request(), Progress(), correlation)

    assert correlation.recorded == [result.provider_job_id]
    assert correlation.finished_when_recorded == [False]


async def test_resuming_a_finished_prompt_fetches_it_without_submitting(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    first = await provider.generate(request(), Progress(), NoCorrelation())
    resumed = NoCorrelation(existing=first.provider_job_id)

    again = await provider.generate(request(), Progress(), resumed)

    assert again.provider_job_id == first.provider_job_id
    assert [i.data for i in again.images] == [i.data for i in first.images]
    assert resumed.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_resuming_a_running_prompt_waits_for_it_without_submitting(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    # Long enough that the cancel below lands while the prompt runs, on a busy machine too.
    sandbox.faults(job_duration_ms=5000)
    crashed = NoCorrelation()
    attempt = asyncio.create_task(provider.generate(request(), Progress(), crashed))
    await asyncio.wait_for(_until(lambda: bool(crashed.recorded)), 10)
    attempt.cancel()  # the worker dies while the prompt runs
    with pytest.raises(asyncio.CancelledError):
        await attempt
    resumed = NoCorrelation(existing=crashed.recorded[0])
    progress = Progress()

    result = await provider.generate(request(), progress, resumed)

    assert result.provider_job_id == crashed.recorded[0]
    assert len(result.images) == 2
    assert len(progress.values) > 2  # the socket listens on the prompt's own client id
    assert sandbox.stats()["submissions"] == 1


async def test_an_unknown_prompt_id_is_submitted_anew(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="forgotten-by-a-restart")

    result = await provider.generate(request(), Progress(), correlation)

    assert correlation.recorded == [result.provider_job_id]
    assert result.provider_job_id != "forgotten-by-a-restart"
    assert sandbox.stats()["submissions"] == 1


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# --- failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "expected", "retryable"),
    [
        ("sandbox:500", RetryableProviderError, True),
        ("sandbox:503", RetryableProviderError, True),
        ("sandbox:fail", ProviderError, True),
        ("sandbox:oom", RetryableProviderError, True),
        ("sandbox:moderate", ModeratedError, False),
        ("sandbox:expired", ResultExpiredError, True),
    ],
)
async def test_each_failure_has_its_class(
    provider: ComfyUIProvider, marker: str, expected: type[ProviderError], retryable: bool
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request(f"a fox {marker}"), Progress(), NoCorrelation())

    assert type(caught.value) is expected
    assert caught.value.retryable is retryable
    assert caught.value.resumable is False  # the next attempt must submit again


async def test_a_failed_prompt_names_its_id(provider: ComfyUIProvider) -> None:
    correlation = NoCorrelation()
    with pytest.raises(ProviderError, match="RuntimeError") as caught:
        await provider.generate(request("sandbox:fail"), Progress(), correlation)

    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_429_is_rate_limited_with_the_retry_after_header(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    sandbox.faults(error_status=429, error_count=1, retry_after_s=7)

    with pytest.raises(RateLimitedError) as caught:
        await provider.generate(request(), Progress(), NoCorrelation())

    assert caught.value.retry_after == 7.0
    assert sandbox.stats().get("submissions", 0) == 0
    assert sandbox.stats()["jobs"] == 0


async def test_the_429_marker_says_retry_after_one_second(provider: ComfyUIProvider) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await provider.generate(request("sandbox:429"), Progress(), NoCorrelation())

    assert caught.value.retry_after == 1.0


async def test_a_hanging_server_times_out_as_retryable(
    make: Callable[..., ComfyUIProvider],
) -> None:
    adapter = make(timeout_s=1.0)
    started = time.monotonic()

    with pytest.raises(RetryableProviderError, match="timed out"):
        await adapter.generate(request("sandbox:timeout"), Progress(), NoCorrelation())
    await adapter.aclose()

    # The adapter's own 1 s timeout ended the call, not the emulator's hour-long hang:
    # a bound far from both, so a busy machine's stalls (seconds) do not decide it.
    assert time.monotonic() - started < 30


async def test_a_prompt_still_running_at_the_deadline_is_resumable(
    make: Callable[..., ComfyUIProvider], sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=3000)
    adapter = make(timeout_s=0.5)
    correlation = NoCorrelation()

    with pytest.raises(RetryableProviderError) as caught:
        await adapter.generate(request(), Progress(), correlation)
    await adapter.aclose()

    assert caught.value.resumable is True
    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_a_malformed_answer_is_an_unclassified_error(provider: ComfyUIProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request("sandbox:malformed"), Progress(), NoCorrelation())

    assert not isinstance(caught.value, PermanentProviderError | ModeratedError)
    assert caught.value.retryable is True


async def test_an_interrupted_prompt_is_retryable(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=3000)
    correlation = NoCorrelation()
    attempt = asyncio.create_task(provider.generate(request(), Progress(), correlation))
    await asyncio.wait_for(_until(lambda: bool(correlation.recorded)), 10)
    async with httpx.AsyncClient() as client:
        await _interrupt_when_running(client, sandbox, correlation.recorded[0])

    with pytest.raises(RetryableProviderError, match="interrupted"):
        await attempt


async def _interrupt_when_running(
    client: httpx.AsyncClient, sandbox: SandboxProcess, prompt_id: str
) -> None:
    while not (await client.get(f"{sandbox.url}/queue")).json()["queue_running"]:
        await asyncio.sleep(0.01)
    response = await client.post(f"{sandbox.url}/interrupt", json={"prompt_id": prompt_id})
    assert response.status_code == 200


async def test_an_invalid_workflow_is_permanent(make: Callable[..., ComfyUIProvider]) -> None:
    adapter = make(models=("no_such_model.safetensors",))

    with pytest.raises(PermanentProviderError, match="Value not in list"):
        await adapter.generate(
            request(model="no_such_model.safetensors"), Progress(), NoCorrelation()
        )
    await adapter.aclose()


async def test_a_wrong_token_is_permanent_and_the_right_one_works(
    make: Callable[..., ComfyUIProvider], sandbox: SandboxProcess
) -> None:
    httpx.post(f"{sandbox.url}/_sandbox/comfyui/token", json={"token": "s3cret"}, timeout=5)
    wrong, right = make(api_key="nope"), make(api_key="s3cret")

    with pytest.raises(PermanentProviderError, match="401"):
        await wrong.generate(request(), Progress(), NoCorrelation())
    progress = Progress()
    result = await right.generate(request(), progress, NoCorrelation())
    await wrong.aclose()
    await right.aclose()

    assert len(result.images) == 2
    assert len(progress.values) > 2  # the socket accepted the token too


async def test_unsupported_requests_are_refused_before_submitting(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    with pytest.raises(PermanentProviderError, match="unknown model"):
        await provider.generate(request(model="dall-e-3"), Progress(), NoCorrelation())
    with pytest.raises(PermanentProviderError, match="1 to 4 images"):
        await provider.generate(request(seeds=(1, 2, 3, 4, 5)), Progress(), NoCorrelation())

    assert sandbox.stats().get("requests", 0) == 0


def test_capabilities_and_credits(provider: ComfyUIProvider) -> None:
    caps = provider.capabilities()

    assert caps.models == (MODEL,)
    assert (caps.max_images, caps.seeds, caps.negative_prompt) == (4, True, True)
    assert [a.value for a in caps.actions] == [
        "imagine",
        "img2img",
        "variation",
        "upscale",
        "zoom_out",
        "pan",
        "vary_region",
    ]
    assert provider.estimate_credits(request(mode=Mode.DRAFT)) == 2
    assert provider.estimate_credits(request(seeds=(1, 2, 3))) == 6


# --- the emulator, directly ---------------------------------------------------------


def default_graph() -> dict[str, Any]:
    return (
        Template.load()
        .fill(prompt="a lighthouse", negative=None, width=64, height=48, seeds=(9,))
        .graph
    )


def test_emulator_validation_errors_have_comfyuis_shape(sandbox: SandboxProcess) -> None:
    no_prompt = httpx.post(f"{sandbox.url}/prompt", json={"client_id": "x"}, timeout=5)
    graph = default_graph()
    del graph["9"]
    no_outputs = httpx.post(f"{sandbox.url}/prompt", json={"prompt": graph}, timeout=5)
    broken = default_graph()
    broken["7"]["inputs"]["clip"] = ["404", 1]
    del broken["3"]["inputs"]["cfg"]
    bad_link = httpx.post(f"{sandbox.url}/api/prompt", json={"prompt": broken}, timeout=5)

    assert no_prompt.status_code == 400
    assert no_prompt.json() == {
        "error": {"type": "no_prompt", "message": "No prompt provided",
                  "details": "No prompt provided", "extra_info": {}},
        "node_errors": {},
    }  # fmt: skip
    assert no_outputs.status_code == 400
    assert no_outputs.json()["error"]["type"] == "prompt_no_outputs"
    body = bad_link.json()
    assert bad_link.status_code == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["7"]["errors"][0]["type"] == "exception_during_validation"
    assert body["node_errors"]["3"]["errors"][0]["type"] == "required_input_missing"
    assert body["node_errors"]["3"]["class_type"] == "KSampler"
    assert body["node_errors"]["3"]["dependent_outputs"] == ["9"]
    assert sandbox.stats()["jobs"] == 0


async def test_emulator_sends_comfyuis_message_sequence(sandbox: SandboxProcess) -> None:
    url = sandbox.url.replace("http", "ws") + "/ws?clientId=watcher"
    async with connect(url) as socket, httpx.AsyncClient() as client:
        hello = json.loads(await socket.recv())
        response = await client.post(
            f"{sandbox.url}/prompt", json={"prompt": default_graph(), "client_id": "watcher"}
        )
        prompt_id = response.json()["prompt_id"]
        seen: list[dict[str, Any]] = []
        while not (seen and seen[-1]["type"] == "executing" and seen[-1]["data"]["node"] is None):
            seen.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
        view = await client.get(f"{sandbox.url}/view", params=_image_ref(seen))
        missing = await client.get(f"{sandbox.url}/view", params={"filename": "nope.png"})

    assert hello == {
        "type": "status",
        "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "watcher"},
    }
    assert response.json() == {"prompt_id": prompt_id, "number": 0, "node_errors": {}}
    kinds = [m["type"] for m in seen if m["type"] != "status"]
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert kinds[-3:] == ["executed", "execution_success", "executing"]
    assert kinds.count("progress") == 25
    progress = next(m["data"] for m in seen if m["type"] == "progress")
    assert progress == {"value": 1, "max": 25, "node": "3", "prompt_id": prompt_id}
    assert (view.status_code, view.headers["content-type"]) == (200, "image/png")
    assert missing.status_code == 404


def _image_ref(messages: list[dict[str, Any]]) -> dict[str, str]:
    executed = next(m["data"] for m in messages if m["type"] == "executed")
    ref: dict[str, str] = executed["output"]["images"][0]
    assert ref["type"] == "output" and ref["subfolder"] == ""
    return ref


def post_prompt(sandbox: SandboxProcess, graph: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/prompt", json={"prompt": graph}, timeout=5)


def test_emulator_history_and_queue(sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=400)
    ids = [post_prompt(sandbox, default_graph()).json()["prompt_id"] for _ in range(2)]
    queue = httpx.get(f"{sandbox.url}/queue", timeout=5).json()
    wait_until(lambda: bool(history(sandbox, ids[1])), 10, 0.05, "both prompts to run")
    entry = history(sandbox, ids[0])[ids[0]]

    running_and_pending = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
    assert running_and_pending == ids
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [event for event, _ in entry["status"]["messages"]] == [
        "execution_start", "execution_cached", "execution_success",
    ]  # fmt: skip
    assert entry["outputs"]["9"]["images"][0]["filename"].startswith("imagegate_")
    assert history(sandbox, "unknown") == {}


def test_emulator_counts_only_accepted_prompts_as_submissions(sandbox: SandboxProcess) -> None:
    refused = httpx.post(
        f"{sandbox.url}/prompt", json={"prompt": _marked("sandbox:429")}, timeout=5
    )
    accepted = httpx.post(f"{sandbox.url}/prompt", json={"prompt": default_graph()}, timeout=5)

    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    assert accepted.status_code == 200
    stats = sandbox.stats()
    assert (stats["requests"], stats["submissions"], stats["jobs"]) == (2, 1, 1)


def _marked(marker: str) -> dict[str, Any]:
    graph = default_graph()
    graph["6"]["inputs"]["text"] += f" {marker}"
    return graph


async def test_emulator_behind_a_token_refuses_http_and_websocket(sandbox: SandboxProcess) -> None:
    httpx.post(f"{sandbox.url}/_sandbox/comfyui/token", json={"token": "t0k"}, timeout=5)

    missing = httpx.get(f"{sandbox.url}/queue", timeout=5)
    allowed = httpx.get(f"{sandbox.url}/queue", headers={"Authorization": "Bearer t0k"}, timeout=5)
    with pytest.raises(Exception, match="403"):
        async with connect(sandbox.url.replace("http", "ws") + "/ws"):
            pass

    assert (missing.status_code, missing.text) == (401, "401: Unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert allowed.status_code == 200


# --- the workflow actions, a template each ------------------------------------------


def action(
    kind: Action, source: bytes, width: int, height: int, **changes: Any
) -> GenerationRequest:
    return request(action=kind, source_image=source, width=width, height=height, **changes)


def uploaded_inputs(sandbox: SandboxProcess, prompt_id: str | None) -> list[str]:
    assert prompt_id is not None
    graph = submitted_graph(sandbox, prompt_id)
    return sorted(
        str(node["inputs"]["image"])
        for node in graph.values()
        if node["class_type"] in ("LoadImage", "LoadImageMask")
    )


@pytest.mark.parametrize("factor", [2, 4])
async def test_upscale_uploads_the_source_and_scales_it_exactly(
    provider: ComfyUIProvider, sandbox: SandboxProcess, factor: int
) -> None:
    source = scene(45, 30)
    upscale = action(Action.UPSCALE, source, 45 * factor, 30 * factor, upscale_factor=factor)
    result = await provider.generate(upscale, Progress(), NoCorrelation())
    [image] = result.images
    assert decoded(image).size == (45 * factor, 30 * factor)
    [name] = uploaded_inputs(sandbox, result.provider_job_id)
    assert name.startswith("imagegate-") and name.endswith("-source.png")
    stored = httpx.get(f"{sandbox.url}/view", params={"filename": name, "type": "input"}, timeout=5)
    assert stored.content == source
    assert sandbox.stats()["uploads"] == 1


async def test_a_creative_upscale_adds_a_low_denoise_sampler_pass(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    creative = action(
        Action.UPSCALE, scene(40, 40), 81, 81, upscale_factor=2, upscale_mode=UpscaleMode.CREATIVE
    )
    result = await provider.generate(creative, Progress(), NoCorrelation())
    assert decoded(result.images[0]).size == (81, 81)  # not a multiple of 8: scaled at the end
    assert result.provider_job_id is not None
    graph = submitted_graph(sandbox, result.provider_job_id)
    [sampler] = [n for n in graph.values() if n["class_type"] == "KSampler"]
    assert sampler["inputs"]["denoise"] == 0.35


async def test_img2img_denoises_by_the_strength_one_branch_per_seed(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    source = scene(96, 64)
    near = await provider.generate(
        action(Action.IMG2IMG, source, 96, 64, strength=0.1, seeds=(1,)),
        Progress(),
        NoCorrelation(),
    )
    far = await provider.generate(
        action(Action.VARIATION, source, 96, 64, strength=0.9, seeds=(1, 2)), Progress(),
        NoCorrelation(),
    )  # fmt: skip
    assert len(far.images) == 2 and [i.seed for i in far.images] == [1, 2]
    assert far.provider_job_id is not None
    samplers = [n for n in submitted_graph(sandbox, far.provider_job_id).values()
                if n["class_type"] == "KSampler"]  # fmt: skip
    assert sorted(s["inputs"]["seed"] for s in samplers) == [1, 2]
    assert {s["inputs"]["denoise"] for s in samplers} == {0.9}
    original = decoded(source)
    near_image, far_image = decoded(near.images[0]), decoded(far.images[0])
    assert near_image.size == far_image.size == (96, 64)
    assert max_difference(near_image, original) < max_difference(far_image, original)


async def test_vary_region_uploads_the_mask_and_keeps_the_unmasked_pixels(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    source = scene(80, 64)
    vary = action(
        Action.VARY_REGION, source, 80, 64, mask=box_mask(80, 64, (40, 0, 80, 64)), seeds=(3,)
    )
    result = await provider.generate(vary, Progress(), NoCorrelation())
    image, original = decoded(result.images[0]), decoded(source)
    assert image.crop((0, 0, 40, 64)).tobytes() == original.crop((0, 0, 40, 64)).tobytes()
    assert image.crop((40, 0, 80, 64)).tobytes() != original.crop((40, 0, 80, 64)).tobytes()
    names = uploaded_inputs(sandbox, result.provider_job_id)
    assert [n.rsplit("-", 1)[1] for n in names] in (
        ["mask.png", "source.png"],
        ["source.png", "mask.png"],
    )


async def test_zoom_out_pads_around_the_shrunk_source(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    source = scene(96, 96)
    canvas = zoom_out_canvas(96, 96, 1.5)
    zoom = action(Action.ZOOM_OUT, source, 96, 96, canvas=canvas, seeds=(4,))
    result = await provider.generate(zoom, Progress(), NoCorrelation())
    box = canvas.source
    centre = decoded(result.images[0]).crop((box.left, box.top, box.right, box.bottom))
    shrunk = decoded(source).resize((box.width, box.height), Image.Resampling.LANCZOS)
    assert decoded(result.images[0]).size == (96, 96)
    assert max_difference(centre, shrunk) <= 2
    assert result.provider_job_id is not None
    graph = submitted_graph(sandbox, result.provider_job_id)
    [pad] = [n["inputs"] for n in graph.values() if n["class_type"] == "ImagePadForOutpaint"]
    assert (pad["left"], pad["top"], pad["right"], pad["bottom"]) == canvas.padding()


async def test_pan_keeps_the_source_pixel_for_pixel(provider: ComfyUIProvider) -> None:
    source = scene(64, 48)
    canvas = pan_canvas(64, 48, Direction.RIGHT)
    pan = action(
        Action.PAN, source, canvas.width, 48, canvas=canvas, direction=Direction.RIGHT, seeds=(2,)
    )
    [image] = (await provider.generate(pan, Progress(), NoCorrelation())).images
    wide = decoded(image)
    assert wide.size == (canvas.width, 48)
    assert wide.crop((0, 0, 64, 48)).tobytes() == decoded(source).tobytes()
    assert wide.crop((64, 0, canvas.width, 48)).getextrema() != ((128, 128),) * 3  # painted


async def test_an_action_without_a_template_is_refused_before_uploading(
    make: Callable[..., ComfyUIProvider], sandbox: SandboxProcess
) -> None:
    provider = make(options={"workflows": {"pan": "", "upscale_creative": ""}})
    assert Action.PAN not in provider.capabilities().actions
    assert Action.DESCRIBE not in provider.capabilities().actions
    canvas = pan_canvas(32, 32, Direction.UP)
    pan = action(Action.PAN, scene(32, 32), 32, canvas.height, canvas=canvas)
    with pytest.raises(PermanentProviderError, match="no workflow for pan"):
        await provider.generate(pan, Progress(), NoCorrelation())
    # Without its own template, a creative upscale runs the plain one.
    creative = action(Action.UPSCALE, scene(16, 16), 32, 32, upscale_factor=2,
                      upscale_mode=UpscaleMode.CREATIVE)  # fmt: skip
    [image] = (await provider.generate(creative, Progress(), NoCorrelation())).images
    assert decoded(image).size == (32, 32)
    assert sandbox.stats()["uploads"] == 1
    await provider.aclose()


async def test_a_failed_upload_submits_nothing(
    provider: ComfyUIProvider, sandbox: SandboxProcess
) -> None:
    sandbox.faults(error_count=1, error_status=503)
    upscale = action(Action.UPSCALE, scene(16, 16), 32, 32, upscale_factor=2)
    with pytest.raises(RetryableProviderError, match="upload"):
        await provider.generate(upscale, Progress(), NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0
    [image] = (await provider.generate(upscale, Progress(), NoCorrelation())).images
    assert decoded(image).size == (32, 32)


async def test_a_node_error_is_a_provider_error_naming_the_node(
    make: Callable[..., ComfyUIProvider], tmp_path: Path
) -> None:
    # A user's img2img template whose VAEEncode gets a mask instead of an image.
    graph = json.loads(
        (
            Path(__file__).parents[3] / "src/imagegate/providers/comfyui_workflows/img2img.json"
        ).read_text()
    )
    graph["11"]["inputs"]["pixels"] = ["10", 1]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(graph))
    provider = make(options={"workflows": {"img2img": str(path)}})
    with pytest.raises(ProviderError, match=r"node 11 \(VAEEncode\) raised") as failed:
        await provider.generate(
            action(Action.IMG2IMG, scene(32, 32), 32, 32, seeds=(1,)), Progress(), NoCorrelation()
        )
    assert not isinstance(failed.value, PermanentProviderError | RetryableProviderError)
    await provider.aclose()


def test_a_template_missing_an_action_role_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "no-pad.json"
    path.write_text(json.dumps(default_graph()))
    config = ProviderConfig(
        name="comfy", type="comfyui", base_url="http://127.0.0.1:1",
        options={"workflows": {"zoom_out": str(path)}},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="no image node"):
        build(config)
    unknown = ProviderConfig(name="comfy", type="comfyui", options={"workflows": {"blend": "x"}})
    with pytest.raises(ConfigError, match="unknown"):
        build(unknown)


def test_emulator_uploads_rename_unless_overwriting(sandbox: SandboxProcess) -> None:
    def upload(**fields: str) -> dict[str, Any]:
        files = {"image": ("a.png", scene(8, 8), "image/png")}
        response = httpx.post(f"{sandbox.url}/upload/image", files=files, data=fields, timeout=5)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert upload() == {"name": "a.png", "subfolder": "", "type": "input"}
    assert upload()["name"] == "a (1).png"
    assert upload(overwrite="true")["name"] == "a.png"
    assert upload(subfolder="sub", type="temp") == {
        "name": "a.png",
        "subfolder": "sub",
        "type": "temp",
    }
    missing = httpx.post(f"{sandbox.url}/upload/image", data={"type": "input"}, timeout=5)
    assert missing.status_code == 400


def test_emulator_refuses_a_load_image_of_a_file_never_uploaded(sandbox: SandboxProcess) -> None:
    graph = json.loads(
        (
            Path(__file__).parents[3] / "src/imagegate/providers/comfyui_workflows/upscale.json"
        ).read_text()
    )
    response = httpx.post(f"{sandbox.url}/prompt", json={"prompt": graph}, timeout=5)
    assert response.status_code == 400
    body = response.json()
    [reason] = body["node_errors"]["10"]["errors"]
    assert reason["type"] == "custom_validation_failed" and "source.png" in reason["details"]
