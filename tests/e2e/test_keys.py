"""Key management from the command line: create, list, revoke."""

from __future__ import annotations

import uuid

import httpx

from tests.support.server import ServerProcess, wait_until


def test_create_list_and_revoke(server: ServerProcess) -> None:
    workspace = f"keys-{uuid.uuid4().hex[:8]}"
    created = server.cli("keys", "create", "--workspace", workspace, "--name", "ci")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(server.url + "/api/image/jobs", headers=headers).status_code == 200

    listed = server.cli("keys", "list", "--workspace", workspace, COLUMNS="200")
    assert listed.returncode == 0, listed.stderr
    assert secret[:10] in listed.stdout and secret not in listed.stdout
    key_id = next(w for w in listed.stdout.split() if w.startswith("key_"))

    revoked = server.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    # Refused once the server's key cache (1 s in the test server) lets go of it.
    wait_until(
        lambda: httpx.get(server.url + "/api/image/jobs", headers=headers).status_code == 401,
        timeout=10,
        what="revoked key refused",
    )
    again = server.cli("keys", "revoke", key_id)
    assert again.returncode == 1 and "not_found" in again.stderr


def test_bad_workspace_name(server: ServerProcess) -> None:
    result = server.cli("keys", "create", "--workspace", "no spaces allowed")
    assert result.returncode == 1 and "validation_error" in result.stderr
