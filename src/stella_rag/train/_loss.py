"""The training objective and the card's token dropout, as torch pieces for the trainer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DialogueDistillLoss", "TokenDropout"]


class DialogueDistillLoss(nn.Module):
    """Cosine distillation to the rewrite's vector, plus an optional in-batch contrastive term.

    ``labels`` holds, per example, three frozen general-model vectors: the rewrite (query side),
    the passage that answers it (the rewrite again when there is none) and a hard negative
    passage (zeros when there is none).

    - Distillation (Stella card 4.3, ConvDR): ``1 - cos(student(dialogue), teacher(rewrite))``.
    - Contrastive (optional, ``contrastive_weight > 0``): cross-entropy of the student's vector
      against every passage vector in the batch (positives of the other examples and the hard
      negatives), the right passage as the target. Only the student moves; the passages stay
      where the general model put them, as they are in the user's Chroma collection. Passages
      shared by several examples (augmented variants of one chat) are not counted as negatives
      of each other.

    Args:
        model: the student SentenceTransformer.
        contrastive_weight: weight of the contrastive term next to the distillation term.
        scale: inverse temperature of the contrastive logits (20, as sentence-transformers'
            MultipleNegativesRankingLoss).
    """

    def __init__(self, model: Any, *, contrastive_weight: float = 0.0, scale: float = 20.0) -> None:
        super().__init__()
        self.model = model
        self.contrastive_weight = float(contrastive_weight)
        self.scale = float(scale)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = next(iter(sentence_features))
        student = self.model(features)["sentence_embedding"]
        labels = labels.to(student.dtype)
        rewrite = labels[:, 0]
        loss = (1 - nn.functional.cosine_similarity(student, rewrite, dim=-1)).mean()
        if self.contrastive_weight > 0 and labels.shape[1] >= 2:
            q = nn.functional.normalize(student, dim=-1)
            positives = nn.functional.normalize(labels[:, 1], dim=-1)
            candidates = [positives]
            if labels.shape[1] >= 3:
                candidates.append(nn.functional.normalize(labels[:, 2], dim=-1))
            cand = torch.cat(candidates)
            logits = self.scale * q @ cand.T
            n = len(q)
            # A passage that is also this example's positive (an augmented twin) is no negative.
            same = positives @ cand.T > 0.9999
            same[torch.arange(n), torch.arange(n)] = False
            logits = logits.masked_fill(same, float("-inf"))
            target = torch.arange(n, device=logits.device)
            loss = loss + self.contrastive_weight * nn.functional.cross_entropy(logits, target)
        return loss

    @property
    def citation(self) -> str:
        return "Stella card 4.3 (cosine distillation); ConvDR, Yu et al., SIGIR 2021"


class TokenDropout:
    """The card's dropout-1d: whole token vectors dropped before mean pooling, in training only.

    Installed as a forward pre-hook on the Pooling module, so the model's saved modules are the
    plain sentence-transformers ones. A dropped token is left out of the mean (its attention
    mask set to 0) rather than zeroed, so the mean stays a mean of real token vectors. At least
    one token of each text is always kept.
    """

    def __init__(self, p: float) -> None:
        if not 0 <= p < 1:
            raise ValueError(f"token dropout must be in [0, 1), got {p!r}")
        self.p = p
        self._handle: Any = None

    def attach(self, pooling: nn.Module) -> TokenDropout:
        if self.p > 0:
            self._handle = pooling.register_forward_pre_hook(self._hook)
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not module.training or not args:
            return None
        features = dict(args[0])
        mask = features["attention_mask"]
        keep = (torch.rand(mask.shape, device=mask.device) >= self.p).to(mask.dtype)
        dropped = mask * keep
        # Keep each text's first real token if every one of its tokens was dropped.
        empty = dropped.sum(dim=1) == 0
        if bool(empty.any()):
            dropped[empty, 0] = mask[empty, 0]
        features["attention_mask"] = dropped
        return (features, *args[1:])
