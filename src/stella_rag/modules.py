"""sentence-transformers modules that stella-rag adds (loaded by name from a model's modules.json).

:class:`LastTurnPooling` pools only the tokens of a chat's last turn, read in the context of the
whole chat: the transformer sees every turn (so "it" and "and the price?" are resolved against
the history), but the vector is the mean of the last turn's token vectors, not of the whole
chat. This is how the dialogue encoders trained by ``stella-rag train-dialogue`` pool (the
CQE idea: contextualised query embeddings, Lin et al., 2021). It needs sentence-transformers 5 or
later, and ``stella_rag`` importable wherever the model is loaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

try:
    from sentence_transformers.sentence_transformer.modules import Pooling
except ImportError:  # sentence-transformers 5
    from sentence_transformers.models import Pooling  # type: ignore[no-redef]

__all__ = ["LastTurnPooling", "last_turn_mask"]


def last_turn_mask(input_ids: Tensor, attention_mask: Tensor, separator: list[int]) -> Tensor:
    """The attention mask cut to the tokens after the last turn separator.

    A separator ending at the text's final token (BERT's closing ``[SEP]`` has the separator's
    own id) does not count. A text without a separator keeps its whole mask. Written with
    shape-free tensor operations only, so that ONNX export (``backend="onnx-int8"``) traces it
    for any sequence length.
    """
    k = len(separator)
    if k == 0:
        return attention_mask
    positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1
    match = torch.ones_like(input_ids)
    for j, token in enumerate(separator):
        same = (input_ids[:, j:] == token).to(input_ids.dtype)
        match = match * torch.nn.functional.pad(same, (0, j), value=0)
    lengths = attention_mask.sum(dim=1, keepdim=True).to(positions.dtype)
    # A separator counts only if it ends before the last real token.
    match = match * (positions + k <= lengths - 1).to(match.dtype)
    last = torch.where(match > 0, positions, torch.full_like(positions, -1)).max(dim=1).values
    start = torch.where(last >= 0, last + k, torch.zeros_like(last))
    return attention_mask * (positions >= start.unsqueeze(1)).to(attention_mask.dtype)


class LastTurnPooling(Pooling):
    """Mean pooling over the last turn's tokens only (after the last separator).

    Args:
        embedding_dimension: the token embedding size (as for ``Pooling``).
        pooling_mode: as for ``Pooling`` (``"mean"``).
        include_prompt: as for ``Pooling``.
        separator_ids: the token ids of the turn separator (``"[SEP]"``) in the model's
            tokenizer, e.g. ``[102]`` for BERT.
    """

    config_keys = [*Pooling.config_keys, "separator_ids"]  # noqa: RUF012  (as in Pooling)

    def __init__(
        self,
        embedding_dimension: int,
        pooling_mode: Any = "mean",
        include_prompt: bool = True,
        separator_ids: list[int] | None = None,
    ) -> None:
        super().__init__(
            embedding_dimension, pooling_mode=pooling_mode, include_prompt=include_prompt
        )
        self.separator_ids = [int(i) for i in (separator_ids or [])]

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "input_ids" in features and "attention_mask" in features and self.separator_ids:
            features = dict(features)
            features["attention_mask"] = last_turn_mask(
                features["input_ids"], features["attention_mask"], self.separator_ids
            )
        return super().forward(features, **kwargs)

    @classmethod
    def from_pooling(cls, pooling: Any, tokenizer: Any, separator: str) -> LastTurnPooling:
        """A last-turn pooling with the settings of ``pooling`` and the ids of ``separator``."""
        ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
        return cls(
            pooling.embedding_dimension,
            pooling_mode=pooling.pooling_mode,
            include_prompt=pooling.include_prompt,
            separator_ids=list(ids),
        )
