import subprocess
import sys

import stella_rag

EXPECTED_ALL = [
    "DEFAULT_MODEL",
    "DEFAULT_ROLES",
    "MODEL_ALIASES",
    "STRATEGIES",
    "AddReport",
    "ChromaStore",
    "CollectionNotFoundError",
    "ConversationalRetriever",
    "DialogueEncoder",
    "DialogueExplanation",
    "DialogueWindow",
    "EmptyDialogueError",
    "Encoder",
    "DaemonError",
    "EncoderMismatchError",
    "FileReport",
    "Hit",
    "Hits",
    "IngestReport",
    "InputFileError",
    "ModelNotAvailableError",
    "QueryStrategy",
    "SentenceEncoder",
    "SkippedFile",
    "Splitter",
    "StellaRagError",
    "StellaRagWarning",
    "StoreError",
    "StoreUnavailableError",
    "TrainingDataError",
    "TruncationWarner",
    "Turn",
    "__version__",
    "connect",
    "ingest",
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


def test_error_tree_is_drawn_complete() -> None:
    """Every error and warning stella-rag defines is in the one module, and in its diagram."""
    from stella_rag import _errors, cli

    for name in _errors.__all__:
        cls = getattr(_errors, name)
        assert name in (_errors.__doc__ or ""), name
        assert issubclass(cls, (stella_rag.StellaRagError, stella_rag.StellaRagWarning)), name
    assert issubclass(stella_rag.InputFileError, stella_rag.StellaRagError)
    assert issubclass(stella_rag.CollectionNotFoundError, stella_rag.StoreError)
    assert cli.CliError is _errors.CliError
    assert "report" in stella_rag.StoreError.__annotations__
    assert stella_rag.StoreError("x").report is None


def test_public_strategies_module() -> None:
    from stella_rag import strategies
    from stella_rag.strategies import ContextualStrategy, DialogueView, QueryStrategy

    assert issubclass(ContextualStrategy, QueryStrategy)
    assert DialogueView.__module__ == "stella_rag._strategies"
    for name in strategies.__all__:
        assert hasattr(strategies, name), name
    classes = [getattr(strategies, n) for n in strategies.__all__]
    for cls in strategies.STRATEGIES.values():  # every built-in strategy is public
        assert cls in classes, cls.__name__
