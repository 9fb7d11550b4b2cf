"""A third party's target for a shipped modality: a frozen teacher's features (data2vec, BEiT v2).

A plugin module in the test tree (registered with ``Registry.add_plugin``),
written only against the public contract: it adds the target ``teacher`` to
the ``text`` modality without touching mm-text. The target holds weights (the
teacher's embedder and encoder, loaded from a model folder), brings its own
loss, and gives no token values (features cannot be drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from mmcore import Tokens, hookimpl
from mmcore.errors import ConfigError


@dataclass(eq=False)  # eq=False keeps nn.Module's identity hash
class TeacherFeatures(nn.Module):
    """Predict, at each hidden token, the layer-normed final states a frozen teacher gives the whole input.

    path: a model folder of the same modality (its tokenizer must be the student's).
    """

    path: str = "???"

    def __post_init__(self) -> None:
        nn.Module.__init__(self)
        from mmcore import from_pretrained

        teacher = from_pretrained(self.path)
        self.teacher_vocab = getattr(teacher.tokenizer, "vocab_size", None)
        self.embedder, self.encoder = teacher.embedder, teacher.encoder

    def bind(self, tokenizer) -> None:
        if getattr(tokenizer, "vocab_size", None) != self.teacher_vocab:
            raise ConfigError(
                f"model.target.path {self.path}: the teacher's vocabulary ({self.teacher_vocab} ids) "
                f"is not the student's ({getattr(tokenizer, 'vocab_size', None)}); accepted: a teacher "
                "trained with the same tokenizer"
            )

    def dim(self, tokenizer) -> int:
        return self.encoder.config.dim

    def forward(self, tokens: Tokens) -> Tensor:
        states = self.encoder(self.embedder(tokens), tokens.valid)  # [B, N, D], nothing hidden
        return F.layer_norm(states.float(), states.shape[-1:])

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """[B, K] smooth-L1 per hidden token, in float32 (data2vec's regression loss)."""
        return F.smooth_l1_loss(pred.float(), target.float(), reduction="none").mean(dim=-1)


@hookimpl
def register_targets(register):
    register("text", "teacher", TeacherFeatures)
