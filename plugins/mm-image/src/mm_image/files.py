"""Reading one image file with Pillow: decode, mode and channel check, resize, to a tensor.

Shared by `ImageFolder` (in data-loader workers) and `read_image_file`
(``mm reconstruct``); every error names the file, what was found and what is
accepted, and no decoder exception gets past as anything but a DataError.

Modes are converted by their real range: 16-bit gray ('I;16*') is divided by
65535, 32-bit integer ('I') only when its values fit 16 bits, float ('F')
only when they lie in [0, 1]; palette, CMYK, YCbCr and HSV become RGB; alpha
is dropped, as torchvision's loader does. Pillow itself would clip 16-bit
gray to 255 when converting it to 'L' or 'RGB' (an all-white picture).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mmcore.folders import refusal
from mmcore.errors import DataError
from mmcore.records import Encoded, as_bytes, as_int, field

from .tokenizer import nearest_multiple

ACCEPTED = "PNG/JPEG/BMP/WebP/TIFF/GIF images readable by Pillow"
EXTENSIONS = ["bmp", "gif", "jfif", "jpeg", "jpg", "png", "tif", "tiff", "webp"]  # ImageFolder's default
SIXTEEN = ("I;16", "I;16L", "I;16B", "I;16N")
GRAY = ("1", "L", "LA", "I", "F", *SIXTEEN)
COLOUR = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV")
MODES = "gray ('1', 'L', 'LA', 16-bit 'I;16', 'I' up to 65535, 'F' in [0, 1]) or colour ('P', 'RGB', 'RGBA', 'CMYK', 'YCbCr', 'HSV')"
# Pillow registers these but cannot open them without extra software, or they are not pictures (.pcd is a point cloud here)
_NOT_PICTURES = {".bufr", ".emf", ".eps", ".grib", ".h5", ".hdf", ".mpeg", ".mpg", ".pcd", ".ps", ".wmf"}


def readable_extensions() -> list[str]:
    """Every extension Pillow opens: `ImageFolder` warns about files with one it is not told to read."""
    return sorted(e for e, f in Image.registered_extensions().items() if f in Image.OPEN and e not in _NOT_PICTURES)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"


def _open(path: str | Path | Encoded, load: bool) -> Image.Image:
    """Identify (and with ``load`` decode) ``path``; any failure becomes a DataError naming it.

    Pillow's decoders raise many types on damaged files (OSError, SyntaxError,
    struct.error, EOFError, IndexError, ...), so everything is caught here,
    around the decoder call only. Images over Pillow's decompression-bomb
    limit are refused before their memory is allocated.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on damaged metadata name no file; what fails is refused below
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path.open() if isinstance(path, Encoded) else path) as img:
                if load:
                    img.load()  # decode now, so a truncated file fails here and names itself
                return img
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise refusal(
            f"image {path} is too large to decode safely ({_one_line(exc)}); accepted: images of at most {Image.MAX_IMAGE_PIXELS} pixels",
            "too large",
        ) from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        reason = "truncated" if "truncated" in str(exc).lower() else "cannot be decoded"
        raise refusal(f"cannot decode image {path}: {_one_line(exc)}; accepted: {ACCEPTED}", reason) from None


def _check_mode(img: Image.Image, path, channels: int, convert: bool, hint: str) -> None:
    """What the header says: a mode we convert, and gray vs colour as the recipe expects (or ``convert``)."""
    if img.mode not in GRAY + COLOUR:
        raise refusal(f"image {path} has mode {img.mode!r}, which cannot be converted; accepted: {MODES}", f"mode {img.mode} unsupported")
    found = 1 if img.mode in GRAY else 3
    if found != channels and not convert:
        bands = len(img.getbands())
        raise refusal(
            f"image {path} has mode {img.mode!r} ({bands} channel{'s' * (bands > 1)}) but the recipe expects "
            f"{channels} channel{'s' * (channels > 1)}; {hint}",
            "wrong channel count",
        )


def probe_image(path: str | Path, channels: int, convert: bool) -> None:
    """Header only (format, size, mode): cheap enough to run on every file when a folder is built."""
    _check_mode(_open(path, load=False), path, channels, convert, hint="set data.dataset.convert=true to convert")


def _high_depth(img: Image.Image, path) -> Image.Image:
    """'I;16*', 'I' or 'F' → 'F' gray in [0, 1], scaled by the range of the data type, never clipped."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode in SIXTEEN:
        return Image.fromarray((arr / 65535.0).astype(np.float32))
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0].tolist()
        raise refusal(
            f"image {path} (mode 'F') holds a non-finite value {arr[row, col]} at row {row}, column {col}; "
            "accepted: finite values in [0, 1]",
            "non-finite pixels",
        )
    lo, hi = float(arr.min()), float(arr.max())
    if img.mode == "I" and 0 <= lo and hi <= 65535:  # 16-bit data held in 32 bits (PGM, some TIFFs)
        return Image.fromarray((arr / 65535.0).astype(np.float32))
    if img.mode == "F" and 0 <= lo and hi <= 1:
        return Image.fromarray(arr.astype(np.float32))
    kind, accepted = ("32-bit integer", "0 to 65535 (16-bit data)") if img.mode == "I" else ("32-bit float", "0 to 1")
    raise refusal(
        f"image {path} has mode {img.mode!r} ({kind}) with values from {lo:g} to {hi:g}, which have no known "
        f"white level; accepted: {accepted}; rescale the file",
        f"{kind} range unknown",
    )


def load_image(path: str | Path | Encoded, channels: int, convert: bool, hint: str) -> Image.Image:
    """Decode ``path`` (a file, or `Encoded` bytes) fully and return it in mode 'L', 'RGB' or 'F' (gray, float in [0, 1]).

    Gray vs colour is a property of the data the recipe may not expect, so a
    mismatch is an error unless ``convert``; palette and alpha are encoding
    details and are converted silently. An 'F' image stays gray here even for
    a 3-channel recipe: `to_tensor` repeats it (Pillow has no float RGB mode).
    """
    img = _open(path, load=True)
    _check_mode(img, path, channels, convert, hint)
    try:
        if img.mode in ("I", "F", *SIXTEEN):
            img = _high_depth(img, path)
        else:
            img = img.convert("L" if img.mode in GRAY or channels == 1 else "RGB")
        if channels == 3 and img.mode == "L":
            img = img.convert("RGB")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged palette or profile fails only on conversion
        raise refusal(
            f"cannot convert image {path} (mode {img.mode!r}): {_one_line(exc)}; accepted: {MODES}", f"mode {img.mode} unsupported"
        ) from None
    return img


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


def read_fitted(path: str | Path | Encoded, size: list[int], channels: int, convert: bool, hint: str) -> Tensor:
    """`load_image` covering ``size`` [H, W], centre-cropped (`fit_crop`): [C, H, W] float32 in [0, 1]."""
    return to_tensor(fit_crop(load_image(path, channels, convert, hint), size), channels)


def to_tensor(img: Image.Image, channels: int | None = None) -> Tensor:
    """PIL image ('L', 'RGB' or 'F' in [0, 1]) → [C, H, W] float32 in [0, 1]; gray is repeated to ``channels``."""
    arr = np.array(img, dtype=np.float32)  # a copy: torch wants a writable array
    if img.mode != "F":
        arr = arr / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    x = torch.from_numpy(np.ascontiguousarray(arr)).clamp_(0.0, 1.0)  # bicubic overshoots a little
    return x.expand(channels, -1, -1).contiguous() if channels and x.shape[0] != channels else x


def read_image_file(tokenizer, path: str | Path, size: list[int] | None = None, convert: bool = False) -> dict:
    """One user file at its own size (or resized to ``size`` [H, W]) as a sample for ``collate``."""
    img = load_image(path, tokenizer.channels, convert, hint="convert it first, or let mm reconstruct do it: --convert")
    p = tokenizer.patch_size
    if size is not None:
        H, W = (int(s) for s in size)
        if H % p or W % p or H < 1 or W < 1:
            raise DataError(
                f"size [{H}, {W}] for {path} is not a multiple of the patch size {p}; "
                f"accepted: multiples of {p} such as {[nearest_multiple(H, p), nearest_multiple(W, p)]}"
            )
        img = img.resize((W, H), Image.BICUBIC)
    W, H = img.size
    if H % p or W % p:
        near = [nearest_multiple(H, p), nearest_multiple(W, p)]
        down, up = [max(p, H // p * p), max(p, W // p * p)], [-(-H // p) * p, -(-W // p) * p]
        others = " or ".join(str(s) for s in (down, up) if s != near)
        raise DataError(
            f"image {path} is {H}x{W} (HxW), which is not divisible by the patch size {p}; "
            f"accepted: sides that are multiples of {p}, nearest [H, W] = {near}"
            + (f" (or {others})" if others else "")
            + f"; resize it, or let mm reconstruct do it: --size {near[0]} {near[1]}"
        )
    return {"image": to_tensor(img, tokenizer.channels), "label": -1}


IMAGE_FIELDS = ("image", "png", "jpg", "jpeg", "webp", "jfif", "bmp", "tif", "tiff", "gif")
LABEL_FIELDS = ("label", "cls")


def from_record(tokenizer, record, generator=None) -> dict:
    """A streamed record as the folder's sample ``{"image": [C, H, W], "label": int}`` (`Modality.from_record`).

    Reads the encoded image from the first of ``image``, ``png``, ``jpg``, ``jpeg``, ``webp`` (and the
    other `EXTENSIONS`) and the optional label from ``label`` or ``cls`` (-1 without one). Decoded and
    sized as `ImageFolder` does, at the tokenizer's ``image_size`` and ``channels``; gray and colour are
    converted to ``channels`` (a stream has no ``convert`` option). Nothing is random: no flip.
    """
    name, value = field(record, IMAGE_FIELDS)
    x = read_fitted(Encoded(as_bytes(value, name), name), tokenizer.image_size, tokenizer.channels, True, hint="")
    label_name, label = field(record, LABEL_FIELDS, required=False)
    return {"image": x, "label": -1 if label_name is None else as_int(label, label_name)}
