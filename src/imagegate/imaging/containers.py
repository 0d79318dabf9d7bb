"""What an image file says about itself before anything decodes it: its format (from
the magic bytes), its declared width and height, and where its data ends. Only PNG,
JPEG and WebP are read; the walk follows each format's own structure (PNG chunks,
JPEG segments, the RIFF header) and nothing else.

This is what lets intake refuse a decompression bomb from its header alone, and
tell a truncated file or one with bytes after its end (a polyglot: a PNG that is
also a ZIP) from a whole image, without trusting a decoder's leniency."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Far more than any encoder writes (they use 8-64 KiB IDAT chunks); a file of
# millions of empty chunks is refused rather than walked.
MAX_PNG_CHUNKS = 100_000
# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8, DAC CC) carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


class Format(StrEnum):
    PNG = "PNG"
    JPEG = "JPEG"
    WEBP = "WEBP"

    @property
    def content_type(self) -> str:
        return f"image/{self.value.lower()}"


class Malformed(ValueError):
    """The file breaks its format's structure."""


class Truncated(Malformed):
    """The file ends before its format says it does."""


@dataclass(frozen=True)
class Container:
    format: Format
    width: int
    height: int
    # Where the image's own data ends; bytes past it belong to something else.
    end: int


def sniff(data: bytes) -> Format | None:
    """The allowed format ``data`` starts like, by its magic bytes alone."""
    if data.startswith(PNG_SIGNATURE):
        return Format.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return Format.JPEG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Format.WEBP
    return None


def describe_other(data: bytes) -> str | None:
    """A name for a common format that is not allowed, for a clearer refusal."""
    head = data[:512].lstrip().lower()
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"<?xml") or b"<svg" in head:
        return "SVG"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None


def read(data: bytes) -> Container:
    """The container facts of ``data``; ``Malformed`` (or ``Truncated``) when its
    structure is broken, ``ValueError`` when it is no allowed format at all."""
    fmt = sniff(data)
    if fmt is Format.PNG:
        return _png(data)
    if fmt is Format.JPEG:
        return _jpeg(data)
    if fmt is Format.WEBP:
        return _webp(data)
    raise ValueError("not a PNG, JPEG or WebP file")


def _png(data: bytes) -> Container:
    at, size = len(PNG_SIGNATURE), len(data)
    width = height = 0
    for index in range(MAX_PNG_CHUNKS):
        if at + 8 > size:
            raise Truncated("the PNG ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if length > 0x7FFFFFFF:
            raise Malformed("a PNG chunk declares an impossible length")
        end = at + 12 + length  # length, type, data, CRC
        if end > size:
            raise Truncated(f"the PNG's {kind.decode('latin-1')!r} chunk is cut short")
        if index == 0:
            if kind != b"IHDR" or length != 13:
                raise Malformed("a PNG must start with its IHDR chunk")
            width, height = struct.unpack(">II", data[at + 8 : at + 16])
        elif kind == b"IEND":
            return Container(Format.PNG, width, height, end)
        at = end
    raise Malformed(f"the PNG has more than {MAX_PNG_CHUNKS} chunks")


def _jpeg(data: bytes) -> Container:
    at, size = 2, len(data)
    width = height = 0
    while True:
        if at + 2 > size:
            raise Truncated("the JPEG ends before its end-of-image marker")
        if data[at] != 0xFF:
            raise Malformed("the JPEG has bytes where a marker belongs")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            if not width or not height:
                raise Malformed("the JPEG has no frame header")
            return Container(Format.JPEG, width, height, at + 2)
        if marker in _STANDALONE:
            at += 2
            continue
        if at + 4 > size:
            raise Truncated("the JPEG ends inside a segment header")
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        end = at + 2 + length
        if length < 2 or end > size:
            raise Truncated("a JPEG segment is cut short")
        if marker in _SOF:
            if length < 7:
                raise Malformed("the JPEG's frame header is too short")
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
        at = end
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            if not width or not height:
                raise Malformed("the JPEG's scan comes before its frame header")
            at = _after_scan(data, at)


def _after_scan(data: bytes, at: int) -> int:
    """Where the marker after a scan's entropy-coded data starts. Inside the data a
    0xFF byte is followed by 0x00 (stuffing), a restart marker, or more 0xFF fill."""
    size = len(data)
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= size:
            raise Truncated("the JPEG's image data is cut short")
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            at += 2
        elif following == 0xFF:
            at += 1
        else:
            return at


def _webp(data: bytes) -> Container:
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = 8 + riff_size
    if riff_size < 4 + 8 + 10:
        raise Malformed("the WebP's RIFF header declares an impossible size")
    if end > len(data):
        raise Truncated("the WebP ends before its RIFF size says")
    kind, length = data[12:16], struct.unpack("<I", data[16:20])[0]
    body = data[20 : 20 + length]
    if 20 + length > end or len(body) < 10:
        raise Truncated("the WebP's first chunk is cut short")
    if kind == b"VP8X":
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
    elif kind == b"VP8 ":
        if body[3:6] != b"\x9d\x01\x2a":
            raise Malformed("the WebP's VP8 frame has no start code")
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", body[6:10]))
    elif kind == b"VP8L":
        if body[0] != 0x2F:
            raise Malformed("the WebP's VP8L chunk has no signature")
        (bits,) = struct.unpack("<I", body[1:5])
        width, height = (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    else:
        raise Malformed(f"the WebP starts with an unknown {kind!r} chunk")
    return Container(Format.WEBP, width, height, end)
