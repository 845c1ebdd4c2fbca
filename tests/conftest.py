"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """An 800-piece ALBERT Unigram tokenizer trained once per session on the embedded corpus, loaded from disk."""
    from transformers import AutoTokenizer

    from albert_recipes.corpus import load_embedded_corpus
    from albert_recipes.tokenization import train_tokenizer_on_documents

    folder = tmp_path_factory.mktemp("tiny_tokenizer") / "tokenizer"
    train_tokenizer_on_documents(load_embedded_corpus(), vocab_size=800, show_progress=False, output_dir=folder)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def fake_hub(monkeypatch):
    """A local Hugging Face Hub test double (tests/hub_server.py) that this process's huggingface_hub talks to.

    Yields the `FakeHub`: `fake_hub.files("namespace/name", "main")` is what arrived. HF_TOKEN is a dummy token;
    a subprocess needs HF_ENDPOINT=fake_hub.url and HF_HUB_DISABLE_XET=1 in its environment instead.
    """
    from huggingface_hub import constants

    from hub_server import FakeHub

    with FakeHub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the double speaks plain LFS, not Xet
        monkeypatch.setenv("HF_TOKEN", "hf_fakeTOKENforTHEtestDOUBLE0123456789")
        yield hub
