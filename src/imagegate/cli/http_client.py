"""A small synchronous client for the HTTP contract (DESIGN §4), used by the CLI.

Transport only: it sends requests, turns problem+json answers into ``ClientError`` and
hands back the decoded JSON. What to show the user is the commands' business.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

JOBS = "/api/image/jobs"
UPLOADS = "/api/image/uploads"
BATCHES = "/api/image/batches"
PROVIDERS = "/api/image/providers"
# A request that never reached the server (connection refused) is not retried: the
# answer would be the same, and "is the server running?" should come back at once.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_RETRY_DELAYS_S = (0.25, 1.0)


class ClientError(Exception):
    """A request to the imagegate server failed."""

    def __init__(
        self, status: int | None, code: str, detail: str, problem: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        # The whole problem document, when the server sent one (a refused batch's
        # ``items`` say why each item was refused).
        self.problem = problem
        super().__init__(f"{code}: {detail}")


class ImagegateClient:
    """Talks to one imagegate server with one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __enter__(self) -> ImagegateClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_job(
        self, body: Mapping[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Queue a job. With an ``idempotency_key`` a lost answer is retried safely."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(
            "POST", JOBS, json=dict(body), headers=headers, retry=idempotency_key is not None
        )

    def act(
        self, job_id: str, body: Mapping[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Start an action (upscale, variation, …) on a finished job: the new job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(
            "POST",
            f"{JOBS}/{_segment(job_id)}/actions",
            json=dict(body),
            headers=headers,
            retry=idempotency_key is not None,
        )

    def upload(self, name: str, content: bytes, content_type: str) -> dict[str, Any]:
        """Upload an image (for img2img, blend, describe): the upload, with its id.
        Retried like a read: a repeated upload only stores the same image twice."""
        files = {"file": (name, content, content_type)}
        return self._json("POST", UPLOADS, files=files, retry=True)

    def create_batch(self, jsonl: bytes, idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a batch: ``jsonl`` holds one create body per line."""
        headers = {"Content-Type": "application/x-ndjson"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self._json(
            "POST", BATCHES, content=jsonl, headers=headers, retry=idempotency_key is not None
        )

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"{BATCHES}/{_segment(batch_id)}", retry=True)

    def list_providers(self) -> dict[str, Any]:
        return self._json("GET", PROVIDERS, retry=True)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"{JOBS}/{_segment(job_id)}", retry=True)

    def list_jobs(
        self,
        status: Sequence[str] = (),
        dead_letter: bool | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if status:
            params["status"] = ",".join(status)
        if dead_letter is not None:
            params["dead_letter"] = "true" if dead_letter else "false"
        if cursor:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        return self._json("GET", JOBS, params=params, retry=True)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"{JOBS}/{_segment(job_id)}/cancel")

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Requeue a dead-lettered job (needs an admin key)."""
        return self._json("POST", f"{JOBS}/{_segment(job_id)}/retry")

    def download(self, url: str, path: Path) -> Path:
        """Save ``url`` (absolute, or relative to the server) to ``path``, atomically."""
        target = urljoin(self.base_url + "/", url)
        # Stored files are signed links; the key goes only to the server itself, never
        # to a CDN or bucket that the link may point at.
        headers = self._auth() if _same_origin(target, self.base_url) else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        # A hidden part file renamed into place: an interrupted download leaves no
        # half image under the final name. Plain open() so the umask sets the mode.
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            with (
                tmp.open("xb") as handle,
                self._http.stream("GET", target, headers=headers) as response,
            ):
                if response.is_error:
                    response.read()
                    raise _error_from(response)
                for chunk in response.iter_bytes():
                    handle.write(chunk)
            os.replace(tmp, path)
        except httpx.HTTPError as error:
            tmp.unlink(missing_ok=True)
            raise self._transport_error(error) from error
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _json(
        self,
        method: str,
        path: str,
        *,
        retry: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        response = self._request(method, path, retry=retry, headers=headers, **kwargs)
        try:
            data = response.json()
        except ValueError as error:
            raise ClientError(
                response.status_code, "bad_response", f"the server sent non-JSON from {path}"
            ) from error
        if not isinstance(data, dict):
            raise ClientError(response.status_code, "bad_response", "expected a JSON object")
        return data

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        headers: Mapping[str, str] | None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = {**self._auth(), **(headers or {})}
        delays = _RETRY_DELAYS_S if retry else ()
        for attempt in range(len(delays) + 1):
            last = attempt == len(delays)
            try:
                response = self._http.request(method, path, headers=all_headers, **kwargs)
            except httpx.ConnectError as error:
                raise self._transport_error(error) from error
            except httpx.TransportError as error:
                if last:
                    raise self._transport_error(error) from error
            else:
                if not response.is_error:
                    return response
                transient = response.status_code in _RETRY_STATUSES or (
                    response.status_code == 409 and _code(response) == "idempotency_key_in_use"
                )
                if last or not transient:
                    raise _error_from(response)
            time.sleep(delays[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    def _transport_error(self, error: httpx.HTTPError) -> ClientError:
        if isinstance(error, httpx.ConnectError):
            return ClientError(
                None,
                "unreachable",
                f"cannot reach imagegate at {self.base_url} — is `imagegate serve` running?",
            )
        if isinstance(error, httpx.TimeoutException):
            return ClientError(None, "timeout", f"imagegate at {self.base_url} did not answer")
        return ClientError(None, "connection_error", f"{type(error).__name__}: {error}")


def _segment(value: str) -> str:
    """Quote an id as one path segment, so an odd id cannot change the path."""
    return quote(value, safe="")


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["code"]) if isinstance(body, dict) and "code" in body else None


def _error_from(response: httpx.Response) -> ClientError:
    """A ``ClientError`` from an RFC 9457 problem document, or from whatever came back."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("code"):
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        return ClientError(status, str(body["code"]), detail, body)
    text = " ".join(response.text.split())[:200]
    detail = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
    return ClientError(status, f"http_{status}", detail)
