"""Metrics and traces across processes: `imagegate api` and `imagegate worker` on one
PostgreSQL database, calling the OpenAI emulator, exporting spans over OTLP.

One job, created with a ``traceparent``: its trace id is in the API's log lines about
it and in the worker's, in the ``traceparent`` the emulator saw, and on the spans both
processes exported. The worker's own /metrics port counts the job it ran; the API's
counts the job it accepted; both read the queue back at zero."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.api import client, wait_for_job
from tests.support.metrics import Scrape, log_lines, scrape, trace_id
from tests.support.postgres import fresh_database
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess, free_port, wait_until

CONFIG = """
[providers.builtin]
enabled = false

[providers.openai]
type = "openai"
base_url = "{url}/v1"
api_key_env = "METRICS_TEST_KEY"
"""
PARENT = "00-5cf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01"


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str


class Collector:
    """An OTLP/HTTP traces endpoint on loopback that keeps the spans it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Collector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
                collector._keep(request)
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(
                        Span(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            attributes.get("service.name", ""),
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def of_trace(self, trace: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class Cluster:
    api: ServerProcess
    worker: ServerProcess
    worker_metrics: str
    emulator: SandboxProcess
    collector: Collector


@contextmanager
def _cluster(
    root: Path, sandboxes: Callable[[str], SandboxProcess], **extra: str
) -> Iterator[Cluster]:
    emulator = sandboxes("openai")
    config = root / "imagegate.toml"
    config.write_text(CONFIG.format(url=emulator.url))
    collector = Collector().start()
    port = free_port()
    with fresh_database() as database:
        env = {
            "IMAGEGATE_DATABASE_URL": database,
            "IMAGEGATE_CONFIG": str(config),
            "METRICS_TEST_KEY": "sk-sandbox",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **extra,
        }
        api = ServerProcess(root / "data", command="api", **env).start()
        worker = ServerProcess(
            root / "data", command="worker", IMAGEGATE_WORKER_ID="metrics-w1",
            IMAGEGATE_METRICS_PORT=str(port), **env,
        ).start()  # fmt: skip
        try:
            yield Cluster(api, worker, f"http://127.0.0.1:{port}/metrics", emulator, collector)
        finally:
            worker.kill()
            api.kill()
            collector.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, sandboxes: Callable[[str], SandboxProcess]
) -> Iterator[Cluster]:
    with _cluster(tmp_path_factory.mktemp("cluster"), sandboxes) as started:
        yield started


def _create(cluster: Cluster, **headers: str) -> str:
    with client(cluster.api.url, cluster.api.admin_key) as http:
        body = {"prompt": "a traced harbour", "variations": 1, "model": "openai:gpt-image-1"}
        created = http.post("/api/image/jobs", json=body, headers=headers)
        assert created.status_code == 202, created.text
        job_id: str = created.json()["job_id"]
        assert wait_for_job(http, job_id)["status"] == "completed"
    return job_id


def _settled(now: Scrape) -> bool:
    return now.value("imagegate_state_up") == 1 and now.value("imagegate_queue_depth") == 0


def test_one_job_is_one_trace_and_each_process_counts_its_part(cluster: Cluster) -> None:
    api_before, worker_before = scrape(f"{cluster.api.url}/metrics"), scrape(cluster.worker_metrics)
    job_id = _create(cluster, traceparent=PARENT)
    expected = trace_id(PARENT)

    # The API accepted it, the worker ran it: each logs it in the same trace.
    api_lines, worker_lines = (
        log_lines(cluster.api.log(), job_id),
        log_lines(cluster.worker.log(), job_id),
    )
    assert "job.queued" in {line["event"] for line in api_lines}
    assert {"job.running", "job.completed"} <= {line["event"] for line in worker_lines}
    assert {line.get("trace_id") for line in api_lines + worker_lines} == {expected}
    assert expected in cluster.emulator.stats()["trace_ids"]

    # Each process's /metrics counts its own part; both read the database's queue.
    def moved(before: Scrape, url: str, name: str, **labels: str) -> float:
        return scrape(url).value(name, **labels) - before.value(name, **labels)

    worker_url, api_url = cluster.worker_metrics, f"{cluster.api.url}/metrics"
    openai = {"provider": "openai"}
    assert moved(api_before, api_url, "imagegate_jobs_created_total", **openai) == 1
    assert moved(worker_before, worker_url, "imagegate_jobs_created_total") == 0
    done = {"status": "completed", **openai}
    assert moved(worker_before, worker_url, "imagegate_jobs_finished_total", **done) == 1
    assert moved(api_before, api_url, "imagegate_jobs_finished_total") == 0
    ok = {"outcome": "ok", **openai}
    assert moved(worker_before, worker_url, "imagegate_attempt_duration_seconds_count", **ok) == 1
    assert moved(worker_before, worker_url, "imagegate_job_dispatch_seconds_count") == 1
    for url in (api_url, worker_url):
        wait_until(lambda u=url: _settled(scrape(u)), 30, 0.1, f"queue at zero on {url}")
        assert scrape(url).value("imagegate_provider_breaker_state", state="closed", **openai) == 1

    # The spans both processes exported hang together under the caller's span.
    def spans() -> dict[str, list[Span]]:
        named: dict[str, list[Span]] = {}
        for s in cluster.collector.of_trace(expected):
            named.setdefault(s.name, []).append(s)
        return named if {"http.request", "job.attempt", "provider.http"} <= set(named) else {}

    named = wait_until(spans, 30, 0.1, "the job's spans at the collector")
    create = next(s for s in named["http.request"] if s.parent_span_id == PARENT.split("-")[2])
    assert create.service == "imagegate-api"
    (attempt,) = named["job.attempt"]
    assert attempt.service == "imagegate-worker" and attempt.parent_span_id == create.span_id
    assert all(s.parent_span_id == attempt.span_id for s in named["provider.http"])


def test_the_worker_port_serves_metrics_only(cluster: Cluster) -> None:
    base = cluster.worker_metrics.removesuffix("/metrics")
    assert httpx.get(f"{base}/", timeout=5).status_code == 404
    assert httpx.post(cluster.worker_metrics, timeout=5).status_code == 405
    assert httpx.head(cluster.worker_metrics, timeout=5).status_code == 200


def test_in_multiprocess_mode_every_process_shows_the_hosts_sums(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess]
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR shared, the API's scrape includes the job the
    worker ran (and the worker's, the job the API accepted)."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    with _cluster(tmp_path, sandboxes, PROMETHEUS_MULTIPROC_DIR=str(shared)) as cluster:
        _create(cluster)
        done = {"status": "completed", "provider": "openai"}
        for url in (f"{cluster.api.url}/metrics", cluster.worker_metrics):
            now = scrape(url)
            assert now.value("imagegate_jobs_created_total", provider="openai") == 1
            wait_until(
                lambda u=url: scrape(u).value("imagegate_jobs_finished_total", **done) == 1,
                30, 0.1, f"the worker's completion in {url}",
            )  # fmt: skip
            assert now.value("imagegate_job_dispatch_seconds_count") == 1
