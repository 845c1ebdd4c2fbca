import json
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import datasets
import pytest
import yaml
from transformers import AutoTokenizer

from albert_recipes.cli import ConfigError, build_config
from albert_recipes.corpus import load_documents, load_embedded_corpus
from albert_recipes.errors import InputError
from albert_recipes.tokenization import reservoir_sample, train_tokenizer_on_documents, train_unigram_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WIKITEXT = ROOT / ".." / "shared" / "data" / "wikitext-2"
sys.path.insert(0, str(ROOT / "recipes"))
import train_tokenizer  # noqa: E402


def _albert_normalised(text):
    decomposed = unicodedata.normalize("NFKD", text.replace("``", '"').replace("''", '"'))
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().split())


def test_albert_special_tokens_and_template(tiny_tokenizer):
    tok = tiny_tokenizer
    assert tok.is_fast and type(tok).__name__ == "AlbertTokenizer"
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    special_ids = (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
    assert special_ids == (0, 1, 2, 3, 4)
    assert tok.model_max_length == 512
    assert 700 <= len(tok) <= 800
    enc = tok("The first part.", "The second one.")
    ids, types = enc["input_ids"], enc["token_type_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
    first_sep = ids.index(3)
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    pieces = tok.tokenize("the statement")
    assert pieces[0].startswith("▁") and "▁" in "".join(pieces[1:])  # Metaspace marks word starts


def test_normalisation_options():
    texts = ["Café crème at the Café.", "The café is open.", "CAFÉ CRÈME"] * 20
    albert_like = train_unigram_tokenizer(texts, vocab_size=60, show_progress=False)
    assert albert_like.tokenize("CAFÉ") == albert_like.tokenize("cafe")
    cased = train_unigram_tokenizer(texts, vocab_size=60, lowercase=False, strip_accents=False, show_progress=False)
    assert cased.decode(cased("Café")["input_ids"], skip_special_tokens=True) == "Café"
    assert cased.tokenize("Café") != cased.tokenize("cafe")


def test_vocab_8000_on_embedded_corpus_takes_seconds():
    start = time.perf_counter()
    tok = train_tokenizer_on_documents(load_embedded_corpus(), vocab_size=8000, show_progress=False)
    assert time.perf_counter() - start < 30
    assert len(tok) > 2000  # ~260 KB of prose runs out of frequent pieces before 8000


@pytest.mark.skipif(not WIKITEXT.is_dir(), reason=f"shared data missing: {WIKITEXT}")
def test_round_trip_on_wikitext(tmp_path):
    docs = load_documents(WIKITEXT / "valid.txt")
    sentences = [s for doc in docs for s in doc]
    train = datasets.Dataset.from_dict({"text": sentences[:3000]})
    folder = tmp_path / "tok"
    train_unigram_tokenizer(iter(train["text"]), vocab_size=1000, show_progress=False, output_dir=folder)
    tok = AutoTokenizer.from_pretrained(folder)
    checked = 0
    for sentence in sentences[:3000:5]:
        if "<unk>" in sentence:  # WikiText's own <unk> marker is the special token; spacing around it is not kept
            continue
        ids = tok(sentence, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == _albert_normalised(sentence)
        checked += 1
    assert checked > 150
    # Held-out text (the test split) is covered too: almost no unknown pieces.
    held_out = [s for doc in load_documents(WIKITEXT / "test.txt")[:5] for s in doc]
    ids = [i for s in held_out for i in tok(s, add_special_tokens=False)["input_ids"]]
    literal_unk = sum(s.split().count("<unk>") for s in held_out)
    assert ids.count(tok.unk_token_id) - literal_unk < 0.001 * len(ids)


def test_bad_input():
    with pytest.raises(ValueError, match="no text to train"):
        train_unigram_tokenizer(iter(["", "  "]), vocab_size=100, show_progress=False)
    with pytest.raises(ValueError, match="expects strings, got int"):
        train_unigram_tokenizer([1, 2], vocab_size=100, show_progress=False)
    with pytest.raises(ValueError, match="vocab_size=5 must be larger"):
        train_unigram_tokenizer(["a b"], vocab_size=5)


def test_recipe_debug_config(tmp_path):
    cfg = build_config(
        train_tokenizer.TrainTokenizerConfig,
        ROOT / "recipes/configs/train_tokenizer/debug.yaml",
        [f"output_dir={tmp_path / 'out'}", "tokenizer.vocab_size=300"],
    )
    path = train_tokenizer.main(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == 300 and tok.mask_token == "[MASK]"
    saved = yaml.safe_load((path / "train_tokenizer_config.yaml").read_text())
    assert saved["tokenizer"]["vocab_size"] == 300
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    with pytest.raises(ConfigError, match="did you mean 'tokenizer.vocab_size'"):
        build_config(train_tokenizer.TrainTokenizerConfig, None, ["tokenizer.vocab_sise=10"])
    with pytest.raises(ConfigError, match="too small"):
        build_config(train_tokenizer.TrainTokenizerConfig, None, ["tokenizer.vocab_size=10"])
    for variant in ("debug", "default"):
        config = f"recipes/configs/train_tokenizer/{variant}.yaml"
        first_line = (ROOT / config).read_text().splitlines()[0]
        assert first_line.startswith(f"# python recipes/train_tokenizer.py --config {config}")


@pytest.mark.parametrize("max_sentences", [2_000_000, 300], ids=["whole-corpus", "sampled"])
def test_two_fresh_processes_write_identical_tokenizer_files(tmp_path, max_sentences):
    """Same corpus and settings in two fresh interpreters -> byte-identical files (the `tokenizers` Unigram trainer
    fails this: its EM sums run in hash-map order, which differs per process). "sampled": more sentences than
    max_sentences, so a sample is drawn (SentencePiece's own sampler failed this: a new sample in every process)."""
    script = (
        "import sys\n"
        "from albert_recipes.corpus import load_embedded_corpus\n"
        "from albert_recipes.tokenization import train_tokenizer_on_documents\n"
        "train_tokenizer_on_documents(load_embedded_corpus()[:80], vocab_size=500, show_progress=False,\n"
        f"                             output_dir=sys.argv[1], max_sentences={max_sentences})\n"
    )
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        subprocess.run([sys.executable, "-c", script, str(folder)], check=True, timeout=300)
    names = sorted(p.name for p in folders[0].iterdir())
    assert "tokenizer.json" in names and names == sorted(p.name for p in folders[1].iterdir())
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_reservoir_sample_is_uniform_ordered_and_reproducible():
    stream = [f"s{i}" for i in range(100)]
    sample = reservoir_sample(iter(stream), 10, seed=3)
    assert len(sample) == 10 and len(set(sample)) == 10 and set(sample) <= set(stream)
    assert sample == sorted(sample, key=stream.index)  # stream order
    assert reservoir_sample(iter(stream), 10, seed=3) == sample
    assert reservoir_sample(iter(stream), 10, seed=4) != sample
    assert reservoir_sample(iter(stream[:7]), 10, seed=3) == stream[:7]  # a short stream comes back whole
    # Uniform: over many seeds every item is kept about k/n = 10% of the time (first/last items included).
    counts = {item: 0 for item in stream}
    for seed in range(2000):
        for item in reservoir_sample(iter(stream), 10, seed):
            counts[item] += 1
    assert all(140 <= c <= 270 for c in counts.values()), sorted(counts.values())[:3] + sorted(counts.values())[-3:]


def _recipe(tmp_path, *overrides):
    return build_config(
        train_tokenizer.TrainTokenizerConfig, ROOT / "recipes/configs/train_tokenizer/debug.yaml",
        [f"output_dir={tmp_path / 'out'}", "tokenizer.vocab_size=200", *overrides],
    )


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_recipe_reads_only_the_named_column_of_tabular_files(tmp_path, suffix):
    """The header and the other columns (here a label word on every row) never reach the tokenizer as prose."""
    sentences = [" ".join(doc[:2]) for doc in load_embedded_corpus()[:60]]
    path = tmp_path / f"train{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"zzqlabel": "zzqpositive", "body": s}) + "\n" for s in sentences))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        rows = [s.replace("\t", " ") if sep == "\t" else '"' + s.replace('"', '""') + '"' for s in sentences]
        path.write_text(f"body{sep}zzqlabel\n" + "".join(f"{r}{sep}zzqpositive\n" for r in rows), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(train_tokenizer.main(_recipe(tmp_path, f"data.files=[{path}]",
                                                                     "data.text_field=body")))
    assert not [piece for piece in tok.get_vocab() if "zzq" in piece or "body" in piece]
    assert tok.tokenize("the") == ["▁the"]  # the text column was read


def test_recipe_bad_tabular_files_fail_with_one_clear_line(tmp_path):
    tsv = tmp_path / "sst.tsv"
    tsv.write_text("sentence\tlabel\nA fine film .\t1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"sst.tsv:1: no 'text' column in the header \(found \['sentence', 'label'\]\)"):
        train_tokenizer.main(_recipe(tmp_path, f"data.files=[{tsv}]"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv: the file is empty"):
        train_tokenizer.main(_recipe(tmp_path, f"data.files=[{empty}]"))
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("sentence\tlabel\nGood .\t1\n".encode() + "Caf\xe9 .\t0\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.tsv:3: bytes at offset 27 are not valid UTF-8"):
        train_tokenizer.main(_recipe(tmp_path, f"data.files=[{latin}]", "data.text_field=sentence"))
    with pytest.raises(ConfigError, match="is a directory"):
        _recipe(tmp_path, f"data.files=[{tmp_path}]")
    assert not (tmp_path / "out").exists()  # nothing half-written
