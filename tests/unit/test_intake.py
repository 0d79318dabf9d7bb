"""imaging.intake on real image bytes: what is accepted comes out re-encoded, upright
and without metadata; what is refused is refused with its code, before decoding
where the header alone tells."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from imagegate.errors import (
    ImagegateError,
    ImageTooLarge,
    ImageTooManyPixels,
    InvalidImage,
    UnsupportedImage,
)
from imagegate.imaging import containers
from imagegate.imaging.intake import IntakeLimits, intake
from tests.support.images import (
    GPS,
    animated,
    chunk,
    encoded,
    jpeg_markers,
    jpeg_with_gps,
    png_bomb,
    png_chunk_types,
    zip_archive,
)

LIMITS = IntakeLimits()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "save", "stored_as"),
    [
        ("PNG", {}, "image/png"),
        ("JPEG", {"quality": 90}, "image/jpeg"),
        ("WEBP", {"quality": 90}, "image/png"),
        ("WEBP", {"lossless": True}, "image/png"),
    ],
)
def test_an_allowed_image_comes_back_re_encoded(
    fmt: str, save: dict[str, object], stored_as: str
) -> None:
    source = encoded(fmt, (80, 60), **save)
    clean = intake(source, f"image/{fmt.lower()}", LIMITS)
    assert (clean.content_type, clean.width, clean.height) == (stored_as, 80, 60)
    assert clean.sha256 == hashlib.sha256(clean.data).hexdigest()
    with decode(clean.data) as out, decode(source) as original:
        assert out.format == stored_as.split("/")[1].upper()
        assert out.size == (80, 60)
        # Same picture: the corner pixels survive the re-encoding (JPEG within a little).
        for xy in ((0, 0), (79, 59), (40, 30)):
            expected, got = original.convert("RGB").getpixel(xy), out.convert("RGB").getpixel(xy)
            assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) <= 6


def test_transparency_is_kept() -> None:
    rgba = encoded("PNG", mode="RGBA")
    with Image.open(io.BytesIO(rgba)) as image:
        image.putpixel((0, 0), (1, 2, 3, 0))
        out = io.BytesIO()
        image.save(out, format="PNG")
    with decode(intake(out.getvalue(), None, LIMITS).data) as clean:
        assert clean.mode == "RGBA" and clean.getpixel((0, 0)) == (1, 2, 3, 0)
    palette = io.BytesIO()
    Image.new("P", (8, 8), 0).save(palette, format="PNG", transparency=0)
    with decode(intake(palette.getvalue(), None, LIMITS).data) as clean:
        assert clean.mode == "RGBA" and clean.getpixel((0, 0))[3] == 0


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    out = io.BytesIO()
    Image.new("I;16", (4, 4), 65535).save(out, format="PNG")
    with decode(intake(out.getvalue(), None, LIMITS).data) as clean:
        assert clean.mode == "L" and clean.getpixel((0, 0)) == 255


def test_cmyk_jpeg_becomes_rgb() -> None:
    with decode(intake(encoded("JPEG", mode="CMYK"), None, LIMITS).data) as clean:
        assert clean.mode == "RGB"


# Metadata


def test_exif_gps_xmp_and_comments_are_stripped_and_the_orientation_applied() -> None:
    source = jpeg_with_gps((64, 32), orientation=6)
    with Image.open(io.BytesIO(source)) as original:  # the test's input really has them
        assert original.getexif().get_ifd(GPS)
        assert "xmp" in original.info and "comment" in original.info
    clean = intake(source, "image/jpeg", LIMITS)
    assert (clean.width, clean.height) == (32, 64)  # turned upright
    with decode(clean.data) as out:
        assert out.size == (32, 64)
        assert not out.getexif() and not out.getexif().get_ifd(GPS)
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(out.info)
    assert set(jpeg_markers(clean.data)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}  # APP0 JFIF only
    assert b"TestCam" not in clean.data and b"secret comment" not in clean.data


def test_png_text_icc_and_exif_chunks_are_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "where I live")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif.get_ifd(GPS)[2] = (52.0, 22.0, 12.0)
    source = encoded("PNG", pnginfo=info, icc_profile=icc, exif=exif)
    assert {b"tEXt", b"iTXt", b"iCCP", b"eXIf"} <= set(png_chunk_types(source))
    clean = intake(source, None, LIMITS)
    assert png_chunk_types(clean.data) == [b"IHDR", b"IDAT", b"IEND"]


def test_an_animation_keeps_its_first_frame_only() -> None:
    for fmt in ("PNG", "WEBP"):
        source = animated(fmt, ("red", "blue"))
        with Image.open(io.BytesIO(source)) as original:
            assert getattr(original, "n_frames", 1) == 2
        with decode(intake(source, None, LIMITS).data) as clean:
            assert getattr(clean, "n_frames", 1) == 1
            red, _, blue = clean.convert("RGB").getpixel((16, 16))
            assert red > 200 and blue < 50


# Refusals


def test_the_byte_cap() -> None:
    source = encoded("PNG")
    assert intake(source, None, IntakeLimits(max_bytes=len(source)))
    with pytest.raises(ImageTooLarge) as refused:
        intake(source, None, IntakeLimits(max_bytes=len(source) - 1))
    assert refused.value.code == "image_too_large"


def test_the_pixel_cap_reads_the_header() -> None:
    source = encoded("JPEG", (100, 40))
    assert intake(source, None, IntakeLimits(max_pixels=4000))
    for fmt in ("PNG", "JPEG", "WEBP"):
        with pytest.raises(ImageTooManyPixels, match="100x40"):
            intake(encoded(fmt, (100, 40)), None, IntakeLimits(max_pixels=3999))


@pytest.mark.parametrize("size", [(30_000, 30_000), (7_000, 7_000)])
def test_a_decompression_bomb_is_refused_from_its_header(size: tuple[int, int]) -> None:
    """30000² is past Pillow's own bomb check; 7000² is below it, and its image data
    is 1 KiB of zeros: decoding it would allocate 147 MB before failing."""
    with pytest.raises(ImageTooManyPixels, match=f"{size[0]}x{size[1]}"):
        intake(png_bomb(*size), "image/png", LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_truncated_file_is_refused(fmt: str) -> None:
    whole = encoded(fmt, (64, 64))
    for cut in (len(whole) - 1, len(whole) * 2 // 3, 40):
        with pytest.raises(InvalidImage, match="truncated"):
            intake(whole[:cut], None, LIMITS)


def test_a_corrupt_png_is_refused() -> None:
    whole = bytearray(encoded("PNG", (64, 64)))
    idat = bytes(whole).index(b"IDAT")
    whole[idat + 10] ^= 0xFF  # inside the image data: its CRC no longer matches
    with pytest.raises(InvalidImage, match="cannot be decoded"):
        intake(bytes(whole), None, LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_polyglot_png_or_webp_is_refused(fmt: str) -> None:
    with pytest.raises(InvalidImage, match="follow the end"):
        intake(encoded(fmt) + zip_archive(), None, LIMITS)


def test_a_jpeg_trailer_is_dropped_by_the_re_encoding() -> None:
    """Phones append video and maker data after a JPEG's end: accepted, and gone."""
    source = encoded("JPEG") + b"<html><script>alert(1)</script></html>"
    clean = intake(source, None, LIMITS)
    assert b"<html" not in clean.data and b"script" not in clean.data


def test_data_hidden_in_a_png_chunk_is_dropped() -> None:
    whole = encoded("PNG")
    hidden = whole[:33] + chunk(b"zIPp", zip_archive()) + whole[33:]  # a private chunk
    clean = intake(hidden, None, LIMITS)
    assert png_chunk_types(clean.data) == [b"IHDR", b"IDAT", b"IEND"]
    assert b"payload.html" not in clean.data


@pytest.mark.parametrize(
    ("declared", "fmt"),
    [("image/jpeg", "PNG"), ("image/png", "JPEG"), ("image/webp", "PNG"), ("text/html", "PNG"),
     ("image/gif", "PNG"), ("image/svg+xml", "PNG")],
)  # fmt: skip
def test_a_declared_type_that_disagrees_with_the_bytes_is_refused(declared: str, fmt: str) -> None:
    with pytest.raises(UnsupportedImage, match=f"its bytes are a {fmt}"):
        intake(encoded(fmt), declared, LIMITS)


@pytest.mark.parametrize("declared", [None, "", "application/octet-stream", "IMAGE/PNG; x=y"])
def test_an_unsaid_or_matching_type_is_fine(declared: str | None) -> None:
    assert intake(encoded("PNG"), declared, LIMITS).content_type == "image/png"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (encoded("GIF"), "GIF"),
        (encoded("BMP"), "BMP"),
        (encoded("TIFF"), "TIFF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<svg onload='alert(1)'/>", "SVG"),
        (b"hello", "this file"),
        (b"", "this file"),
    ],
)
def test_other_formats_are_unsupported(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedImage, match=named) as refused:
        intake(data, None, LIMITS)
    assert refused.value.code == "unsupported_image"


def test_errors_name_the_field() -> None:
    with pytest.raises(InvalidImage) as refused:
        intake(encoded("PNG")[:50], None, LIMITS, field="init_image")
    assert refused.value.extra == {"field": "init_image"}
    assert refused.value.detail.startswith("init_image: ")


# Whatever the bytes: a clean image or one of our errors, never anything else.

VALID = [encoded("PNG", (16, 16)), encoded("JPEG", (16, 16)), encoded("WEBP", (16, 16))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(VALID),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 2000),
)
def test_mangled_files_get_a_stable_code(
    base: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for at, value in edits:
        data[at % len(data)] = value
    try:
        clean = intake(bytes(data[: max(cut, 1)] if cut < len(data) else data), None, LIMITS)
    except ImagegateError as error:
        assert error.code in {"unsupported_image", "invalid_image", "image_too_many_pixels"}
    else:
        with decode(clean.data) as image:
            assert image.size == (clean.width, clean.height)


@given(st.binary(max_size=256))
def test_containers_read_raises_only_value_errors(data: bytes) -> None:
    try:
        containers.read(data)
    except ValueError:
        pass
