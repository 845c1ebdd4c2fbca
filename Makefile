# Everything runs inside a local virtual environment that `make setup` creates idempotently.
# torch==2.13.0 is installed first so that no other requirement can pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup pretrain cpu-hour test benchmarks clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: ALBERT pretraining (MLM + SOP) on the embedded corpus; no network, no downloads.
# train.resume=true: a second `make pretrain` continues from (or re-exports) the newest complete checkpoint.
pretrain: setup
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		recipes/pretrain.py --config recipes/configs/pretrain/tiny.yaml train.resume=true

# The CPU-hour job (about 50 minutes on 2 CPU cores, then ~45 minutes of SST-2 comparison): pretraining on WikiText-2 plus SST-2's
# training sentences as unlabeled in-domain text, then SST-2 on its full training set from that model and from random
# init, full fine-tuning and LoRA. Results: benchmarks/results/sst2.{md,json} and sst2.pretraining.png.
SST2_SENTENCES := outputs/data/sst2_train_sentences.jsonl
$(SST2_SENTENCES): ../shared/data/sst2/train.tsv | $(STAMP)
	$(PY) benchmarks/bench_sst2.py --write-unlabeled $@

cpu-hour: setup $(SST2_SENTENCES)
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		recipes/pretrain.py --config recipes/configs/pretrain/cpu_hour.yaml train.resume=true
	# the four SST-2 runs, one torch thread each: random-init rows and pretrained rows side by side (2 cores)
	$(PY) benchmarks/bench_sst2.py --pretrained outputs/pretrain/cpu_hour/final --rows random & random=$$!; \
	$(PY) benchmarks/bench_sst2.py --pretrained outputs/pretrain/cpu_hour/final --rows pretrained; pretrained=$$?; \
	wait $$random && test $$pretrained -eq 0

test: setup
	$(PY) -m pytest -q tests

# Ours vs the stock transformers ALBERT (interleaved, medians and min-max, MFU), the data pipeline (also at 32 and
# 256 MB of text), early exit and the cross-layer flags; results in benchmarks/results/. Several hours on a quiet
# 2-core CPU, most of it the corpus-scale build (benchmarks/README.md has the commands and latest figures).
benchmarks: setup
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_packing.py
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/prepare_sst2_model.py
	$(PY) benchmarks/bench_inference.py --model outputs/bench/sst2-tiny/model
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_corpus_scale.py
	$(PY) benchmarks/bench_early_exit.py
	$(PY) benchmarks/bench_cross_layer_mlm.py

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
