"""A batch's summary from its jobs' tallies, and the batch body read into items."""

from __future__ import annotations

import json

import pytest

from imagegate.api import batch_body
from imagegate.domain.batches import Tally, summarize
from imagegate.errors import BatchLineTooLong, BatchTooManyItems


def test_an_ended_job_counts_as_done_whatever_its_progress() -> None:
    summary = summarize({"running": Tally(2, 90), "failed": Tally(1, 10), "queued": Tally(1, 0)})
    assert summary.counts == {"queued": 1, "running": 2, "completed": 0, "failed": 1,
                              "canceled": 0}  # fmt: skip
    assert summary.progress == (90 + 100) // 4
    assert not summary.done


def test_done_once_every_job_has_ended() -> None:
    summary = summarize({"completed": Tally(3, 300), "canceled": Tally(1, 40)})
    assert (summary.progress, summary.done) == (100, True)
    assert not summarize({}).done and summarize({}).progress == 0


def test_each_jsonl_line_is_an_item_of_its_own() -> None:
    body = b'\xef\xbb\xbf{"prompt": "a"}\r\n\n{"prompt": ""}\n{bad\n"a string"\n{"prompt": "b"}'
    parsed = batch_body.parse(body, "application/x-ndjson; charset=utf-8")
    assert [item.index for item in parsed.items] == [0, 1, 2, 3, 4]
    assert [item.spec.prompt if item.spec else None for item in parsed.items] == [
        "a", None, None, None, "b",
    ]  # fmt: skip
    problems = [item.problem for item in parsed.items if item.problem]
    assert [p["field"] for p in problems[:1]] == ["prompt"]
    assert "line 4 is not valid JSON" in problems[1]["detail"]
    assert "JSON object" in problems[2]["detail"]


def test_the_fingerprint_follows_the_request_not_the_problem_text() -> None:
    def asked(body: bytes) -> object:
        request = batch_body.idempotent_request("k", batch_body.parse(body, "application/jsonl"))
        assert request is not None
        return request.fingerprint

    # Two different unreadable lines have the same problem text, not the same request.
    assert asked(b"{x\n") != asked(b"{y\n")
    assert asked(b'{"prompt": "a"}\n') == asked(b'{"prompt": "a"}\n\n')
    assert batch_body.idempotent_request(None, batch_body.parse(b"{x", "application/jsonl")) is None


def test_json_fields_in_another_order_are_the_same_request() -> None:
    one = {"items": [{"prompt": "a", "seed": 1}], "metadata": {"k": "v"}}
    other = {"metadata": {"k": "v"}, "items": [{"seed": 1, "prompt": "a"}]}
    requests = [
        batch_body.idempotent_request("k", batch_body.parse(json.dumps(b).encode(), None))
        for b in (one, other)
    ]
    assert requests[0] == requests[1]


def test_the_limits_are_checked_before_any_item_is_read() -> None:
    with pytest.raises(BatchTooManyItems):
        batch_body.parse(b'{"prompt": "a"}\n' * 101, "application/x-ndjson")
    with pytest.raises(BatchTooManyItems):
        batch_body.parse(json.dumps({"items": [1] * 101}).encode(), "application/json")
    long_line = json.dumps({"prompt": "a" * batch_body.MAX_LINE_BYTES}).encode()
    with pytest.raises(BatchLineTooLong, match="line 2"):
        batch_body.parse(b'{"prompt": "a"}\n' + long_line, "application/x-ndjson")


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    parsed = batch_body.parse(b"[" * 60_000 + b"\n", "application/x-ndjson")
    assert parsed.items[0].problem is not None
