"""The AUTOMATIC1111 emulator's model of the WebUI: what it has installed (samplers,
upscalers, checkpoints), the request bodies it reads, its one shared progress state,
and the generation facts (``info``) it reports."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION = "v1.10.1"
SAMPLERS = (
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DDIM",
    "UniPC",
)
UPSCALERS = (
    "None",
    "Lanczos",
    "Nearest",
    "ESRGAN_4x",
    "R-ESRGAN 4x+",
    "R-ESRGAN 4x+ Anime6B",
    "SwinIR 4x",
)
INTERROGATORS = ("clip", "deepdanbooru")
CHECKPOINTS = (
    ("v1-5-pruned-emaonly", "6ce0161689"),
    ("sd_xl_base_1.0", "31e35c80fc"),
)
# Past this the emulated GPU runs out of memory, as a real one would.
MAX_PIXELS = 4096 * 4096
OOM = "CUDA out of memory. Tried to allocate 4.00 GiB (GPU 0; 23.65 GiB total capacity)"


class Txt2ImgRequest(BaseModel):
    """The fields of StableDiffusionTxt2ImgProcessingAPI the emulator reads; others are
    accepted and echoed back in ``parameters``."""

    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    denoising_strength: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    send_images: bool = True
    save_images: bool = False


class Img2ImgRequest(Txt2ImgRequest):
    """StableDiffusionImg2ImgProcessingAPI: the defaults of processing.py's
    StableDiffusionProcessingImg2Img. Like the WebUI's generated model, the fields are
    typed but not ranged (an out-of-range ``inpainting_fill`` acts as "fill")."""

    init_images: list[str] | None = None
    resize_mode: int = 0
    denoising_strength: float | None = 0.75
    mask: str | None = None
    mask_blur: int | None = None  # sets both of the next two when given
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_round: bool = True
    inpainting_fill: int = 0  # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = True  # "only masked": the masked area repainted at width x height
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    include_init_images: bool = False


class ExtrasSingleImageRequest(BaseModel):
    """ExtrasSingleImageRequest of modules/api/models.py."""

    model_config = ConfigDict(extra="allow")

    resize_mode: Literal[0, 1] = 0  # 0: by upscaling_resize; 1: to upscaling_resize_w x _h
    show_extras_results: bool = True
    upscaling_resize: float = Field(default=2, ge=1, le=8)
    upscaling_resize_w: int = Field(default=512, ge=1)
    upscaling_resize_h: int = Field(default=512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(default=0, ge=0, le=1)
    image: str = ""


class InterrogateRequest(BaseModel):
    image: str = ""
    model: str = "clip"


@dataclass
class WebUI:
    """The WebUI's shared state: one generation at a time, and its progress."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    credentials: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.end()

    def begin(self, job: str, job_count: int, steps: int) -> None:
        self.started = time.time()
        self.state = _state(
            job=job,
            job_count=job_count,
            sampling_steps=steps,
            job_timestamp=datetime.now().strftime("%Y%m%d%H%M%S"),
        )

    def end(self) -> None:
        self.state = _state()

    def progress(self) -> dict[str, Any]:
        s = self.state
        if s["job_count"] == 0:
            return {
                "progress": 0,
                "eta_relative": 0,
                "state": s,
                "current_image": None,
                "textinfo": None,
            }
        # The WebUI's own formula: a floor of 0.01, whole batches done, then steps.
        done = 0.01 + s["job_no"] / s["job_count"]
        if s["sampling_steps"] > 0:
            done += s["sampling_step"] / s["sampling_steps"] / s["job_count"]
        elapsed = time.time() - self.started
        return {
            "progress": min(done, 1),
            "eta_relative": elapsed / done - elapsed,
            "state": s,
            "current_image": None,
            "textinfo": None,
        }


def _state(**values: Any) -> dict[str, Any]:
    return {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": "",
        "job_count": 0,
        "job_timestamp": "0",
        "job_no": 0,
        "sampling_step": 0,
        "sampling_steps": 0,
        **values,
    }


def checkpoint(name: str, short: str) -> dict[str, Any]:
    return {
        "title": f"{name}.safetensors [{short}]",
        "model_name": name,
        "hash": short,
        "sha256": None,
        "filename": f"/webui/models/Stable-diffusion/{name}.safetensors",
        "config": None,
    }


def find_checkpoint(wanted: str) -> tuple[str, str] | None:
    """The (name, short hash) a checkpoint setting names: by name, file name, title or
    hash, as the WebUI matches it."""
    for name, short in CHECKPOINTS:
        if wanted in (name, f"{name}.safetensors", f"{name}.safetensors [{short}]", short):
            return name, short
    return None


def generation_info(
    body: Txt2ImgRequest, seed: int, count: int, width: int, height: int, timestamp: str
) -> dict[str, Any]:
    """Processed.js(): the generation's facts, which the API returns as a JSON string."""
    sampler = body.sampler_name or body.sampler_index
    wanted = (body.override_settings or {}).get("sd_model_checkpoint")
    name, short = (find_checkpoint(str(wanted)) if wanted else None) or CHECKPOINTS[0]
    seeds = [seed + i for i in range(count)]
    infotexts = [
        f"{body.prompt}\nNegative prompt: {body.negative_prompt}\nSteps: {body.steps}, "
        f"Sampler: {sampler}, CFG scale: {body.cfg_scale:g}, Seed: {s}, Size: {width}x{height}, "
        f"Model hash: {short}, Model: {name}, Version: {VERSION}"
        for s in seeds
    ]
    return {
        "prompt": body.prompt,
        "all_prompts": [body.prompt] * count,
        "negative_prompt": body.negative_prompt,
        "all_negative_prompts": [body.negative_prompt] * count,
        "seed": seed,
        "all_seeds": seeds,
        "subseed": body.subseed,
        "all_subseeds": seeds,
        "subseed_strength": body.subseed_strength,
        "width": width,
        "height": height,
        "sampler_name": sampler,
        "cfg_scale": body.cfg_scale,
        "steps": body.steps,
        "batch_size": body.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": name,
        "sd_model_hash": short,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": body.denoising_strength,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": body.styles or [],
        "job_timestamp": timestamp,
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
    }
