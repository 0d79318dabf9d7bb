"""A ``multipart/form-data`` body (RFC 7578), already read whole and under the body
cap, split into its parts.

The server has no multipart dependency (python-multipart is not installed), and the
one form it reads, an upload, is a single file in a bounded body: splitting it on
its boundary with ``bytes.find`` keeps the file's bytes as they are (one copy, no
line splitting) and is linear in the body's size. Each part's few header lines are
read with the standard library's MIME parser, which knows the quoting rules of
``Content-Disposition`` parameters."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP

from imagegate.errors import InvalidRequest

MAX_PARTS = 16
MAX_PART_HEADER_BYTES = 8 * 1024


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def media_type(content_type: str) -> str:
    """A Content-Type without its parameters, lower case."""
    return content_type.split(";")[0].strip().lower()


def boundary_of(content_type: str) -> str:
    """The boundary a ``multipart/form-data`` content type names."""
    message = EmailMessage()
    message["content-type"] = content_type
    boundary = message.get_boundary()
    if not boundary or not 1 <= len(boundary) <= 70:
        raise InvalidRequest("Content-Type: multipart/form-data needs a boundary of 1-70 chars")
    return boundary


def parse(content_type: str, body: bytes) -> list[Part]:
    """The form's parts, in order; ``InvalidRequest`` when the body is not a form
    with that boundary."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    if body.startswith(delimiter):
        at = len(delimiter)
    else:  # a preamble before the first delimiter, which the RFC allows
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise InvalidRequest("body: not a multipart form with the declared boundary")
        at = start + 2 + len(delimiter)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", at):
            return parts  # the closing delimiter; an epilogue after it is ignored
        line_end = body.find(b"\r\n", at)
        if line_end < 0 or body[at:line_end].strip(b" \t"):
            raise InvalidRequest("body: a multipart delimiter is not followed by a new line")
        if len(parts) == MAX_PARTS:
            raise InvalidRequest(f"body: a form of more than {MAX_PARTS} parts")
        head_end = body.find(b"\r\n\r\n", line_end, line_end + MAX_PART_HEADER_BYTES)
        if head_end < 0:
            raise InvalidRequest("body: a form part's headers do not end")
        next_delimiter = body.find(b"\r\n" + delimiter, head_end)
        if next_delimiter < 0:
            raise InvalidRequest("body: the multipart form is cut short")
        headers = body[line_end + 2 : head_end + 4]
        parts.append(_part(headers, body[head_end + 4 : next_delimiter]))
        at = next_delimiter + 2 + len(delimiter)


def _part(headers: bytes, data: bytes) -> Part:
    message = BytesParser(policy=HTTP).parsebytes(headers)
    name = message.get_param("name", header="content-disposition")
    if message.get_content_disposition() != "form-data" or not isinstance(name, str):
        raise InvalidRequest("body: a form part has no Content-Disposition: form-data; name")
    filename = message.get_filename()
    declared = message["content-type"]
    return Part(name, filename, str(declared) if declared else None, data)
