"""Image files for the upload tests, made with Pillow (or by hand, where a file must
be one Pillow would never write: a bomb, a polyglot)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Any

from PIL import ExifTags, Image

GPS = ExifTags.IFD.GPSInfo


def encoded(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save: Any) -> bytes:
    """A gradient image (so lossy codecs have something to keep), saved as ``fmt``."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height)
                   for x in range(width)])  # fmt: skip
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (64, 32), orientation: int = 6) -> bytes:
    """A JPEG whose EXIF carries a GPS position and an orientation (6: turn 90° right
    to view), and an XMP packet and a comment beside it."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(GPS)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 24.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return encoded("JPEG", size, exif=exif, xmp=xmp, comment=b"secret comment")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` (its image data is a few bytes:
    a decoder asked to load it would allocate the whole canvas first)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))  # fmt: skip


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<html><script>alert(1)</script></html>")
    return out.getvalue()


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order."""
    at, kinds = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kinds.append(data[at + 4 : at + 8])
        at += 12 + length
    return kinds


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of a JPEG's header segments, up to its first scan."""
    at, markers = 2, []
    while at + 4 <= len(data):
        marker = data[at + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + length
    return markers


def animated(fmt: str, colours: tuple[str, ...] = ("red", "blue")) -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in colours]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()
