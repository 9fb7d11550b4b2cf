"""``mm env``: what a bug report needs to reproduce a run, gathered without failing.

Every part is read on its own: a missing package, a broken plugin or a torch
that cannot see its device is reported as such, and the command still succeeds.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

PACKAGES = ("mmcore", "torch", "accelerate", "transformers", "huggingface_hub")
SETTINGS = ("MMCORE_LOAD_PLUGINS", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")  # change what runs; never secrets


def report() -> dict[str, Any]:
    """Versions, device, plugins and the settings that change behaviour, as plain data."""
    from mmcore.plugins import get_registry

    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        "platform": platform.platform(),
        **{name: version(name) for name in PACKAGES},
        "device": device(),
        "plugins": [
            {k: p.summary()[k] for k in ("name", "distribution", "version", "status", "error")} for p in get_registry().plugins.values()
        ],
        "settings": {k: os.environ[k] for k in SETTINGS if k in os.environ},
    }


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device() -> str:
    """What `mm train` would run on: the accelerators torch sees, or the CPU, and torch's thread count."""
    try:
        import torch

        if torch.cuda.is_available():
            names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
            found = f"cuda: {torch.cuda.device_count()} × {', '.join(names)} (CUDA {torch.version.cuda})"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            found = "mps"
        else:
            found = "cpu"
        return f"{found}; torch threads: {torch.get_num_threads()}"
    except Exception as exc:  # noqa: BLE001 - a broken driver is itself the answer
        return f"unknown ({type(exc).__name__}: {exc})"


def as_text(info: dict[str, Any]) -> str:
    """One ``key: value`` line each, to paste into an issue."""
    lines = [f"{k}: {v}" for k, v in info.items() if k not in ("plugins", "settings")]
    for p in info["plugins"]:
        where = " ".join(str(x) for x in (p["distribution"], p["version"]) if x)
        state = f"broken: {p['error']}" if p["status"] == "broken" else "ok"
        lines.append(f"plugin {p['name']}: {where + ', ' if where else ''}{state}")
    if not info["plugins"]:
        lines.append("plugins: none loaded")
    lines += [f"{k}={v}" for k, v in info["settings"].items()]
    return "\n".join(lines)
