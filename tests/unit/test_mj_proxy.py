"""The midjourney-proxy mapping: customIds to actions, and back from a job's buttons."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from imagegate.domain.jobs import JobStatus
from imagegate.domain.records import JobRecord, StoredImage
from imagegate.errors import InvalidRequest
from imagegate.services import mj_proxy as mj


def _job(n_images: int, **fields: object) -> JobRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    images = tuple(
        StoredImage("image", i, f"k{i}.png", 64, 64, 100 + i, "image/png")
        for i in range(1, n_images + 1)
    )
    job = JobRecord(
        id="job_01ABC", workspace_id="ws", api_key_id=None, user=None,
        status=JobStatus.COMPLETED, action="imagine", parent_job_id=None, prompt="a fox",
        negative_prompt=None, params={"seed": 7}, progress=100, provider="builtin",
        model="m", attempts=1, runs=1, error_code=None, error_message=None,
        dead_letter=False, estimated_credits=1, charged_credits=1, metadata={},
        created_at=at, started_at=at, completed_at=at, images=images,
    )  # fmt: skip
    return replace(job, **fields)  # type: ignore[arg-type]


class _Storage:
    def url(self, key: str) -> str:
        return f"https://files/{key}"


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        ("MJ::JOB::upsample::2::h", ("upscale", 2, None, None, None)),
        ("MJ::JOB::variation::3::h", ("variation", 3, "strong", None, None)),
        ("MJ::JOB::reroll::0::h::SOLO", ("reroll", None, None, None, None)),
        ("MJ::JOB::low_variation::1::h::SOLO", ("variation", 1, "subtle", None, None)),
        ("MJ::JOB::high_variation::1::h::SOLO", ("variation", 1, "strong", None, None)),
        ("MJ::JOB::upsample_v6_2x_subtle::1::h::SOLO", ("upscale", 1, None, 2, "subtle")),
        ("MJ::JOB::upsample_v6_2x_creative::1::h::SOLO", ("upscale", 1, None, 2, "creative")),
        ("MJ::JOB::upsample_v5_4x::1::h::SOLO", ("upscale", 1, None, 4, "subtle")),
        ("MJ::Outpaint::50::1::h::SOLO", ("zoom_out", 1, None, 2.0, None)),
        ("MJ::Outpaint::75::1::h::SOLO", ("zoom_out", 1, None, 1.5, None)),
        ("MJ::JOB::pan_left::1::h::SOLO", ("pan", 1, None, None, "left")),
    ],
)
def test_custom_ids_name_their_actions(custom_id: str, expected: tuple[object, ...]) -> None:
    spec = mj.parse_custom_id(custom_id).spec
    assert spec is not None
    extra = spec.direction if spec.action == "pan" else spec.mode
    assert (spec.action, spec.index, spec.strength, spec.factor, extra) == expected


def test_dialog_buttons_and_unknown_ids() -> None:
    assert mj.parse_custom_id("MJ::CustomZoom::h").modal is mj.ModalKind.ZOOM
    inpaint = mj.parse_custom_id("MJ::Inpaint::1::h::SOLO")
    assert inpaint.modal is mj.ModalKind.INPAINT and inpaint.spec is None
    for bad in (
        "MJ::JOB::upsample::x::h",
        "MJ::Outpaint::60::1::h",
        "nope",
        "MJ::JOB::dance::1::h",
    ):
        with pytest.raises(InvalidRequest):
            mj.parse_custom_id(bad)


def test_every_button_parses_back_to_an_action() -> None:
    for job in (_job(4), _job(1)):
        buttons = mj.buttons_for(job)
        assert buttons
        for button in buttons:
            parsed = mj.parse_custom_id(button["customId"])
            assert parsed.spec is not None or parsed.modal is not None, button
    assert mj.buttons_for(_job(4, status=JobStatus.RUNNING)) == []


def test_modal_ids_round_trip() -> None:
    modal_id = mj.new_modal_id(mj.ModalKind.INPAINT, "job_01ABC", 3)
    ref = mj.parse_modal_id(modal_id)
    assert ref == mj.ModalRef(mj.ModalKind.INPAINT, "job_01ABC", 3)
    assert mj.parse_modal_id("job_01ABC") is None
    assert mj.parse_modal_id("modal-zoom-zzzzzzzz-job_1") is None


def test_change_simple_change_and_custom_zoom() -> None:
    assert mj.simple_change("job_1 u2") == ("job_1", "UPSCALE", 2)
    assert mj.simple_change(" job_1 V4 ") == ("job_1", "VARIATION", 4)
    assert mj.simple_change("job_1 R") == ("job_1", "REROLL", None)
    for bad in ("job_1 U5", "job_1", "U2"):
        with pytest.raises(InvalidRequest):
            mj.simple_change(bad)
    assert mj.change_custom_id("UPSCALE", 2, "job_1") == "MJ::JOB::upsample::2::job_1"
    assert mj.custom_zoom("a fox --zoom 1.5 --ar 1:1") == (1.5, "a fox  --ar 1:1")
    for bad in ("a fox", "a fox --zoom 2.5", "a fox --zoom x"):
        with pytest.raises(InvalidRequest):
            mj.custom_zoom(bad)


def test_task_presentation() -> None:
    task = mj.task_for(_job(4, metadata={mj.STATE_KEY: "s"}), _Storage())  # type: ignore[arg-type]
    assert task["status"] == "SUCCESS" and task["action"] == "IMAGINE" and task["state"] == "s"
    assert task["imageUrl"] == "https://files/k1.png"  # no grid stored: the first image
    assert task["seed"] == "7" and task["submitTime"] == 1767225600000
    failed = mj.task_for(
        _job(0, status=JobStatus.FAILED, error_code="content_policy_violation",
             error_message="no"), _Storage())  # type: ignore[arg-type]  # fmt: skip
    assert failed["status"] == "FAILURE" and failed["failReason"].startswith("banned prompt")
    assert failed["finishTime"] is not None and failed["buttons"] == []
    described = mj.describe_prompt(["one", "two", "three", "four"])
    assert described == "1️⃣ one\n\n2️⃣ two\n\n3️⃣ three\n\n4️⃣ four"


def test_notify_body_only_for_notify_tasks_and_bounded() -> None:
    assert mj.notify_body(_job(1), _Storage()) is None  # type: ignore[arg-type]
    long = _job(4, metadata={mj.NOTIFY_KEY: "1"}, prompt="é" * 4000)
    body = mj.notify_body(long, _Storage(), limit=6000)  # type: ignore[arg-type]
    assert body is not None
    assert len(json.dumps(body, ensure_ascii=False).encode()) <= 6000
    assert body["imageUrls"][3] == {"url": "https://files/k4.png"}  # links kept whole


def test_decode_image() -> None:
    raw = b"\x89PNG..."
    assert mj.decode_image("data:image/png;base64," + base64.b64encode(raw).decode(), "f") == (
        raw, "image/png")  # fmt: skip
    assert mj.decode_image(base64.b64encode(raw).decode(), "f") == (raw, None)
    for bad in ("!!!", ""):
        with pytest.raises(InvalidRequest):
            mj.decode_image(bad, "f")
