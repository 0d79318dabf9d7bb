"""Untrusted image bytes in, a clean image out: validated, decoded once, re-encoded
without metadata (docs/uploads.md).

The order matters, and each step refuses with a stable code before the next runs:

1. the byte cap (``image_too_large``, 413);
2. the format, from the magic bytes: PNG, JPEG or WebP, and a declared content type
   must agree with them (``unsupported_image``, 415);
3. the container's structure, walked without decoding (imaging.containers): a
   truncated file, or a PNG or WebP with bytes after its end (a polyglot: the same
   file read as ZIP or HTML by something else), is ``invalid_image`` (422). A JPEG's
   trailer is not refused, since phones append video and maker data there; it is
   dropped by step 5 like everything else that is not pixels;
4. the pixel cap, on the size the header declares (``image_too_many_pixels``, 422):
   a decompression bomb is refused before a byte of it is decompressed;
5. decoding with that one format's decoder only (truncated data is an error, never
   padded out), the first frame of an animation, the EXIF orientation applied, then
   a fresh encoding from the pixels: PNG for PNG and WebP, JPEG (quality 95) for
   JPEG. Nothing else survives: no EXIF (GPS included), XMP, IPTC, ICC profile (its
   colours are converted to sRGB first), text chunks, comments or trailing bytes.

The stored image is thus always PNG or JPEG, whatever came in."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from imagegate.errors import ImageTooLarge, ImageTooManyPixels, InvalidImage, UnsupportedImage
from imagegate.imaging import containers
from imagegate.imaging.codec import PNG_COMPRESS_LEVEL
from imagegate.imaging.containers import Format

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
JPEG_QUALITY = 95
# What a client may declare for each format; "unsaid" types mean "look at the bytes".
DECLARED = {"image/png": Format.PNG, "image/jpeg": Format.JPEG, "image/jpg": Format.JPEG,
            "image/pjpeg": Format.JPEG, "image/webp": Format.WEBP}  # fmt: skip
UNDECLARED = {"", "application/octet-stream", "binary/octet-stream"}
_SRGB = ImageCms.createProfile("sRGB")

assert DEFAULT_MAX_PIXELS < (Image.MAX_IMAGE_PIXELS or 0), "stay below Pillow's bomb check"


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class CleanImage:
    """The re-encoded image: what gets stored."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def intake(
    data: bytes, declared_type: str | None, limits: IntakeLimits, field: str = "file"
) -> CleanImage:
    """Validate and re-encode ``data`` (CPU-bound: run it in a thread). Raises the
    errors in the module docstring, each naming ``field``."""
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"{field}: {len(data)} bytes is over the {limits.max_bytes}-byte upload limit",
            field=field,
        )
    container = _container(data, declared_type, field)
    pixels = container.width * container.height
    if pixels > limits.max_pixels:
        raise ImageTooManyPixels(
            f"{field}: {container.width}x{container.height} is {pixels} pixels, over the "
            f"{limits.max_pixels}-pixel limit",
            field=field,
        )
    if not pixels:
        raise InvalidImage(f"{field}: the image declares no pixels", field=field)
    return _reencode(data, container, field)


def content_type_of(declared: str | None) -> str:
    """A declared content type without its parameters, lower case."""
    return (declared or "").split(";")[0].strip().lower()


def _container(data: bytes, declared_type: str | None, field: str) -> containers.Container:
    fmt = containers.sniff(data)
    declared = content_type_of(declared_type)
    if fmt is None:
        other = containers.describe_other(data)
        what = f"{other} images are" if other else "this file is"
        raise UnsupportedImage(
            f"{field}: {what} not accepted; send a PNG, JPEG or WebP image", field=field
        )
    if declared not in UNDECLARED and DECLARED.get(declared) is not fmt:
        raise UnsupportedImage(
            f"{field}: declared as {declared!r}, but its bytes are a {fmt.value} image",
            field=field,
        )
    try:
        container = containers.read(data)
    except containers.Truncated as error:
        raise InvalidImage(f"{field}: the file is truncated ({error})", field=field) from None
    except ValueError as error:
        raise InvalidImage(f"{field}: the file is corrupt ({error})", field=field) from None
    extra = len(data) - container.end
    if extra and container.format is not Format.JPEG:
        raise InvalidImage(
            f"{field}: {extra} bytes follow the end of the {fmt.value} image; a file that "
            "is also something else is not accepted",
            field=field,
        )
    return container


def _reencode(data: bytes, container: containers.Container, field: str) -> CleanImage:
    try:
        with Image.open(io.BytesIO(data), formats=[container.format.value]) as image:
            if image.size != (container.width, container.height):
                raise InvalidImage(f"{field}: the image's headers disagree on its size")
            image.load()  # the first frame only, when animated
            pixels = _normalized(image)
    except InvalidImage as error:
        raise InvalidImage(error.detail, field=field) from None
    except Exception as error:  # every decoder failure is the file's fault, never a 500
        raise InvalidImage(f"{field}: the image cannot be decoded ({error})", field=field) from None
    with pixels:
        out = io.BytesIO()
        if container.format is Format.JPEG:
            pixels.save(out, format="JPEG", quality=JPEG_QUALITY)
            content_type = "image/jpeg"
        else:
            pixels.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
            content_type = "image/png"
        encoded = out.getvalue()
        width, height = pixels.size
    return CleanImage(encoded, content_type, width, height, hashlib.sha256(encoded).hexdigest())


def _normalized(image: Image.Image) -> Image.Image:
    """The pixels as they should be seen: upright, in sRGB, in a mode the output
    format takes, with no metadata attached."""
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # an unreadable EXIF block: no orientation to apply
        upright = image.copy()
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    icc = upright.info.get("icc_profile")
    if upright.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: scale, not clip
        upright = upright.convert("I").point(lambda v: v / 257).convert("L")
    if image.format == "JPEG":
        wanted = "L" if upright.mode == "L" else "RGB"
    elif upright.mode in ("L", "LA", "RGB", "RGBA"):
        wanted = upright.mode
    else:
        wanted = "RGBA" if has_alpha else "RGB"
    if icc and wanted in ("RGB", "RGBA"):
        upright = _to_srgb(upright, icc, wanted)
    result = upright if upright.mode == wanted else upright.convert(wanted)
    result.info.clear()
    return result


def _to_srgb(image: Image.Image, icc: bytes, mode: str) -> Image.Image:
    """The image's colours converted from its embedded profile to sRGB; a profile
    that cannot be read is ignored (the pixels are taken as sRGB)."""
    if image.mode not in ("RGB", "RGBA", "CMYK"):
        image = image.convert("RGBA" if mode == "RGBA" else "RGB")
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image
    return converted if converted is not None else image
