"""Prompt flags over real HTTP: a bad one is a 422 problem naming the field and the
flag, and nothing is created; good ones land in the job's params."""

from __future__ import annotations

import httpx
import pytest

BAD = [
    ("a fox --chaos 150", "--chaos", "--chaos must be a number from 0 to 100, got 150"),
    ("a fox \u2014s 1001", "--s", "--s must be a number from 0 to 1000, got 1001"),
    ("a fox --q 3", "--q", "--q must be one of .25, .5, 1, 2, 4"),
    ("a fox --v 5.3", "--v", "--v 5.3 is not a version"),
    ("a fox --repeat 41", "--repeat", "--repeat must be a number from 1 to 40"),
    ("a fox --zoom 2", "--zoom", "unknown prompt flag --zoom; supported: --ar"),
    ("a fox --seed \u00b2", "--seed", "--seed must be a number"),
]


@pytest.mark.parametrize(("prompt", "flag", "detail"), BAD)
def test_a_bad_flag_is_a_422_naming_it(
    http: httpx.Client, prompt: str, flag: str, detail: str
) -> None:
    response = http.post("/api/image/jobs", json={"prompt": prompt})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["field"] == "prompt" and problem["flag"] == flag
    assert problem["detail"].startswith(detail), problem
    assert http.get("/api/image/jobs").json()["data"] == []


def test_good_flags_land_in_params(http: httpx.Client) -> None:
    prompt = "a fox::2 snow::1 \u2014ar 16:9 --s 250 --c 20 --w 0 --tile --q 2 --style raw --v 7"
    created = http.post("/api/image/jobs", json={"prompt": prompt, "variations": 1})
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["prompt"] == "a fox::2 snow::1"
    assert job["params"]["ratio"] == "16:9" and job["params"]["version"] == "v7"
    assert job["params"]["tuning"] == {
        "stylize": 250, "chaos": 20, "weird": 0, "tile": True, "quality": 2, "raw": True,
    }  # fmt: skip
