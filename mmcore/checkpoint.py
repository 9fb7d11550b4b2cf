"""Checkpoints that survive a kill, a flipped byte or a full disk.

Every rank writes into ``checkpoints/.tmp-step-N`` through Accelerate's
``save_state`` (model, optimizer, scheduler, every RNG); the main process adds
``trainer_state.json`` last — step, data positions, the recipe values a resume
must share, and the sha256 of every file — and renames the folder into place,
so a ``step-N`` folder is complete by construction. A write that fails (a full
disk) removes its partial folder and leaves the older checkpoints as they were.

Resume takes the newest checkpoint whose files match their checksums and that
every rank loads, falling back past damaged ones with a warning naming the
file; all ranks load the same one. A checkpoint written by another recipe or
another number of processes is a refusal naming what differs, never "damaged".
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object

from mmcore.errors import ConfigError, StorageError

STATE_FILE = "trainer_state.json"
WEIGHTS = "model.safetensors"  # Accelerate's name for the first model's weights
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def save_checkpoint(accelerator: Accelerator, root: Path, state: dict[str, Any], keep: int) -> Path:
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-step-{state['step']:08d}"

    def prepare() -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)

    def publish() -> None:
        write_json_atomic(tmp / STATE_FILE, {**state, "files": file_digests(tmp)})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    where = f"checkpoint {final}"
    try:
        together(accelerator, prepare, main_only=True, what=where)
        together(accelerator, lambda: accelerator.save_state(str(tmp)), what=where)
        together(accelerator, publish, main_only=True, what=where)
    except StorageError:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def together(accelerator: Accelerator, action: Callable[[], None], what: str, main_only: bool = False) -> None:
    """Run ``action`` (on every rank, or the main one); if it failed anywhere, every rank raises, so no rank
    waits forever for one that gave up. A full disk is one line; another failure keeps its traceback where
    it happened."""
    failure, error = None, None
    if accelerator.is_main_process or not main_only:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported to every rank below, then raised
            failure, error = (accelerator.process_index, describe_failure(exc)), exc
    failures = [f for f in gather_object([failure]) if f is not None]
    if not failures:
        return
    rank, (disk_full, message) = failures[0]
    if disk_full:
        raise StorageError(
            f"disk full while writing {what}: {message}; the partial write was removed, what was "
            f"there before is intact. Free space, then resume with --resume"
        )
    if error is not None:
        raise error
    raise StorageError(f"rank {rank} failed while writing {what}: {message}")


def describe_failure(exc: BaseException) -> tuple[bool, str]:
    """(is it a full disk?, one line). torch.save reports a full disk as a RuntimeError; look at the chain."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return True, f"{os.strerror(seen.errno)} ({seen.filename or 'while writing'})"
        text = " ".join(str(seen).split())
        code = re.search(r"os error (\d+)", text)  # safetensors (Rust) reports the errno in its message
        if "write failed" in text or (code and int(code.group(1)) in DISK_FULL):
            return True, text[:200]
        seen = seen.__cause__ or seen.__context__
    return False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def load_latest(
    accelerator: Accelerator, root: Path, expected: dict[str, Any], model_tensors: dict[str, tuple[str, list[int]]]
) -> dict[str, Any] | None:
    """Restore the newest checkpoint that is intact and loads on every rank; None when none does.

    ``expected``: the recipe values the checkpoint must share (see `mismatch`); ``model_tensors``: the
    model's {key: (dtype, shape)}. Either differing is a ConfigError, not a damaged checkpoint.
    """
    candidates = list(reversed(list_checkpoints(root)))
    while candidates:
        chosen = [None, None]
        if accelerator.is_main_process:
            chosen = first_intact(accelerator, candidates, expected, model_tensors)
        chosen = broadcast_object_list(chosen)
        path, refusal = chosen
        if refusal:
            raise ConfigError(refusal)
        if path is None:
            return None
        path = Path(path)
        candidates = candidates[[str(c) for c in candidates].index(str(path)) + 1 :]
        failure = None
        try:
            accelerator.load_state(str(path))
        except Exception as exc:  # noqa: BLE001 - every rank must hear of it and move on together
            failure = f"rank {accelerator.process_index}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        failures = [f for f in gather_object([failure]) if f]
        if not failures:
            state = json.loads((path / STATE_FILE).read_text())
            accelerator.print(f"resumed from {path} (step {state['step']})")
            return state
        accelerator.print(f"warning: checkpoint {path} does not load ({failures[0]}); trying the previous one")
    return None


def first_intact(
    accelerator: Accelerator, candidates: list[Path], expected: dict[str, Any], model_tensors: dict[str, tuple[str, list[int]]]
) -> list[str | None]:
    """[path, None] for the newest intact candidate; [None, refusal] when one was written by another recipe."""
    for path in candidates:
        damage = damaged(path)
        if damage:
            accelerator.print(f"warning: checkpoint {path} is damaged: {damage}; trying the previous one")
            continue
        state = json.loads((path / STATE_FILE).read_text())
        try:
            differences = mismatch(state, expected) + tensor_mismatch(path / WEIGHTS, model_tensors)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            accelerator.print(f"warning: checkpoint {path} is damaged: {WEIGHTS} header unreadable ({exc}); trying the previous one")
            continue
        if differences:
            refusal = (
                f"checkpoint {path} was written by a different run setup: {'; '.join(differences[:8])}"
                f"{' ...' if len(differences) > 8 else ''}. Resume with the values it was written with, or "
                f"start a new run in another output_dir (its files are kept)"
            )
            return [None, refusal]
        return [str(path), None]
    return [None, None]


def damaged(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be trusted, or None: a file missing or not matching its checksum."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        return f"{STATE_FILE} unreadable ({exc})"
    for name, digest in (state.get("files") or {}).items():  # checkpoints of older versions carry no checksums
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if sha256(file) != digest:
            return f"{name} does not match its checksum (changed since it was written)"
    return None


def mismatch(state: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Recipe values that differ between a checkpoint and this run, as 'key: X there, Y here'."""
    saved = flatten(state.get("recipe", {}))
    current = flatten(expected.get("recipe", {}))
    out = (
        [
            f"{k} is {saved.get(k, '(unset)')!r} there, {current.get(k, '(unset)')!r} here"
            for k in sorted(set(saved) | set(current))
            if saved.get(k) != current.get(k)
        ]
        if saved
        else []
    )
    world = len(state.get("data", [])) or expected["world_size"]
    if world != expected["world_size"]:
        out.append(
            f"written by {world} processes, this run has {expected['world_size']} (the data position and "
            f"random states are per process: launch with --num_processes {world})"
        )
    return out


def tensor_mismatch(path: Path, model_tensors: dict[str, tuple[str, list[int]]]) -> list[str]:
    """Weights whose keys, dtypes or shapes differ from the model's (read from the safetensors header).
    Only a plain full state has one: under FSDP Accelerate writes ``pytorch_model_fsdp_0/`` (sharded) or
    ``pytorch_model_fsdp.bin`` instead, and then there is nothing to compare here (its loader checks)."""
    if not path.is_file():
        return []
    with path.open("rb") as f:  # the safetensors header: 8-byte length, then JSON {key: {dtype, shape, ...}}
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    names = {
        "F64": "float64",
        "F32": "float32",
        "F16": "float16",
        "BF16": "bfloat16",
        "I64": "int64",
        "I32": "int32",
        "I16": "int16",
        "I8": "int8",
        "U8": "uint8",
        "BOOL": "bool",
    }
    saved = {k: (names.get(v["dtype"], v["dtype"]), list(v["shape"])) for k, v in header.items() if k != "__metadata__"}
    out = [f"tensor {k} missing there" for k in sorted(set(model_tensors) - set(saved))]
    out += [f"tensor {k} not in this model" for k in sorted(set(saved) - set(model_tensors))]
    out += [
        f"tensor {k} is {saved[k][0]}{saved[k][1]} there, {model_tensors[k][0]}{model_tensors[k][1]} here"
        for k in sorted(set(saved) & set(model_tensors))
        if saved[k] != model_tensors[k]
    ]
    return out


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != STATE_FILE}


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
