"""The /mj facade's notifyHook: the protocol's task JSON, POSTed on each change of the
task through imagegate's durable, retried, signed delivery (the Standard Webhooks
headers ride along; the protocol's receivers ignore them)."""

from __future__ import annotations

import httpx

from tests.support.api import wait_for_job
from tests.support.receiver import Receiver, answer_in_turn
from tests.support.server import wait_until


def test_notify_hook_gets_the_task_on_each_change_with_retries(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    secret = hook_http.get("/api/image/webhooks/default/secret").json()["key"]
    receiver.answer = answer_in_turn(500)  # the first request fails: it is retried
    key = hook_http.headers["authorization"].removeprefix("Bearer ")
    mj = {"mj-api-secret": key}
    base = str(hook_http.base_url)
    submitted = httpx.post(f"{base}/mj/submit/imagine", headers=mj, json={
        "prompt": "a kite --draft", "notifyHook": receiver.url, "state": "abc"}).json()  # fmt: skip
    task_id = submitted["result"]
    wait_for_job(hook_http, task_id)
    wait_until(lambda: len(receiver.received) >= 4, 30, what="three tasks and one retry")
    tasks = [r.verify(secret) for r in receiver.received]  # signed, as every delivery is
    assert all(t["id"] == task_id and t["state"] == "abc" for t in tasks)
    assert "type" not in tasks[0] and "data" not in tasks[0]  # the task, not an envelope
    # Each delivery carries the task as it is when sent (a retry, the latest state).
    assert {t["status"] for t in tasks} <= {"SUBMITTED", "IN_PROGRESS", "SUCCESS"}
    assert "SUCCESS" in {t["status"] for t in tasks}
    final = next(t for t in tasks if t["status"] == "SUCCESS")
    assert final["progress"] == "100%" and len(final["buttons"]) == 9 and final["imageUrl"]
    assert len({r.webhook_id for r in receiver.received}) == 3  # a retry keeps its id

    # An action without a notifyHook keeps its parent's, and its format.
    upscale = httpx.post(f"{base}/mj/submit/change", headers=mj, json={
        "taskId": task_id, "action": "UPSCALE", "index": 1}).json()["result"]  # fmt: skip
    wait_for_job(hook_http, upscale)
    wait_until(
        lambda: any(r.json().get("id") == upscale and r.json()["status"] == "SUCCESS"
                    for r in receiver.received), 30, what="the upscale's task",
    )  # fmt: skip

    # A job made through the job API with the same URL still gets imagegate's envelope.
    job = hook_http.post(
        "/api/image/jobs", json={"prompt": "a kite --draft", "webhook_url": receiver.url}
    ).json()
    wait_for_job(hook_http, job["job_id"])
    wait_until(
        lambda: any(r.json().get("data", {}).get("job_id") == job["job_id"]
                    for r in receiver.received), 30, what="the job's event",
    )  # fmt: skip
