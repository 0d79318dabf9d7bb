"""Reading a /metrics scrape as Prometheus would: with the client library's parser."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "imagegate.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
_NAME = re.compile(r"\bimagegate_[a-z_]+[a-z]\b")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def scrape(url: str, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def names_in_deploy_files() -> set[str]:
    """Every imagegate series the dashboard's and the alert rules' queries name."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return set(_NAME.findall("\n".join(exprs))) | set(_NAME.findall(ALERTS.read_text()))


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def log_lines(log: str, job_id: str) -> list[dict[str, object]]:
    """The JSON log lines about ``job_id``."""
    found = []
    for line in log.splitlines():
        if job_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("job_id") == job_id:
                found.append(entry)
    return found
