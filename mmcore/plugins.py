"""Discover plugins through entry points and collect what they register.

Each entry point is loaded and each of its hooks called on its own: a plugin
that fails to import, breaks a hook or registers a name another plugin owns is
recorded as broken with its error, and the others still work. What a plugin
registers is committed only if all of its hooks succeed. The one name that
may be shared is a command's: plugins offering the same `mmcore.Command`
object (text and protein both offer ``mm fill``) register it once.

``MMCORE_LOAD_PLUGINS`` restricts loading to a comma-separated list of
entry-point or distribution names ('' loads none): for tests and bug reports.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import pluggy
from packaging.version import InvalidVersion, Version

from mmcore import hookspecs
from mmcore.commands import Command, check_command
from mmcore.contract import Modality
from mmcore.errors import PluginError
from mmcore.streams import STREAMED, stream_dataset

ENTRY_POINT_GROUP = "mmcore"
HOOKS = (
    "register_modalities",
    "register_masking_policies",
    "register_targets",
    "register_datasets",
    "register_recipes",
    "register_commands",
    "register_peers",
)
KINDS = ("modalities", "policies", "targets", "datasets", "recipes", "commands", "exporters", "importers")
PEERS = ("timm", "transformers")  # the peer libraries whose folders `mmcore.interop` writes and reads


def recipes_in(package: str) -> list[tuple[str, Path]]:
    """(name, path) of each ``recipes/*.yaml`` beside ``package``'s ``__init__.py``, by name: a plugin's
    ``register_recipes`` hook passes them on (``for name, path in recipes_in(__name__): register(name, path)``)."""
    folder = Path(sys.modules[package].__file__).parent / "recipes"
    return [(path.stem, path) for path in sorted(folder.glob("*.yaml"))]


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    registered: dict[str, dict[Any, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def summary(self) -> dict[str, Any]:
        r = self.registered
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": "broken" if self.error else "ok",
            "error": self.error,
            "modalities": sorted(r["modalities"]),
            "masking_policies": sorted(f"{m}:{p}" for m, p in r["policies"]),
            "targets": sorted(f"{m}:{t}" for m, t in r["targets"]),
            "datasets": sorted(f"{m}:{d}" for m, d in r["datasets"]),
            "recipes": sorted(r["recipes"]),
            "commands": sorted(r["commands"]),
            "exporters": sorted(f"{p}:{m}" for p, m in r["exporters"]),
            "importers": sorted(f"{p}:{k}" for p, k in r["importers"]),
        }


class Registry:
    """Everything the loaded plugins registered, keyed by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("mmcore")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.owner: dict[tuple[str, Any], str] = {}  # (kind, key) -> plugin name
        self.items: dict[str, dict[Any, Any]] = {k: {} for k in KINDS}
        for name, path in recipes_in("mmcore"):  # recipes that span plugins (joint models) ship with the core
            self.items["recipes"][name] = str(path)
            self.owner[("recipes", name)] = "mmcore"

    # -- loading ---------------------------------------------------------
    def load_entry_points(self) -> None:
        wanted = os.environ.get("MMCORE_LOAD_PLUGINS")
        allow = None if wanted is None else {w.strip() for w in wanted.split(",") if w.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else None
            if allow is not None and ep.name not in allow and dist not in allow:
                continue
            info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else None)
            try:
                module = ep.load()
            except Exception as exc:  # any import failure must not take the others down
                self._broken(info, f"import failed: {_one_line(exc)}")
                continue
            self.add_plugin(module, info)

    def add_plugin(self, plugin: object, info: PluginInfo | str) -> PluginInfo:
        """Register one plugin object (a module or any object with hookimpls)."""
        info = PluginInfo(info) if isinstance(info, str) else info
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except Exception as exc:
            self._unregister(info.name)
            return self._broken(info, f"invalid hooks: {_one_line(exc)}")
        staged: dict[str, dict[Any, Any]] = {k: {} for k in KINDS}
        for hook_name in HOOKS:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue
                try:
                    impl.function(**_callback_args(impl, hook_name, staged, self, info.name))
                except Exception as exc:
                    self._unregister(info.name)
                    return self._broken(info, f"hook {hook_name} failed: {_one_line(exc)}", exc)
        for kind, entries in staged.items():
            for key, value in entries.items():
                self.items[kind][key] = value
                self.owner.setdefault((kind, key), info.name)  # a shared command stays with its first plugin
        info.registered = staged
        self.plugins[info.name] = info
        return info

    def _unregister(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)

    def _broken(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> PluginInfo:
        info.error = message
        if exc is not None and os.environ.get("MMCORE_DEBUG"):
            traceback.print_exception(exc)
        self.plugins[info.name] = info
        return info

    # -- lookups with errors that list the choices -------------------------
    def modality(self, name: str) -> Modality:
        return self._get("modalities", name, f"modality {name!r}")

    def policy(self, modality: str, name: str) -> type:
        return self._get("policies", (modality, name), f"masking policy {name!r} for modality {modality!r}")

    def target(self, modality: str, name: str) -> type:
        return self._get("targets", (modality, name), f"target {name!r} for modality {modality!r}")

    def dataset(self, modality: str, name: str) -> type:
        """A plugin's dataset, or the core's streamed ``hf`` / ``webdataset`` for a modality with ``from_record``."""
        if (modality, name) not in self.items["datasets"] and name in STREAMED and self.streams(modality):
            return stream_dataset(name, modality)
        return self._get("datasets", (modality, name), f"dataset {name!r} for modality {modality!r}")

    def streams(self, modality: str) -> bool:
        found = self.items["modalities"].get(modality)
        return found is not None and found.from_record is not None

    def recipe(self, name: str) -> str:
        return self._get("recipes", name, f"recipe {name!r}")

    def command(self, name: str) -> Command:
        return self._get("commands", name, f"command {name!r}")

    def commands(self) -> list[Command]:
        """The registered ``mm`` subcommands, by name."""
        return [self.items["commands"][name] for name in self.names("commands")]

    def exporter(self, peer: str, modality: str) -> Callable | None:
        """A plugin's export of ``modality`` models to ``peer``, or None: `mmcore.interop` then uses its own
        paths or refuses with the reason (`mmcore.interop.NoExactPeer`), not an unknown-name error."""
        return self.items["exporters"].get((peer, modality))

    def importer(self, peer: str, kind: Any) -> Callable | None:
        """A plugin's import of ``peer`` folders of ``kind`` (transformers: config.json's ``model_type``), or None.
        ``kind`` comes from a stranger's file: anything but a string is no kind."""
        return self.items["importers"].get((peer, kind)) if isinstance(kind, str) else None

    def names(self, kind: str, modality: str | None = None) -> list[str]:
        keys = self.items[kind]
        if modality is None:
            return sorted(str(k) for k in keys)
        extra = STREAMED if kind == "datasets" and self.streams(modality) else ()
        return sorted({k[1] for k in keys if k[0] == modality} | set(extra))

    def _get(self, kind: str, key: Any, what: str) -> Any:
        if key in self.items[kind]:
            return self.items[kind][key]
        modality = key[0] if isinstance(key, tuple) else None
        known = ", ".join(self.names(kind, modality)) or "none"
        hint = ""
        broken = [p for p in self.plugins.values() if p.error]
        if broken:
            hint = "; broken plugins: " + ", ".join(f"{p.name} ({p.error})" for p in broken)
        elif kind == "modalities" and install_hint(f"mm-{key}"):
            hint = f"; install its plugin, e.g. {install_hint(f'mm-{key}')}"
        raise PluginError(f"unknown {what}; available: {known}{hint}")


def _callback_args(impl, hook_name: str, staged: dict, registry: Registry, plugin: str) -> dict[str, Any]:
    """Build the ``register`` callback for one hook of one plugin."""

    def put(kind: str, key: Any, value: Any) -> None:
        if kind == "commands" and value in (registry.items[kind].get(key), staged[kind].get(key)):
            staged[kind][key] = value  # the same Command object offered again: shared, not a clash
            return
        other = registry.owner.get((kind, key))
        if other is not None or key in staged[kind]:
            raise PluginError(f"{kind[:-1]} {key!r} is already registered by plugin {other or plugin!r}")
        staged[kind][key] = value

    def peers(peer: str, modality: str, export: Callable | None = None, kind: Any = None, import_: Callable | None = None) -> None:
        if peer not in PEERS:
            raise PluginError(f"unknown peer library {peer!r}; accepted: {', '.join(PEERS)}")
        if (kind is None) != (import_ is None) or (import_ is not None and peer != "transformers"):
            raise PluginError("import_ needs a kind, config.json's model_type, which only transformers folders have")
        if export is not None:
            put("exporters", (peer, modality), export)
        if import_ is not None:
            put("importers", (peer, kind), import_)

    if hook_name == "register_peers":
        register = peers
    elif hook_name == "register_modalities":
        register = lambda modality: put("modalities", modality.name, modality)  # noqa: E731
    elif hook_name == "register_recipes":
        register = lambda name, path: put("recipes", name, str(path))  # noqa: E731
    elif hook_name == "register_commands":
        register = lambda command: put("commands", check_command(command), command)  # noqa: E731
    else:
        kind = {"register_masking_policies": "policies", "register_targets": "targets", "register_datasets": "datasets"}[hook_name]
        register = lambda modality, name, cls: put(kind, (modality, name), cls)  # noqa: E731
    return {name: register for name in impl.argnames if name == "register"}


DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508


def install_hint(dist: Any, version: Any = None, upgrade: bool = False) -> str | None:
    """``pip install 'dist>=version'``, or None unless ``dist`` is a valid distribution name and ``version``
    a valid version: names come from config.json files written by strangers, and a shown command gets pasted."""
    if not (isinstance(dist, str) and DIST_NAME.fullmatch(dist)):
        return None
    if version is not None:
        try:
            Version(str(version))
        except InvalidVersion:
            return None
        if str(version) != "".join(str(version).split()):  # Version() allows surrounding whitespace, pip lines not
            return None
    spec = dist if version is None else f"'{dist}>={version}'"
    return f"pip install {'-U ' if upgrade else ''}{spec}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use (lazy and idempotent)."""
    global _registry
    if _registry is None:
        _registry = Registry()
        _registry.load_entry_points()
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins (tests, or after installing a plugin in-process)."""
    global _registry
    _registry = None
