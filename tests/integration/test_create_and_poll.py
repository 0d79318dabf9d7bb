"""The brief's first call, end to end over real HTTP: create, poll, fetch images."""

from __future__ import annotations

import httpx

from tests.support.api import fetch_image, wait_for_job
from tests.support.server import ServerProcess

BRIEF = {
    "prompt": "A cinematic product photo of a running shoe on wet pavement",
    "style": "studio",
    "ratio": "16:9",
    "variations": 4,
}


def test_first_call_from_the_brief(http: httpx.Client) -> None:
    created = http.post("/api/image/jobs", json=BRIEF)
    assert created.status_code == 202
    body = created.json()
    assert body["job_id"].startswith("job_")
    assert body["status"] == "queued"
    assert created.headers["location"] == f"/api/image/jobs/{body['job_id']}"

    job = wait_for_job(http, body["job_id"])
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert len(job["result_urls"]) == 4
    assert [i["index"] for i in job["images"]] == [1, 2, 3, 4]
    assert len({i["seed"] for i in job["images"]}) == 4
    assert job["params"]["ratio"] == "16:9" and job["params"]["style"] == "studio"
    assert job["cost"]["charged_credits"] == job["cost"]["estimated_credits"] > 0
    pixels = []
    for url in job["result_urls"]:
        assert url.startswith("http://127.0.0.1:")
        image = fetch_image(url)
        assert abs(image.width / image.height / (16 / 9) - 1) <= 0.01
        assert image.width * image.height >= 900_000  # about one megapixel in standard mode
        pixels.append(image.convert("RGB").tobytes())
    assert len(set(pixels)) == 4  # four different images
    grid = fetch_image(job["grid_url"])
    assert abs(grid.width / grid.height / (16 / 9) - 1) <= 0.01


def test_ratios_modes_and_flags(http: httpx.Client) -> None:
    jobs = {
        ratio: http.post(
            "/api/image/jobs",
            json={"prompt": "snowy mountains", "ratio": ratio, "variations": 1, "mode": "draft"},
        ).json()["job_id"]
        for ratio in ("1:1", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9")
    }
    flagged = http.post(
        "/api/image/jobs",
        json={
            "prompt": "a red fox --ar 3:2 --seed 7 --no text, watermark --draft",
            "variations": 2,
        },
    ).json()
    assert flagged["prompt"] == "a red fox"
    assert flagged["negative_prompt"] == "text, watermark"
    assert flagged["params"]["seed"] == 7 and flagged["params"]["mode"] == "draft"
    for ratio, job_id in jobs.items():
        job = wait_for_job(http, job_id)
        assert job["status"] == "completed"
        w, h = (int(x) for x in ratio.split(":"))
        image = fetch_image(job["result_urls"][0])
        assert abs(image.width / image.height / (w / h) - 1) <= 0.01, ratio
        assert image.width * image.height < 300_000  # draft is smaller
        assert job["grid_url"] is None  # one image: no grid
    done = wait_for_job(http, flagged["job_id"])
    assert [i["seed"] for i in done["images"]] == [7, 8]


def test_same_seed_same_images(http: httpx.Client) -> None:
    body = {"prompt": "a lighthouse at dusk", "seed": 42, "variations": 1, "mode": "draft"}
    first = wait_for_job(http, http.post("/api/image/jobs", json=body).json()["job_id"])
    second = wait_for_job(http, http.post("/api/image/jobs", json=body).json()["job_id"])
    a = fetch_image(first["result_urls"][0]).convert("RGB").tobytes()
    b = fetch_image(second["result_urls"][0]).convert("RGB").tobytes()
    assert a == b


def test_lifecycle_is_logged_as_json_lines(http: httpx.Client, server: ServerProcess) -> None:
    import json

    job_id = http.post("/api/image/jobs", json={"prompt": "a kite", "variations": 1}).json()[
        "job_id"
    ]
    wait_for_job(http, job_id)
    events = [
        json.loads(line)
        for line in server.log().splitlines()
        if line.startswith("{") and job_id in line
    ]
    by_name = {e["event"]: e for e in events}
    assert {"job.queued", "job.running", "job.completed"} <= set(by_name)
    done = by_name["job.completed"]
    assert done["workspace"] and done["provider"] == "builtin" and done["attempt"] == 1
    assert done["duration_ms"] >= 0 and done["estimated_credits"] > 0
    assert len(done["stored_keys"]) == 1


def test_output_formats(http: httpx.Client) -> None:
    expected = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"),
                "webp": ("WEBP", "image/webp")}  # fmt: skip
    ids = {
        fmt: http.post(
            "/api/image/jobs",
            json={
                "prompt": "a green field",
                "variations": 2,
                "mode": "draft",
                "output_format": fmt,
            },
        ).json()["job_id"]
        for fmt in expected
    }
    for fmt, job_id in ids.items():
        job = wait_for_job(http, job_id)
        assert job["params"]["output_format"] == fmt
        for url in [*job["result_urls"], job["grid_url"]]:
            response = httpx.get(url)
            assert response.headers["content-type"] == expected[fmt][1]
            image = fetch_image(url)
            assert image.format == expected[fmt][0]
    refused = http.post("/api/image/jobs", json={"prompt": "x", "output_format": "gif"})
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"


def test_output_quality_sets_the_encoders_quality(http: httpx.Client) -> None:
    def made(fmt: str, quality: int) -> list[int]:
        body = {"prompt": "a green field --seed 7", "variations": 2, "mode": "draft",
                "output_format": fmt, "output_quality": quality}  # fmt: skip
        job = wait_for_job(http, http.post("/api/image/jobs", json=body).json()["job_id"])
        assert job["params"]["output_quality"] == quality
        sizes = []
        for url in [*job["result_urls"], job["grid_url"]]:
            data = httpx.get(url).content
            assert fetch_image(url).format == {"jpeg": "JPEG", "webp": "WEBP"}[fmt]
            sizes.append(len(data))
        return sizes

    for fmt in ("jpeg", "webp"):
        low, high = made(fmt, 10), made(fmt, 95)
        # The same pictures (same seed): every image and the grid smaller at 10.
        assert all(a < b for a, b in zip(low, high, strict=True)), (fmt, low, high)
    before = http.get("/api/image/jobs").json()["data"]
    for body in (
        {"prompt": "x", "output_quality": 50},  # png has no quality
        {"prompt": "x", "output_format": "jpeg", "output_quality": 0},
    ):
        refused = http.post("/api/image/jobs", json=body)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        named = problem.get("field") or problem["errors"][0]["field"]
        assert named == "output_quality", problem
    assert http.get("/api/image/jobs").json()["data"] == before
