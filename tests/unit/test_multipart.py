"""api.multipart on bodies that httpx (a real client) builds, and on broken ones."""

from __future__ import annotations

import os

import httpx
import pytest

from imagegate.api import multipart
from imagegate.errors import InvalidRequest


def form(**files: tuple[str, bytes, str]) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", files=files, data={"note": "hi"})
    return request.headers["content-type"], request.read()


def test_the_file_comes_back_byte_for_byte() -> None:
    # Line endings and things that look like delimiters inside the file stay as they are.
    payload = os.urandom(50_000) + b"\r\n--\r\n\r\n\n\r" + os.urandom(1000)
    content_type, body = form(file=("a.png", payload, "image/png"))
    parts = {p.name: p for p in multipart.parse(content_type, body)}
    assert parts["file"].data == payload
    assert parts["file"].filename == "a.png" and parts["file"].content_type == "image/png"
    assert parts["note"].data == b"hi" and parts["note"].filename is None


def test_a_preamble_and_an_epilogue_are_ignored() -> None:
    content_type, body = form(file=("a.png", b"\x89PNG", "image/png"))
    parts = multipart.parse(content_type, b"preamble\r\n" + body + b"epilogue")
    assert [p.name for p in parts] == ["note", "file"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"no delimiter at all"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=f"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\ndata\r\n--x--"),  # no disposition
        ("multipart/form-data; boundary=x",
         b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\ncut short'),
        ("multipart/form-data; boundary=x", b"--xjunk\r\n"),
    ],
)  # fmt: skip
def test_broken_forms_are_invalid_requests(content_type: str, body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        multipart.parse(content_type, body)


def test_the_number_of_parts_is_bounded() -> None:
    part = b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
    body = part * (multipart.MAX_PARTS + 1) + b"--x--\r\n"
    with pytest.raises(InvalidRequest, match="more than"):
        multipart.parse("multipart/form-data; boundary=x", body)
    assert len(multipart.parse("multipart/form-data; boundary=x", part * 3 + b"--x--")) == 3
