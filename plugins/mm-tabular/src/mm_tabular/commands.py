"""``mm impute``: the tabular plugin's own subcommand (registered in ``__init__``)."""

from __future__ import annotations

from mmcore.commands import Command
from mmcore.errors import ConfigError, MMCoreError

from .impute import fit_on_table, impute_file


def _configure(p) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a model folder or Hub repo id, then a table with missing values (CSV or parquet); with --fit the table alone",
    )
    p.add_argument("-o", "--output", required=True, help="completed file to write (atomically); observed values are kept as they are")
    p.add_argument(
        "--fit", action="store_true", help="first train a model on the table itself (transductive, as ReMasker and scikit-learn's imputers)"
    )
    p.add_argument("--recipe", default="tabular-remask", help="with --fit: the recipe to train (default: tabular-remask)")
    p.add_argument(
        "--run-dir",
        default=None,
        help="with --fit: the run folder (default: runs/impute-<table name>); an earlier run there is moved aside",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --fit: a recipe override, e.g. --set train.steps=300 (repeatable)",
    )


def _run(args) -> None:
    from mmcore import from_pretrained

    if args.fit:
        if len(args.paths) != 1:
            raise ConfigError("mm impute --fit takes the table alone: mm impute --fit data.csv -o filled.csv")
        table = args.paths[0]
        model = fit_on_table(table, args.recipe, args.run_dir, args.set)
    else:
        if len(args.paths) != 2:
            raise ConfigError(
                "mm impute takes a model and a table: mm impute MODEL data.csv -o filled.csv "
                "(or mm impute --fit data.csv -o filled.csv to train on the table first)"
            )
        if args.set or args.run_dir:
            raise ConfigError("mm impute: --set and --run-dir go with --fit (a trained model is used as it is)")
        model, table = from_pretrained(args.paths[0]), args.paths[1]
        if model.modality.name != "tabular":
            raise MMCoreError(f"mm impute: {args.paths[0]} is a {model.modality.name!r} model; accepted: a tabular model")
    print(impute_file(model, table, args.output))


IMPUTE_COMMAND = Command(
    name="impute",
    help="fill the missing cells of a table (CSV, parquet) with a trained tabular model, or train one on it first (--fit)",
    usage="mm impute MODEL INPUT -o OUTPUT | mm impute --fit INPUT -o OUTPUT",
    configure=_configure,
    run=_run,
    examples=(
        "mm impute runs/tabular-remask/model data.csv -o filled.csv",
        "mm impute --fit data.csv -o filled.csv                      # train on data.csv itself, then fill it",
        "mm impute --fit data.csv -o filled.csv --set train.steps=300",
    ),
)
