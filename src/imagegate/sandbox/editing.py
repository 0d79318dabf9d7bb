"""What the emulators' image-to-image models do to pixels: stand-ins that are cheap
and deterministic but behave as the real models do where a client can tell, namely
sizes, which pixels a mask keeps, and how far a strength moves from the source.

- :func:`repaint`: img2img; the source blended towards a fresh rendering of the
  prompt by ``strength`` (0 keeps the source, 1 is the rendering);
- :func:`fill`: inpainting; a rendering of the prompt where the mask is white, the
  image's own pixels where it is black;
- :func:`enlarge`: an upscaler; the image resampled to the new size and sharpened;
- :func:`caption`: a captioner; words for the image's main colour and its shape."""

from __future__ import annotations

from PIL import Image, ImageFilter, ImageStat

from imagegate.render import render_image

_COLOURS = {
    "red": (200, 40, 40), "orange": (230, 130, 30), "yellow": (230, 210, 60),
    "green": (60, 160, 70), "teal": (40, 150, 150), "blue": (50, 90, 200),
    "purple": (130, 60, 170), "pink": (230, 130, 180), "brown": (120, 80, 40),
    "white": (240, 240, 240), "grey": (128, 128, 128), "black": (20, 20, 20),
}  # fmt: skip


def repaint(prompt: str, seed: int, source: Image.Image, strength: float) -> Image.Image:
    base = source.convert("RGB")
    painted = render_image(prompt, None, "none", seed, *base.size)
    return Image.blend(base, painted, max(0.0, min(1.0, strength)))


def fill(prompt: str, seed: int, image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """``mask`` white = paint; without one, the image's transparent pixels are painted
    (the alpha-channel form of FLUX Fill and of ComfyUI's LoadImage)."""
    if mask is None:
        alpha = image.convert("RGBA").getchannel("A")
        mask = alpha.point(lambda a: 255 - a)
    base = image.convert("RGB")
    mask = mask.convert("L")
    if mask.size != base.size:
        mask = mask.resize(base.size, Image.Resampling.NEAREST)
    painted = render_image(prompt, None, "none", seed, *base.size)
    return Image.composite(painted, base, mask)


def enlarge(image: Image.Image, width: int, height: int) -> Image.Image:
    resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    return resized.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))


def caption(image: Image.Image) -> str:
    """ "a wide picture in blue tones with touches of orange": the nearest named colour
    of the mean, then of the brightest quarter, and the orientation."""
    rgb = image.convert("RGB")
    mean = tuple(int(v) for v in ImageStat.Stat(rgb).mean)
    small = rgb.resize((16, 16))
    pixels = sorted(small.getdata(), key=sum)
    bright = tuple(sum(p[i] for p in pixels[-64:]) // 64 for i in range(3))
    main, accent = _name(mean), _name(bright)
    width, height = rgb.size
    shape = "wide" if width > height * 1.1 else "tall" if height > width * 1.1 else "square"
    touches = f" with touches of {accent}" if accent != main else ""
    return f"a {shape} picture in {main} tones{touches}"


def _name(colour: tuple[int, ...]) -> str:
    return min(
        _COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(_COLOURS[n], colour, strict=True))
    )
