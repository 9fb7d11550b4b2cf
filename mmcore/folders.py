"""Folders of data files, shared by every modality that reads them: which files count, and which are readable.

A folder's files are listed the same way everywhere (sorted, searched
recursively, hidden files and folders such as ``.git`` or macOS ``._x``
left out), and ``on_error=skip`` reports what it left out the same way.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mmcore.errors import ConfigError, DataError


def visible_files(root: Path) -> list[Path]:
    """Every file under ``root`` (recursively), sorted, with hidden files and folders left out."""
    return sorted(f for f in root.rglob("*") if not any(s.startswith(".") for s in f.relative_to(root).parts) and f.is_file())


def list_class_folder(
    path: str, extensions: list[str], noun: str, example: str, readable: list[str] | tuple[str, ...] = ()
) -> tuple[list[Path], list[int], list[str]]:
    """Files under ``path`` with one of ``extensions``, searched recursively, hidden ones skipped.

    First-level subfolders are classes (sorted names; label = index), files
    directly in ``path`` get label -1. Returns sorted files, their labels and
    the class names; ``noun`` ("image", "audio", ...) and ``example`` (a path)
    word the errors. Files with an extension in ``readable`` (what the
    modality's reader also understands) but not in ``extensions`` are left
    out with a warning that counts them per extension, so none is ignored
    without a word.
    """
    if not path or path == "???":
        raise ConfigError(f"data.dataset.path is required; accepted: a folder of {noun} files, e.g. data.dataset.path={example}")
    root = Path(path).expanduser().absolute()
    exts = sorted({"." + e.lower().lstrip(".") for e in extensions})
    what = f"{', '.join(exts)} files (data.dataset.extensions), optionally one subfolder per class"
    if not root.is_dir():
        raise DataError(f"{noun} folder {root} does not exist or is not a folder; accepted: a folder of {what}")
    every = visible_files(root)
    files = [f for f in every if f.suffix.lower() in exts]
    others = {"." + e.lower().lstrip(".") for e in readable} - set(exts)
    left = [f for f in every if f.suffix.lower() in others]
    if left:
        counts = Counter(f.suffix.lower() for f in left)
        warnings.warn(
            f"{noun} folder {root}: left out {len(left)} file(s) whose extension is not in data.dataset.extensions "
            f"({', '.join(f'{n} {e}' for e, n in sorted(counts.items()))}, e.g. {left[0].relative_to(root)}); "
            f"add the extension to data.dataset.extensions to use them",
            stacklevel=3,
        )
    if not files:
        raise DataError(f"{noun} folder {root} holds no {noun} files; accepted: {what}")
    parts = [f.relative_to(root).parts for f in files]
    classes = sorted({p[0] for p in parts if len(p) > 1})
    ids = {c: i for i, c in enumerate(classes)}
    return files, [ids[p[0]] if len(p) > 1 else -1 for p in parts], classes


def refusal(message: str, reason: str) -> DataError:
    """A DataError that `keep_readable` counts under ``reason`` (a few words: "truncated", "16-bit mode")."""
    error = DataError(message)
    error.reason = reason
    return error


def keep_readable(
    files: list[Path], labels: list[int], probe: Callable[[Path], object], noun: str, path: str, accepted: str
) -> tuple[list[Path], list[int]]:
    """The files ``probe`` accepts (``on_error=skip``), warning once: a count per reason, then the messages.

    A DataError made by `refusal` is counted under its reason, any other one
    as "unreadable"; the first ten messages follow in file order (the full
    list of a large folder would drown the line). Call it from the dataset's
    ``build`` so the warning points at the caller of ``build``.
    """
    root = Path(path).expanduser().absolute()
    kept, bad, messages = [], {}, []
    for f, label in zip(files, labels):
        try:
            probe(f)
            kept.append((f, label))
        except DataError as exc:
            name = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
            bad.setdefault(getattr(exc, "reason", None) or "unreadable", []).append(name)
            messages.append(str(exc))
    if bad:
        groups = ", ".join(f"{len(names)} {reason} ({', '.join(names[:5])}{', ...' * (len(names) > 5)})" for reason, names in bad.items())
        more = f" | ... and {len(messages) - 10} more" if len(messages) > 10 else ""
        warnings.warn(
            f"skipped {len(messages)} of {len(files)} {noun} files (data.dataset.on_error=skip): {groups} | "
            + " | ".join(messages[:10])
            + more,
            stacklevel=3,
        )
    if not kept:
        raise DataError(f"none of the {len(files)} {noun} files under {path} is readable; accepted: {accepted}")
    return [f for f, _ in kept], [label for _, label in kept]


def read_or_next(
    files: list[Path], index: int, load: Callable[[int], dict], on_error: str, skipped: list[str], noun: str, accepted: str
) -> dict:
    """``load(index)``; with ``on_error=skip`` a file that fails stands aside for the next readable one,
    recorded in ``skipped`` and said in a warning, so one bad file cannot stop a long run."""
    if on_error == "raise":
        return load(index)
    for k in range(len(files)):
        j = (index + k) % len(files)
        try:
            return load(j)
        except DataError as exc:
            skipped.append(str(files[j]))
            warnings.warn(f"skipped {noun} file ({len(skipped)} so far in this process): {exc}", stacklevel=3)
    raise DataError(f"no readable {noun} file among the {len(files)} files; accepted: {accepted}")
