import subprocess
import sys

import stella_rag

EXPECTED_ALL = [
    "DEFAULT_ROLES",
    "MODEL_ALIASES",
    "STRATEGIES",
    "AddReport",
    "ChromaStore",
    "ConversationalRetriever",
    "DialogueEncoder",
    "DialogueWindow",
    "EmptyDialogueError",
    "EncoderMismatchError",
    "Hit",
    "Hits",
    "ModelNotAvailableError",
    "QueryStrategy",
    "SentenceEncoder",
    "StellaRagError",
    "StellaRagWarning",
    "StoreError",
    "StoreUnavailableError",
    "Turn",
    "__version__",
    "connect",
    "similarity",
    "text_id",
]


def test_all() -> None:
    assert sorted(stella_rag.__all__) == sorted(EXPECTED_ALL)
    for name in stella_rag.__all__:
        assert hasattr(stella_rag, name), name


def test_import_is_light() -> None:
    """Importing the package must not import torch, chromadb or sentence-transformers."""
    code = (
        "import sys, stella_rag; "
        "heavy = [m for m in ('torch', 'chromadb', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_error_tree() -> None:
    for name in (
        "ModelNotAvailableError",
        "EncoderMismatchError",
        "EmptyDialogueError",
        "StoreError",
        "StoreUnavailableError",
    ):
        assert issubclass(getattr(stella_rag, name), stella_rag.StellaRagError)
    assert issubclass(stella_rag.EmptyDialogueError, ValueError)
    assert issubclass(stella_rag.StoreUnavailableError, stella_rag.StoreError)
