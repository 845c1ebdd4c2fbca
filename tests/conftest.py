"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Recipes run in-process with `train.torch_threads=1` (the debug configs) set torch's process-wide thread count;
    put it back after every test, so that a later bit-exact comparison of an in-process run with a subprocess run
    (e.g. tests/test_pretrain.py's resume tests) does not reduce floats over a different number of threads."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

TINY_ONNX = {"embedding_size": 32, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
             "num_hidden_layers": 3}


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


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory, tiny_tokenizer):
    """(merged LoRA classifier folder, its plain fp32 ONNX export, its fused int8 export), made once per session.

    The classifier is a tiny one with a random LoRA adapter merged in, what the fine-tuning recipe's merged/ holds.
    """
    import torch
    from peft import get_peft_model

    import albert_recipes
    from albert_recipes.lora import lora_config
    from albert_recipes.onnx_export import export_model

    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset(
        "tiny", vocab_size=len(tiny_tokenizer), num_labels=2, **TINY_ONNX
    )
    model = get_peft_model(albert_recipes.AlbertRecipesForSequenceClassification(config), lora_config("SEQ_CLS", r=4))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); make the merge change the weights
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("merged") / "merged"
    model.merge_and_unload().eval().save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    root = tmp_path_factory.mktemp("onnx")
    fp32 = export_model(folder, root / "fp32", optimize=False).output_dir
    int8 = export_model(folder, root / "int8", quantize="int8").output_dir
    return folder, fp32, int8
