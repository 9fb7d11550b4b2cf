"""Recipes: YAML parsed into typed dataclasses by OmegaConf.

A recipe names its modality and parts (``model.masking.name``,
``data.dataset.name``, ...); each part's options come from the dataclass its
plugin registered, so ``key=value`` overrides are checked against the real
fields: unknown keys and wrong types fail with the key, the value and the
closest valid names.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from mmcore.backbone import TransformerConfig
from mmcore.errors import ConfigError, PluginError
from mmcore.plugins import Registry, get_registry


@dataclass
class ModelConfig:
    modality: str | None = None  # one modality; or several under `modalities`
    # several modalities on one backbone: {stream: StreamConfig}; see mmcore.joint
    modalities: Any = field(default_factory=dict)
    hide_one_prob: float = 0.0  # joint models: share of batches that hide one whole modality
    input_keep_prob: float = 1.0  # ... in which each other modality is shown with this probability, else left out
    style: str | None = None  # None: the modality's default ("mae" or "bert"); "mae" for joint models
    tokenizer: Any = field(default_factory=dict)
    masking: Any = field(default_factory=dict)  # {name: ..., ratio: ..., ...}
    target: Any = field(default_factory=dict)  # {name: ..., ...}
    encoder: TransformerConfig = field(default_factory=TransformerConfig)
    decoder: TransformerConfig = field(default_factory=lambda: TransformerConfig(dim=128, depth=4, heads=4))


@dataclass
class StreamConfig:
    """One modality of a joint model (``model.modalities.<stream>``)."""

    modality: str | None = None  # the plugin's modality; None: the stream's own name
    role: str = "both"  # both (masked by its policy), input (always seen), target (always predicted)
    tokenizer: Any = field(default_factory=dict)
    masking: Any = field(default_factory=dict)
    target: Any = field(default_factory=dict)


@dataclass
class DataConfig:
    dataset: Any = field(default_factory=dict)  # {name: ..., **reader options}
    batch_size: int = 64  # per device
    num_workers: int = 0
    eval_batches: int = 4  # held-out batches scored at every log for the card


@dataclass
class TrainConfig:
    steps: int = 1000
    base_lr: float = 1.5e-4  # lr = base_lr * effective_batch / 256, as in MAE
    min_lr: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    grad_accum: int = 1
    precision: str = "auto"  # auto (bf16 where supported), bf16, fp16, no
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    picture_every: int = 0  # 0: only at the end
    compile: bool = False
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    # weight of each loss part (the modality's name, or modality/part where a loss has parts); default 1
    loss_weights: dict[str, float] = field(default_factory=dict)


@dataclass
class Recipe:
    name: str = MISSING
    description: str = ""
    output_dir: str = "runs/${name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_recipe(path: str | Path, overrides: list[str] = (), registry: Registry | None = None) -> DictConfig:
    """YAML file (or a registered recipe name) + ``key=value`` overrides → checked config."""
    registry = registry or get_registry()
    path = resolve_recipe_path(path, registry)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: expected key=value, e.g. train.steps=100")
    try:
        raw = OmegaConf.load(path)
        extra = OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse: {' '.join(str(exc).split())}") from None
    except ValueError as exc:
        raise ConfigError(f"bad override in {list(overrides)}: {exc}; expected key=value") from None
    drop_switched_parts(raw, extra)
    merged = OmegaConf.merge(raw, extra)
    if len(merged.get("model", {}).get("modalities", None) or {}) == 1:  # one entry: the single-modality model
        raw, extra = one_entry_as_single(merged), OmegaConf.create({})
        merged = raw
    schema = recipe_schema(merged, registry, path)
    return merge_checked(schema, [raw, extra], path)


def one_entry_as_single(merged: DictConfig) -> DictConfig:
    """``model.modalities`` with one entry is the single-modality recipe: same model, same folder."""
    cfg = OmegaConf.to_container(merged)
    model, data = cfg["model"], cfg.get("data", {})
    (name, entry), = model.pop("modalities").items()
    model.pop("hide_one_prob", None)
    model.pop("input_keep_prob", None)
    model.update({k: entry[k] for k in ("tokenizer", "masking", "target") if k in entry}, modality=entry.get("modality") or name)
    dataset = data.get("dataset", {})
    if "modalities" in dataset:
        data["dataset"] = dataset["modalities"].get(name, {})
    return OmegaConf.create(cfg)


NAMED_PARTS = ("model.masking", "model.target", "data.dataset")


def drop_switched_parts(raw: DictConfig, extra: DictConfig) -> None:
    """An override that names another part (``model.target.name=hog``) replaces the recipe's part
    whole: the old part's options belong to it, not to the new one, so they are dropped."""
    streams = list(OmegaConf.select(raw, "model.modalities", default=None) or {})
    keys = list(NAMED_PARTS) + [f"model.modalities.{s}.{part}" for s in streams for part in ("masking", "target")]
    keys += [f"data.dataset.modalities.{s}" for s in streams]
    for key in keys:
        new = OmegaConf.select(extra, f"{key}.name", default=None)
        old = OmegaConf.select(raw, f"{key}.name", default=None)
        if new is not None and old is not None and new != old:
            OmegaConf.update(raw, key, {}, merge=False)


def resolve_recipe_path(path: str | Path, registry: Registry) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    if p.suffix in ("", ".yaml", ".yml") and str(p.with_suffix("")) in registry.items["recipes"]:
        return Path(registry.recipe(str(p.with_suffix(""))))
    known = ", ".join(registry.names("recipes")) or "none registered"
    raise ConfigError(f"recipe {str(path)!r} is neither a file nor a registered recipe; registered: {known}")


def recipe_schema(merged: DictConfig, registry: Registry, path: Path) -> DictConfig:
    """The structured config for this recipe, with each named part's own fields."""
    model = merged.get("model", {})
    schema = OmegaConf.structured(Recipe)
    dataset = merged.get("data", {}).get("dataset", {})
    streams = model.get("modalities") or {}
    if streams:
        return joint_schema(schema, streams, dataset, registry, path)
    modality_name = model.get("modality")
    if modality_name is None:
        raise ConfigError(f"{path}: model.modality is missing; installed: {', '.join(registry.names('modalities'))} "
                          "(or model.modalities for several)")
    add_part_nodes(schema, "model", modality_name, model, registry, path)
    add_dataset_node(schema, "data.dataset", modality_name, dataset, registry, path)
    return closed(schema)


def closed(schema: DictConfig) -> DictConfig:
    """Unknown keys are errors everywhere but in free-keyed maps (``train.loss_weights``)."""
    OmegaConf.set_struct(schema, True)
    OmegaConf.set_struct(schema.train.loss_weights, False)
    return schema


def joint_schema(schema: DictConfig, streams: DictConfig, dataset: DictConfig, registry: Registry,
                 path: Path) -> DictConfig:
    """Each stream of ``model.modalities`` with its own parts; ``data.dataset`` pairs the streams' datasets."""
    from mmcore.joint_data import PairedDatasets

    OmegaConf.update(schema, "data.dataset", OmegaConf.structured(PairedDatasets), force_add=True)
    for name, entry in streams.items():
        key = f"model.modalities.{name}"
        OmegaConf.update(schema, key, OmegaConf.structured(StreamConfig), force_add=True)
        modality = (entry or {}).get("modality") or name
        add_part_nodes(schema, key, modality, entry or {}, registry, path)
        add_dataset_node(schema, f"data.dataset.modalities.{name}", modality,
                         (dataset.get("modalities") or {}).get(name) or {}, registry, path)
    return closed(schema)


def add_part_nodes(schema: DictConfig, prefix: str, modality_name: str, node: Any, registry: Registry,
                   path: Path) -> None:
    """``<prefix>.tokenizer``, ``.masking`` and ``.target`` typed by the classes the modality's plugins registered."""
    try:
        modality = registry.modality(modality_name)
    except PluginError as exc:
        raise ConfigError(f"{path}: {prefix}.modality: {exc}") from None
    parts = {
        f"{prefix}.tokenizer": (modality.tokenizer, None),
        f"{prefix}.masking": (registry.policy, (node.get("masking") or {}).get("name", modality.default_policy)),
        f"{prefix}.target": (registry.target, (node.get("target") or {}).get("name", modality.default_target)),
    }
    for key, (lookup, name) in parts.items():
        try:
            cls = lookup if name is None else lookup(modality_name, name)
        except PluginError as exc:
            raise ConfigError(f"{path}: {key}.name: {exc}") from None
        OmegaConf.update(schema, key, OmegaConf.structured(cls if name is None else _with_name(cls, name)), force_add=True)


def add_dataset_node(schema: DictConfig, key: str, modality_name: str, node: Any, registry: Registry, path: Path) -> None:
    name = (node or {}).get("name")
    if name is None:
        raise ConfigError(f"{path}: {key}.name is missing; available: {', '.join(registry.names('datasets', modality_name))}")
    try:
        cls = registry.dataset(modality_name, name)
    except PluginError as exc:
        raise ConfigError(f"{path}: {key}.name: {exc}") from None
    OmegaConf.update(schema, key, OmegaConf.structured(_with_name(cls, name)), force_add=True)


def merge_checked(schema: DictConfig, configs: list[DictConfig], path: Path) -> DictConfig:
    """Merge onto the schema; report an unknown key, a bad value or a missing one by name."""
    try:
        cfg = OmegaConf.merge(schema, *configs)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{path}: required key(s) not set: {', '.join(missing)}")
        OmegaConf.resolve(cfg)
        return cfg
    except ConfigKeyError as exc:
        key = exc.full_key or str(exc.key)
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        node = OmegaConf.select(schema, parent) if parent else schema
        valid = list(node.keys()) if isinstance(node, DictConfig) else []
        close = difflib.get_close_matches(str(exc.key), valid, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{path}: unknown key {key!r}{hint} valid keys here: {', '.join(map(str, valid))}") from None
    except ValidationError as exc:
        expected = _expected_type(schema, exc.full_key)
        raise ConfigError(f"{path}: {exc.full_key}: got {exc.value!r}, expected {expected}") from None
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{path}: required key {exc.full_key} is not set") from None


def model_dict(cfg: DictConfig) -> dict[str, Any]:
    """The model section as the plain dict the model and config.json take: the single-modality keys,
    or (several modalities) ``modalities`` with each stream's ``modality`` filled in."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    streams = model.pop("modalities") or {}
    mixture = {k: model.pop(k) for k in ("hide_one_prob", "input_keep_prob")}
    if not streams:
        return model
    for name, entry in streams.items():
        entry["modality"] = entry.get("modality") or name
    return {"modalities": streams, "style": model.get("style") or "mae", **mixture,
            "encoder": model["encoder"], "decoder": model["decoder"]}


def is_joint(cfg: DictConfig) -> bool:
    return bool(cfg.model.get("modalities"))


def _with_name(cls: type, name: str) -> type:
    """The part's dataclass plus its registered ``name`` field, for the schema."""
    hints = typing.get_type_hints(cls)
    fields = [(f.name, hints[f.name], _copy_field(f)) for f in dataclasses.fields(cls) if f.init]
    return dataclasses.make_dataclass(f"{cls.__name__}Options", [("name", str, field(default=name)), *fields])


def _copy_field(f: dataclasses.Field) -> dataclasses.Field:
    if f.default is not dataclasses.MISSING:
        return field(default=f.default)
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory)
    return field(default=MISSING)


def _expected_type(schema: DictConfig, key: str | None) -> str:
    if not key:
        return "a value of the declared type"
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(schema, parent) if parent else schema
    try:
        t = OmegaConf.get_type(node, leaf) if node is not None else None
        ref = node._get_node(leaf)._metadata.ref_type if node is not None else None
    except Exception:
        t, ref = None, None
    shown = getattr(ref, "__name__", None) or str(ref or t or "?")
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(shown, shown)
