"""Recipes: YAML parsed into typed dataclasses by OmegaConf.

A recipe names its modality and parts (``model.masking.name``,
``data.dataset.name``, ...); each part's options come from the dataclass its
plugin registered, so ``key=value`` overrides are checked against the real
fields: unknown keys and wrong types fail with the key, the value and the
closest valid names. Values are then held to `BOUNDS` (and the backbone to
`MAX_PARAMS`), the same bounds a model folder's ``config.json`` is held to
(`check_model_config`), so a bad number is refused before anything is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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

from mmcore.backbone import INITS, NORM_PLACEMENTS, TransformerConfig
from mmcore.bounds import (
    Bound,
    Each,
    OneOf,
    Range,
    check_values,
    integers,
    numbers,
    shown,
)
from mmcore.errors import ConfigError, DataError, MMCoreError, PluginError
from mmcore.joint import ROLES
from mmcore.model import STYLES
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
    # MAE with encoder.class_token: the decoder reads the encoder's class-token output too (ViTMAE's decoder)
    decoder_reads_class_token: bool = False
    init: str = "mae"  # mae: xavier-uniform linears (the MAE reference); normal: normal(0.02) (BERT, ESM, ViTMAE)


@dataclass
class StreamConfig:
    """One modality of a joint model (``model.modalities.<stream>``)."""

    modality: str | None = None  # the plugin's modality; None: the stream's own name
    role: str = "both"  # both (masked by its policy), input (always seen), target (always predicted)
    hide_weight: float = 1.0  # odds of being the stream a hide-one batch hides entirely (model.hide_one_prob)
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
    epochs: float = 0.0  # > 0: passes over the training samples, replacing steps (one budget for any table size)
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
    keep_checkpoints: int = 2  # 0 keeps every one
    max_nonfinite_steps: int = 20  # stop after this many consecutive steps with a non-finite loss or gradient
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


# -- bounds: what each number accepts, in a recipe and in config.json alike ----------

BOUNDS: dict[type, dict[str, Bound]] = {
    TrainConfig: {
        "steps": integers(1),
        "epochs": numbers(0),
        "grad_accum": integers(1),
        "warmup_steps": integers(0),
        "base_lr": numbers(0),
        "min_lr": numbers(0),
        "weight_decay": numbers(0),
        "grad_clip": numbers(0),  # 0: off; a negative norm would flip every gradient
        "betas": Range(0, 1, high_open=True, count=2),
        "seed": integers(0, 2**32 - 1),  # numpy's range: accelerate's set_seed seeds numpy too
        "log_every": integers(1),
        "checkpoint_every": integers(1),
        "keep_checkpoints": integers(0),
        "max_nonfinite_steps": integers(1),
        "picture_every": integers(0),
        "precision": OneOf(("auto", "bf16", "fp16", "no")),
        "loss_weights": Each(numbers(0)),
    },
    DataConfig: {"batch_size": integers(1), "num_workers": integers(0), "eval_batches": integers(1)},
    ModelConfig: {
        "hide_one_prob": numbers(0, 1),
        "input_keep_prob": numbers(0, 1),
        "style": OneOf((None, *STYLES)),
        "init": OneOf(INITS),
    },
    StreamConfig: {"role": OneOf(ROLES), "hide_weight": numbers(0)},
    # depth 0: no blocks, the final norm alone; the upper bounds keep building the blocks quick
    TransformerConfig: {
        "dim": integers(1, 65536),
        "depth": integers(0, 1024),
        "heads": integers(1, 1024),
        "mlp_ratio": numbers(0, 64, low_open=True),
        "norm_eps": numbers(0, 1, low_open=True),
        "norm_placement": OneOf(NORM_PLACEMENTS),
        "rotary_base": numbers(1, low_open=True),
        "dropout": numbers(0, 1, high_open=True),
    },
}
MAX_PARAMS = 20_000_000_000  # encoder + decoder: 80 GB of float32 weights, far beyond any recipe here
SECTIONS = ("model", "data", "train")  # mappings that may be left out but not null; the parts may be null
PART_SECTIONS = ("modalities", "tokenizer", "masking", "target", "encoder", "decoder")
SOURCES = ("parts", "plugins")  # config.json's record of the plugins behind a model, not model options


def load_recipe(path: str | Path, overrides: list[str] = (), registry: Registry | None = None) -> DictConfig:
    """YAML file (or a registered recipe name) + ``key=value`` overrides → config checked for types and bounds."""
    registry = registry or get_registry()
    path = resolve_recipe_path(path, registry)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: expected key=value, e.g. train.steps=100")
    try:
        raw = OmegaConf.load(path)
        extra = OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError, OSError) as exc:
        raise ConfigError(f"{path}: cannot parse: {' '.join(str(exc).split())}; accepted: a YAML mapping") from None
    except ValueError as exc:
        raise ConfigError(f"bad override in {list(overrides)}: {exc}; expected key=value") from None
    try:
        check_sections(raw, path)
        check_sections(extra, "the overrides")
        drop_switched_parts(raw, extra)
        one_budget(raw, extra, path)
        merged = OmegaConf.merge(raw, extra)
        check_sections(merged, path)
        if len((merged.get("model") or {}).get("modalities", None) or {}) == 1:  # one entry: the single model
            raw, extra = one_entry_as_single(merged), OmegaConf.create({})
            merged = raw
        schema = recipe_schema(merged, registry, path)
        cfg = merge_checked(schema, [raw, extra], path)
    except (OmegaConfBaseException, RecursionError) as exc:  # e.g. name: ${name}
        key = getattr(exc, "full_key", None) or "an interpolation"
        raise ConfigError(
            f"{path}: {key}: cannot resolve: {(str(exc).splitlines() or ['?'])[0]}; accepted: a value, "
            "or ${other.key} naming a key that does not lead back to this one"
        ) from None
    check_recipe_values(cfg, registry, path)
    return cfg


def check_sections(cfg: Any, path: Path | str) -> None:
    """The recipe and its sections are mappings: ``model: null`` or a list is one line, not an AttributeError."""

    def fail(key: str, found: str, accepted: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: got {found}; accepted: {accepted}")

    if not isinstance(cfg, DictConfig):
        raise fail("top level", shown(cfg), "a mapping of name, description, output_dir, model, data, train")
    check_mappings(cfg, [*SECTIONS, "data.dataset", "train.loss_weights"], fail, required=SECTIONS)
    if isinstance(cfg.get("model"), DictConfig):
        check_model_mappings(cfg.model, "model.", fail)


def check_model_mappings(model: DictConfig, prefix: str, fail, required=()) -> None:
    """The model's parts, its streams and theirs are mappings (a part not ``required`` may be null: its defaults)."""
    check_mappings(model, PART_SECTIONS, fail, prefix, required)
    streams = model.get("modalities")
    for name in streams if isinstance(streams, DictConfig) else ():
        check_mappings(streams, [name], fail, f"{prefix}modalities.", required=[name])
        check_mappings(streams[name], ("tokenizer", "masking", "target"), fail, f"{prefix}modalities.{name}.")


def check_mappings(node: DictConfig, keys, fail, prefix: str = "", required=()) -> None:
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        owner = OmegaConf.select(node, parent, default=None) if parent else node
        if not isinstance(owner, DictConfig) or leaf not in owner:
            continue  # left out, or under a parent refused before
        value = owner[leaf]
        if (key in required and value is None) or not (value is None or isinstance(value, DictConfig)):
            raise fail(f"{prefix}{key}", shown(value), "a mapping of its options")


def check_recipe_values(cfg: DictConfig, registry: Registry, path: Path) -> None:
    """Every bound of `BOUNDS`, the backbone's shape and size, the trackers, and the masking policies' own checks."""

    def fail(key: str, found: str, accepted: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: got {found}; accepted: {accepted}")

    check_values(cfg, BOUNDS, fail)
    check_backbone(cfg.model, fail, "model.")
    check_trackers(list(cfg.train.trackers), path)
    for key, part, build in option_parts(cfg, registry):
        try:  # each part checks its own options when built (a ratio in range, a patch dividing the image):
            build()  # cheap, no weights and no data read; so mm validate refuses what mm train would
        except MMCoreError as exc:
            raise ConfigError(f"{path}: {key}{part}: {exc}") from None
        except (TypeError, ValueError, LookupError, ArithmeticError, AssertionError) as exc:  # still one line
            raise ConfigError(f"{path}: {key}{part}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None


def option_parts(cfg: DictConfig, registry: Registry) -> list[tuple[str, str, Callable[[], Any]]]:
    """(key prefix, part, build) for each tokenizer, masking policy, target and dataset of the recipe."""

    def builder(lookup: Callable[..., type], modality: str, node: DictConfig) -> Callable[[], Any]:
        options = OmegaConf.to_container(node, resolve=True)
        name = options.pop("name", None)
        return lambda: (lookup() if name is None else lookup(modality, name))(**options)

    streams = cfg.data.dataset.get("modalities") or {}
    found = []
    for key, (modality, node) in model_parts(cfg.model, "model.").items():
        tokenizer = registry.modality(modality).tokenizer
        found += [
            (key, "tokenizer", builder(lambda t=tokenizer: t, modality, node.tokenizer)),
            (key, "masking", builder(registry.policy, modality, node.masking)),
            (key, "target", builder(registry.target, modality, node.target)),
        ]
        stream = key.removeprefix("model.modalities.").rstrip(".")
        dataset = streams.get(stream) if streams else (cfg.data.dataset if key == "model." else None)
        if dataset is not None:
            prefix = f"data.dataset.modalities.{stream}." if streams else "data."
            found.append((prefix, "dataset", builder(registry.dataset, modality, dataset)))
    return found


def check_backbone(model: DictConfig, fail, prefix: str) -> None:
    """Heads dividing the width, and a size that fits: both known before a weight exists."""
    total = 0
    for part in ("encoder", "decoder"):
        t = TransformerConfig(**OmegaConf.to_container(model[part]))
        if t.dim % t.heads:
            near = min((h for h in range(1, t.dim + 1) if t.dim % h == 0), key=lambda h: (abs(h - t.heads), -h))
            raise fail(f"{prefix}{part}.heads", t.heads, f"a divisor of {prefix}{part}.dim {t.dim}, e.g. {near}")
        if t.rotary and (t.dim // t.heads) % 2:
            raise fail(
                f"{prefix}{part}.heads",
                t.heads,
                f"with {prefix}{part}.rotary, heads giving an even head "
                f"width ({prefix}{part}.dim {t.dim} / heads): rotary turns pairs of channels",
            )
        if t.rotary and style_of(model) == "mae":  # MAE routes visible tokens first: rows are not positions
            raise fail(
                f"{prefix}{part}.rotary",
                "true",
                "false with the MAE style and joint models (rotary "
                "positions follow each token's row, which MAE reorders); model.style=bert keeps the order",
            )
        total += t.num_params()
    if total > MAX_PARAMS:
        raise fail(
            f"{prefix}encoder + {prefix}decoder",
            f"{total:.3g} parameters ({total * 4 / 1e9:.3g} GB of float32 weights)",
            f"at most {MAX_PARAMS:.0e} parameters",
        )


def style_of(model: DictConfig) -> str | None:
    """The style a model section trains in: its own, "mae" for several modalities, else its modality's default."""
    if model.get("modalities"):
        return "mae"
    if model.get("style"):
        return model.style
    try:
        return get_registry().modality(model.get("modality") or "?").style
    except MMCoreError:
        return None


def check_trackers(names: list[str], path: Path) -> None:
    """Accelerate's tracker names; one that is not installed is refused here (accelerate would drop it, warning)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    installed = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS and name != "all":
            raise ConfigError(
                f"{path}: train.trackers: got {name!r}; accepted: {', '.join(sorted(LOGGER_TYPE_TO_CLASS))}, all, or [] for none"
            )
        if name != "all" and name not in installed:
            rest = ",".join(n for n in names if n != name)
            raise ConfigError(
                f"{path}: train.trackers: got {name!r}, which is not installed; accepted: an installed "
                f"one ({', '.join(sorted(installed)) or 'none'}; pip install {name} adds it), or "
                f"train.trackers=[{rest}]"
            )


def model_parts(model: DictConfig, prefix: str) -> dict[str, tuple[str, DictConfig]]:
    """{key prefix: (modality, node)} of the single modality or of each stream."""
    streams = model.get("modalities") or {}
    if not streams:
        return {prefix: (model.modality, model)}
    return {f"{prefix}modalities.{s}.": (entry.modality or s, entry) for s, entry in streams.items()}


def one_entry_as_single(merged: DictConfig) -> DictConfig:
    """``model.modalities`` with one entry is the single-modality recipe: same model, same folder."""
    cfg = OmegaConf.to_container(merged)
    model, data = cfg["model"], cfg.get("data", {})
    ((name, entry),) = model.pop("modalities").items()
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


def one_budget(raw: DictConfig, extra: DictConfig, path: Path) -> None:
    """``train.steps`` and ``train.epochs`` are one budget: an override of either replaces the recipe's
    (``train.steps=300`` on a recipe counting epochs trains 300 steps); one layer giving both is an error."""
    for layer, where in ((raw, path), (extra, "the overrides")):
        if OmegaConf.select(layer, "train.steps", default=None) is not None and OmegaConf.select(layer, "train.epochs", default=0):
            raise ConfigError(f"{where}: train.steps and train.epochs are both given; give one (train.epochs: 0 lets train.steps decide)")
    if OmegaConf.select(extra, "train.steps", default=None) is not None and OmegaConf.select(raw, "train.epochs", default=0):
        OmegaConf.update(raw, "train.epochs", 0.0, merge=False)


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
    schema = OmegaConf.structured(Recipe)
    dataset = (merged.get("data") or {}).get("dataset") or {}
    modalities = add_model_parts(schema, "model.", merged.get("model") or {}, registry, path)
    if None in modalities:
        add_dataset_node(schema, "data.dataset", modalities[None], dataset, registry, path)
    else:  # several modalities: ``data.dataset`` pairs the streams' datasets
        from mmcore.joint_data import PairedDatasets

        OmegaConf.update(schema, "data.dataset", OmegaConf.structured(PairedDatasets), force_add=True)
        for name, modality in modalities.items():
            add_dataset_node(
                schema, f"data.dataset.modalities.{name}", modality, (dataset.get("modalities") or {}).get(name) or {}, registry, path
            )
    OmegaConf.set_struct(schema, True)  # unknown keys are errors everywhere but in free-keyed maps
    OmegaConf.set_struct(schema.train.loss_weights, False)
    return schema


def add_model_parts(schema: DictConfig, prefix: str, model: Any, registry: Registry, path: Path | str) -> dict:
    """Type the model's parts, or each stream's of ``modalities``; returns {stream (None: the one modality): modality}."""
    streams = model.get("modalities") or {}
    if not streams:
        modality_name = model.get("modality")
        if modality_name is None:
            raise ConfigError(
                f"{path}: {prefix}modality is missing; installed: "
                f"{', '.join(registry.names('modalities'))} (or {prefix}modalities for several)"
            )
        add_part_nodes(schema, prefix, modality_name, model, registry, path)
        return {None: modality_name}
    found = {}
    for name, entry in streams.items():
        key = f"{prefix}modalities.{name}"
        OmegaConf.update(schema, key, OmegaConf.structured(StreamConfig), force_add=True)
        found[name] = (entry or {}).get("modality") or name
        add_part_nodes(schema, f"{key}.", found[name], entry or {}, registry, path)
    return found


def add_part_nodes(schema: DictConfig, prefix: str, modality_name: str, node: Any, registry: Registry, path: Path | str) -> None:
    """``<prefix>tokenizer``, ``masking`` and ``target`` typed by the classes the modality's plugins registered."""
    try:
        modality = registry.modality(modality_name)
    except PluginError as exc:
        raise ConfigError(f"{path}: {prefix}modality: {exc}") from None
    parts = {
        f"{prefix}tokenizer": (modality.tokenizer, None),
        f"{prefix}masking": (registry.policy, (node.get("masking") or {}).get("name", modality.default_policy)),
        f"{prefix}target": (registry.target, (node.get("target") or {}).get("name", modality.default_target)),
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


def merge_checked(schema: DictConfig, configs: list[DictConfig], path: Path | str, resolve: bool = True) -> DictConfig:
    """Merge onto the schema; report an unknown key, a bad value or a missing one by name."""
    try:
        cfg = OmegaConf.merge(schema, *configs)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{path}: required key(s) not set: {', '.join(missing)}")
        if resolve:
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
    return model_section(cfg.model)


# model options config.json holds only when they differ from their default, so folders written
# before an option existed keep their config.json byte for byte
WRITTEN_WHEN_SET = {"init": "mae", "decoder_reads_class_token": False}


def model_section(node: DictConfig, resolve: bool = True) -> dict[str, Any]:
    model = OmegaConf.to_container(node, resolve=resolve)
    streams = model.pop("modalities") or {}
    mixture = {k: model.pop(k) for k in ("hide_one_prob", "input_keep_prob")}
    optional = {key: value for key, default in WRITTEN_WHEN_SET.items() if (value := model.pop(key, default)) != default}
    if optional.get("decoder_reads_class_token") and streams:
        raise ConfigError("model.decoder_reads_class_token is for one modality's MAE (ViTMAE's decoder); accepted for joint models: false")
    if not streams:
        return {**model, **optional}
    for name, entry in streams.items():
        entry["modality"] = entry.get("modality") or name
    return {
        "modalities": streams,
        "style": model.get("style") or "mae",
        **mixture,
        "encoder": model["encoder"],
        "decoder": model["decoder"],
        **optional,
    }


# -- a model folder's config.json -------------------------------------------------------


def read_model_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` parsed, or one line saying why it cannot be (the Hub mixin would raise bare)."""
    import json

    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {' '.join(str(exc).split())}; accepted: the JSON object mm train writes") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: got {shown(config)}; accepted: a JSON object of model options")
    return config


def check_model_config(config: Any, source: str, registry: Registry | None = None) -> dict[str, Any]:
    """A ``config.json`` held to the recipe's schema and `BOUNDS` before any tensor is allocated.

    Returns it typed (``"128"`` → 128) with the options its parts leave out filled in. Missing or too
    old plugins stay `PluginError`s with their pip lines; anything else is a `DataError` naming ``source``.
    """
    registry = registry or get_registry()
    saved: list[str] = []  # strings OmegaConf would read as interpolations, stood in for (see shield)

    def fail(key: str, found: str, accepted: str) -> DataError:
        return DataError(restore(f"{source}: {key}: got {found}; accepted: {accepted}", saved))

    if not isinstance(config, dict):
        raise fail("top level", shown(config), "a JSON object of model options")
    joint = "modalities" in config
    required = ("modalities", "encoder", "decoder") if joint else ("modality", "masking", "target", "encoder", "decoder")
    for key in required:
        if key not in config:
            raise fail(key, "nothing", f"a config.json with {', '.join(required)} (as mm train writes it)")
    for key in SOURCES:  # their entries are checked with the plugins, by check_plugins
        if not isinstance(config.get(key, {}), dict):
            raise fail(key, shown(config[key]), "a JSON object, as mm train writes it")
    try:
        node = OmegaConf.create(shield({k: v for k, v in config.items() if k not in SOURCES}, saved))
        check_model_mappings(node, "", fail, required)
    except OmegaConfBaseException as exc:
        raise omegaconf_error(exc, source, saved) from None
    from mmcore.joint import check_joint_plugins
    from mmcore.model import check_plugins

    check_joint_plugins(config) if joint else check_plugins(config)  # PluginErrors with their pip lines
    try:
        schema = OmegaConf.structured(ModelConfig)
        add_model_parts(schema, "", node, registry, source)
        OmegaConf.set_struct(schema, True)
        cfg = merge_checked(schema, [node], source, resolve=False)
    except ConfigError as exc:
        raise DataError(restore(str(exc), saved)) from None
    except OmegaConfBaseException as exc:
        raise omegaconf_error(exc, source, saved) from None
    check_values(cfg, BOUNDS, fail)
    check_backbone(cfg, fail, "")
    return {**restore(model_section(cfg, resolve=False), saved), **{k: config[k] for k in SOURCES if k in config}}


def shield(value: Any, saved: list[str]) -> Any:
    """config.json is data, not a recipe: a string holding ``${`` (a vocabulary may) or ``???`` would be an
    interpolation or a missing value to OmegaConf, so it is stood in for while the schema checks types."""
    if isinstance(value, dict):
        return {k: shield(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [shield(v, saved) for v in value]
    if isinstance(value, str) and ("${" in value or value == "???"):
        saved.append(value)
        return f"mmcore-shielded-string-{len(saved) - 1}"
    return value


def restore(value: Any, saved: list[str]) -> Any:
    """`shield` undone, in a checked config or in an error message."""
    if isinstance(value, dict):
        return {k: restore(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [restore(v, saved) for v in value]
    if isinstance(value, str):
        for i in reversed(range(len(saved))):  # reversed: -1 is not a prefix of -10
            value = value.replace(f"mmcore-shielded-string-{i}", saved[i])
    return value


def omegaconf_error(exc: OmegaConfBaseException, source: str, saved: list[str]) -> DataError:
    return DataError(
        restore(
            f"{source}: {getattr(exc, 'full_key', None) or 'top level'}: "
            f"{(str(exc).splitlines() or ['?'])[0]}; accepted: JSON values as mm train writes them",
            saved,
        )
    )


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
