from __future__ import annotations

import langchain_stella

EXPECTED_ALL = [
    "StellaContextMiddleware",
    "StellaDialogueRetriever",
    "StellaEmbeddings",
    "StellaTextSplitter",
    "__version__",
    "create_retrieval_node",
    "create_stella_retriever_tool",
]


def test_all_imports() -> None:
    assert sorted(langchain_stella.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert hasattr(langchain_stella, name)


def test_version_is_the_installed_distribution() -> None:
    from importlib import metadata

    assert langchain_stella.__version__ == metadata.version("langchain-stella")
