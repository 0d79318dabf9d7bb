"""Reading Replicate's answers: a prediction body, its progress, what its end means,
its outputs, and the error an HTTP answer stands for."""

from __future__ import annotations

import re
from typing import Any

import httpx

from imagegate.providers.errors import (
    ModeratedError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.http import error_for, json_body

TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
# How image models say their safety checker refused every output ("NSFW content
# detected…", "All generated images contained NSFW content…"), and the wording of
# models behind a provider filter ("…flagged as sensitive").
MODERATED = re.compile(r"\bnsfw\b|flagged as sensitive", re.IGNORECASE)
TQDM = re.compile(r"(\d{1,3})%\|")
# "Request was throttled. Your rate limit resets in ~30s." (older: "…in 30 seconds.")
THROTTLED_FOR = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec)", re.IGNORECASE)


def http_error(
    response: httpx.Response, what: str, provider_job_id: str | None = None
) -> ProviderError:
    error = error_for(response, what, provider_job_id=provider_job_id)
    if isinstance(error, RateLimitedError) and error.retry_after is None:
        # Replicate says when in the body: "…resets in ~30s."
        match = THROTTLED_FOR.search(response.text)
        error.retry_after = float(match.group(1)) if match else None
    return error


def parse_prediction(response: httpx.Response, what: str) -> dict[str, Any]:
    body = json_body(response, what)
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    if not (isinstance(fields.get("id"), str) and isinstance(fields.get("status"), str)):
        raise ProviderError(f"{what}: not a prediction: {str(body)[:200]!r}")
    return fields


def fraction(prediction: dict[str, Any]) -> float:
    """How far along: the last tqdm percentage in the logs, scaled to leave the last
    tenth for downloading the outputs."""
    if prediction["status"] == "succeeded":
        return 0.9
    found = TQDM.findall(str(prediction.get("logs") or ""))
    return min(100, int(found[-1])) / 100 * 0.9 if found else 0.0


def raise_for_status(prediction: dict[str, Any]) -> None:
    status, prediction_id = prediction["status"], prediction["id"]
    message = str(prediction.get("error") or "")
    if status == "succeeded":
        return
    if status == "failed" and MODERATED.search(message):
        raise ModeratedError(f"replicate: {message}", provider_job_id=prediction_id)
    if status == "aborted":
        # Ended by its deadline before it started: nothing ran, nothing was charged.
        raise RetryableProviderError(
            f"replicate: prediction {prediction_id} aborted before it started",
            provider_job_id=prediction_id,
        )
    # A model's own failure (its exception text, or a platform code such as E1000):
    # Replicate gives no reliable transient/permanent split, so retry a bounded number.
    raise ProviderError(
        f"replicate: prediction {prediction_id} {status}: {message or 'no error given'}",
        provider_job_id=prediction_id,
    )


def outputs_removed(prediction: dict[str, Any]) -> bool:
    succeeded = prediction["status"] == "succeeded"
    return succeeded and (bool(prediction.get("data_removed")) or prediction.get("output") is None)


def output_urls(prediction: dict[str, Any]) -> list[str]:
    output = prediction.get("output")
    items = output if isinstance(output, list) else [output]
    return [item for item in items if isinstance(item, str)]


def too_few(prediction: dict[str, Any], got: int, wanted: int) -> ProviderError:
    prediction_id = prediction["id"]
    message = f"replicate: prediction {prediction_id} returned {got} of {wanted} images"
    if MODERATED.search(str(prediction.get("logs") or "")):
        # The safety checker dropped some outputs. The same seeds would draw the same
        # images again, so this is a refusal, not bad luck.
        return ModeratedError(f"{message} (NSFW outputs removed)", provider_job_id=prediction_id)
    return ProviderError(message, provider_job_id=prediction_id)
