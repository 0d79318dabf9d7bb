"""Every route of the OpenAPI document, with two workspaces and three roles: another
workspace's ids answer 404 and change nothing; a viewer key writes nothing (403);
a member reaches no admin route (403). The routes come from the served document, so
a new route is covered the day it lands (or this test fails and names it)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.api import client, wait_for_job
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, wait_until

# Routes with nothing of a workspace in their path, or answered for anyone.
UNSCOPED = {"/healthz", "/readyz", "/files/{key}", "/metrics"}
# The operator's, refused (403) to any other key whatever the ids.
OPERATOR_ONLY = {"/api/image/workspaces", "/api/image/workspaces/{name}/plan"}
# Admin-only routes a member must be refused (any method).
ADMIN_ONLY = (
    "/api/image/keys", "/api/image/audit", "/api/image/moderation",
    "/api/image/credits/grants",
)  # fmt: skip
# A body that passes validation, so what answers is the scoping, not the schema.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/image/jobs/{job_id}/actions"): {"action": "upscale", "index": 1},
    ("patch", "/api/image/styles/{name}"): {"description": "changed"},
    ("patch", "/api/image/webhooks/{endpoint_id}"): {"enabled": False},
    ("post", "/api/image/keys/{key_id}/rotate"): {"grace_s": 0},
    ("post", "/api/image/keys"): {"role": "member"},
    ("post", "/api/image/credits/grants"): {"amount": 1},
    ("post", "/api/image/workspaces"): {"name": "someone-else"},
    ("put", "/api/image/workspaces/{name}/plan"): {"plan": None},
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("scoping"), IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8",
        IMAGEGATE_KEY_CACHE_TTL_S="0",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def owned(scoped: ServerProcess, receiver: Receiver) -> dict[str, str]:
    """One of every resource, in workspace A: the ids the others try."""
    workspace = f"a-{uuid.uuid4().hex[:8]}"
    with client(scoped.url, scoped.create_key(workspace, admin=True)) as a:
        endpoint = a.post("/api/image/webhooks", json={"url": receiver.url}).json()
        job = a.post("/api/image/jobs", json={"prompt": "a kite", "variations": 1}).json()
        wait_for_job(a, job["job_id"])
        delivery = wait_until(
            lambda: a.get(f"/api/image/jobs/{job['job_id']}/deliveries").json()["data"], 20
        )[0]
        upload = a.post("/api/image/uploads", files={"file": ("k.png", _png(), "image/png")})
        style = a.post("/api/image/styles", json={"name": "mine", "template": "{prompt}, x"})
        batch = a.post("/api/image/batches", json={"items": [{"prompt": "a cat"}]}).json()
        member = a.post("/api/image/keys", json={"role": "member"}).json()
        assert upload.status_code == 201 and style.status_code == 201
        return {
            "job_id": job["job_id"], "upload_id": upload.json()["upload_id"], "name": "mine",
            "batch_id": batch["batch_id"], "key_id": member["key_id"],
            "endpoint_id": endpoint["id"], "delivery_id": delivery["id"],
            "index": "1", "workspace": workspace, "key": member["secret"],
        }  # fmt: skip


def _routes(http: httpx.Client) -> list[tuple[str, str]]:
    spec = http.get("/openapi.json").json()
    return [(method, path) for path, ops in spec["paths"].items() for method in ops]


def _call(http: httpx.Client, method: str, path: str, ids: dict[str, str]) -> httpx.Response:
    url = path.format(**ids)
    body = BODIES.get((method, path))
    return http.request(method.upper(), url, json=body if body is not None else None)


def test_another_workspace_s_ids_are_not_found(
    scoped: ServerProcess, owned: dict[str, str]
) -> None:
    with client(scoped.url, scoped.create_key(f"b-{uuid.uuid4().hex[:8]}", admin=True)) as b:
        checked = []
        for method, path in _routes(b):
            if "{" not in path or path in UNSCOPED or path in OPERATOR_ONLY:
                continue
            answer = _call(b, method, path, owned)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
            checked.append((method, path))
        assert len(checked) >= 20
    # Nothing of A changed.
    with client(scoped.url, owned["key"]) as a:
        job = a.get(f"/api/image/jobs/{owned['job_id']}").json()
        assert job["status"] == "completed" and job["children"] == []
        assert a.get(f"/api/image/uploads/{owned['upload_id']}").status_code == 200
        assert a.get("/api/image/styles/mine").json()["description"] is None
        assert a.get(f"/api/image/batches/{owned['batch_id']}").status_code == 200
        assert a.get("/api/image/jobs").status_code == 200  # A's member key still works


def test_a_viewer_writes_nothing(scoped: ServerProcess, owned: dict[str, str]) -> None:
    workspace = f"v-{uuid.uuid4().hex[:8]}"
    with client(scoped.url, scoped.create_key(workspace, admin=True)) as admin:
        viewer = admin.post("/api/image/keys", json={"role": "viewer"}).json()["secret"]
        own_job = admin.post("/api/image/jobs", json={"prompt": "a kite", "variations": 1})
        ids = {**owned, "job_id": own_job.json()["job_id"], "name": "none",
               "workspace": workspace}  # fmt: skip
    with client(scoped.url, viewer) as v:
        refused = 0
        for method, path in _routes(v):
            if method in ("get", "head") or path in UNSCOPED:
                continue
            answer = _call(v, method, path, ids)
            assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
            refused += 1
        assert refused >= 20
        assert v.get("/api/image/jobs").status_code == 200
        assert len(v.get("/api/image/jobs").json()["data"]) == 1  # nothing new
        # The facades' POSTs too.
        mj = httpx.post(f"{scoped.url}/mj/submit/imagine", headers={"mj-api-secret": viewer},
                        json={"prompt": "a kite"})  # fmt: skip
        assert mj.status_code == 403, (mj.status_code, mj.headers, mj.text)
        v1 = v.post("/v1/images/generations", json={"prompt": "a kite", "model": "gpt-image-1"})
        assert v1.status_code == 403, v1.text
        assert len(v.get("/api/image/jobs").json()["data"]) == 1


def test_a_member_reaches_no_admin_route(scoped: ServerProcess, owned: dict[str, str]) -> None:
    with client(scoped.url, owned["key"]) as member:
        for method, path in _routes(member):
            if not path.startswith(ADMIN_ONLY) and path not in OPERATOR_ONLY:
                continue
            answer = _call(member, method, path, owned)
            assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
