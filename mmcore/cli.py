"""The ``mm`` command. Library errors become one line on stderr, no traceback.

The core commands know no modality; commands that need a modality's batch
keys or files (``mm fill``, ``mm impute``) come from plugins through the
``register_commands`` hook and are added after the core ones.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
from pathlib import Path

from mmcore.errors import ConfigError, MMCoreError

EPILOG = """examples:
  $ mm train image-mae-demo
  $ mm train recipes/image-mae.yaml data.dataset.path=~/photos train.steps=5000
  $ accelerate launch --config_file recipes/accelerate/multi-gpu.yaml -m mmcore train image-mae
  $ mm train image-mae-demo --resume
  $ mm reconstruct runs/image-mae-demo/model cat.png -o cat-mae.png
  $ mm fill runs/text-mlm/model "The [MASK] statement binds a [MASK] to a value."
  $ mm impute runs/tabular-remask/model data.csv -o filled.csv
  $ mm plugins
  $ mm env                                             # versions, device and plugins, for a bug report
  $ mm new-plugin ecg                                  # a new modality plugin: mm-ecg/
  $ mm push runs/image-mae-demo you/image-mae-demo      # HF_TOKEN, HF_ENDPOINT as for every HF tool
  $ mm pull you/image-mae-demo --revision v1
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    try:
        return args.func(args) or 0
    except MMCoreError as exc:
        print(f"mm: error: {exc}", file=sys.stderr)
        return 2


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parse_args``, with ``key=value`` overrides accepted after an option too (``mm train R a=1 --resume b=2``):
    argparse ends a ``nargs="*"`` positional at the first option, and ``parse_intermixed_args`` refuses subparsers."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mm", description="Masked modeling across modalities.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = add_command(
        sub,
        "train",
        "train a recipe",
        usage="mm train RECIPE [key=value ...] [--resume | --overwrite] [--dry-run]",
        examples=[
            "mm train image-mae-demo",
            "mm train image-mae data.dataset.path=~/photos train.steps=5000",
            "mm train image-mae-demo --resume",
            "mm train image-mae-demo model.masking.name=block --dry-run",
        ],
    )
    p.add_argument("recipe", help="a YAML file or a registered recipe name (mm recipes ls)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    p.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint")
    p.add_argument(
        "--overwrite", action="store_true", help="start afresh in a folder that holds a run, moving its files into .previous/<time>/"
    )
    p.add_argument("--dry-run", action="store_true", help="check the recipe and print it resolved; train nothing")
    p.set_defaults(func=cmd_train)

    p = add_command(
        sub,
        "validate",
        "check a recipe and its overrides without training (as mm train --dry-run)",
        usage="mm validate RECIPE [key=value ...]",
        examples=["mm validate image-mae-demo train.steps=300", "mm validate my.yaml > resolved.yaml"],
    )
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_validate)

    p = add_command(
        sub,
        "plugins",
        "list plugins as JSON, broken ones with their error",
        examples=["mm plugins", "MMCORE_LOAD_PLUGINS=mm-image mm plugins"],
    )
    p.set_defaults(func=cmd_plugins)

    p = add_command(
        sub,
        "env",
        "print versions, device and plugins for a bug report",
        usage="mm env [--json]",
        examples=["mm env", "mm env --json > env.json"],
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
    p.set_defaults(func=cmd_env)

    p = add_command(
        sub,
        "new-plugin",
        "write a new modality plugin that installs, trains and passes its tests",
        usage="mm new-plugin NAME [--dest DIR]",
        examples=["mm new-plugin ecg", "mm new-plugin ecg --dest plugins"],
    )
    p.add_argument("name", help="the modality name: lowercase letters, digits, '_' (the plugin is mm-NAME)")
    p.add_argument("--dest", default=".", help="folder to create mm-NAME in (default: the current folder)")
    p.set_defaults(func=cmd_new_plugin)

    p = add_command(sub, "recipes", "list or copy the registered recipes", examples=["mm recipes ls", "mm recipes cp image-mae my.yaml"])
    rsub = p.add_subparsers(required=True, metavar="ACTION")
    add_command(rsub, "ls", "list registered recipes", examples=["mm recipes ls"]).set_defaults(func=cmd_recipes_ls)
    cp = add_command(
        rsub,
        "cp",
        "copy a recipe to edit it",
        usage="mm recipes cp NAME DEST",
        examples=["mm recipes cp image-mae my.yaml", "mm recipes cp text-mlm recipes/"],
    )
    cp.add_argument("name")
    cp.add_argument("dest")
    cp.set_defaults(func=cmd_recipes_cp)

    p = add_command(
        sub,
        "reconstruct",
        "mask a file of yours and show the model's reconstruction",
        usage="mm reconstruct MODEL INPUT -o OUT.png [--seed N] [--size H W] [--convert]",
        examples=[
            "mm reconstruct runs/image-mae-demo/model my-digit.png -o my-digit-mae.png",
            "mm reconstruct runs/image-mae/model photo.jpg -o photo-mae.png --size 224 224 --convert",
        ],
    )
    p.add_argument("model", help="a model folder or Hub repo id")
    p.add_argument("input", help="a file the model's modality reads (e.g. an image)")
    p.add_argument("-o", "--output", required=True, help="picture to write (PNG)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random mask")
    p.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), help="resize the input to H x W first (images: multiples of the patch size)"
    )
    p.add_argument("--convert", action="store_true", help="convert gray to colour or colour to gray as the model expects")
    p.set_defaults(func=cmd_reconstruct)

    add_hub_commands(sub)
    add_interop_commands(sub)
    add_plugin_commands(sub)
    return parser


def add_command(sub, name: str, help: str, examples: list[str] | tuple[str, ...], **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with command lines one can paste."""
    epilog = "examples:\n" + "\n".join(f"  $ {line}" for line in examples)
    return sub.add_parser(name, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def add_plugin_commands(sub) -> None:
    """One subcommand per command the plugins registered; ``run`` gets the parsed arguments."""
    from mmcore.plugins import get_registry

    registry = get_registry()
    for command in registry.commands():
        if command.name in sub.choices:
            plugin = registry.owner[("commands", command.name)]
            print(f"mm: warning: plugin {plugin!r} registers command {command.name!r}, a core command; skipped", file=sys.stderr)
            continue
        examples = command.examples or [command.usage or f"mm {command.name} --help"]
        p = add_command(sub, command.name, command.help, examples, usage=command.usage)
        command.configure(p)
        p.set_defaults(func=command.run)


def add_hub_commands(sub) -> None:
    """push, pull, card: sharing through the Hugging Face Hub (HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE apply)."""
    p = add_command(
        sub,
        "push",
        "upload a model folder to a Hub repo as one commit",
        usage="mm push FOLDER REPO_ID [--revision BRANCH] [--message TEXT] [--private]",
        examples=[
            "mm push runs/image-mae-demo you/image-mae-demo",
            "mm push runs/image-mae-demo you/image-mae-demo --revision v2 --message 'more steps'",
        ],
    )
    p.add_argument("folder", help="a model folder, or a run folder with model/ inside")
    p.add_argument("repo_id", help="namespace/name on the Hub")
    p.add_argument("--revision", help="branch to commit to (created from main if new); default main")
    p.add_argument("--message", help="commit message")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.set_defaults(func=cmd_push)

    p = add_command(
        sub,
        "pull",
        "download a model from the Hub (the cache when offline) and check it",
        usage="mm pull REPO_ID [--revision REV] [--local-dir DIR]",
        examples=["mm pull you/image-mae-demo", "mm pull you/image-mae-demo --revision v1 --local-dir models/mae"],
    )
    p.add_argument("repo_id")
    p.add_argument("--revision", help="branch, tag or commit; default main")
    p.add_argument("--local-dir", help="copy the folder here instead of leaving it in the HF cache")
    p.set_defaults(func=cmd_pull)

    p = add_command(
        sub,
        "card",
        "write a model folder's README.md model card again",
        usage="mm card FOLDER [--repo ID] [--license ID] [--dataset NAME] [--description TEXT]",
        examples=["mm card runs/image-mae-demo/model --repo you/image-mae-demo --license apache-2.0"],
    )
    p.add_argument("folder")
    p.add_argument("--repo", help="repo id the card's usage lines name")
    p.add_argument("--license", help="license id, e.g. apache-2.0, mit, cc-by-4.0")
    p.add_argument("--dataset", help="dataset the model was trained on")
    p.add_argument("--description", help="a paragraph under the title")
    p.set_defaults(func=cmd_card)


def add_interop_commands(sub) -> None:
    """export, import: weights to and from peer libraries, only where outputs stay equal (mmcore.interop)."""
    p = add_command(
        sub,
        "export",
        "write a model's encoder in a peer library's format, outputs checked equal",
        usage="mm export MODEL --to timm|transformers -o DIR",
        examples=[
            "mm export runs/image-mae-demo --to timm -o exports/mae-timm",
            "mm export models/bert --to transformers -o exports/bert   # BertForMaskedLM",
            "mm export models/esm2 --to transformers -o exports/esm2   # EsmForMaskedLM (ESM-2)",
            "python -c \"import timm; timm.create_model('local-dir:exports/mae-timm', pretrained=True)\"",
        ],
    )
    p.add_argument("model", help="a model folder, a run folder with model/ inside, or a Hub repo id")
    p.add_argument("--to", required=True, choices=["timm", "transformers"], help="the peer library")
    p.add_argument("-o", "--output", required=True, help="folder to create (must not exist)")
    p.set_defaults(func=cmd_export)

    p = add_command(
        sub,
        "import",
        "turn a peer library's folder into an mmcore model, outputs checked equal",
        usage="mm import DIR --from timm|transformers -o OUT",
        examples=[
            "mm import exports/vit-timm --from timm -o models/vit-mae",
            "mm import vit-mae-base --from transformers -o models/mae   # a ViTMAEForPreTraining folder",
            "mm import bert-base --from transformers -o models/bert   # a BertForMaskedLM folder",
            "mm import esm2_t6_8M_UR50D --from transformers -o models/esm2   # an EsmForMaskedLM folder",
            "mm export models/vit-mae --to timm -o exports/vit-again   # and back out, still equal",
        ],
    )
    p.add_argument(
        "folder",
        help="a timm folder (config.json with 'architecture') or a transformers ViTMAE, "
        "BertForMaskedLM or EsmForMaskedLM (ESM-2) folder, with model.safetensors",
    )
    p.add_argument("--from", dest="source", required=True, choices=["timm", "transformers"], help="the peer library")
    p.add_argument("-o", "--output", required=True, help="model folder to create (must not exist)")
    p.set_defaults(func=cmd_import)


def cmd_export(args: argparse.Namespace) -> None:
    from mmcore.interop import export_model

    folder, diff = export_model(args.model, args.to, args.output)
    print(f"exact: max abs difference {diff:.3g} between the two models' outputs on random inputs", file=sys.stderr)
    print(folder)


def cmd_import(args: argparse.Namespace) -> None:
    from mmcore.interop import import_model

    folder, diff, notes = import_model(args.folder, args.source, args.output)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"exact: max abs difference {diff:.3g} between the two models' outputs on random inputs", file=sys.stderr)
    print(folder)


def cmd_train(args: argparse.Namespace) -> None:
    if args.dry_run:
        return cmd_validate(args)
    from mmcore.config import load_recipe
    from mmcore.executor import train

    train(load_recipe(args.recipe, args.overrides), resume=args.resume, overwrite=args.overwrite)
    leave_if_launched()


def leave_if_launched() -> None:
    """A worker of ``accelerate launch`` whose run is finished and written leaves without the interpreter's
    teardown: gloo's C++ threads can still hold tensors there and abort the process ("terminate called
    without an active exception", exit -6) after a correct run, which the launcher reports as a failure."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def cmd_validate(args: argparse.Namespace) -> None:
    from omegaconf import OmegaConf

    from mmcore.config import load_recipe

    cfg = load_recipe(args.recipe, args.overrides)
    print(OmegaConf.to_yaml(cfg), end="")
    print("recipe is well-formed", file=sys.stderr)


def cmd_plugins(args: argparse.Namespace) -> None:
    from mmcore.plugins import get_registry

    plugins = get_registry().plugins.values()
    print(json.dumps([p.summary() for p in plugins], indent=2))


def cmd_env(args: argparse.Namespace) -> None:
    from mmcore.env import as_text, report

    info = report()
    print(json.dumps(info, indent=2) if args.json else as_text(info))


def cmd_new_plugin(args: argparse.Namespace) -> None:
    from mmcore.scaffold import new_plugin

    folder = new_plugin(args.name, args.dest)
    print(f"{folder}\nnext: pip install -e {folder} && mm train {args.name}-mae && pytest {folder / 'tests'}")


def cmd_recipes_ls(args: argparse.Namespace) -> None:
    from mmcore.plugins import get_registry

    registry = get_registry()
    for name in registry.names("recipes"):
        print(f"{name}\t{registry.recipe(name)}")


def cmd_recipes_cp(args: argparse.Namespace) -> None:
    from mmcore.plugins import get_registry

    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / f"{args.name}.yaml"
    shutil.copyfile(get_registry().recipe(args.name), dest)
    print(dest)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    import torch

    from mmcore import from_pretrained

    model = from_pretrained(args.model)
    if model.modality.read_file is None or model.modality.picture is None:
        raise MMCoreError(f"modality {model.modality.name!r} cannot read a single file or draw a picture")
    batch = model.tokenizer.collate([read_input(model.modality, model.tokenizer, args)])
    generator = torch.Generator().manual_seed(args.seed)
    model.modality.picture(*model.reconstruct(batch, generator)).save(args.output)
    print(args.output)


def read_input(modality, tokenizer, args: argparse.Namespace):
    """``read_file(tokenizer, path, **options)`` with the options given (--size, --convert), if its reader takes them."""
    options = {k: v for k, v in (("size", args.size), ("convert", args.convert or None)) if v is not None}
    accepted = inspect.signature(modality.read_file).parameters
    for name in options:
        if name not in accepted:
            raise ConfigError(
                f"--{name} does not apply to {modality.name!r} files: its reader has no {name!r} option; "
                f"accepted: mm reconstruct without --{name}"
            )
    return modality.read_file(tokenizer, args.input, **options)


def cmd_push(args: argparse.Namespace) -> None:
    from mmcore.hub import push

    commit = push(args.folder, args.repo_id, revision=args.revision, message=args.message, private=args.private)
    print(commit.commit_url)


def cmd_pull(args: argparse.Namespace) -> None:
    from mmcore.hub import pull

    print(pull(args.repo_id, revision=args.revision, local_dir=args.local_dir))


def cmd_card(args: argparse.Namespace) -> None:
    from mmcore.hub import write_card

    print(write_card(args.folder, args.repo, license=args.license, dataset=args.dataset, description=args.description))


if __name__ == "__main__":
    sys.exit(main())
