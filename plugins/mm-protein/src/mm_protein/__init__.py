"""mm-protein: the protein modality for mmcore (ESM-style masked language modelling and infilling).

Hook implementations only; the parts live in their own modules. Target and
the BERT/span/diffusion policies are the discrete-token parts of
`mmcore.discrete`, shared with other discrete modalities; the embedder and head
are those parts with the options ESM-2 weights need (`layers`).
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.discrete import FILL_COMMAND, BertMasking, DiffusionMasking, SpanMasking, TokenIdTarget
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import FastaFiles, ProteinDemo, demo_records, from_record
from .fasta import Record, parse_fasta
from .layers import ProteinEmbedder, ProteinHead
from .tokenizer import ProteinTokenizer

__all__ = ["FastaFiles", "ProteinDemo", "ProteinTokenizer", "Record", "demo_records", "parse_fasta"]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="protein",
            tokenizer=ProteinTokenizer,
            embedder=ProteinEmbedder,
            head=ProteinHead,
            default_policy="bert",
            default_target="ids",
            style="bert",
            from_record=from_record,
            description="Protein sequences in the ESM-2 alphabet: BERT 80/10/10, span and masked-diffusion masking; "
            "FASTA reader; infilling with mm fill --fasta.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("protein", "bert", BertMasking)
    register("protein", "span", SpanMasking)
    register("protein", "diffusion", DiffusionMasking)


@hookimpl
def register_targets(register):
    register("protein", "ids", TokenIdTarget)


@hookimpl
def register_datasets(register):
    register("protein", "demo", ProteinDemo)
    register("protein", "fasta", FastaFiles)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)


@hookimpl
def register_commands(register):
    register(FILL_COMMAND)  # mm fill, shared with the other discrete modalities
    from .commands import SCORE_COMMAND  # mm score: variant effects (ESM-1v scores)

    register(SCORE_COMMAND)


@hookimpl
def register_peers(register):
    from . import hf_esm  # EsmForMaskedLM (ESM-2) both ways; transformers itself is imported only on use

    register("transformers", "protein", export=hf_esm.export_esm, kind=hf_esm.MODEL_TYPE, import_=hf_esm.import_esm)
