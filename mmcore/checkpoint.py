"""Checkpoints that survive a kill at any moment.

Every rank writes into ``checkpoints/.tmp-step-N`` through Accelerate's
``save_state`` (model, optimizer, scheduler, every RNG); the main process adds
``trainer_state.json`` (step and data position) last and renames the folder
into place, so a ``step-N`` folder is complete by construction. Resume takes
the newest folder that loads, falling back past damaged ones.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

STATE_FILE = "trainer_state.json"


def save_checkpoint(accelerator: Accelerator, root: Path, state: dict[str, Any], keep: int) -> Path:
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-step-{state['step']:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE_FILE, state)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def load_latest(accelerator: Accelerator, root: Path) -> dict[str, Any] | None:
    """Restore the newest checkpoint that loads; None when there is none."""
    for path in reversed(list_checkpoints(root)):
        try:
            state = json.loads((path / STATE_FILE).read_text())
            accelerator.load_state(str(path))
        except Exception as exc:  # a damaged checkpoint: say so and try the one before
            accelerator.print(f"checkpoint {path} is damaged ({type(exc).__name__}: {exc}); trying the previous one")
            continue
        accelerator.print(f"resumed from {path} (step {state['step']})")
        return state
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
