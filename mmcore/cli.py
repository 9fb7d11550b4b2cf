"""The ``mm`` command. Library errors become one line on stderr, no traceback."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mmcore.errors import MMCoreError

EPILOG = """examples:
  $ mm train image-mae-demo
  $ mm train recipes/image-mae.yaml data.dataset.path=~/photos train.steps=5000
  $ accelerate launch --config_file recipes/accelerate/multi-gpu.yaml -m mmcore train image-mae
  $ mm train image-mae-demo --resume
  $ mm reconstruct runs/image-mae-demo/model cat.png -o cat-mae.png
  $ mm plugins
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except MMCoreError as exc:
        print(f"mm: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm", description="Masked modeling across modalities.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe", usage="mm train RECIPE [key=value ...] [--resume]")
    p.add_argument("recipe", help="a YAML file or a registered recipe name (mm recipes ls)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("validate", help="check a recipe and its overrides without training")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plugins", help="list plugins as JSON, broken ones with their error")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("recipes", help="list or copy the registered recipes")
    rsub = p.add_subparsers(required=True, metavar="ACTION")
    rsub.add_parser("ls", help="list registered recipes").set_defaults(func=cmd_recipes_ls)
    cp = rsub.add_parser("cp", help="copy a recipe to edit it", usage="mm recipes cp NAME DEST")
    cp.add_argument("name")
    cp.add_argument("dest")
    cp.set_defaults(func=cmd_recipes_cp)

    p = sub.add_parser("reconstruct", help="mask a file of yours and show the model's reconstruction",
                       usage="mm reconstruct MODEL INPUT -o OUT.png [--seed N]")
    p.add_argument("model", help="a model folder or Hub repo id")
    p.add_argument("input", help="a file the model's modality reads (e.g. an image)")
    p.add_argument("-o", "--output", required=True, help="picture to write (PNG)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random mask")
    p.set_defaults(func=cmd_reconstruct)
    return parser


def cmd_train(args: argparse.Namespace) -> None:
    from mmcore.config import load_recipe
    from mmcore.train import train

    train(load_recipe(args.recipe, args.overrides), resume=args.resume)


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
    batch = model.tokenizer.collate([model.modality.read_file(model.tokenizer, args.input)])
    generator = torch.Generator().manual_seed(args.seed)
    model.modality.picture(*model.reconstruct(batch, generator)).save(args.output)
    print(args.output)


if __name__ == "__main__":
    sys.exit(main())
