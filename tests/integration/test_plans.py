"""Plans and quotas over real HTTP: a workspace on a 10-image daily plan makes 10 and
the 11th is 429 ``quota_exceeded`` with its headers, creating nothing and taking no
credit; an end user's cap leaves another user alone; what the plan does not allow is
403 ``not_in_plan``; the free plan's images carry a watermark; the operator moves a
workspace to another plan."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.api import client, fetch_image, wait_for_job
from tests.support.server import ServerProcess

CONFIG = """
default_plan = "free"

[plans.free]
modes = ["draft"]
actions = ["imagine", "variation", "reroll"]
watermark = true
images_per_day = 10
user_images_per_day = 3

[plans.pro]
credits_per_month = 1000
"""


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("plans")
    (data / "imagegate.toml").write_text(CONFIG)
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(data / "imagegate.toml"), IMAGEGATE_CREDITS_REQUIRED="true",
        IMAGEGATE_KEY_CACHE_TTL_S="0",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(planned: ServerProcess, workspace: str) -> Iterator[httpx.Client]:
    with client(planned.url, planned.create_key(workspace, admin=True)) as c:
        assert c.post("/api/image/credits/grants", json={"amount": 100}).status_code == 201
        yield c


def _create(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/api/image/jobs", json={"prompt": "a kite", "mode": "draft",
                                               "variations": 1, **body})  # fmt: skip


def test_the_eleventh_image_of_the_day_is_refused(admin: httpx.Client) -> None:
    for _ in range(10):
        assert _create(admin).status_code == 202
    before = admin.get("/api/image/credits").json()
    refused = _create(admin)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["code"] == "quota_exceeded" and body["quota"] == "images_per_day"
    assert body["limit"] == 10 and body["used"] == 10 and body["resets_at"].endswith("Z")
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-limit"] == "10"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert len(admin.get("/api/image/jobs", params={"limit": 100}).json()["data"]) == 10
    after = admin.get("/api/image/credits").json()
    assert after["available"] + after["charged"] == before["available"] + before["charged"]
    assert after["granted"] == before["granted"]
    standing = admin.get("/api/image/quotas").json()
    assert standing["plan"] == "free" and standing["watermark"] is True
    day = next(q for q in standing["quotas"] if q["quota"] == "images_per_day")
    assert day["used"] == 10 and day["remaining"] == 0


def test_an_end_user_s_cap_leaves_other_users_alone(admin: httpx.Client) -> None:
    assert _create(admin, user="ann", variations=2).status_code == 202
    assert _create(admin, user="ann").status_code == 202
    refused = _create(admin, user="ann")
    assert refused.status_code == 429 and refused.json()["quota"] == "user_images_per_day"
    assert "ann" in refused.json()["detail"]
    assert _create(admin, user="bob", variations=3).status_code == 202
    assert _create(admin).status_code == 202  # no user: the workspace's limit only
    ann = admin.get("/api/image/quotas", params={"user": "ann"}).json()["quotas"]
    assert next(q for q in ann if q["quota"] == "user_images_per_day")["used"] == 3


def test_what_the_plan_does_not_allow(admin: httpx.Client) -> None:
    standard = _create(admin, mode="standard")
    assert standard.status_code == 403, standard.text
    assert standard.json()["code"] == "not_in_plan" and standard.json()["field"] == "mode"
    done = wait_for_job(admin, _create(admin).json()["job_id"])
    upscale = admin.post(f"/api/image/jobs/{done['job_id']}/actions",
                         json={"action": "upscale", "index": 1})  # fmt: skip
    assert upscale.status_code == 403 and upscale.json()["field"] == "action"
    assert len(admin.get("/api/image/jobs").json()["data"]) == 1


def _pixels(url: str) -> np.ndarray[Any, Any]:
    return np.asarray(fetch_image(url).convert("RGB"), dtype=np.int16)


def test_free_images_carry_a_watermark_and_the_operator_moves_plans(
    planned: ServerProcess, admin: httpx.Client, workspace: str
) -> None:
    made = planned.cli("keys", "create", "--workspace", "default", "--operator")
    assert made.returncode == 0, made.stderr
    operator_key = made.stdout.strip().splitlines()[-1]
    other = f"ws-{uuid.uuid4().hex[:10]}"
    with (
        client(planned.url, planned.create_key(other, admin=True)) as pro,
        client(planned.url, operator_key) as operator,
    ):
        assert pro.post("/api/image/credits/grants", json={"amount": 100}).status_code == 201
        assert operator.put(f"/api/image/workspaces/{other}/plan",
                            json={"plan": "pro"}).status_code == 204  # fmt: skip
        assert (
            operator.put("/api/image/workspaces/nope/plan", json={"plan": "pro"}).status_code == 404
        )
        assert operator.put(f"/api/image/workspaces/{other}/plan",
                            json={"plan": "gold"}).status_code == 422  # fmt: skip
        assert admin.put(f"/api/image/workspaces/{workspace}/plan",
                         json={"plan": "pro"}).status_code == 403  # fmt: skip
        assert pro.get("/api/image/quotas").json()["plan"] == "pro"
        same = {"prompt": "a lighthouse at dusk", "seed": 42, "variations": 1, "mode": "draft"}
        free_job = wait_for_job(admin, admin.post("/api/image/jobs", json=same).json()["job_id"])
        pro_job = wait_for_job(pro, pro.post("/api/image/jobs", json=same).json()["job_id"])
        # The pro plan allows what free does not.
        assert _create(pro, mode="standard").status_code == 202
        audit = pro.get("/api/image/audit", params={"action": "plan.changed"}).json()["data"]
        assert audit and audit[0]["details"] == {"plan": "pro"}
    marked, plain = _pixels(free_job["images"][0]["url"]), _pixels(pro_job["images"][0]["url"])
    assert marked.shape == plain.shape
    h, w, _ = marked.shape
    corner = np.abs(marked[int(h * 0.9) :, int(w * 0.5) :] - plain[int(h * 0.9) :, int(w * 0.5) :])
    rest = np.abs(marked[: int(h * 0.8)] - plain[: int(h * 0.8)])
    assert corner.mean() > 10  # the mark is there, and visible
    assert rest.max() == 0  # nothing else changed
    assert Image.open(io.BytesIO(httpx.get(free_job["images"][0]["url"]).content)).size == (w, h)
