"""The diffusers adapter on the CPU, with a tiny randomly initialised Stable Diffusion
pipeline built here and saved to a temporary folder: no download, a few seconds."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from imagegate.domain.actions import Box, Direction, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode, OutputFormat
from imagegate.imaging import rectangles_mask
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.config import ConfigError
from imagegate.providers.diffusers import DiffusersProvider, build
from imagegate.providers.errors import PermanentProviderError
from imagegate.providers.http import ProviderConfig

STEPS = 3


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip(
        "diffusers", reason="the diffusers extra is not installed (make test has it)"
    )
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


def save_tiny_pipeline(root: Path) -> Path:
    """A Stable Diffusion pipeline of a few thousand random weights, saved as a real
    one is: the adapter loads it through the same code as a downloaded checkpoint."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tokenizer = CLIPTokenizer(*tiny_vocabulary(root), model_max_length=16)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=8, intermediate_size=16,
            num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=16,
            projection_dim=8, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
        norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(4,), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        norm_num_groups=4, sample_size=16,
    )  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.save_pretrained(root / "pipeline")
    return root / "pipeline"


def tiny_vocabulary(root: Path) -> tuple[str, str]:
    """CLIP's byte-level vocabulary with no merges: every byte is a token, with and
    without the end-of-word mark, plus the two special tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), 256)
    shifted = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(shifted))]
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    vocab, merges = root / "vocab.json", root / "merges.txt"
    vocab.write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    merges.write_text("#version: 0.2\n")
    return str(vocab), str(merges)


def provider_for(path: Path | str, **options: Any) -> DiffusersProvider:
    return build(
        ProviderConfig(
            name="local", type="diffusers", models=("tiny",),
            options={"model": str(path), "steps": STEPS, "draft_steps": 2, **options},
        )
    )  # fmt: skip


@pytest.fixture(scope="module")
def provider(pipeline_dir: Path) -> DiffusersProvider:
    return provider_for(pipeline_dir)


def request(**changes: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "prompt": "a lighthouse at dusk", "negative_prompt": None, "width": 61, "height": 45,
        "seeds": (11, 12), "style": "none", "mode": Mode.STANDARD, "model": "tiny",
    }  # fmt: skip
    return GenerationRequest(**{**fields, **changes})


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


async def test_images_decode_at_the_snapped_size_one_per_seed(provider: DiffusersProvider) -> None:
    correlation = NoCorrelation()
    result = await provider.generate(request(), Progress(), correlation)

    assert [image.seed for image in result.images] == [11, 12]
    for image in result.images:
        assert (image.content_type, image.width, image.height) == ("image/png", 61, 45)
        with Image.open(io.BytesIO(image.data)) as opened:
            # Made at 64x48 (multiples of 8), returned at the size asked.
            assert (opened.format, opened.size) == ("PNG", (61, 45))
    assert result.images[0].data != result.images[1].data  # different seeds, different images
    assert (result.provider_job_id, correlation.recorded) == (None, [])


async def test_the_same_seed_gives_the_same_bytes(provider: DiffusersProvider) -> None:
    first = await provider.generate(request(seeds=(7,)), Progress(), NoCorrelation())
    second = await provider.generate(request(seeds=(7,)), Progress(), NoCorrelation())
    other = await provider.generate(request(seeds=(8,)), Progress(), NoCorrelation())

    assert first.images[0].data == second.images[0].data
    assert first.images[0].data != other.images[0].data


async def test_the_negative_prompt_reaches_the_pipeline(provider: DiffusersProvider) -> None:
    plain = await provider.generate(request(seeds=(7,)), Progress(), NoCorrelation())
    negative = await provider.generate(
        request(seeds=(7,), negative_prompt="fog"), Progress(), NoCorrelation()
    )

    assert plain.images[0].data != negative.images[0].data


async def test_progress_follows_the_steps_and_only_moves_forward(
    provider: DiffusersProvider,
) -> None:
    progress = Progress()

    await provider.generate(request(), progress, NoCorrelation())

    assert len(progress.values) >= 2
    assert progress.values == sorted(set(progress.values))
    assert progress.values[0] > 0 and progress.values[-1] == 1.0


async def test_a_cancelled_job_frees_the_pipeline_for_the_next(pipeline_dir: Path) -> None:
    provider = provider_for(pipeline_dir, steps=400)
    started = asyncio.Event()

    async def on_progress(fraction: float) -> None:
        started.set()

    first = asyncio.create_task(provider.generate(request(), on_progress, NoCorrelation()))
    await asyncio.wait_for(started.wait(), 30)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = await provider.generate(request(mode=Mode.DRAFT), Progress(), NoCorrelation())

    assert len(second.images) == 2


async def test_another_output_format(provider: DiffusersProvider) -> None:
    result = await provider.generate(
        request(seeds=(1,), output_format=OutputFormat.WEBP, mode=Mode.DRAFT),
        Progress(),
        NoCorrelation(),
    )

    with Image.open(io.BytesIO(result.images[0].data)) as opened:
        assert (opened.format, result.images[0].content_type) == ("WEBP", "image/webp")


async def test_a_missing_pipeline_is_permanent(tmp_path: Path) -> None:
    pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
    provider = provider_for(tmp_path / "no-such-pipeline")

    with pytest.raises(PermanentProviderError, match="cannot load pipeline"):
        await provider.generate(request(), Progress(), NoCorrelation())


async def test_without_the_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    provider = provider_for(tmp_path)

    with pytest.raises(PermanentProviderError, match=r"pip install 'imagegate\[diffusers\]'"):
        await provider.generate(request(), Progress(), NoCorrelation())


async def test_unsupported_requests_are_refused(provider: DiffusersProvider) -> None:
    with pytest.raises(PermanentProviderError, match="unknown model"):
        await provider.generate(request(model="sdxl"), Progress(), NoCorrelation())
    with pytest.raises(PermanentProviderError, match="1 to 4 images"):
        await provider.generate(request(seeds=(1, 2, 3, 4, 5)), Progress(), NoCorrelation())
    for action in (Action.UPSCALE, Action.DESCRIBE, Action.BLEND):
        assert action not in provider.capabilities().actions
        with pytest.raises(PermanentProviderError, match=f"{action} is not supported"):
            await provider.generate(
                request(action=action, source_image=png(32, 32)), Progress(), NoCorrelation()
            )


def test_capabilities_and_credits(provider: DiffusersProvider) -> None:
    caps = provider.capabilities()

    assert (caps.models, caps.max_images, caps.seeds, caps.negative_prompt) == (
        ("tiny",), 4, True, True,
    )  # fmt: skip
    assert provider.estimate_credits(request(mode=Mode.DRAFT)) == 2
    assert provider.estimate_credits(request()) == 4


def test_a_provider_needs_a_model() -> None:
    with pytest.raises(ConfigError, match=r"options\.model"):
        build(ProviderConfig(name="local", type="diffusers"))


# -- from a source image ---------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A source with something in it: a gradient, red to blue, over a green bar."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), Image.new("L", (width, height), 60),
                                ImageChops.invert(image.getchannel(0))))  # fmt: skip
    image.paste((30, 200, 30), (0, height // 3, width, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


async def images_of(provider: DiffusersProvider, req: GenerationRequest) -> list[Image.Image]:
    result = await provider.generate(req, Progress(), NoCorrelation())
    assert [image.seed for image in result.images] == list(req.seeds)
    pictures = [decoded(image.data) for image in result.images]
    for image, picture in zip(result.images, pictures, strict=True):
        assert (image.width, image.height) == picture.size == (req.width, req.height)
    return pictures


async def test_img2img_is_deterministic_and_reads_the_source_and_strength(
    provider: DiffusersProvider,
) -> None:
    def i2i(source: bytes, strength: float, seed: int = 5) -> GenerationRequest:
        return request(action=Action.IMG2IMG, source_image=source, strength=strength,
                       seeds=(seed,), width=61, height=45)  # fmt: skip

    first = await images_of(provider, i2i(png(80, 60), 0.5))
    again = await images_of(provider, i2i(png(80, 60), 0.5))
    other_seed = await images_of(provider, i2i(png(80, 60), 0.5, seed=6))
    other_source = await images_of(provider, i2i(png(60, 80), 0.5))
    stronger = await images_of(provider, i2i(png(80, 60), 0.9))

    assert first[0].tobytes() == again[0].tobytes()
    for different in (other_seed, other_source, stronger):
        assert first[0].tobytes() != different[0].tobytes()


async def test_a_variation_is_img2img_at_its_strength(provider: DiffusersProvider) -> None:
    fields: dict[str, Any] = {"source_image": png(64, 48), "width": 64, "height": 48,
                              "seeds": (3, 4)}  # fmt: skip
    subtle = await images_of(provider, request(action=Action.VARIATION, strength=0.35, **fields))
    strong = await images_of(provider, request(action=Action.VARIATION, strength=0.75, **fields))
    same = await images_of(provider, request(action=Action.IMG2IMG, strength=0.35, **fields))

    assert [i.tobytes() for i in subtle] == [i.tobytes() for i in same]
    assert subtle[0].tobytes() != strong[0].tobytes() and subtle[0].tobytes() != subtle[1].tobytes()


async def test_vary_region_repaints_the_mask_and_keeps_the_rest(
    provider: DiffusersProvider,
) -> None:
    box = Box(16, 8, 24, 24)
    mask = rectangles_mask(61, 45, [box])
    req = request(action=Action.VARY_REGION, source_image=png(61, 45), mask=mask, width=61,
                  height=45, seeds=(9,))  # fmt: skip

    [picture] = await images_of(provider, req)
    [again] = await images_of(provider, req)

    source = decoded(png(61, 45))
    region = (box.left, box.top, box.right, box.bottom)
    assert picture.tobytes() == again.tobytes()
    assert ImageChops.difference(picture.crop(region), source.crop(region)).getbbox() is not None
    # Outside the mask, the source's pixels: the adapter lays them back over the output.
    changed = ImageChops.difference(picture, source)
    black = Image.new("RGB", source.size)
    assert Image.composite(black, changed, decoded(mask).convert("L")).getbbox() is None


async def test_zoom_out_and_pan_paint_the_padded_canvas(provider: DiffusersProvider) -> None:
    source = decoded(png(64, 48))
    zoom = zoom_out_canvas(64, 48, 2.0)
    [zoomed] = await images_of(provider, request(
        action=Action.ZOOM_OUT, source_image=png(64, 48), canvas=zoom, width=64, height=48,
        seeds=(1,),
    ))  # fmt: skip
    pan = pan_canvas(64, 48, Direction.LEFT)
    [panned] = await images_of(provider, request(
        action=Action.PAN, source_image=png(64, 48), canvas=pan, width=pan.width,
        height=pan.height, seeds=(1,),
    ))  # fmt: skip

    small = source.resize((zoom.source.width, zoom.source.height), Image.Resampling.LANCZOS)
    s = zoom.source
    assert zoomed.crop((s.left, s.top, s.right, s.bottom)).tobytes() == small.tobytes()
    assert panned.size == (96, 48)
    assert panned.crop((32, 0, 96, 48)).tobytes() == source.tobytes()
    assert len(set(panned.crop((0, 0, 32, 48)).getcolors(4096) or [])) > 1  # painted, not flat


async def test_a_mask_of_another_size_is_refused(provider: DiffusersProvider) -> None:
    req = request(action=Action.VARY_REGION, source_image=png(64, 48),
                  mask=rectangles_mask(32, 32, [Box(0, 0, 8, 8)]), width=64, height=48)  # fmt: skip
    with pytest.raises(PermanentProviderError, match="mask is 32x32, the source 64x48"):
        await provider.generate(req, Progress(), NoCorrelation())


async def test_a_low_strength_still_runs_a_step_and_reports_progress(
    provider: DiffusersProvider,
) -> None:
    progress = Progress()
    req = request(action=Action.IMG2IMG, source_image=png(32, 32), strength=0.05, width=32,
                  height=32, seeds=(1,))  # fmt: skip

    result = await provider.generate(req, progress, NoCorrelation())

    assert len(result.images) == 1
    assert len(progress.values) >= 2 and progress.values == sorted(set(progress.values))
    assert progress.values[0] > 0 and progress.values[-1] == 1.0
