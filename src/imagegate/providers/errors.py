"""The only exceptions an adapter may raise. The worker's retry policy decides what
each one means for the job; adapters only classify."""

from __future__ import annotations


class ProviderError(Exception):
    """The provider failed in a way we could not classify; retried a bounded number of times."""

    code = "provider_error"
    retryable = True

    def __init__(
        self, message: str, *, provider_job_id: str | None = None, resumable: bool = False
    ) -> None:
        """``resumable``: the provider's job lives on (we only lost sight of it, e.g. a
        poll failed), so the next attempt should poll it again rather than submit."""
        super().__init__(message)
        self.message = message
        self.provider_job_id = provider_job_id
        self.resumable = resumable


class RetryableProviderError(ProviderError):
    """A transient failure (5xx, timeout, connection reset): try again."""

    code = "provider_unavailable"


class RateLimitedError(RetryableProviderError):
    """The provider asked us to slow down; ``retry_after`` is its hint in seconds."""

    code = "provider_rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider_job_id: str | None = None,
        resumable: bool = False,
    ) -> None:
        super().__init__(message, provider_job_id=provider_job_id, resumable=resumable)
        self.retry_after = retry_after


class ModeratedError(ProviderError):
    """The provider refused the prompt or the output on content grounds. Never retried."""

    code = "content_policy_violation"
    retryable = False


class PermanentProviderError(ProviderError):
    """The request can never succeed as sent (bad parameters, auth, unknown model)."""

    code = "provider_rejected"
    retryable = False


class ResponseTooLargeError(ProviderError):
    """The provider's answer (an image, or JSON) was over its byte cap; the read
    stopped there. Unclassified: another attempt may get a smaller answer."""

    code = "provider_response_too_large"


class BadResponseError(ProviderError):
    """The provider answered something other than what was asked for (a web page
    where a result image should be)."""

    code = "provider_bad_response"


class UnsafeResultUrlError(PermanentProviderError):
    """A result URL, or a redirect from one, leads to an address the SSRF guard
    refuses (cloud metadata, a private network): never fetched, never retried."""

    code = "provider_unsafe_url"
