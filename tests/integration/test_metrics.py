"""/metrics on a real `imagegate serve`, read with Prometheus's own parser: the series
move as real jobs run (completed, failed, refused, delivered to a webhook), the
database gauges come back to zero, and every series the deploy/ dashboard and alert
rules use is one the server exports. And one job's trace id: in the server's log
lines about it and in the ``traceparent`` its webhook receiver saw."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tests.support.api import client
from tests.support.metrics import (
    ALERTS,
    Scrape,
    log_lines,
    names_in_deploy_files,
    scrape,
    trace_id,
)
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, wait_until

TOKEN = "metrics-scrape-token"
FAIL = "failme"
DRAFT = {"variations": 1, "mode": "draft"}
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Jobs per workspace per minute: the burst workspace's last create is refused.
JOB_RATE = 5


@dataclass
class Run:
    before: Scrape
    after: Scrape
    peak_queue: float
    traced_job: str
    completed: int
    failed: int
    refused: int
    receiver: Receiver


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("metrics"),
        IMAGEGATE_METRICS_TOKEN=TOKEN,
        IMAGEGATE_BUILTIN_FAULT_MARKER=FAIL,
        IMAGEGATE_MAX_ATTEMPTS="2",
        IMAGEGATE_RATE_LIMIT_JOBS=f"{JOB_RATE}/minute",
        # One job at a time per workspace, each a while: a burst waits in the queue.
        IMAGEGATE_WORKSPACE_CONCURRENCY="1",
        IMAGEGATE_BUILTIN_LATENCY_MS="300",
        IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8",
    ).start()
    yield proc
    proc.stop()


def _metrics(server: ServerProcess) -> Scrape:
    return scrape(f"{server.url}/metrics", TOKEN)


def _post(http: httpx.Client, body: dict[str, object], **headers: str) -> httpx.Response:
    return http.post("/api/image/jobs", json={**DRAFT, **body}, headers=headers)


@pytest.fixture(scope="module")
def run(metered: ServerProcess) -> Iterator[Run]:
    """One workload, scraped before and after: a traced job with a webhook, a job that
    fails every attempt, and a burst in one workspace, the last create refused."""
    with Receiver() as receiver, ExitStack() as stack:
        before = _metrics(metered)
        keys = [metered.create_key(f"metrics-{uuid.uuid4().hex[:8]}") for _ in range(3)]
        traced_http, failing_http, burst_http = (
            stack.enter_context(client(metered.url, key)) for key in keys
        )
        hook = {"webhook_url": f"{receiver.url}/hook"}
        traced = _post(traced_http, {"prompt": "a traced lighthouse", **hook}, traceparent=PARENT)
        assert traced.status_code == 202, traced.text
        failing = _post(failing_http, {"prompt": f"{FAIL} every time"})
        burst = [_post(burst_http, {"prompt": f"burst {i}"}) for i in range(JOB_RATE + 1)]
        assert [r.status_code for r in burst] == [202] * JOB_RATE + [429]
        jobs = [(traced_http, traced), (failing_http, failing)]
        jobs += [(burst_http, r) for r in burst[:JOB_RATE]]
        peak = 0.0

        def finished() -> bool:
            nonlocal peak
            peak = max(peak, _metrics(metered).value("imagegate_queue_depth"))
            statuses = [h.get(f"/api/image/jobs/{r.json()['job_id']}").json() for h, r in jobs]
            return all(job["status"] in _DONE for job in statuses)

        wait_until(finished, 60, 0.05, "every job finished")
        # The traced job's own URL gets its queued, running and completed events.
        wait_until(lambda: len(receiver.received) >= 3, 30, what="the traced job's webhooks")

        def settled() -> bool:
            now = _metrics(metered)
            delivered = now.value("imagegate_webhook_attempts_total", outcome="delivered")
            return _settled(now) and delivered - before.value(
                "imagegate_webhook_attempts_total", outcome="delivered"
            ) == len(receiver.received)

        wait_until(settled, 30, 0.1, "the gauges back to zero, deliveries counted")
        yield Run(
            before, _metrics(metered), peak, traced.json()["job_id"], completed=1 + JOB_RATE,
            failed=1, refused=1, receiver=receiver,
        )  # fmt: skip


_DONE = {"completed", "failed", "canceled"}


def _settled(now: Scrape) -> bool:
    gauges = (
        "imagegate_queue_depth",
        "imagegate_jobs_running",
        "imagegate_queue_oldest_age_seconds",
    )
    return now.value("imagegate_state_up") == 1 and all(now.value(g) == 0 for g in gauges)


def _moved(run: Run, name: str, **labels: str) -> float:
    return run.after.value(name, **labels) - run.before.value(name, **labels)


def test_created_and_finished_counters_count_every_job(run: Run) -> None:
    builtin = {"action": "imagine", "provider": "builtin"}
    assert _moved(run, "imagegate_jobs_created_total", **builtin) == run.completed + run.failed
    assert _moved(run, "imagegate_jobs_finished_total", status="completed", **builtin) == (
        run.completed
    )
    assert _moved(run, "imagegate_jobs_finished_total", status="failed", **builtin) == run.failed


def test_histograms_observe_each_dispatch_attempt_and_end(run: Run) -> None:
    jobs = run.completed + run.failed
    assert _moved(run, "imagegate_job_dispatch_seconds_count") == jobs
    assert _moved(run, "imagegate_job_duration_seconds_count", status="completed") == run.completed
    assert _moved(run, "imagegate_job_duration_seconds_count", status="failed") == run.failed
    ok = _moved(run, "imagegate_attempt_duration_seconds_count", provider="builtin", outcome="ok")
    assert ok == run.completed
    # The failing job used both of its attempts, each a provider error.
    failed = {"provider": "builtin", "outcome": "failed"}
    assert _moved(run, "imagegate_attempt_duration_seconds_count", **failed) == 2
    assert _moved(run, "imagegate_provider_errors_total", provider="builtin") == 2
    # Each job took at least the renderer's 300 ms, end to end.
    assert _moved(run, "imagegate_job_duration_seconds_sum") >= 0.3 * jobs


def test_queue_gauges_rise_under_a_burst_and_come_back_to_zero(run: Run) -> None:
    assert run.peak_queue >= 1
    assert _settled(run.after)


def test_refusals_webhooks_and_http_requests_are_counted(run: Run) -> None:
    assert _moved(run, "imagegate_rate_limited_total", limit="jobs") == run.refused
    delivered = len(run.receiver.received)
    assert _moved(run, "imagegate_webhook_attempts_total", outcome="delivered") == delivered
    assert _moved(run, "imagegate_webhook_delivery_lag_seconds_count") == delivered
    create = {"method": "POST", "route": "/api/image/jobs"}
    assert _moved(run, "imagegate_http_requests_total", status="202", **create) == (
        run.completed + run.failed
    )
    assert _moved(run, "imagegate_http_requests_total", status="429", **create) == run.refused
    # Polls are counted under the route's template: no job id is ever a label.
    poll = {"method": "GET", "route": "/api/image/jobs/{job_id}", "status": "200"}
    assert _moved(run, "imagegate_http_requests_total", **poll) > 0
    ids = re.compile(r"(job|ws)_[0-9A-Z]{20,}")
    assert not [s for s in run.after.samples if any(ids.search(v) for v in s.labels.values())]


def test_a_job_keeps_its_trace_id_in_every_log_line_and_its_webhook(
    run: Run, metered: ServerProcess
) -> None:
    expected = trace_id(PARENT)
    lines = log_lines(metered.log(), run.traced_job)
    events = {line["event"] for line in lines}
    assert {"job.queued", "job.running", "job.completed", "webhook.attempt"} <= events
    assert {line.get("trace_id") for line in lines} == {expected}
    assert {trace_id(r.headers["traceparent"]) for r in run.receiver.received} == {expected}
    # Jobs created without a traceparent each get a trace of their own.
    lines = [json.loads(line) for line in metered.log().splitlines() if line.startswith("{")]
    queued = [line for line in lines if line["event"] == "job.queued"]
    assert len({line["trace_id"] for line in queued}) == len(queued) == run.completed + run.failed


def test_an_open_event_stream_is_counted_while_it_lasts(metered: ServerProcess) -> None:
    listeners = "imagegate_sse_listeners"
    assert _metrics(metered).value(listeners) == 0
    opened, close = threading.Event(), threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {metered.admin_key}"}
        with httpx.stream("GET", f"{metered.url}/api/image/events", headers=headers) as r:
            assert r.status_code == 200
            opened.set()
            close.wait(30)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(30)
    wait_until(lambda: _metrics(metered).value(listeners) == 1, 30, what="one listener")
    close.set()
    thread.join(30)
    wait_until(lambda: _metrics(metered).value(listeners) == 0, 30, what="no listener")


def test_a_scrape_without_the_token_is_refused(metered: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(f"{metered.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"


def test_the_dashboard_and_alerts_use_only_series_the_server_exports(run: Run) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    assert rules["groups"] and all(group["rules"] for group in rules["groups"])
    used = names_in_deploy_files()
    assert len(used) >= 10
    assert used <= run.after.names(), sorted(used - run.after.names())
