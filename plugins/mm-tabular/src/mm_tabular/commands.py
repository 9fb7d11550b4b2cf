"""``mm impute``: the tabular plugin's own subcommand (registered in ``__init__``)."""

from __future__ import annotations

from mmcore.commands import Command
from mmcore.errors import MMCoreError

from .impute import impute_file


def _configure(p) -> None:
    p.add_argument("model", help="a model folder or Hub repo id (a tabular model)")
    p.add_argument("input", help="a table with missing values (CSV or parquet)")
    p.add_argument("-o", "--output", required=True, help="completed file to write (atomically); observed values are kept as they are")


def _run(args) -> None:
    from mmcore import from_pretrained

    model = from_pretrained(args.model)
    if model.modality.name != "tabular":
        raise MMCoreError(f"mm impute: {args.model} is a {model.modality.name!r} model; accepted: a tabular model")
    print(impute_file(model, args.input, args.output))


IMPUTE_COMMAND = Command(
    name="impute",
    help="fill the missing cells of a table (CSV, parquet) with a trained tabular model",
    usage="mm impute MODEL INPUT -o OUTPUT",
    configure=_configure,
    run=_run,
    examples=("mm impute runs/tabular-remask/model data.csv -o filled.csv",),
)
