"""The midjourney-proxy protocol over imagegate jobs (docs/mj-proxy.md): button
customIds parsed into actions and built from a job, the protocol's Task object made
from a job, its return codes, and the few values it encodes its own way (base64
images, describe's numbered prompts).

A task is an imagegate job and its id is the job id, with one exception: a button
that opens a dialog in Midjourney (Custom Zoom, Vary (Region)) answers a *modal*
task, which is no job yet. Its id names the parent job and the dialog
(``modal-<kind>-<nonce>-<job id>``); the job the dialog's answer creates carries that
id in its metadata, so the modal id keeps leading to it. Pure: no I/O here."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from imagegate.domain.jobs import JobAction, JobStatus
from imagegate.domain.records import JobRecord
from imagegate.domain.webhooks import MAX_BODY_BYTES
from imagegate.errors import InvalidRequest
from imagegate.services.actions import ActionSpec
from imagegate.storage.base import Storage

# Job metadata keys this facade writes.
STATE_KEY = "mj_state"
BOT_TYPE_KEY = "mj_bot_type"
MODAL_KEY = "mj_modal"
# Set on a task made with a notifyHook (the job's webhook_url): that URL gets the task.
NOTIFY_KEY = "mj_notify"


class Code(IntEnum):
    """The submit answers' ``code``."""

    SUCCESS = 1
    NOT_FOUND = 3
    VALIDATION_ERROR = 4
    FAILURE = 9
    EXISTED = 21  # the fork: "waiting for the modal step"
    IN_QUEUE = 22
    QUEUE_FULL = 23
    BANNED_PROMPT = 24


class BotType(StrEnum):
    MID_JOURNEY = "MID_JOURNEY"
    NIJI_JOURNEY = "NIJI_JOURNEY"


class ModalKind(StrEnum):
    ZOOM = "zoom"  # Custom Zoom: the dialog asks for a prompt with --zoom 1-2
    INPAINT = "inpaint"  # Vary (Region): the dialog asks for a mask


_TASK_ACTIONS = {
    JobAction.IMAGINE: "IMAGINE", JobAction.UPSCALE: "UPSCALE",
    JobAction.VARIATION: "VARIATION", JobAction.REROLL: "REROLL",
    JobAction.ZOOM_OUT: "ZOOM", JobAction.PAN: "PAN", JobAction.VARY_REGION: "INPAINT",
    JobAction.BLEND: "BLEND", JobAction.DESCRIBE: "DESCRIBE",
}  # fmt: skip
_MODAL_ACTIONS = {ModalKind.ZOOM: "ZOOM", ModalKind.INPAINT: "INPAINT"}
_STATUSES = {
    JobStatus.QUEUED: "SUBMITTED", JobStatus.RUNNING: "IN_PROGRESS",
    JobStatus.COMPLETED: "SUCCESS", JobStatus.FAILED: "FAILURE", JobStatus.CANCELED: "CANCEL",
}  # fmt: skip
# Midjourney's grid actions make four images; imagegate's actions keep the parent's
# count unless told.
GRID_VARIATIONS = 4


def answer(
    code: Code, description: str, result: str | None = None, **properties: Any
) -> dict[str, Any]:
    """A submit answer: ``{code, description, result, properties}``."""
    return {"code": int(code), "description": description, "result": result,
            "properties": properties}  # fmt: skip


# ---- customIds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Button:
    """What a customId asks for: an action (``spec``) or a dialog (``modal``)."""

    spec: ActionSpec | None = None
    modal: ModalKind | None = None
    index: int = 1


_UPSAMPLE = re.compile(r"upsample_v\d+_(\d)x(?:_(subtle|creative))?")
_PAN = re.compile(r"pan_(left|right|up|down)")
_ZOOMS = {"50": 2.0, "75": 1.5}


def parse_custom_id(custom_id: str) -> Button:
    """The action a button's customId names. Raises InvalidRequest for one this
    facade does not know."""
    parts = custom_id.split("::")
    if len(parts) >= 2 and parts[:2] == ["MJ", "CustomZoom"]:
        return Button(modal=ModalKind.ZOOM)
    if len(parts) >= 3 and parts[:2] == ["MJ", "Inpaint"]:
        return Button(modal=ModalKind.INPAINT, index=_index(parts[2], custom_id))
    if len(parts) >= 4 and parts[:2] == ["MJ", "Outpaint"] and parts[2] in _ZOOMS:
        index = _index(parts[3], custom_id)
        spec = ActionSpec("zoom_out", index=index, factor=_ZOOMS[parts[2]],
                          variations=GRID_VARIATIONS)  # fmt: skip
        return Button(spec=spec, index=index)
    if len(parts) >= 4 and parts[:2] == ["MJ", "JOB"]:
        name, index = parts[2], _index(parts[3], custom_id)
        found = _job_button(name, index)
        if found is not None:
            return Button(spec=found, index=index)
    raise InvalidRequest(f"unknown or unsupported customId {custom_id[:200]!r}", field="customId")


def _job_button(name: str, index: int) -> ActionSpec | None:
    if name == "upsample":
        return ActionSpec("upscale", index=index)
    if name == "variation":
        return ActionSpec("variation", index=index, strength="strong", variations=GRID_VARIATIONS)
    if name in ("low_variation", "high_variation"):
        strength = "subtle" if name == "low_variation" else "strong"
        return ActionSpec("variation", index=index, strength=strength, variations=GRID_VARIATIONS)
    if name == "reroll":
        return ActionSpec("reroll")
    if upsample := _UPSAMPLE.fullmatch(name):
        factor, mode = upsample.groups()
        return ActionSpec("upscale", index=index, factor=int(factor), mode=mode or "subtle")
    if pan := _PAN.fullmatch(name):
        return ActionSpec("pan", index=index, direction=pan[1], variations=GRID_VARIATIONS)
    return None


def _index(text: str, custom_id: str) -> int:
    if not text.isdigit() or len(text) > 2:
        raise InvalidRequest(f"customId {custom_id[:200]!r} has no image number", field="customId")
    return int(text)


def change_custom_id(action: str, index: int | None, job_id: str) -> str:
    """The customId of ``/mj/submit/change``'s ``action`` (UPSCALE | VARIATION |
    REROLL) on image ``index``."""
    if action == "REROLL":
        return f"MJ::JOB::reroll::0::{job_id}::SOLO"
    names = {"UPSCALE": "upsample", "VARIATION": "variation"}
    if action not in names:
        raise InvalidRequest("action must be UPSCALE, VARIATION or REROLL", field="action")
    if index is None or not 1 <= index <= 4:
        raise InvalidRequest("index must be from 1 to 4", field="index")
    return f"MJ::JOB::{names[action]}::{index}::{job_id}"


_SIMPLE = re.compile(r"\s*(\S+)\s+([UV])([1-4])\s*|\s*(\S+)\s+R\s*", re.IGNORECASE)


def simple_change(content: str) -> tuple[str, str, int | None]:
    """``"<task id> U2"`` → (task id, action, index); ``"<id> R"`` rerolls."""
    found = _SIMPLE.fullmatch(content)
    if found is None:
        raise InvalidRequest(
            "content must be '<task id> U1'..'U4', 'V1'..'V4' or 'R'", field="content"
        )
    if found[4]:
        return found[4], "REROLL", None
    return found[1], {"U": "UPSCALE", "V": "VARIATION"}[found[2].upper()], int(found[3])


def buttons_for(job: JobRecord) -> list[dict[str, Any]]:
    """The buttons Midjourney shows under the job's result: U/V per image and reroll
    under a grid; vary, upscale, zoom and pan under a single image."""
    if job.status is not JobStatus.COMPLETED:
        return []
    images = [i for i in job.images if i.kind == "image"]
    h = job.id
    if len(images) > 1:
        ups = [_button(f"MJ::JOB::upsample::{i.index}::{h}", "", f"U{i.index}") for i in images]
        reroll = _button(f"MJ::JOB::reroll::0::{h}::SOLO", "🔄", "")
        vs = [_button(f"MJ::JOB::variation::{i.index}::{h}", "", f"V{i.index}") for i in images]
        return [*ups, reroll, *vs]
    if len(images) == 1:
        n = images[0].index
        return [
            _button(f"MJ::JOB::upsample_v6_2x_subtle::{n}::{h}::SOLO", "", "Upscale (Subtle)"),
            _button(f"MJ::JOB::upsample_v6_2x_creative::{n}::{h}::SOLO", "", "Upscale (Creative)"),
            _button(f"MJ::JOB::low_variation::{n}::{h}::SOLO", "🪄", "Vary (Subtle)"),
            _button(f"MJ::JOB::high_variation::{n}::{h}::SOLO", "🪄", "Vary (Strong)"),
            _button(f"MJ::Inpaint::{n}::{h}::SOLO", "🖌️", "Vary (Region)"),
            _button(f"MJ::Outpaint::50::{n}::{h}::SOLO", "🔍", "Zoom Out 2x"),
            _button(f"MJ::Outpaint::75::{n}::{h}::SOLO", "🔍", "Zoom Out 1.5x"),
            _button(f"MJ::CustomZoom::{h}", "🔍", "Custom Zoom"),
            _button(f"MJ::JOB::pan_left::{n}::{h}::SOLO", "⬅️", ""),
            _button(f"MJ::JOB::pan_right::{n}::{h}::SOLO", "➡️", ""),
            _button(f"MJ::JOB::pan_up::{n}::{h}::SOLO", "⬆️", ""),
            _button(f"MJ::JOB::pan_down::{n}::{h}::SOLO", "⬇️", ""),
        ]
    return []


def _button(custom_id: str, emoji: str, label: str) -> dict[str, Any]:
    # style 2: Discord's primary (blue) button, as the proxies report it.
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


# ---- modal tasks ---------------------------------------------------------------------

_MODAL_ID = re.compile(r"modal-(zoom|inpaint)-([0-9a-f]{8})-(job_[0-9A-Za-z]{1,60})")


@dataclass(frozen=True)
class ModalRef:
    kind: ModalKind
    parent_id: str
    index: int


def new_modal_id(kind: ModalKind, parent_id: str, index: int) -> str:
    # The image number rides in the nonce's first digit (1-4), so the id alone says
    # which image the dialog is about.
    return f"modal-{kind.value}-{index}{secrets.token_hex(4)[1:]}-{parent_id}"


def parse_modal_id(task_id: str) -> ModalRef | None:
    found = _MODAL_ID.fullmatch(task_id)
    if found is None:
        return None
    index = int(found[2][0], 16)
    return ModalRef(ModalKind(found[1]), found[3], index if 1 <= index <= 4 else 1)


_ZOOM_FLAG = re.compile(r"--zoom\s+(\S+)")


def custom_zoom(prompt: str) -> tuple[float, str]:
    """A Custom Zoom dialog's answer: the ``--zoom`` factor (1-2) and the prompt
    without it."""
    found = _ZOOM_FLAG.search(prompt)
    if found is None:
        raise InvalidRequest("a custom zoom prompt carries --zoom 1 to 2", field="prompt")
    try:
        factor = float(found[1])
    except ValueError:
        factor = 0.0
    if not 1.0 <= factor <= 2.0:
        raise InvalidRequest(f"--zoom must be from 1 to 2, got {found[1][:20]!r}", field="prompt")
    return factor, _ZOOM_FLAG.sub("", prompt).strip()


def modal_task(task_id: str, ref: ModalRef, parent: JobRecord) -> dict[str, Any]:
    """The task a dialog button answers, before the dialog is submitted."""
    return {
        **_empty_task(task_id, _MODAL_ACTIONS[ref.kind]),
        "status": "MODAL",
        "prompt": parent.prompt, "promptEn": parent.prompt,
        "description": "Waiting for window confirm",
        "submitTime": _ms(parent.completed_at or parent.created_at),
        "properties": {"finalPrompt": parent.prompt},
        "parentId": parent.id,
        "botType": parent.metadata.get(BOT_TYPE_KEY, BotType.MID_JOURNEY.value),
    }  # fmt: skip


# ---- tasks ----------------------------------------------------------------------------


def _empty_task(task_id: str, action: str) -> dict[str, Any]:
    return {
        "id": task_id, "action": action, "status": "NOT_START", "prompt": "", "promptEn": "",
        "description": "", "state": None, "submitTime": None, "startTime": None,
        "finishTime": None, "imageUrl": None, "imageUrls": [], "progress": "0%",
        "failReason": None, "properties": {}, "buttons": [], "parentId": None, "seed": None,
        "botType": BotType.MID_JOURNEY.value, "mode": None,
    }  # fmt: skip


def task_for(job: JobRecord, storage: Storage) -> dict[str, Any]:
    """The job as the protocol's Task."""
    images = [i for i in job.images if i.kind == "image"]
    grid = next((i for i in job.images if i.kind == "grid"), None)
    urls = [storage.url(i.storage_key) for i in images]
    status = _STATUSES[job.status]
    final = describe_prompt(job.result_texts) if job.result_texts else job.prompt
    seed = images[0].seed if len(images) == 1 else job.params.get("seed")
    return {
        **_empty_task(job.id, _TASK_ACTIONS.get(JobAction(job.action), job.action.upper())),
        "status": status,
        "prompt": job.prompt, "promptEn": job.prompt,
        "description": _DESCRIPTIONS[status],
        "state": job.metadata.get(STATE_KEY),
        "submitTime": _ms(job.created_at), "startTime": _ms(job.started_at),
        "finishTime": _ms(job.completed_at) if job.status.is_terminal() else None,
        "imageUrl": storage.url(grid.storage_key) if grid else (urls[0] if urls else None),
        "imageUrls": [{"url": u} for u in urls],
        "progress": "100%" if job.status is JobStatus.COMPLETED else f"{job.progress}%",
        "failReason": _fail_reason(job),
        "properties": {"finalPrompt": final, "jobId": job.id, "messageHash": job.id},
        "buttons": buttons_for(job),
        "parentId": job.parent_job_id,
        "seed": str(seed) if seed is not None else None,
        "botType": job.metadata.get(BOT_TYPE_KEY, BotType.MID_JOURNEY.value),
        "mode": job.params.get("mode"),
    }  # fmt: skip


def notify_body(
    job: JobRecord, storage: Storage, limit: int = MAX_BODY_BYTES
) -> dict[str, Any] | None:
    """What a task's notifyHook is sent on each change: the task, as ``fetch`` shows
    it (None for a job made without one: its URL gets imagegate's event envelope).
    Kept under the webhook body cap by shortening the prompts, never the links."""
    if job.metadata.get(NOTIFY_KEY) != "1":
        return None
    task = task_for(job, storage)
    for field in ("promptEn", "finalPrompt", "prompt"):
        over = len(json.dumps(task, ensure_ascii=False).encode()) - limit
        if over <= 0:
            break
        where = task["properties"] if field == "finalPrompt" else task
        raw = str(where[field]).encode()
        where[field] = raw[: max(0, len(raw) - over - 8)].decode(errors="ignore")
    return task


_DESCRIPTIONS = {
    "SUBMITTED": "Submit success", "IN_PROGRESS": "In progress", "SUCCESS": "Success",
    "FAILURE": "Failure", "CANCEL": "Canceled",
}  # fmt: skip


def _fail_reason(job: JobRecord) -> str | None:
    if job.status is not JobStatus.FAILED and job.status is not JobStatus.CANCELED:
        return None
    if job.error_code == "content_policy_violation":
        return f"banned prompt: {job.error_message or 'refused by the provider'}"
    return job.error_message or job.error_code or job.status.value


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


_NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")


def describe_prompt(texts: tuple[str, ...] | list[str]) -> str:
    """Describe's suggestions as Midjourney writes them: numbered, a blank line
    between."""
    return "\n\n".join(f"{_NUMBERS[n] if n < 5 else n + 1} {t}" for n, t in enumerate(texts))


# ---- base64 images ------------------------------------------------------------------

_DATA_URL = re.compile(r"data:([\w/+.-]{1,100})?(;[^,]{0,100})?;base64,", re.IGNORECASE)


def decode_image(value: str, field: str) -> tuple[bytes, str | None]:
    """A base64 image as the protocol sends it (a data URL, or bare base64): its bytes
    and declared type. The bytes are validated later, when they become an upload."""
    declared = None
    head = _DATA_URL.match(value)
    if head is not None:
        declared, value = head[1], value[head.end() :]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field}: not valid base64", field=field) from None
    if not data:
        raise InvalidRequest(f"{field}: empty image", field=field)
    return data, declared
