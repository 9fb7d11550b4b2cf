"""Reading one image file with Pillow: decode, channel check, resize, to a tensor.

Shared by `ImageFolder` (in data-loader workers) and `read_image_file`
(``mm reconstruct``); every error names the file and what is accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mmcore.errors import DataError

from .tokenizer import nearest_multiple

ACCEPTED = "PNG/JPEG/BMP/WebP/TIFF/GIF images readable by Pillow"


def _is_gray(img: Image.Image) -> bool:
    return img.mode in ("1", "L", "LA", "F") or img.mode.startswith("I")


def load_image(path: str | Path, channels: int, convert: bool, hint: str) -> Image.Image:
    """Decode ``path`` fully and return it in mode 'L', 'I' (16-bit gray) or 'RGB'.

    Gray vs colour is a property of the data the recipe may not expect, so a
    mismatch is an error unless ``convert``; palette and alpha are encoding
    details and are converted silently.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and names itself
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}; accepted: {ACCEPTED}") from None
    found = 1 if _is_gray(img) else 3
    if found != channels and not convert:
        bands = len(img.getbands())
        raise DataError(
            f"image {path} has mode {img.mode!r} ({bands} channel{'s' * (bands > 1)}) but the recipe expects "
            f"{channels} channel{'s' * (channels > 1)}; {hint}"
        )
    if channels == 3:
        return img.convert("RGB")
    return img.convert("I") if img.mode.startswith("I") else img.convert("L")


def fit_crop(img: Image.Image, size: list[int]) -> Image.Image:
    """Resize so the image covers [H, W], then take the centre: no distortion, no padding."""
    H, W = size
    w, h = img.size
    if (h, w) == (H, W):
        return img
    scale = max(H / h, W / w)
    nw, nh = max(W, round(w * scale)), max(H, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - W) // 2, (nh - H) // 2
    return img.crop((left, top, left + W, top + H))


def to_tensor(img: Image.Image) -> Tensor:
    """PIL image ('L', 'I' or 'RGB') → [C, H, W] float32 in [0, 1]."""
    scale = 65535.0 if img.mode == "I" else 255.0
    arr = np.asarray(img, dtype=np.float32) / scale
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)).clamp_(0.0, 1.0)


def read_image_file(tokenizer, path: str | Path, size: list[int] | None = None, convert: bool = False) -> dict:
    """One user file at its own size (or resized to ``size`` [H, W]) as a sample for ``collate``."""
    img = load_image(path, tokenizer.channels, convert, hint="convert it first, or pass convert=True")
    p = tokenizer.patch_size
    if size is not None:
        H, W = (int(s) for s in size)
        if H % p or W % p or H < 1 or W < 1:
            raise DataError(f"size [{H}, {W}] for {path} is not a multiple of the patch size {p}; accepted: multiples of {p} such as {[nearest_multiple(H, p), nearest_multiple(W, p)]}")
        img = img.resize((W, H), Image.BICUBIC)
    W, H = img.size
    if H % p or W % p:
        near = [nearest_multiple(H, p), nearest_multiple(W, p)]
        down, up = [max(p, H // p * p), max(p, W // p * p)], [-(-H // p) * p, -(-W // p) * p]
        others = " or ".join(str(s) for s in (down, up) if s != near)
        raise DataError(
            f"image {path} is {H}x{W} (HxW), which is not divisible by the patch size {p}; "
            f"accepted: sides that are multiples of {p}, nearest [H, W] = {near}" + (f" (or {others})" if others else "")
            + f"; resize the image, or pass size={near}"
        )
    return {"image": to_tensor(img), "label": -1}
