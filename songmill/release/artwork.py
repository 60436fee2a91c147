"""Cover art: 3000×3000 RGB JPEG, generated from the release or converted from a provided image.

    cover = generate_cover("Paper Lanterns", "The Songmill Collective", "hopeful", seed=7)
    cover = load_cover(Path("art/cover.png"))          # validated: square, ≥ 3000 px, convertible to RGB
    jpeg = cover_jpeg(cover)                           # bytes, baseline JPEG, quality 92

Generated covers are drawn with Pillow from the mood's palette (a vertical gradient, soft
circles placed by the seed, a band of light) with the title and artist set in Pillow's built-in
font, so the same release always gets the same cover on any machine.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, UnidentifiedImageError

from songmill.core.errors import SongmillError
from songmill.core.spec import COVER_PX

THUMBNAIL_PX = 600
JPEG_QUALITY = 92

# (top, bottom, accent) colours per mood.
PALETTES = {
    "tender": ((250, 214, 205), (160, 110, 140), (255, 245, 235)),
    "bright": ((255, 214, 102), (255, 120, 80), (255, 255, 240)),
    "melancholic": ((70, 90, 130), (20, 25, 45), (170, 190, 220)),
    "powerful": ((200, 30, 40), (30, 10, 20), (255, 200, 120)),
    "hopeful": ((120, 190, 230), (250, 200, 140), (255, 250, 225)),
    "nostalgic": ((210, 170, 120), (90, 60, 50), (255, 235, 200)),
    "energetic": ((255, 80, 120), (90, 30, 160), (255, 230, 90)),
    "dreamy": ((190, 170, 240), (80, 110, 180), (245, 235, 255)),
    "dark": ((40, 40, 50), (5, 5, 10), (150, 40, 60)),
    "playful": ((120, 230, 180), (250, 150, 200), (255, 255, 200)),
    "calm": ((170, 210, 200), (60, 110, 120), (235, 250, 245)),
    "defiant": ((240, 90, 30), (40, 20, 20), (250, 230, 210)),
}


def generate_cover(title: str, artist: str, mood: str, *, seed: int) -> Image.Image:
    """A 3000×3000 RGB cover for a release: the mood's colours, shapes placed by `seed`, and the
    title and artist set near the bottom."""
    top, bottom, accent = PALETTES.get(mood, PALETTES["calm"])
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, COVER_PX, dtype=np.float32)[:, None, None]
    gradient = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    image = Image.fromarray(np.broadcast_to(gradient, (COVER_PX, COVER_PX, 3)).astype(np.uint8), "RGB")

    glow = Image.new("RGB", image.size, (0, 0, 0))
    draw = ImageDraw.Draw(glow)
    for _ in range(int(rng.integers(5, 9))):  # soft lights: lanterns, suns, moons, whatever the eye sees
        x, y = rng.uniform(0.1, 0.9) * COVER_PX, rng.uniform(0.08, 0.6) * COVER_PX
        r = rng.uniform(0.04, 0.16) * COVER_PX
        level = rng.uniform(0.12, 0.32)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c * level) for c in accent))
    band_y = rng.uniform(0.62, 0.7) * COVER_PX
    draw.rectangle((0, band_y, COVER_PX, band_y + 0.012 * COVER_PX), fill=tuple(int(c * 0.5) for c in accent))
    image = Image.fromarray(
        np.minimum(255, np.asarray(image, np.int16) + np.asarray(glow.filter(ImageFilter.GaussianBlur(60)), np.int16)).astype(np.uint8), "RGB"
    )

    draw = ImageDraw.Draw(image)
    _set_text(draw, title, y=0.74, size=0.085, fill=_ink(image, 0.74))
    _set_text(draw, artist, y=0.86, size=0.045, fill=_ink(image, 0.86))
    return image


def _ink(image: Image.Image, y: float) -> tuple[int, int, int]:
    """White on a dark background, near-black on a light one (luminance of the text's row)."""
    row = np.asarray(image.crop((0, int(y * COVER_PX), COVER_PX, int(y * COVER_PX) + 200)), np.float32)
    luminance = float((row @ np.array([0.2126, 0.7152, 0.0722], np.float32)).mean())
    return (250, 250, 250) if luminance < 150 else (25, 25, 35)


def _set_text(draw: ImageDraw.ImageDraw, text: str, *, y: float, size: float, fill) -> None:
    """Centre `text` at height `y` (fraction of the cover), shrinking it until it fits the width."""
    px = int(size * COVER_PX)
    while True:
        font = ImageFont.load_default(size=px)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= 0.86 * COVER_PX or px <= 40:
            break
        px = int(px * 0.9)
    draw.text(((COVER_PX - (right - left)) / 2 - left, y * COVER_PX - top), text, font=font, fill=fill)


def load_cover(path: Path) -> Image.Image:
    """A provided cover, checked and made deliverable: it must be a square image of at least
    3000×3000 pixels; any colour mode converts to RGB and larger images are scaled to 3000."""
    image: Image.Image
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened
    except FileNotFoundError:
        raise SongmillError(f"cover image {path} does not exist; fix release.cover (a path relative to the config)") from None
    except (UnidentifiedImageError, OSError) as err:
        raise SongmillError(f"cover image {path} is not an image Pillow can read ({err}); give a JPEG or PNG") from None
    except Image.DecompressionBombError:
        raise SongmillError(f"cover image {path} claims more pixels than any cover needs; give a 3000×3000 JPEG or PNG") from None
    width, height = image.size
    if width != height:
        raise SongmillError(f"cover image {path} is {width}×{height} pixels; a cover must be square (3000×3000)")
    if width < COVER_PX:
        raise SongmillError(f"cover image {path} is {width}×{height} pixels; stores need at least {COVER_PX}×{COVER_PX}")
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")  # CMYK, L, I;16… → RGB
    if width > COVER_PX:
        image = image.resize((COVER_PX, COVER_PX), Image.Resampling.LANCZOS)
    return image


def cover_jpeg(image: Image.Image, size: int = COVER_PX) -> bytes:
    """Baseline JPEG bytes (no EXIF, sRGB assumed) at `size`×`size`."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    return buffer.getvalue()
