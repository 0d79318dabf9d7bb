"""Request and response bodies of the HTTP contract (DESIGN §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from imagegate.api.text import FreeText, Name, NameKey, name_keys
from imagegate.domain.params import MAX_PROMPT_CHARS, MAX_SEED, MAX_VARIATIONS
from imagegate.domain.records import JobRecord
from imagegate.services.submission import JobSpec
from imagegate.storage.base import Storage

MetadataKey = Annotated[NameKey, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[FreeText, StringConstraints(max_length=500)]


class JobCreate(BaseModel):
    """Create an image job. Only ``prompt`` is required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "A cinematic product photo of a running shoe on wet pavement",
                    "style": "studio",
                    "ratio": "16:9",
                    "variations": 4,
                }
            ]
        },
    )

    action: Literal["imagine", "blend", "describe"] = Field(
        default="imagine",
        description="imagine (default; img2img with init_image), blend (2-5 `images`) or "
        "describe (one image in `images` → four prompt suggestions in `texts`)",
    )
    prompt: FreeText = Field(
        default="",
        validate_default=True,
        max_length=MAX_PROMPT_CHARS,
        description="What to draw; may carry flags: --ar 16:9 --seed 7 --no text --draft. "
        "Required for imagine; optional for blend; not used by describe",
    )
    init_image: Name | None = Field(
        default=None,
        max_length=2048,
        description="img2img: an upload id (POST /api/image/uploads) or an https URL",
    )
    strength: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="img2img: how far from init_image the result may move (0 = the same, "
        "1 = unrelated); default 0.6, or from --iw",
    )
    images: list[Annotated[Name, StringConstraints(max_length=2048)]] | None = Field(
        default=None,
        min_length=1,
        max_length=5,
        validate_default=True,
        description="blend: 2-5 upload ids or https URLs; describe: exactly one",
    )
    dimensions: Literal["portrait", "square", "landscape"] | None = Field(
        default=None, description="blend: portrait 2:3, square 1:1 (default), landscape 3:2"
    )
    negative_prompt: FreeText | None = Field(default=None, max_length=2000)
    style: Name | None = Field(default=None, max_length=64, description="A style preset name")
    ratio: Name | None = Field(default=None, description="Aspect ratio 'W:H', default 1:1")
    variations: int | None = Field(default=None, ge=1, le=MAX_VARIATIONS)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    mode: Literal["draft", "standard"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = Field(
        default=None, description="Encoding of the stored images, default png"
    )
    output_quality: int | None = Field(
        default=None, ge=1, le=100,
        description="JPEG or WebP quality of the stored images (default 90); not for png",
    )  # fmt: skip
    model: Name | None = Field(
        default=None, max_length=128, description="'auto' or 'provider:model'"
    )
    routing: Literal["priority", "cheapest", "fastest"] | None = Field(
        default=None,
        description="How 'auto' picks a provider; default: the workspace's or server's policy",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=16, json_schema_extra=name_keys(1, 40)
    )
    user: Name | None = Field(default=None, min_length=1, max_length=128)
    webhook_url: Name | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Also deliver this job's events here (https, public addresses), signed "
        "with the workspace's default secret (GET /api/image/webhooks/default/secret)",
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_metadata_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def to_spec(self) -> JobSpec:
        """The request as the services take it: the fields the client set."""
        fields = self.model_dump(exclude_unset=True)
        if "images" in fields:
            fields["images"] = tuple(fields["images"] or ())
        return JobSpec(**fields)

    # Field validators, so that each error names its field; ``action`` comes first in
    # the class, so it is known (in ``info.data``) when the others are checked.
    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("action", "imagine") == "imagine" and not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("images")
    @classmethod
    def _images_fit_the_action(cls, value: list[str] | None, info: ValidationInfo) -> Any:
        action, count = info.data.get("action", "imagine"), len(value or ())
        if action == "blend" and not 2 <= count <= 5:
            raise ValueError("blend needs 2 to 5 images")
        if action == "describe" and count != 1:
            raise ValueError("describe needs exactly one image")
        if action == "imagine" and count:
            raise ValueError("images apply to blend and describe; use init_image for img2img")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions_for_blend(cls, value: str | None, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("action") != "blend":
            raise ValueError("dimensions apply to blend only")
        return value

    @field_validator("init_image", "strength")
    @classmethod
    def _img2img_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("action", "imagine") != "imagine":
            raise ValueError(f"{info.field_name} applies to imagine (img2img) only")
        return value


class _ActionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Name | None = Field(
        default=None,
        max_length=128,
        description="'auto' or 'provider:model'; default: the parent's model if it can do "
        "the action, else auto",
    )
    webhook_url: Name | None = Field(
        default=None, min_length=1, max_length=2048, description="Default: the parent's"
    )
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        default=None, max_length=16, json_schema_extra=name_keys(1, 40)
    )


Index = Annotated[int, Field(ge=1, le=MAX_VARIATIONS, description="Which image, 1 to 4")]
RemixPrompt = Annotated[
    FreeText | None,
    Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="Remix: a new prompt for the result (default: the parent's)",
    ),
]
Count = Annotated[
    int | None,
    Field(
        default=None, ge=1, le=MAX_VARIATIONS, description="Images to make, default the parent's"
    ),
]


class UpscaleAction(_ActionBase):
    """Enlarge one image: exactly ``factor`` x its pixels (the longest side at most 4096).
    ``subtle`` keeps its detail; ``creative`` lets the model add some."""

    action: Literal["upscale"]
    index: Index
    mode: Literal["subtle", "creative"] = "subtle"
    factor: Literal[2, 4] = 2


class VariationAction(_ActionBase):
    """New images near one image; ``subtle`` stays closer to it than ``strong``. With a
    ``prompt``, a remix."""

    action: Literal["variation"]
    index: Index
    strength: Literal["subtle", "strong"] = "strong"
    prompt: RemixPrompt = None
    variations: Count = None


class RerollAction(_ActionBase):
    """The parent's prompt and parameters again, with new seeds."""

    action: Literal["reroll"]
    variations: Count = None


class ZoomOutAction(_ActionBase):
    """A wider scene around one image: the same size, the image shrunk by ``factor``
    into its centre."""

    action: Literal["zoom_out"]
    index: Index
    factor: float = Field(default=2.0, ge=1.0, le=2.0, description="1.5 or 2, or 1.0-2.0")
    prompt: RemixPrompt = None
    variations: Count = None


class PanAction(_ActionBase):
    """The canvas extended by half a side towards ``direction``, the image kept."""

    action: Literal["pan"]
    index: Index
    direction: Literal["left", "right", "up", "down"]
    prompt: RemixPrompt = None
    variations: Count = None


class Rectangle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left: int = Field(ge=0, le=4096)
    top: int = Field(ge=0, le=4096)
    width: int = Field(ge=1, le=4096)
    height: int = Field(ge=1, le=4096)


class RegionMask(BaseModel):
    """The region to repaint: rectangles in the image's pixels, or an uploaded mask
    image (white = repaint; or transparent = repaint for an image with alpha)."""

    model_config = ConfigDict(extra="forbid")

    rectangles: list[Rectangle] | None = Field(default=None, min_length=1, max_length=16)
    upload_id: Name | None = Field(default=None, max_length=64)


class VaryRegionAction(_ActionBase):
    """Repaint only the masked region of one image; every other pixel is kept."""

    action: Literal["vary_region"]
    index: Index
    mask: RegionMask
    prompt: RemixPrompt = None
    variations: Count = None


ActionCreate = Annotated[
    UpscaleAction | VariationAction | RerollAction | ZoomOutAction | PanAction | VaryRegionAction,
    Field(discriminator="action"),
]


class JobChild(BaseModel):
    job_id: str
    action: str


class JobError(BaseModel):
    code: str
    message: str | None


class JobCost(BaseModel):
    estimated_credits: int
    charged_credits: int


class JobImage(BaseModel):
    index: int
    url: str
    width: int
    height: int
    seed: int | None


class JobPublic(BaseModel):
    job_id: str
    status: str
    action: str
    parent_job_id: str | None
    # The first job of the chain (itself for a root): list the chain with ?root_job_id=.
    root_job_id: str | None = None
    # Which of the parent's images the action started from.
    source_index: int | None = None
    children: list[JobChild] = Field(default_factory=list)
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    progress: int
    result_urls: list[str]
    images: list[JobImage]
    grid_url: str | None
    # Text results: a describe job's four prompt suggestions.
    texts: list[str] = Field(default_factory=list)
    provider: str | None
    model: str | None
    # The provider's own id for the work (its prediction, request, task), for support.
    provider_job_id: str | None
    attempts: int
    dead_letter: bool
    error: JobError | None
    cost: JobCost
    user: str | None
    metadata: dict[str, str]
    webhook_url: str | None = None
    batch_id: str | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_record(cls, job: JobRecord, storage: Storage) -> JobPublic:
        images = [
            JobImage(
                index=i.index,
                url=storage.url(i.storage_key),
                width=i.width,
                height=i.height,
                seed=i.seed,
            )
            for i in job.images
            if i.kind == "image"
        ]
        grid = next((i for i in job.images if i.kind == "grid"), None)
        return cls(
            job_id=job.id,
            status=job.status.value,
            action=job.action,
            parent_job_id=job.parent_job_id,
            root_job_id=job.root_job_id or job.id,
            source_index=job.params.get("source_index"),
            children=[JobChild(job_id=c, action=a) for c, a in job.children],
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            params=job.params,
            progress=job.progress,
            result_urls=[i.url for i in images],
            images=images,
            grid_url=storage.url(grid.storage_key) if grid else None,
            texts=list(job.result_texts),
            provider=job.provider,
            model=job.model,
            provider_job_id=job.provider_job_id,
            attempts=job.attempts,
            dead_letter=job.dead_letter,
            error=JobError(code=job.error_code, message=job.error_message)
            if job.error_code
            else None,
            cost=JobCost(
                estimated_credits=job.estimated_credits, charged_credits=job.charged_credits
            ),
            user=job.user,
            metadata=job.metadata,
            webhook_url=job.webhook_url,
            batch_id=job.batch_id,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


class Problem(BaseModel):
    """An RFC 9457 problem document (docs/errors.md). Branch on ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable and machine-readable: docs/errors.md lists them")
    field: str | None = Field(default=None, description="The request field at fault")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid field: {field, message, type}"
    )
    retry_after: int | None = Field(
        default=None, description="429: seconds until the request fits, as Retry-After"
    )
