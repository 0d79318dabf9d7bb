"""API keys over real HTTP, on SQLite and PostgreSQL: an admin creates, lists, rotates
and revokes its workspace's keys; roles (a viewer reads only, a member manages
nothing); expiry; rotation's grace period; another workspace's key is 404; every
change is in the audit log with the acting key, address and client; the operator
key opens workspaces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import client
from tests.support.server import ServerProcess, wait_until

AGENT = {"User-Agent": "keys-test/1.0"}


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


def _works(url: str, secret: str) -> bool:
    with client(url, secret) as c:
        return c.get("/api/image/jobs").status_code == 200


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(server: ServerProcess, workspace: str) -> Iterator[httpx.Client]:
    with client(server.url, server.create_key(workspace, admin=True)) as c:
        c.headers.update(AGENT)
        yield c


def test_create_list_read_revoke(server: ServerProcess, admin: httpx.Client) -> None:
    made = _ok(admin.post("/api/image/keys", json={"name": "ci", "role": "member"}), 201)
    assert made["secret"].startswith("ig_") and made["prefix"] == made["secret"][:10]
    assert made["role"] == "member" and made["created_by"] and made["last_used_at"] is None
    key_id = made["key_id"]
    assert _ok(admin.get(f"/api/image/keys/{key_id}")) == {
        k: v for k, v in made.items() if k != "secret"
    }
    listed = _ok(admin.get("/api/image/keys"))["data"]
    assert listed[0]["key_id"] == key_id and all("secret" not in k for k in listed)

    assert _works(server.url, made["secret"])
    used = wait_until(
        lambda: _ok(admin.get(f"/api/image/keys/{key_id}"))["last_used_at"], 5, what="last use"
    )
    assert used

    assert admin.delete(f"/api/image/keys/{key_id}").status_code == 204
    assert _ok(admin.get(f"/api/image/keys/{key_id}"))["revoked_at"]
    # Refused once the server's key cache (1 s in tests) lets it go.
    wait_until(lambda: not _works(server.url, made["secret"]), 10, what="revoked key refused")
    _problem(admin.delete(f"/api/image/keys/{key_id}"), 404, "not_found")


def test_roles(server: ServerProcess, admin: httpx.Client) -> None:
    viewer = _ok(admin.post("/api/image/keys", json={"role": "viewer"}), 201)["secret"]
    member = _ok(admin.post("/api/image/keys", json={"role": "member"}), 201)["secret"]
    with client(server.url, viewer) as v:
        assert v.get("/api/image/jobs").status_code == 200
        _problem(v.post("/api/image/jobs", json={"prompt": "a kite"}), 403, "forbidden")
        _problem(v.post("/api/image/styles", json={"name": "x"}), 403, "forbidden")
        _problem(v.get("/api/image/keys"), 403, "forbidden")
    with client(server.url, member) as m:
        assert m.post("/api/image/jobs", json={"prompt": "a kite"}).status_code == 202
        _problem(m.get("/api/image/keys"), 403, "forbidden")
        _problem(m.post("/api/image/keys", json={}), 403, "forbidden")
        _problem(m.get("/api/image/audit"), 403, "forbidden")
    # Nobody hands out the operator role over HTTP.
    assert admin.post("/api/image/keys", json={"role": "operator"}).status_code == 422


def test_expiry(server: ServerProcess, admin: httpx.Client) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    made = _ok(admin.post("/api/image/keys", json={"expires_at": soon}), 201)
    assert made["expires_at"]
    wait_until(lambda: not _works(server.url, made["secret"]), 15, what="expired key refused")
    for bad in (
        (datetime.now(UTC) - timedelta(hours=1)).isoformat(),  # past
        "2030-01-01T00:00:00",  # no time zone
        (datetime.now(UTC) + timedelta(days=4000)).isoformat(),  # too far
    ):
        response = admin.post("/api/image/keys", json={"expires_at": bad})
        assert response.status_code == 422, (bad, response.text)


def test_rotation_keeps_the_old_secret_for_the_grace_period(
    server: ServerProcess, admin: httpx.Client
) -> None:
    made = _ok(admin.post("/api/image/keys", json={"name": "rotating"}), 201)
    rotated = _ok(admin.post(f"/api/image/keys/{made['key_id']}/rotate", json={"grace_s": 3600}))
    assert rotated["key_id"] == made["key_id"] and rotated["secret"] != made["secret"]
    assert rotated["previous_secret_expires_at"] and rotated["rotated_at"]
    assert _works(server.url, rotated["secret"]) and _works(server.url, made["secret"])

    again = _ok(admin.post(f"/api/image/keys/{made['key_id']}/rotate", json={"grace_s": 0}))
    assert _works(server.url, again["secret"])
    for old in (made["secret"], rotated["secret"]):
        wait_until(lambda old=old: not _works(server.url, old), 10, what="old secret refused")
    bad = admin.post(f"/api/image/keys/{made['key_id']}/rotate", json={"grace_s": 10**7})
    assert bad.status_code == 422


def test_another_workspace_s_key_is_not_found(server: ServerProcess, admin: httpx.Client) -> None:
    other = f"ws-{uuid.uuid4().hex[:10]}"
    with client(server.url, server.create_key(other, admin=True)) as stranger:
        theirs = _ok(stranger.post("/api/image/keys", json={}), 201)
        for response in (
            admin.get(f"/api/image/keys/{theirs['key_id']}"),
            admin.delete(f"/api/image/keys/{theirs['key_id']}"),
            admin.post(f"/api/image/keys/{theirs['key_id']}/rotate"),
            admin.get("/api/image/keys/not-a-key-id"),
        ):
            _problem(response, 404, "not_found")
        assert _works(server.url, theirs["secret"])
        _problem(admin.post("/api/image/keys", json={"workspace": other}), 403, "forbidden")
        assert theirs["key_id"] not in [
            k["key_id"] for k in _ok(admin.get("/api/image/keys"))["data"]
        ]


def test_the_audit_log(server: ServerProcess, admin: httpx.Client) -> None:
    made = _ok(admin.post("/api/image/keys", json={"name": "audited"}), 201)
    _ok(admin.post(f"/api/image/keys/{made['key_id']}/rotate"))
    assert admin.delete(f"/api/image/keys/{made['key_id']}").status_code == 204
    job = _ok(admin.post("/api/image/jobs", json={"prompt": "a slow kite"}), 202)
    admin.post(f"/api/image/jobs/{job['job_id']}/cancel")  # may have finished: fine

    entries = _ok(admin.get("/api/image/audit"))["data"]
    keyed = [e for e in entries if e["target_id"] == made["key_id"]]
    assert [e["action"] for e in keyed] == ["key.revoked", "key.rotated", "key.created"]
    me = made["created_by"]
    for entry in keyed:
        assert entry["actor_key_id"] == me and entry["ip"] == "127.0.0.1"
        assert entry["user_agent"] == AGENT["User-Agent"]
    assert keyed[1]["details"] == {"grace_s": 86400}
    assert keyed[2]["details"]["role"] == "member"
    # Jobs are audited with the request that made them, through the facades too.
    created = [e for e in entries if e["action"] == "job.created"]
    assert [e["target_id"] for e in created][:1] == [job["job_id"]]
    assert created[0]["ip"] == "127.0.0.1" and created[0]["user_agent"] == AGENT["User-Agent"]
    assert created[0]["details"] == {"job_action": "imagine"}
    task = admin.post("/mj/submit/imagine", json={"prompt": "a kite --draft"}).json()
    via_mj = _ok(admin.get("/api/image/audit", params={"action": "job.created"}))["data"]
    assert via_mj[0]["target_id"] == task["result"]
    assert via_mj[0]["user_agent"] == AGENT["User-Agent"]
    only = _ok(admin.get("/api/image/audit", params={"action": "key.rotated"}))["data"]
    assert [e["target_id"] for e in only] == [made["key_id"]]
    assert admin.get("/api/image/audit", params={"action": "nope"}).status_code == 422
    other = f"ws-{uuid.uuid4().hex[:10]}"
    with client(server.url, server.create_key(other, admin=True)) as stranger:
        assert made["key_id"] not in str(_ok(stranger.get("/api/image/audit")))


def test_the_operator_opens_workspaces(server: ServerProcess, admin: httpx.Client) -> None:
    created = server.cli("keys", "create", "--workspace", "default", "--operator")
    assert created.returncode == 0, created.stdout + created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    with client(server.url, secret) as operator:
        opened = _ok(operator.post("/api/image/workspaces", json={"name": name}), 201)
        assert opened["name"] == name and opened["admin_key"]["role"] == "admin"
        _problem(operator.post("/api/image/workspaces", json={"name": name}), 409, "invalid_state")
        listed = _ok(operator.get("/api/image/workspaces", params={"limit": 100}))
        names = [w["name"] for w in listed["data"]]
        assert name in names or listed["next_cursor"]
        extra = _ok(
            operator.post("/api/image/keys", json={"workspace": name, "role": "viewer"}), 201
        )
        assert extra["workspace"] == name
    with client(server.url, opened["admin_key"]["secret"]) as tenant:
        keys = [k["key_id"] for k in _ok(tenant.get("/api/image/keys"))["data"]]
        assert set(keys) == {opened["admin_key"]["key_id"], extra["key_id"]}
    _problem(admin.get("/api/image/workspaces"), 403, "forbidden")
