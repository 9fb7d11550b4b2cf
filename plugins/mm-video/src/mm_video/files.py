"""Reading video files with PyAV (FFmpeg): frame sampling, resize, centre crop.

Shared by `VideoFolder` (in data-loader workers) and `read_video_file`
(``mm reconstruct``); every error names the file, what was found and what is
accepted. Streams that report no frame count (WebM, MKV) are counted by demuxing
(no decoding), and only the frames of the chosen window are kept.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from mmcore.folders import refusal
from mmcore.records import Encoded

ACCEPTED = "MP4 (H.264/MPEG-4), WebM (VP8/VP9), AVI, MKV or MOV video that FFmpeg (PyAV) decodes"
# containers FFmpeg also reads: `VideoFolder` warns about files with these extensions it was not told to read
READABLE = ("3gp", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "ogv", "ts", "webm", "wmv")


def frames_needed(num_frames: int, stride: int) -> int:
    return (num_frames - 1) * stride + 1


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'}"


def _open(path: str | Path | Encoded):
    try:
        container = av.open(path.open() if isinstance(path, Encoded) else str(path))
        streams = list(container.streams)
    except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types (and OSError) on damaged files
        raise refusal(f"cannot decode video {path}: {_one_line(exc)}; accepted: {ACCEPTED}", "cannot be decoded") from None
    if not container.streams.video:
        found = ", ".join(f"{s.type} ({getattr(s.codec_context, 'name', 'no codec')})" for s in streams) or "no streams"
        container.close()
        raise refusal(f"{path} has no video stream (found: {found}); accepted: {ACCEPTED}", "no video stream")
    return container


def probe_video(path: str | Path, needed: int = 1) -> None:
    """Opens the container, checks for a video stream and, where the header states a frame count,
    that it reaches ``needed``: cheap enough to run on every file (nothing is decoded)."""
    container = _open(path)
    count = container.streams.video[0].frames
    container.close()
    if 0 < count < needed:
        raise refusal(
            f"video {path} has {count} frames, the clip needs {needed}; accepted: videos of at least {needed} "
            "frames, or lower data.dataset.min_stride or model.tokenizer.num_frames",
            "too short",
        )


def count_frames(path: str | Path) -> tuple[int, bool]:
    """(frames, declared): the count the header states, or, where it states none (WebM, MKV), the
    video packets counted by demuxing, which reads the file but decodes nothing."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return stream.frames, True
        return sum(1 for packet in container.demux(stream) if packet.size), False
    except Exception as exc:  # noqa: BLE001
        raise refusal(f"cannot decode video {path}: {_one_line(exc)}; accepted: {ACCEPTED}", "cannot be decoded") from None
    finally:
        container.close()


def _to_array(frame, size: tuple[int, int], channels: int) -> np.ndarray:
    """One decoded frame → [H, W, C] uint8, scaled to cover ``size`` then centre-cropped (no distortion)."""
    H, W = size
    scale = max(H / frame.height, W / frame.width)
    h, w = max(H, round(frame.height * scale)), max(W, round(frame.width * scale))
    arr = frame.to_ndarray(format="rgb24" if channels == 3 else "gray", width=w, height=h)
    top, left = (h - H) // 2, (w - W) // 2
    arr = arr[top : top + H, left : left + W]
    return arr if arr.ndim == 3 else arr[..., None]


def _decode(path, first: int, stride: int, num_frames: int, size, channels: int) -> tuple[list[np.ndarray], int]:
    """Frames first, first + stride, ... (``num_frames`` of them, or fewer at the end of the file), and how many decoded."""
    container = _open(path)
    frames, decoded = [], 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if decoded >= first and (decoded - first) % stride == 0:
                frames.append(_to_array(frame, size, channels))
            decoded += 1
            if len(frames) == num_frames:
                break
    except Exception as exc:  # noqa: BLE001 - FFmpeg, PyAV and a zero-sized frame raise many types
        raise refusal(
            f"cannot decode video {path} after {decoded} frames: {_one_line(exc)}; accepted: {ACCEPTED}", "cannot be decoded"
        ) from None
    finally:
        container.close()
    return frames, decoded


def read_video(
    path: str | Path | Encoded,
    num_frames: int,
    stride: int,
    size: tuple[int, int],
    channels: int,
    start: str = "center",
    generator: torch.Generator | None = None,
    min_stride: int | None = None,
) -> Tensor:
    """``num_frames`` frames ``stride`` apart of a file (or `Encoded` bytes) → uint8 [C, T, H, W].

    A clip too short for ``stride`` is read with the largest stride, down to
    ``min_stride`` (default: ``stride`` itself), that fits it. ``start``:
    ``center`` (evaluation) takes the middle window, ``random`` (training) any
    window, drawn from ``generator``. A header that promises more frames than
    decode is a truncated file; a packet count (no header count) that
    overstates the frames is corrected by the decoded count.
    """
    lowest = stride if min_stride is None else min(min_stride, stride)
    count, declared = count_frames(path)
    window = (path, num_frames, stride, lowest, size, channels, start, generator)
    frames, decoded = _window(count, *window)
    if len(frames) < num_frames and not declared:  # the packets overstated the frames: now the count is known
        frames, decoded = _window(decoded, *window)
    if len(frames) < num_frames:
        raise refusal(
            f"video {path} is truncated: its header says {count} frames but only {decoded} decode; accepted: complete {ACCEPTED}",
            "truncated",
        )
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(3, 0, 1, 2)))  # [C, T, H, W]


def _window(count, path, num_frames, stride, lowest, size, channels, start, generator) -> tuple[list[np.ndarray], int]:
    """Decode the window of a clip of ``count`` frames at the largest stride from ``stride`` down to ``lowest`` that fits."""
    fits = [s for s in range(stride, lowest - 1, -1) if frames_needed(num_frames, s) <= count]
    if not fits:
        lower = "model.tokenizer.num_frames" if lowest == 1 else "data.dataset.min_stride or model.tokenizer.num_frames"
        raise refusal(
            f"video {path} has {count} frames, the clip needs {frames_needed(num_frames, lowest)} "
            f"(num_frames {num_frames} at stride {lowest}: (num_frames - 1) × stride + 1); accepted: videos "
            f"of at least {frames_needed(num_frames, lowest)} frames, or lower {lower}",
            "too short",
        )
    needed = frames_needed(num_frames, fits[0])
    first = int(torch.randint(count - needed + 1, (), generator=generator)) if start == "random" else (count - needed) // 2
    return _decode(path, first, fits[0], num_frames, size, channels)


def read_video_file(tokenizer, path: str | Path, stride: int = 1) -> dict:
    """The middle ``num_frames`` frames of a user file as a sample for ``collate`` (``mm reconstruct``)."""
    video = read_video(path, tokenizer.num_frames, stride, tuple(tokenizer.image_size), tokenizer.channels)
    return {"video": video, "label": -1}
