"""Request bodies of the midjourney-proxy facade (``/mj``), in the protocol's own
camelCase names. Fields the clients send that imagegate has no use for (``accountFilter``,
``mode``…) are ignored, as the proxies ignore what they do not know."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imagegate.domain.params import MAX_PROMPT_CHARS

# An image as the protocol sends it: a data URL or bare base64 (the upload cap decides
# the bytes; this bounds the text).
Base64Image = Annotated[str, StringConstraints(min_length=1, max_length=24 * 1024 * 1024)]
TaskId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Submit(BaseModel):
    """What every submit may carry."""

    model_config = ConfigDict(extra="ignore")

    notifyHook: str | None = Field(default=None, max_length=2048)
    state: str | None = Field(default=None, max_length=500)


class Imagine(Submit):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    base64Array: list[Base64Image] = Field(default_factory=list, max_length=5)
    botType: Literal["MID_JOURNEY", "NIJI_JOURNEY"] = "MID_JOURNEY"


class Action(Submit):
    taskId: TaskId
    customId: str = Field(min_length=1, max_length=512)


class Modal(Submit):
    taskId: TaskId
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    maskBase64: Base64Image | None = None


class Change(Submit):
    taskId: TaskId
    action: Literal["UPSCALE", "VARIATION", "REROLL"]
    index: int | None = Field(default=None, ge=1, le=4)


class SimpleChange(Submit):
    content: str = Field(min_length=1, max_length=200)


class Blend(Submit):
    base64Array: list[Base64Image] = Field(min_length=2, max_length=5)
    dimensions: Literal["PORTRAIT", "SQUARE", "LANDSCAPE"] = "SQUARE"
    botType: Literal["MID_JOURNEY", "NIJI_JOURNEY"] = "MID_JOURNEY"


class Describe(Submit):
    base64: Base64Image


class Condition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ids: list[TaskId] = Field(default_factory=list, max_length=100)
