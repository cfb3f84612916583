"""Which general model a dialogue model belongs with, recorded beside a trained model.

A dialogue model is trained to put a chat where the general model puts the rewrite of its last
turn (Stella card, 4.3), so its vectors only mean something next to that general model's
document vectors. ``stella-rag train-dialogue`` writes :data:`METADATA_FILE` into the model
folder; :class:`~stella_rag.DialogueEncoder` reads it to pair itself with the right general
model and to format chats exactly as in training.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._errors import EncoderMismatchError

__all__ = [
    "METADATA_FILE",
    "DialogueModelInfo",
    "only_installed_code",
    "read_info",
    "weights_fingerprint",
]

METADATA_FILE = "stella_rag_dialogue.json"
FORMAT = "stella-rag-dialogue/1"


@dataclass(frozen=True)
class DialogueModelInfo:
    """What a trained dialogue model needs to be used as it was trained.

    Attributes:
        general_model: the general model's id (hub id, or the folder it was loaded from).
        general_fingerprint: a SHA-256 over the general model's weights (see
            :func:`weights_fingerprint`), so a copy of the same model in another folder pairs too.
        roles: the role labels written before each turn.
        separator: the text between turns.
        max_tokens: the token budget of the formatted chat.
        training: a summary of the data and settings it was trained with.
    """

    general_model: str
    general_fingerprint: str
    roles: dict[str, str]
    separator: str
    max_tokens: int
    training: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def write(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / METADATA_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", "utf-8")
        return path


def read_info(folder: str | os.PathLike[str]) -> DialogueModelInfo | None:
    """The metadata of a trained dialogue model folder, or ``None`` if it has none."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}, expected {FORMAT!r}")
        return DialogueModelInfo(
            general_model=str(data["general_model"]),
            general_fingerprint=str(data["general_fingerprint"]),
            roles={str(k): str(v) for k, v in data["roles"].items()},
            separator=str(data["separator"]),
            max_tokens=int(data["max_tokens"]),
            training=dict(data.get("training") or {}),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a valid stella-rag dialogue model file ({exc})") from None


_KNOWN_MODULES = ("sentence_transformers.", "stella_rag.modules.")


def only_installed_code(folder: str | os.PathLike[str]) -> bool:
    """Whether a model folder needs no code but installed sentence-transformers and stella-rag.

    sentence-transformers asks for ``trust_remote_code`` to load any module class outside its
    own package, such as :class:`stella_rag.modules.LastTurnPooling`. That class is installed
    code, not the model's: it is safe to allow when the folder ships no Python of its own, its
    modules are all from those two packages and its transformer config maps no custom code.
    """
    root = Path(folder)
    try:
        modules = json.loads((root / "modules.json").read_text("utf-8"))
        config = json.loads((root / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if any(root.rglob("*.py")) or "auto_map" in config:
        return False
    return all(str(m.get("type", "")).startswith(_KNOWN_MODULES) for m in modules)


def weights_fingerprint(model: Any) -> str:
    """SHA-256 over a torch module's parameters and buffers, by name, in a fixed order.

    The same weights give the same fingerprint wherever the model was loaded from.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def check_pair(info: DialogueModelInfo, general: Any, dialogue_model_id: str) -> None:
    """Raise :class:`EncoderMismatchError` unless ``general`` is the model ``info`` names."""
    if general.model_id == info.general_model:
        return
    loaded = getattr(general, "_load", None)
    if loaded is not None:
        fingerprint = weights_fingerprint(loaded().model)
        if fingerprint == info.general_fingerprint:
            return
    raise EncoderMismatchError(
        f"the dialogue model {dialogue_model_id!r} was trained against the general model "
        f"{info.general_model!r}, not {general.model_id!r}; its vectors only match that model's "
        f"documents (leave general= unset to use {info.general_model!r})"
    )
