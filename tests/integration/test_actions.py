"""Midjourney's loop on the built-in renderer, over real HTTP: imagine, then upscale,
vary, zoom out, pan and vary a region, each a child job of the one before; what each
promises is checked on the decoded pixels."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.api import client, fetch_image, wait_for_job
from tests.support.server import ServerProcess


def _act(http: httpx.Client, job_id: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return http.post(f"/api/image/jobs/{job_id}/actions", json=body, headers=headers)


def _done(http: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_for_job(http, response.json()["job_id"], timeout=120)
    assert job["status"] == "completed", job
    return job


def _pixels(url: str) -> np.ndarray:
    return np.asarray(fetch_image(url).convert("RGB"), dtype=np.int16)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_the_workflow_chain(http: httpx.Client) -> None:
    root = http.post(
        "/api/image/jobs",
        json={"prompt": "a lighthouse on a cliff at sunset", "mode": "draft", "variations": 4},
    ).json()
    imagine = wait_for_job(http, root["job_id"], timeout=120)
    assert imagine["status"] == "completed" and imagine["action"] == "imagine"
    assert imagine["root_job_id"] == imagine["job_id"] and imagine["parent_job_id"] is None
    third = imagine["images"][2]

    upscale = _done(http, _act(http, root["job_id"], {"action": "upscale", "index": 3}))
    assert upscale["action"] == "upscale" and upscale["parent_job_id"] == root["job_id"]
    assert upscale["source_index"] == 3
    big = fetch_image(upscale["images"][0]["url"])
    assert big.size == (third["width"] * 2, third["height"] * 2)
    assert len(upscale["images"]) == 1 and upscale["grid_url"] is None
    # The upscale of a draft is a final: standard mode, charged as one.
    assert upscale["params"]["mode"] == "standard"
    assert upscale["cost"]["charged_credits"] == 2

    source = _pixels(imagine["images"][0]["url"])
    distances = {}
    for strength in ("subtle", "strong"):
        job = _done(
            http,
            _act(http, root["job_id"],
                 {"action": "variation", "index": 1, "strength": strength, "variations": 2}),
        )  # fmt: skip
        assert len(job["images"]) == 2 and job["grid_url"]
        distances[strength] = np.mean([_distance(_pixels(i["url"]), source) for i in job["images"]])
    assert 0 < distances["subtle"] < distances["strong"], distances

    zoom = _done(
        http,
        _act(
            http, root["job_id"], {"action": "zoom_out", "index": 2, "factor": 2, "variations": 1}
        ),
    )
    zoomed = _pixels(zoom["images"][0]["url"])
    w, h = imagine["images"][1]["width"], imagine["images"][1]["height"]
    assert zoomed.shape[:2] == (h, w)
    shrunk = np.asarray(
        fetch_image(imagine["images"][1]["url"])
        .convert("RGB")
        .resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        dtype=np.int16,
    )
    centre = zoomed[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2]
    assert _distance(centre, shrunk) < 6, "the centre is the source, shrunk"
    assert zoomed[:, : w // 8].std() > 1, "the scene is painted around the source"

    pan = _done(
        http,
        _act(
            http,
            zoom["job_id"],
            {"action": "pan", "index": 1, "direction": "left", "variations": 1},
        ),
    )
    panned = _pixels(pan["images"][0]["url"])
    assert panned.shape[0] == h and panned.shape[1] > w
    assert np.array_equal(panned[:, -w:], zoomed), "the right part is the source, pixel for pixel"

    box = {"left": 16, "top": 16, "width": 96, "height": 64}
    region = _done(
        http,
        _act(http, pan["job_id"],
             {"action": "vary_region", "index": 1, "mask": {"rectangles": [box]}, "variations": 1}),
    )  # fmt: skip
    repainted = _pixels(region["images"][0]["url"])
    assert repainted.shape == panned.shape
    inside = np.zeros(panned.shape[:2], dtype=bool)
    inside[16:80, 16:112] = True
    assert np.array_equal(repainted[~inside], panned[~inside]), "unmasked pixels unchanged"
    assert not np.array_equal(repainted[inside], panned[inside])

    # Lineage: from the last job back to the root, and the chain listed from the root.
    chain, job = [], region
    while job["parent_job_id"]:
        chain.append(job["action"])
        job = http.get(f"/api/image/jobs/{job['parent_job_id']}").json()
    assert job["job_id"] == root["job_id"] and chain == ["vary_region", "pan", "zoom_out"]
    assert region["root_job_id"] == root["job_id"]
    listed = http.get("/api/image/jobs", params={"root_job_id": root["job_id"]}).json()["data"]
    assert {j["job_id"] for j in listed} >= {root["job_id"], zoom["job_id"], pan["job_id"],
                                              region["job_id"], upscale["job_id"]}  # fmt: skip
    children = http.get(f"/api/image/jobs/{root['job_id']}").json()["children"]
    assert [c["action"] for c in children] == ["upscale", "variation", "variation", "zoom_out"]
    by_parent = http.get("/api/image/jobs", params={"parent_job_id": zoom["job_id"]}).json()
    assert [j["job_id"] for j in by_parent["data"]] == [pan["job_id"]]


def test_reroll_uses_the_parent_prompt_with_new_seeds(http: httpx.Client) -> None:
    root = http.post(
        "/api/image/jobs", json={"prompt": "a red fox --ar 3:2", "mode": "draft", "variations": 2}
    ).json()
    parent = wait_for_job(http, root["job_id"])
    reroll = _done(http, _act(http, root["job_id"], {"action": "reroll"}))
    assert reroll["prompt"] == parent["prompt"] and reroll["params"]["ratio"] == "3:2"
    assert len(reroll["images"]) == 2
    assert reroll["params"]["seed"] != parent["params"]["seed"]
    assert (
        _pixels(reroll["images"][0]["url"]).tobytes()
        != _pixels(parent["images"][0]["url"]).tobytes()
    )


OUTSIDE = {"left": 500, "top": 0, "width": 100, "height": 10}


def test_refused_actions_create_nothing(http: httpx.Client, server: ServerProcess) -> None:
    root = http.post(
        "/api/image/jobs", json={"prompt": "a quiet harbour", "mode": "draft", "variations": 2}
    ).json()
    # Not completed yet (or just completed): queued/running → 409; index checks after.
    early = _act(http, root["job_id"], {"action": "upscale", "index": 1})
    if early.status_code != 202:
        assert early.status_code == 409 and early.json()["code"] == "invalid_state"
    wait_for_job(http, root["job_id"])
    before = len(http.get("/api/image/jobs", params={"limit": 100}).json()["data"])
    cases = [
        ({"action": "upscale", "index": 3}, 422, "validation_error", "index"),
        ({"action": "upscale", "index": 0}, 422, "validation_error", None),
        ({"action": "upscale", "index": 1, "factor": 3}, 422, "validation_error", None),
        ({"action": "pan", "index": 1}, 422, "validation_error", None),
        ({"action": "pan", "index": 1, "direction": "sideways"}, 422, "validation_error", None),
        ({"action": "zoom_out", "index": 1, "factor": 2.5}, 422, "validation_error", None),
        ({"action": "teleport", "index": 1}, 422, "validation_error", None),
        ({"action": "upscale", "index": 1, "direction": "left"}, 422, "validation_error", None),
        ({"action": "vary_region", "index": 1, "mask": {"rectangles": [OUTSIDE]}}, 422,
         "validation_error", "mask"),
        ({"action": "vary_region", "index": 1, "mask": {}}, 422, "validation_error", "mask"),
        ({"action": "upscale", "index": 1, "model": "nosuch"}, 422, "unsupported_model", "model"),
    ]  # fmt: skip
    for body, status, code, field in cases:
        answer = _act(http, root["job_id"], body)
        assert answer.status_code == status, (body, answer.text)
        problem = answer.json()
        assert problem["code"] == code, (body, problem)
        if field:
            assert problem["field"] == field, (body, problem)
    missing = _act(http, "job_" + "0" * 26, {"action": "upscale", "index": 1})
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"
    # Another workspace's job is not there at all.
    stranger = server.create_key(f"ws-{uuid.uuid4().hex[:8]}")
    with client(server.url, stranger) as other:
        foreign = _act(other, root["job_id"], {"action": "upscale", "index": 1})
        assert foreign.status_code == 404 and foreign.json()["code"] == "job_not_found"
    after = len(http.get("/api/image/jobs", params={"limit": 100}).json()["data"])
    assert after == before
    assert http.get(f"/api/image/jobs/{root['job_id']}").json()["children"] == []


def test_an_action_is_idempotent(http: httpx.Client) -> None:
    root = http.post(
        "/api/image/jobs", json={"prompt": "tea cup", "mode": "draft", "variations": 1}
    ).json()
    wait_for_job(http, root["job_id"])
    key = uuid.uuid4().hex
    body = {"action": "upscale", "index": 1}
    first = _act(http, root["job_id"], body, **{"Idempotency-Key": key})
    again = _act(http, root["job_id"], body, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = _act(http, root["job_id"], {"action": "upscale", "index": 1, "factor": 4},
                 **{"Idempotency-Key": key})  # fmt: skip
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    children = http.get(f"/api/image/jobs/{root['job_id']}").json()["children"]
    assert [c["job_id"] for c in children] == [first.json()["job_id"]]


def _upload(http: httpx.Client, image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    response = http.post(
        "/api/image/uploads", files={"file": ("in.png", out.getvalue(), "image/png")}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


def _picture(colour: tuple[int, int, int], size: tuple[int, int] = (320, 320)) -> Image.Image:
    """A flat colour with a white square in its upper left: easy to tell apart."""
    image = Image.new("RGB", size, colour)
    image.paste((255, 255, 255), (20, 20, 120, 120))
    return image


def test_img2img_stays_near_its_init_image_by_strength(http: httpx.Client) -> None:
    source = _picture((200, 30, 30), (512, 512))
    upload = _upload(http, source)
    near, far = (
        _done(http, http.post("/api/image/jobs", json={
            "prompt": "a forest lake", "init_image": upload, "strength": strength,
            "mode": "draft", "variations": 1, "seed": 5}))
        for strength in (0.15, 0.9)
    )  # fmt: skip
    assert near["params"]["source"]["upload_id"] == upload and near["params"]["strength"] == 0.15
    original = np.asarray(source, dtype=np.int16)
    near_px, far_px = (_pixels(j["images"][0]["url"]) for j in (near, far))
    assert near_px.shape == original.shape
    assert _distance(near_px, original) < _distance(far_px, original)
    # --iw sets the strength when the body does not.
    weighted = _done(http, http.post("/api/image/jobs", json={
        "prompt": "a forest lake --iw 2", "init_image": upload, "mode": "draft",
        "variations": 1}))  # fmt: skip
    assert weighted["params"]["strength"] == pytest.approx(1 - 2 / 3, abs=0.001)


def test_blend_and_describe(http: httpx.Client) -> None:
    red, blue = _upload(http, _picture((220, 20, 20))), _upload(http, _picture((20, 20, 220)))
    blend = _done(http, http.post("/api/image/jobs", json={
        "action": "blend", "images": [red, blue], "dimensions": "landscape", "mode": "draft",
        "variations": 2}))  # fmt: skip
    assert blend["action"] == "blend" and blend["params"]["ratio"] == "3:2"
    assert len(blend["images"]) == 2 and blend["grid_url"]
    image = fetch_image(blend["images"][0]["url"])
    assert abs(image.width / image.height - 1.5) < 0.02
    described = _done(http, http.post("/api/image/jobs", json={
        "action": "describe", "images": [red]}))  # fmt: skip
    assert described["action"] == "describe" and described["images"] == []
    texts = described["texts"]
    assert len(texts) == 4 and len(set(texts)) == 4 and all(t.strip() for t in texts)
    assert any("red" in t.lower() for t in texts), texts
    assert described["cost"]["charged_credits"] == 1
    # A describe job has nothing to act on.
    refused = _act(http, described["job_id"], {"action": "upscale", "index": 1})
    assert refused.status_code == 422 and refused.json()["field"] == "index"


def test_bad_create_inputs_create_nothing(http: httpx.Client) -> None:
    before = http.get("/api/image/jobs").json()["data"]
    upload = _upload(http, _picture((10, 200, 10)))
    cases = [
        ({"prompt": "x", "init_image": "upl_" + "0" * 26}, 404, "upload_not_found"),
        ({"prompt": "x", "init_image": "https://127.0.0.1/cat.png"}, 422, "unsafe_url"),
        ({"prompt": "x", "init_image": upload, "strength": 1.5}, 422, "validation_error"),
        ({"action": "blend", "images": [upload]}, 422, "validation_error"),
        ({"action": "describe", "images": [upload, upload]}, 422, "validation_error"),
        ({"prompt": "x", "images": [upload]}, 422, "validation_error"),
        ({"prompt": "x", "dimensions": "square"}, 422, "validation_error"),
        ({"action": "describe", "images": [upload], "init_image": upload}, 422,
         "validation_error"),
    ]  # fmt: skip
    for body, status, code in cases:
        answer = http.post("/api/image/jobs", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["code"] == code, (body, answer.json())
    assert http.get("/api/image/jobs").json()["data"] == before


def test_style_reference_and_ignored_params(http: httpx.Client) -> None:
    style = _upload(http, _picture((240, 200, 20)))
    job = _done(http, http.post("/api/image/jobs", json={
        "prompt": f"a city street --sref {style} --sw 500 --q 2 --chaos 30", "mode": "draft",
        "variations": 1}))  # fmt: skip
    assert job["params"]["style_reference"]["upload_id"] == style
    assert job["params"]["tuning"] == {"quality": 2, "chaos": 30}
    # The built-in renderer maps chaos but has no equivalent of quality.
    assert job["params"]["ignored_params"] == ["quality"]


def test_repeat_makes_that_many_jobs_in_a_batch(http: httpx.Client) -> None:
    created = http.post(
        "/api/image/jobs", json={"prompt": "a paper boat --repeat 3 --draft", "variations": 1}
    )
    assert created.status_code == 202, created.text
    first = created.json()
    assert first["batch_id"] and first["params"]["repeat"] == 3
    batch = http.get(f"/api/image/batches/{first['batch_id']}").json()
    ids = [item["job_id"] for item in batch["items"]]
    assert len(ids) == 3 and ids[0] == first["job_id"]
    jobs = [wait_for_job(http, job_id) for job_id in ids]
    assert [j["status"] for j in jobs] == ["completed"] * 3
    assert len({j["images"][0]["seed"] for j in jobs}) == 3
    assert all(j["prompt"] == "a paper boat" for j in jobs)
    too_many = http.post("/api/image/jobs", json={"prompt": "a paper boat --repeat 41"})
    assert too_many.status_code == 422 and too_many.json()["flag"] == "--repeat"


def test_vary_region_with_an_uploaded_mask(http: httpx.Client) -> None:
    root = http.post(
        "/api/image/jobs", json={"prompt": "a walled garden", "mode": "draft", "variations": 1}
    ).json()
    parent = wait_for_job(http, root["job_id"])
    width, height = parent["images"][0]["width"], parent["images"][0]["height"]
    # A mask at half the size: it is scaled to the source, white = repaint.
    mask = Image.new("L", (width // 2, height // 2), 0)
    mask.paste(255, (width // 4, 0, width // 2, height // 4))
    body = {"action": "vary_region", "index": 1, "mask": {"upload_id": _upload(http, mask)}}
    job = _done(http, _act(http, root["job_id"], body))
    before, after = _pixels(parent["images"][0]["url"]), _pixels(job["images"][0]["url"])
    painted = np.zeros((height, width), dtype=bool)
    painted[: height // 2, width // 2 :] = True
    assert np.array_equal(after[~painted], before[~painted]), "outside the mask: unchanged"
    assert not np.array_equal(after[painted], before[painted])
    foreign = _act(http, root["job_id"], {
        "action": "vary_region", "index": 1, "mask": {"upload_id": "upl_" + "0" * 26}})  # fmt: skip
    assert foreign.status_code == 404 and foreign.json()["code"] == "upload_not_found"
