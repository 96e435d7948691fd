"""Synthetic brightfield snips: an elongated embryo body with a yolk, shaped by perturbation and time."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from morphlake.embed.build import DEMO_BACKGROUND  # the demo encoder is centred on this grey

SNIP_HEIGHT, SNIP_WIDTH = 576, 256

# perturbation -> (body curvature, yolk scale, body thickness scale)
PERTURBATION_SHAPE = {
    "wt": (0.0, 1.0, 1.0),
    "ctrl": (0.0, 1.0, 1.0),
    "atf6": (0.9, 1.15, 0.9),
    "tbxta": (-0.6, 0.85, 1.1),
    "lmx1b": (0.4, 1.3, 0.85),
}


def embryo_snip(rng: np.random.Generator, stage_hpf: float, perturbation: str) -> Image.Image:
    """One 576x256 grayscale snip: dark embryo on a bright, noisy background."""
    curvature, yolk_scale, thickness = PERTURBATION_SHAPE.get(perturbation, (0.2, 1.0, 1.0))
    y, x = np.mgrid[0:SNIP_HEIGHT, 0:SNIP_WIDTH].astype(np.float32)
    cy, cx = SNIP_HEIGHT / 2 + rng.normal(0, 8), SNIP_WIDTH / 2 + rng.normal(0, 5)
    growth = np.clip((stage_hpf - 12) / 60, 0.1, 1.0)  # body lengthens with developmental time
    half_length = 120 + 140 * growth
    t = (y - cy) / half_length  # -1 (head) .. 1 (tail) along the body
    bend = curvature * 60 * growth * t**2
    radius = thickness * 34 * np.sqrt(np.clip(1 - t**2, 0, 1)) * (1 - 0.35 * np.clip(t, 0, 1))
    body = np.abs(x - cx - bend) < radius
    yolk_r = yolk_scale * (70 - 30 * growth)
    yolk = ((x - cx) / (yolk_r * 0.9)) ** 2 + ((y - (cy - 0.25 * half_length)) / yolk_r) ** 2 < 1
    eye = ((x - cx - 10) ** 2 + (y - (cy - 0.8 * half_length)) ** 2) < (9 + 5 * growth) ** 2
    img = np.full((SNIP_HEIGHT, SNIP_WIDTH), DEMO_BACKGROUND, np.float32)
    img[body] = 120
    img[yolk] = 150
    img[eye] = 45
    img += rng.normal(0, 6, img.shape)
    picture = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
    return picture.filter(ImageFilter.GaussianBlur(radius=2.0))


def brightfield_snip(rng: np.random.Generator, stage_hpf: float, perturbation: str) -> Image.Image:
    """A demo snip with a camera's noise: uneven illumination, shot noise that grows with the signal and read
    noise. Saved as JPEG (quality 92) about 60 KB and as PNG about 110 KB, like the lab's brightfield snips
    (35-90 KB JPEG), where the clean demo snips are about 10 KB and decode 2x faster."""
    img = np.asarray(embryo_snip(rng, stage_hpf, perturbation), np.float32)
    h, w = img.shape
    y, x = np.mgrid[0:h, 0:w]
    illumination = 12 * np.sin(x / w * np.pi) * np.cos(y / h * np.pi * 0.7)
    shot = rng.normal(0, 1, (h, w)) * np.sqrt(np.clip(img, 1, 255)) * 0.8
    read = rng.normal(0, 3, (h, w))
    return Image.fromarray(np.clip(img + illumination + shot + read, 0, 255).astype(np.uint8), "L")
