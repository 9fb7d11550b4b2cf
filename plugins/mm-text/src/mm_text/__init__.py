"""mm-text: the text modality for mmcore (BERT, whole-word, span and masked-diffusion training).

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules. Embedder, head,
target and the BERT/span/diffusion policies are the discrete-token parts of
`mmcore.discrete`, shared with other discrete modalities.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.discrete import FILL_COMMAND, BertMasking, DiffusionMasking, SpanMasking, TokenEmbedder, TokenIdTarget, VocabHead
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import DigitWords, TextDemo, TextFiles, demo_paragraphs, from_record
from .masking import WholeWordMasking
from .tokenizer import TextTokenizer

__all__ = ["DigitWords", "TextDemo", "TextFiles", "TextTokenizer", "WholeWordMasking", "demo_paragraphs"]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="text",
            tokenizer=TextTokenizer,
            embedder=TokenEmbedder,
            head=VocabHead,
            default_policy="bert",
            default_target="ids",
            style="bert",
            from_record=from_record,
            description="Text as word pieces (Hugging Face tokenizers): BERT 80/10/10, whole-word, span and "
            "masked-diffusion masking; infilling with mm fill.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("text", "bert", BertMasking)
    register("text", "whole_word", WholeWordMasking)
    register("text", "span", SpanMasking)
    register("text", "diffusion", DiffusionMasking)


@hookimpl
def register_targets(register):
    register("text", "ids", TokenIdTarget)


@hookimpl
def register_datasets(register):
    register("text", "demo", TextDemo)
    register("text", "digit-words", DigitWords)
    register("text", "files", TextFiles)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)


@hookimpl
def register_commands(register):
    register(FILL_COMMAND)  # mm fill, shared with the other discrete modalities


@hookimpl
def register_peers(register):
    from . import hf_bert  # BertForMaskedLM both ways; transformers itself is imported only on use

    register("transformers", "text", export=hf_bert.export_bert, kind=hf_bert.MODEL_TYPE, import_=hf_bert.import_bert)
