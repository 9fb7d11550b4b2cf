"""``mm new-plugin NAME``: a new modality plugin that installs, trains and passes its tests as generated.

The files come from ``mmcore/templates/plugin`` (``string.Template``: ``$name``,
``$module``, ``$dist``, ``$Name``; ``MODULE`` and ``NAME`` in paths). The plugin
is written to a temporary folder beside the destination and renamed into
place, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template

from mmcore.errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates" / "plugin"
NAME = re.compile(r"[a-z][a-z0-9_]*")


def new_plugin(name: str, dest: str | os.PathLike = ".") -> Path:
    """Write the plugin ``mm-<name>`` (module ``mm_<name>``) under ``dest``; return its folder."""
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"plugin name {name!r} is invalid; accepted: lowercase letters, digits and '_', "
            "starting with a letter (e.g. 'ecg' or 'time_series')"
        )
    from mmcore.plugins import get_registry

    if name in get_registry().names("modalities"):
        raise ConfigError(f"a modality named {name!r} is already installed; accepted: a new name (see `mm plugins`)")
    words = {
        "name": name,
        "module": f"mm_{name}",
        "dist": f"mm-{name.replace('_', '-')}",
        "Name": "".join(w.capitalize() for w in name.split("_")),
    }
    dest = Path(dest).expanduser().absolute()
    target = dest / words["dist"]
    if target.exists():
        raise ConfigError(f"{target} already exists; accepted: a destination without a {words['dist']} folder")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{words['dist']}-", dir=dest))
    try:
        for template in sorted(TEMPLATES.rglob("*.tmpl")):
            relative = str(template.relative_to(TEMPLATES).with_suffix(""))
            out = staging / relative.replace("MODULE", words["module"]).replace("NAME", name)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(template.read_text()).substitute(words))
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
