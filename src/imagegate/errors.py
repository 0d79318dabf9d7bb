"""One error tree. Each class carries a stable machine ``code``; ``api/errors.py`` maps
them to HTTP. Services raise these, never HTTP exceptions."""

from __future__ import annotations

from typing import Any, ClassVar

from imagegate.domain.rates import Allowance


class ImagegateError(Exception):
    """Something went wrong."""

    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip()
        self.extra = extra
        super().__init__(self.detail)


class InvalidRequest(ImagegateError):
    """The request is not valid."""

    code = "validation_error"
    title = "Invalid request"


class InvalidCursor(InvalidRequest):
    """The pagination cursor is not one this server issued."""

    code = "invalid_cursor"
    title = "Invalid cursor"


class Unauthenticated(ImagegateError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(ImagegateError):
    """This API key may not do that."""

    code = "forbidden"
    title = "Forbidden"


class NotFound(ImagegateError):
    """No such resource."""

    code = "not_found"
    title = "Not found"


class JobNotFound(NotFound):
    """No job with this id in your workspace."""

    code = "job_not_found"
    title = "Job not found"


class BatchNotFound(NotFound):
    """No batch with this id in your workspace."""

    code = "batch_not_found"
    title = "Batch not found"


class BatchInvalid(InvalidRequest):
    """No item of the batch is a valid job; nothing was created (``items`` says why)."""

    code = "batch_invalid"
    title = "Invalid batch"


class BatchEmpty(InvalidRequest):
    """A batch needs at least one item."""

    code = "batch_empty"
    title = "Empty batch"


class BatchTooManyItems(InvalidRequest):
    """A batch holds at most 100 items; split it."""

    code = "batch_too_many_items"
    title = "Too many items"


class BatchLineTooLong(InvalidRequest):
    """A line of the JSONL body is over the length limit."""

    code = "batch_line_too_long"
    title = "Line too long"


class InvalidState(ImagegateError):
    """The resource is not in a state that allows this."""

    code = "invalid_state"
    title = "Invalid state"


class IdempotencyKeyInvalid(ImagegateError):
    """The Idempotency-Key header must be 1 to 255 printable ASCII characters."""

    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(ImagegateError):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key reused"


class IdempotencyKeyInUse(ImagegateError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    code = "idempotency_key_in_use"
    title = "Idempotency-Key in use"


class RateLimited(ImagegateError):
    """Too many requests; retry after the number of seconds in Retry-After."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, allowance: Allowance) -> None:
        super().__init__(detail, retry_after=allowance.retry_after_s)
        self.allowance = allowance


class InsufficientCredits(ImagegateError):
    """The workspace's available credits do not cover this job's estimate."""

    code = "insufficient_credits"
    title = "Insufficient credits"


class QuotaExceeded(RateLimited):
    """The workspace's plan allows no more of this in the current period."""

    code = "quota_exceeded"
    title = "Quota exceeded"

    def __init__(self, detail: str, allowance: Allowance, **extra: Any) -> None:
        ImagegateError.__init__(self, detail, retry_after=allowance.retry_after_s, **extra)
        self.allowance = allowance


class NotInPlan(Forbidden):
    """The workspace's plan does not allow this kind of job."""

    code = "not_in_plan"
    title = "Not in your plan"


class PayloadTooLarge(ImagegateError):
    """The request body is too large."""

    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedModel(InvalidRequest):
    """No provider serves this model."""

    code = "unsupported_model"
    title = "Unsupported model"


class UnsupportedAction(InvalidRequest):
    """No configured provider can do this action (with these values)."""

    code = "unsupported_action"
    title = "Unsupported action"


class ContentPolicyViolation(InvalidRequest):
    """The prompt was refused by this workspace's content policy."""

    code = "content_policy_violation"
    title = "Content policy violation"


class UnsafeUrl(InvalidRequest):
    """This URL may not be called: it must be https and reach a public address."""

    code = "unsafe_url"
    title = "Unsafe URL"


class WebhookEndpointNotFound(NotFound):
    """No webhook endpoint with this id in your workspace."""

    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"


class DeliveryNotFound(NotFound):
    """No webhook delivery with this id in your workspace."""

    code = "delivery_not_found"
    title = "Delivery not found"


class FileLinkInvalid(ImagegateError):
    """This file link is invalid or has expired; fetch the job again for a fresh one."""

    code = "file_link_invalid"
    title = "File link invalid or expired"


class UploadNotFound(NotFound):
    """No upload with this id in your workspace."""

    code = "upload_not_found"
    title = "Upload not found"


class UnsupportedImage(ImagegateError):
    """Only PNG, JPEG and WebP images are accepted (decided by their bytes, and the
    declared content type, if any, must agree)."""

    code = "unsupported_image"
    title = "Unsupported image"


class InvalidImage(InvalidRequest):
    """The image is truncated, corrupt or carries data after its end."""

    code = "invalid_image"
    title = "Invalid image"


class ImageTooLarge(ImagegateError):
    """The image file is over the upload size limit."""

    code = "image_too_large"
    title = "Image too large"


class ImageTooManyPixels(InvalidRequest):
    """The image's width x height is over the upload pixel limit."""

    code = "image_too_many_pixels"
    title = "Image has too many pixels"


class UrlFetchFailed(InvalidRequest):
    """The image URL could not be fetched: no answer in time, or not a 200 answer."""

    code = "url_fetch_failed"
    title = "URL fetch failed"


class StyleNotFound(NotFound):
    """No style preset with this name, built in or in your workspace."""

    code = "style_not_found"
    title = "Style not found"


class StyleExists(InvalidState):
    """Your workspace has a style preset of this name: change it with PATCH, or pick
    another name."""

    code = "style_exists"
    title = "Style exists"


class BuiltinStyle(InvalidState):
    """Built-in style presets cannot be created, changed or deleted; give your own
    preset another name."""

    code = "builtin_style"
    title = "Built-in style"


class StyleLimitReached(InvalidState):
    """Your workspace has as many style presets as it may; delete one first."""

    code = "style_limit_reached"
    title = "Style limit reached"
