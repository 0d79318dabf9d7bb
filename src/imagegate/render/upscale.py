"""Upscaling: Lanczos resampling to the exact size asked, then an unsharp mask scaled
to the factor. ``creative`` sharpens harder and adds seeded fine texture, strongest
in the mid-tones (where detail shows) and where the picture already has edges, a
stand-in for the detail a model would invent; ``subtle`` adds nothing.

Everything at the output size runs in Pillow's C code on 8-bit images, so a
4096 x 4096 result needs a few 16-48 MB buffers, not float copies of it."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter

from imagegate.render.pixels import Size, add_offset, grain_image, noise_tile, seeded

# Unsharp mask (radius per unit of factor, percent, threshold) for each mode: a
# radius that grows with the factor reaches the softened edges of a bigger upscale.
_SUBTLE = (1.0, 100, 1)
_CREATIVE = (1.4, 150, 0)
_TEXTURE_LEVELS = 7.0  # texture spread, in 8-bit levels, in the most detailed mid-tones
_EDGE_SIDE = 256  # edges are found on a copy this size, then spread to the output


def upscale(image: Image.Image, size: Size, creative: bool, seed: int) -> Image.Image:
    """``image`` at exactly ``size``, resampled, sharpened and (``creative``) textured."""
    source = image.convert("RGB")
    factor = max(size[0] / source.width, size[1] / source.height)
    big = source.resize(size, Image.Resampling.LANCZOS)
    radius, percent, threshold = _CREATIVE if creative else _SUBTLE
    big = big.filter(ImageFilter.UnsharpMask(radius * max(1.0, factor), percent, threshold))
    if not creative:
        return big
    return add_offset(big, _texture(big, source, seed))


def _texture(big: Image.Image, source: Image.Image, seed: int) -> Image.Image:
    """Seeded fine texture for ``big`` as an "L" offset image (128 = none): a grain tile
    weighted by how mid-tone each pixel is and how much edge the source has around it.
    Built from Pillow's point tables and composites: numpy at 16 MP took 4x as long."""
    size = big.size
    # 4 l (1 - l): 1 in the mid-tones, 0 in black and white, so nothing clips.
    midtone = big.convert("L").point([v * (255 - v) * 4 // 255 for v in range(256)])
    scale = _EDGE_SIDE / max(source.size)
    small = source if scale >= 1 else source.resize(
        (max(1, round(source.width * scale)), max(1, round(source.height * scale))),
        Image.Resampling.BOX,
    )  # fmt: skip
    edges = small.convert("L").filter(ImageFilter.FIND_EDGES).filter(ImageFilter.BoxBlur(2))
    # Flat areas keep a third of the texture, edged ones all of it.
    edged = edges.resize(size, Image.Resampling.BILINEAR).point(
        [85 + min(4 * v, 170) for v in range(256)]
    )
    weight = ImageChops.multiply(midtone, edged)
    grain = grain_image(noise_tile(seeded(seed, "upscale-texture")), _TEXTURE_LEVELS, size)
    return Image.composite(grain, Image.new("L", size, 128), weight)
