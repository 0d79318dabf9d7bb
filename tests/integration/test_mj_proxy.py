"""The midjourney-proxy facade (``/mj``) over real HTTP, replaying what its clients do:
imagine, poll ``fetch`` until SUCCESS, press buttons by the customIds the task lists,
the modal step of Custom Zoom, blend, describe, new-api's list-by-condition polling;
every task is a job the job API sees, with its lineage."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.api import fetch_image
from tests.support.images import encoded
from tests.support.pictures import max_difference
from tests.support.server import ServerProcess

FAST = " --draft"  # every prompt here renders draft previews: the builtin is quicker


@pytest.fixture
def mj(server: ServerProcess, workspace_key: str) -> Iterator[httpx.Client]:
    """A client as the protocol's clients are: the key in ``mj-api-secret``."""
    with httpx.Client(
        base_url=f"{server.url}/mj", headers={"mj-api-secret": workspace_key}, timeout=30
    ) as c:
        yield c


def _data_url(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _submitted(response: httpx.Response, code: int = 1) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "description", "result", "properties"}
    task_id: str = body["result"]
    return task_id


def _until_done(mj: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll ``fetch`` as chatgpt-web-midjourney-proxy does, until the task ends."""
    deadline = time.monotonic() + timeout
    while True:
        response = mj.get(f"/task/{task_id}/fetch")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        assert task["status"] in {"SUBMITTED", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCEL"}
        if task["status"] in {"SUCCESS", "FAILURE", "CANCEL"}:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['status']}"
        time.sleep(0.05)


def _button(task: dict[str, Any], label: str) -> str:
    found = [b["customId"] for b in task["buttons"] if b["label"] == label]
    assert len(found) == 1, (label, task["buttons"])
    return found[0]


def test_imagine_then_upscale_by_its_button(mj: httpx.Client, http: httpx.Client) -> None:
    task_id = _submitted(
        mj.post("/submit/imagine", json={"prompt": "a red fox in snow" + FAST, "state": "s-1"})
    )
    grid = _until_done(mj, task_id)
    assert grid["status"] == "SUCCESS" and grid["action"] == "IMAGINE", grid
    assert grid["progress"] == "100%" and grid["state"] == "s-1" and grid["failReason"] is None
    assert grid["prompt"] == "a red fox in snow"
    assert grid["submitTime"] <= grid["startTime"] <= grid["finishTime"]
    assert len(grid["imageUrls"]) == 4
    # imageUrl is the grid (the four, two by two, as clients split it), not an image.
    job = http.get(f"/api/image/jobs/{task_id}").json()
    assert grid["imageUrl"] == job["grid_url"] and fetch_image(grid["imageUrl"]).width
    assert [u["url"] for u in grid["imageUrls"]] == job["result_urls"]
    labels = [b["label"] for b in grid["buttons"]]
    assert labels == ["U1", "U2", "U3", "U4", "", "V1", "V2", "V3", "V4"]
    assert grid["buttons"][4]["emoji"] == "🔄"
    assert all(b["type"] == 2 and b["customId"].startswith("MJ::") for b in grid["buttons"])

    up_id = _submitted(
        mj.post("/submit/action", json={"taskId": task_id, "customId": _button(grid, "U2")})
    )
    up = _until_done(mj, up_id)
    assert up["status"] == "SUCCESS" and up["action"] == "UPSCALE" and up["parentId"] == task_id
    second = fetch_image(grid["imageUrls"][1]["url"])
    big = fetch_image(up["imageUrl"])
    assert big.size == (second.width * 2, second.height * 2)
    assert up["seed"] is not None and len(up["imageUrls"]) == 1
    labels = {b["label"] for b in up["buttons"]}
    assert {"Vary (Subtle)", "Vary (Strong)", "Upscale (Subtle)", "Upscale (Creative)",
            "Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom", "Vary (Region)"} <= labels  # fmt: skip
    assert {b["emoji"] for b in up["buttons"]} >= {"⬅️", "➡️", "⬆️", "⬇️"}

    # The tasks are jobs: the job API sees the chain.
    job = http.get(f"/api/image/jobs/{up_id}").json()
    assert job["parent_job_id"] == task_id and job["root_job_id"] == task_id
    chain = http.get("/api/image/jobs", params={"root_job_id": task_id}).json()["data"]
    assert {j["job_id"] for j in chain} == {task_id, up_id}
    seed = mj.get(f"/task/{up_id}/image-seed").json()
    assert seed["code"] == 1 and seed["result"] == up["seed"]


def test_simple_change_and_change(mj: httpx.Client) -> None:
    task_id = _submitted(mj.post("/submit/imagine", json={"prompt": "a blue bicycle" + FAST}))
    assert _until_done(mj, task_id)["status"] == "SUCCESS"
    v3 = _submitted(mj.post("/submit/simple-change", json={"content": f"{task_id} V3"}))
    varied = _until_done(mj, v3)
    assert varied["action"] == "VARIATION" and varied["status"] == "SUCCESS"
    assert varied["parentId"] == task_id and len(varied["imageUrls"]) == 4
    reroll = _submitted(mj.post("/submit/change", json={"taskId": task_id, "action": "REROLL"}))
    rerolled = _until_done(mj, reroll)
    assert rerolled["action"] == "REROLL" and rerolled["status"] == "SUCCESS"
    # Refusals answer in the protocol's codes, HTTP 200.
    bad = mj.post("/submit/simple-change", json={"content": f"{task_id} X9"}).json()
    assert bad["code"] == 4 and bad["result"] is None
    missing = mj.post("/submit/change", json={"taskId": "job_nope", "action": "UPSCALE",
                                              "index": 1}).json()  # fmt: skip
    assert missing["code"] == 3
    no_index = mj.post("/submit/change", json={"taskId": task_id, "action": "UPSCALE"}).json()
    assert no_index["code"] == 4


def test_custom_zoom_through_the_modal_step(mj: httpx.Client) -> None:
    task_id = _submitted(
        mj.post("/submit/imagine", json={"prompt": "a lighthouse --ar 3:2" + FAST})
    )
    grid = _until_done(mj, task_id)
    up = _until_done(
        mj,
        _submitted(
            mj.post("/submit/action", json={"taskId": task_id, "customId": _button(grid, "U1")})
        ),
    )
    zoom_id = _submitted(
        mj.post(
            "/submit/action", json={"taskId": up["id"], "customId": _button(up, "Custom Zoom")}
        ),
        code=21,
    )
    waiting = mj.get(f"/task/{zoom_id}/fetch").json()
    assert waiting["status"] == "MODAL" and waiting["action"] == "ZOOM"
    assert waiting["parentId"] == up["id"] and waiting["properties"]["finalPrompt"]
    bad = mj.post("/submit/modal", json={"taskId": zoom_id, "prompt": "a lighthouse --zoom 3"})
    assert bad.json()["code"] == 4
    zoomed_id = _submitted(
        mj.post("/submit/modal", json={"taskId": zoom_id, "prompt": "a lighthouse --zoom 1.5"})
    )
    zoomed = _until_done(mj, zoomed_id)
    assert zoomed["status"] == "SUCCESS" and zoomed["action"] == "ZOOM"
    assert zoomed["parentId"] == up["id"]
    source = fetch_image(up["imageUrl"])
    out = fetch_image(zoomed["imageUrls"][0]["url"])
    assert out.size == source.size  # a zoom out keeps the size, the source shrunk inside
    # Vary (Region): the dialog takes a mask, white where to repaint (the left half).
    region_id = _submitted(
        mj.post(
            "/submit/action", json={"taskId": up["id"], "customId": _button(up, "Vary (Region)")}
        ),
        code=21,
    )
    assert mj.get(f"/task/{region_id}/fetch").json()["action"] == "INPAINT"
    no_mask = mj.post("/submit/modal", json={"taskId": region_id})
    assert no_mask.json()["code"] == 4
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (0, 0, source.width // 2, source.height))
    out_mask = io.BytesIO()
    mask.save(out_mask, format="PNG")
    mask_b64 = base64.b64encode(out_mask.getvalue()).decode()
    varied = _until_done(
        mj, _submitted(mj.post("/submit/modal", json={"taskId": region_id, "maskBase64": mask_b64}))
    )
    assert varied["status"] == "SUCCESS" and varied["action"] == "INPAINT"
    region = fetch_image(varied["imageUrls"][0]["url"]).convert("RGB")
    kept = source.convert("RGB").crop((source.width // 2 + 8, 0, source.width, source.height))
    assert region.size == source.size
    assert max_difference(region.crop(
        (source.width // 2 + 8, 0, source.width, source.height)), kept) < 40  # fmt: skip

    # The modal id now leads to the job its dialog made; submitting again makes no other.
    assert mj.get(f"/task/{zoom_id}/fetch").json()["id"] == zoomed_id
    again = mj.post("/submit/modal", json={"taskId": zoom_id, "prompt": "x --zoom 1.5"})
    assert again.json()["result"] == zoomed_id


def test_blend_and_describe(mj: httpx.Client) -> None:
    blend_id = _submitted(mj.post("/submit/blend", json={
        "base64Array": [_data_url((220, 20, 20)), _data_url((20, 20, 220))],
        "dimensions": "LANDSCAPE"}))  # fmt: skip
    blend = _until_done(mj, blend_id)
    assert blend["status"] == "SUCCESS" and blend["action"] == "BLEND"
    image = fetch_image(blend["imageUrls"][0]["url"])
    assert abs(image.width / image.height - 1.5) < 0.02
    one = mj.post("/submit/blend", json={"base64Array": [_data_url((1, 2, 3))]}).json()
    assert one["code"] == 4

    bare = base64.b64encode(encoded("PNG", (80, 60))).decode()  # without the data: prefix
    described = _until_done(mj, _submitted(mj.post("/submit/describe", json={"base64": bare})))
    assert described["status"] == "SUCCESS" and described["action"] == "DESCRIBE"
    prompts = described["properties"]["finalPrompt"].split("\n\n")
    assert [p[:3] for p in prompts] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert all(p[3:].strip() for p in prompts) and described["buttons"] == []


def test_imagine_with_an_image_prompt_and_niji(mj: httpx.Client, http: httpx.Client) -> None:
    task_id = _submitted(mj.post("/submit/imagine", json={
        "prompt": "a teapot" + FAST, "base64Array": [_data_url((10, 200, 10))],
        "botType": "NIJI_JOURNEY"}))  # fmt: skip
    task = _until_done(mj, task_id)
    assert task["status"] == "SUCCESS" and task["botType"] == "NIJI_JOURNEY"
    job = http.get(f"/api/image/jobs/{task_id}").json()
    assert job["params"]["version"] == "niji" or "niji" in str(job["params"].get("version"))
    assert job["params"]["source"]["upload_id"].startswith("upl_")


def test_list_by_condition_as_new_api_polls(mj: httpx.Client) -> None:
    ids = [
        _submitted(mj.post("/submit/imagine", json={"prompt": f"a cat number {n}" + FAST}))
        for n in range(2)
    ]
    deadline = time.monotonic() + 120
    while True:
        response = mj.post("/task/list-by-condition", json={"ids": [*ids, "job_unknown"]})
        assert response.status_code == 200
        tasks = response.json()
        assert sorted(t["id"] for t in tasks) == sorted(ids)  # unknown ids left out
        if all(t["status"] == "SUCCESS" for t in tasks):
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.05)
    listed = {t["id"] for t in mj.get("/task/list").json()}
    assert set(ids) <= listed
    assert not {t["id"] for t in mj.get("/task/queue").json()} & set(ids)
    assert mj.get("/task/job_unknown/fetch").status_code == 404
    assert mj.get("/task/job_unknown/fetch").json()["code"] == 3


def test_cancel(mj: httpx.Client) -> None:
    # A prompt rendered at full size is slow enough to be caught queued or running.
    task_id = _submitted(mj.post("/submit/imagine", json={"prompt": "a slow galaxy --ar 2:1"}))
    answer = mj.post(f"/task/{task_id}/cancel").json()
    task = _until_done(mj, task_id)
    if answer["code"] == 1:
        assert task["status"] == "CANCEL"
    else:  # it finished first: cancelling a finished job is refused
        assert answer["code"] == 4 and task["status"] == "SUCCESS"


def test_wrong_secret_and_bad_input(server: ServerProcess, mj: httpx.Client) -> None:
    for headers in ({"mj-api-secret": "ig_wrong"}, {}, {"Authorization": "Bearer ig_wrong"}):
        response = httpx.post(
            f"{server.url}/mj/submit/imagine", json={"prompt": "x"}, headers=headers
        )
        assert response.status_code == 401 and response.content == b"", headers
    key = mj.headers["mj-api-secret"]
    with_bearer = httpx.get(
        f"{server.url}/mj/task/list", headers={"Authorization": f"Bearer {key}"}
    )
    assert with_bearer.status_code == 200
    cases = [
        ({"prompt": ""}, 4),
        ({"prompt": "a fox --ar banana"}, 4),
        ({"prompt": "a fox", "base64Array": ["not base64!"]}, 4),
        ({"prompt": "a fox", "base64Array": ["data:image/png;base64,aGVsbG8="]}, 4),
        ({"prompt": "a fox", "botType": "DALL_E"}, 4),
    ]
    before = mj.get("/task/list").json()
    for body, code in cases:
        response = mj.post("/submit/imagine", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["code"] == code, (body, response.json())
    unknown = mj.post("/submit/action", json={"taskId": "job_x", "customId": "MJ::Nope::1"})
    assert unknown.json()["code"] == 4
    assert mj.get("/task/list").json() == before  # refusals create nothing


SUBMITS = ("imagine", "blend", "describe", "action", "change", "simple-change", "modal")
HOSTILE: list[Any] = [
    {}, [], None, "text", 12, {"prompt": None}, {"prompt": ["a"]}, {"taskId": "\x00"},
    {"taskId": "job_" + "x" * 300, "customId": "MJ::JOB::upsample::1::h"},
    {"base64Array": [123]}, {"base64Array": ["x"] * 6}, {"base64": "%%%"},
    {"content": "\u202e U1"}, {"taskId": "modal-zoom-10000000-job_x", "prompt": "--zoom 1"},
    {"prompt": "a" * 5000}, {"prompt": "x", "notifyHook": "http://169.254.169.254/"},
]  # fmt: skip


def test_hostile_input_earns_a_code_never_a_5xx(mj: httpx.Client) -> None:
    for route in SUBMITS:
        for body in HOSTILE:
            response = mj.post(f"/submit/{route}", json=body)
            assert response.status_code == 200, (route, body, response.text)
            assert response.json()["code"] in (3, 4), (route, body, response.json())
        broken = mj.post(f"/submit/{route}", content=b"{not json", headers={
            "content-type": "application/json"})  # fmt: skip
        assert broken.status_code == 200 and broken.json()["code"] == 4
    for task_id in ("%00", "job_" + "é" * 50, "modal-inpaint-1zzzzzzz-job_1", "x" * 500):
        for path in ("fetch", "image-seed"):
            assert mj.get(f"/task/{task_id}/{path}").status_code == 404, (task_id, path)
        assert mj.post(f"/task/{task_id}/cancel").status_code == 404
    listed = mj.post("/task/list-by-condition", json={"ids": ["x"] * 101})
    assert listed.status_code == 200 and listed.json()["code"] == 4
    assert mj.post("/task/list-by-condition", json={"ids": ["\x00", "job_1"]}).json() == []


def test_a_body_over_the_cap_is_a_validation_code(mj: httpx.Client) -> None:
    huge = {"prompt": "x" * (300 * 1024)}
    for path in ("/submit/change", "/task/list-by-condition"):  # the 256 KiB cap
        response = mj.post(path, json=huge)
        assert response.status_code == 200, response.text
        assert response.json()["code"] == 4 and "bytes" in response.json()["description"]
    assert mj.get("/task/list").json() == []


def test_another_workspace_sees_nothing(server: ServerProcess, mj: httpx.Client) -> None:
    task_id = _submitted(mj.post("/submit/imagine", json={"prompt": "a private cat" + FAST}))
    done = _until_done(mj, task_id)
    button = next(b["customId"] for b in done["buttons"] if b["label"] == "U1")
    stranger = server.create_key(f"ws-{uuid.uuid4().hex[:10]}")
    with httpx.Client(
        base_url=f"{server.url}/mj", headers={"mj-api-secret": stranger}, timeout=30
    ) as other:
        fetched = other.get(f"/task/{task_id}/fetch")
        assert fetched.status_code == 404 and fetched.json()["code"] == 3
        assert other.post("/task/list-by-condition", json={"ids": [task_id]}).json() == []
        assert task_id not in {t["id"] for t in other.get("/task/list").json()}
        pressed = other.post("/submit/action", json={"taskId": task_id, "customId": button})
        assert pressed.json()["code"] == 3, pressed.text
        assert other.get(f"/task/{task_id}/image-seed").status_code == 404
        assert other.post(f"/task/{task_id}/cancel").json()["code"] == 3


# -- refusals in the protocol's codes, and the queue ----------------------------------

NARROW_CONFIG = """
[plans.drafts]
modes = ["draft"]

[workspaces.ws-broke]
credits = true

[workspaces.ws-drafts]
plan = "drafts"
"""


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One task of a workspace at a time, each taking over a second: the next ones
    wait in the queue; a workspace without credits, one on a drafts-only plan."""
    data = tmp_path_factory.mktemp("mj-narrow")
    config = data / "imagegate.toml"
    config.write_text(NARROW_CONFIG)
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(config), IMAGEGATE_WORKSPACE_CONCURRENCY="1",
        IMAGEGATE_BUILTIN_LATENCY_MS="1200",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def _client(server: ServerProcess, workspace: str) -> httpx.Client:
    key = server.create_key(workspace)
    return httpx.Client(base_url=f"{server.url}/mj", headers={"mj-api-secret": key}, timeout=30)


def test_tasks_behind_a_full_queue_answer_22_and_still_run(narrow: ServerProcess) -> None:
    with _client(narrow, f"ws-{uuid.uuid4().hex[:10]}") as mj:
        answers = [
            mj.post("/submit/imagine", json={"prompt": f"a kite {i}" + FAST}).json()
            for i in range(3)
        ]
        assert answers[0]["code"] == 1, answers[0]
        # The third waits behind the second at least (the first holds the one slot).
        last = answers[2]
        assert last["code"] == 22, last
        assert last["properties"]["numberOfQueues"] >= 1
        assert "queue" in last["description"].lower()
        for answer in answers:
            assert _until_done(mj, answer["result"])["status"] == "SUCCESS"


def test_a_refused_prompt_is_code_24_and_leaves_nothing(server: ServerProcess) -> None:
    with _client(server, f"ws-{uuid.uuid4().hex[:10]}") as mj, httpx.Client(
        base_url=server.url, headers={"Authorization": "Bearer " + mj.headers["mj-api-secret"]}
    ) as http:  # fmt: skip
        body = {"prompt": "explicit porn of a lighthouse", "base64Array": [_data_url((9, 9, 9))]}
        refused = mj.post("/submit/imagine", json=body).json()
        assert refused["code"] == 24 and refused["result"] is None, refused
        assert refused["properties"]["category"] == "sexual"
        assert mj.get("/task/list").json() == []
        # The image prompt it carried was not kept either.
        assert http.get("/api/image/uploads").json()["data"] == []


def test_no_credits_and_not_in_the_plan_are_failures_that_create_nothing(
    narrow: ServerProcess,
) -> None:
    for workspace, words in (("ws-broke", "credits"), ("ws-drafts", "plan")):
        with _client(narrow, workspace) as mj:
            body = {"prompt": "a harbour at dawn", "base64Array": [_data_url((1, 2, 3))]}
            refused = mj.post("/submit/imagine", json=body)
            assert refused.status_code == 200
            assert refused.json()["code"] == 9 and words in refused.json()["description"]
            assert mj.get("/task/list").json() == []
            uploads = httpx.get(f"{narrow.url}/api/image/uploads", headers={
                "Authorization": "Bearer " + mj.headers["mj-api-secret"]})  # fmt: skip
            assert uploads.json()["data"] == []
