"""Reading video files with PyAV (FFmpeg): frame sampling, resize, centre crop.

Shared by `VideoFolder` (in data-loader workers) and `read_video_file`
(``mm reconstruct``); every error names the file, what was found and what is
accepted. Streams that report no frame count (WebM) are counted by decoding.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from mmcore.errors import DataError

ACCEPTED = "MP4 (H.264/MPEG-4), WebM (VP8/VP9), AVI, MKV or MOV video that FFmpeg (PyAV) decodes"
_ERRORS = (av.error.FFmpegError, OSError, ValueError)


def frames_needed(num_frames: int, stride: int) -> int:
    return (num_frames - 1) * stride + 1


def _open(path: str | Path):
    try:
        container = av.open(str(path))
    except _ERRORS as exc:
        raise DataError(f"cannot decode video {path}: {exc}; accepted: {ACCEPTED}") from None
    if not container.streams.video:
        found = ", ".join(f"{s.type} ({s.codec_context.name})" for s in container.streams) or "no streams"
        container.close()
        raise DataError(f"{path} has no video stream (found: {found}); accepted: {ACCEPTED}")
    return container


def probe_video(path: str | Path) -> None:
    """Opens the container and checks for a video stream: cheap enough to run on every file."""
    _open(path).close()


def _to_array(frame, size: tuple[int, int], channels: int) -> np.ndarray:
    """One decoded frame → [H, W, C] uint8, scaled to cover ``size`` then centre-cropped (no distortion)."""
    H, W = size
    scale = max(H / frame.height, W / frame.width)
    h, w = max(H, round(frame.height * scale)), max(W, round(frame.width * scale))
    arr = frame.to_ndarray(format="rgb24" if channels == 3 else "gray", width=w, height=h)
    top, left = (h - H) // 2, (w - W) // 2
    arr = arr[top: top + H, left: left + W]
    return arr if arr.ndim == 3 else arr[..., None]


def read_video(path: str | Path, num_frames: int, stride: int, size: tuple[int, int], channels: int,
               start: str = "center", generator: torch.Generator | None = None) -> Tensor:
    """``num_frames`` frames ``stride`` apart → uint8 [C, T, H, W].

    ``start``: ``center`` (evaluation) takes the middle window, ``random`` (training) any window.
    """
    needed = frames_needed(num_frames, stride)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = stream.frames  # 0 when the container does not say (WebM): then decode everything once
        decoded, frames = 0, []
        first = _first_frame(count, needed, start, generator) if count >= needed else None
        try:
            for frame in container.decode(stream):
                if first is None:
                    frames.append(frame)  # count unknown (or wrong): keep all, choose the window afterwards
                elif decoded >= first and (decoded - first) % stride == 0:
                    frames.append(_to_array(frame, size, channels))
                decoded += 1
                if first is not None and decoded >= first + needed:
                    break
        except _ERRORS as exc:
            raise DataError(f"cannot decode video {path} after {decoded} frames: {exc}; accepted: {ACCEPTED}") from None
        if first is None:
            if decoded < needed:
                raise DataError(
                    f"video {path} has {decoded} decodable frames, fewer than the {needed} that num_frames {num_frames} "
                    f"with stride {stride} need; accepted: videos of at least {needed} frames (or lower the stride)")
            begin = _first_frame(decoded, needed, start, generator)
            frames = [_to_array(f, size, channels) for f in frames[begin: begin + needed: stride]]
        elif len(frames) < num_frames:  # the header promised more frames than the file holds
            raise DataError(f"video {path} is truncated: its header says {count} frames but only {decoded} decode; "
                            f"accepted: complete {ACCEPTED}")
    finally:
        container.close()
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(3, 0, 1, 2)))  # [C, T, H, W]


def _first_frame(count: int, needed: int, start: str, generator: torch.Generator | None) -> int:
    if start == "random":
        return int(torch.randint(count - needed + 1, (), generator=generator))
    return (count - needed) // 2


def read_video_file(tokenizer, path: str | Path, stride: int = 1) -> dict:
    """The middle ``num_frames`` frames of a user file as a sample for ``collate`` (``mm reconstruct``)."""
    video = read_video(path, tokenizer.num_frames, stride, tuple(tokenizer.image_size), tokenizer.channels)
    return {"video": video, "label": -1}
