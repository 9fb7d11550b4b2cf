"""mm-tabular: tables for mmcore — one token per cell, ReMasker-style re-masking, imputation.

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .commands import IMPUTE_COMMAND
from .data import DemoTable, TableFile, demo_table, from_record, remove_cells
from .embedder import CellEmbedder
from .head import CellHead
from .impute import impute_file, impute_table
from .masking import RandomMasking, RemaskMasking
from .picture import table_grid
from .table_io import Table, read_table, write_table
from .target import CellTarget
from .tokenizer import TableTokenizer

__all__ = [
    "CellEmbedder",
    "CellHead",
    "CellTarget",
    "DemoTable",
    "RandomMasking",
    "RemaskMasking",
    "Table",
    "TableFile",
    "TableTokenizer",
    "demo_table",
    "impute_file",
    "impute_table",
    "read_table",
    "remove_cells",
    "table_grid",
    "write_table",
]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="tabular",
            tokenizer=TableTokenizer,
            embedder=CellEmbedder,
            head=CellHead,
            default_policy="remask",
            default_target="cells",
            style="mae",
            picture=table_grid,
            from_record=from_record,
            description="Tables, one token per cell: ReMasker re-masking (missing cells void), MSE + CE head, mm impute.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("tabular", "remask", RemaskMasking)
    register("tabular", "random", RandomMasking)


@hookimpl
def register_targets(register):
    register("tabular", "cells", CellTarget)


@hookimpl
def register_datasets(register):
    register("tabular", "demo", DemoTable)
    register("tabular", "file", TableFile)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)


@hookimpl
def register_commands(register):
    register(IMPUTE_COMMAND)
