# shoprank: `make demo` runs the nightly flow and serves recommendations; `make test` runs every check.
# Both create or refresh the Python environment themselves from the committed lock file (uv.lock); `make test`
# also brings up the local services the tests use (.ci/services.sh).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: env services services-stop docs demo test lint compile airflow airflow-stop bench bench-quality bench-nbr bench-learning-curve bench-experiments bench-serving-experiments bench-sequence-feature bench-validation bench-serving bench-serving-rules bench-serving-sequence bench-serving-auth bench-api-ab bench-materialise bench-search bench-loop bench-scale bench-train-scale bench-engines clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --compile-bytecode
	touch $@

.venv-checkov/.synced: infra/checkov-requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing .venv-checkov --python $(PYTHON)
	$(UV) pip install --quiet -p .venv-checkov -r infra/checkov-requirements.txt
	touch $@

env: $(VENV)/.synced .venv-checkov/.synced

demo: $(VENV)/.synced
	$(VENV)/bin/shoprank demo

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Debian packages the tests need (installed as root or with password-less sudo) and a scratch Postgres on
# loopback; `make test` brings them up first and stops what it started. SERVICES=skip leaves the machine alone.
services:
	bash .ci/services.sh start

services-stop:
	bash .ci/services.sh stop

test: env lint
	@bash .ci/services.sh start
	@set -a; . .services/env; set +a; status=0; $(VENV)/bin/python -m pytest -q -ra || status=$$?; \
	  bash .ci/services.sh stop; exit $$status

# the benchmark tables in docs/ from bench/results/*.json (a test fails when a committed table differs)
docs: $(VENV)/.synced
	$(VENV)/bin/python -m bench.docs_tables

# Airflow 3 on this machine (UI + REST API, scheduler, dag-processor, triggerer) over dags/; prints the URL and login
airflow: $(VENV)/.synced
	$(VENV)/bin/shoprank airflow start

airflow-stop: $(VENV)/.synced
	$(VENV)/bin/shoprank airflow stop

compile: $(VENV)/.synced
	$(VENV)/bin/shoprank compile

bench-quality: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_quality.py
	$(VENV)/bin/python -m bench.bench_nbr

# next-basket recommendation on Ta Feng by the "Reality Check" protocol (Li et al., TOIS 2023): G/P/GP-TopFreq
# and TIFUKNN over 5 seeded 72/8/20 user folds, against the published preprocessing counts (about a minute)
bench-nbr: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_nbr

# validation R@20 / NDCG@10 of the ranker and the sequence model against users sampled (1k, 3k, 10k, all), Ta Feng; ~40 min
bench-learning-curve: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_learning_curve

bench-experiments: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_experiments

bench-serving-experiments: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_serving_experiments

# the ranker with and without the sequence model's score as an input, point-in-time, Ta Feng temporal; ~25 min
bench-sequence-feature: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_sequence_feature

bench-validation: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_validation.py

# needs `make demo` first (its feature sources); a few minutes, Redis included
bench-materialise: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_materialise.py

# needs `make demo` first (features materialised, a ranker pushed); about 20 minutes
bench-serving: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_serving.py
	$(VENV)/bin/python -m bench.bench_serving_rules
	$(VENV)/bin/python -m bench.bench_serving_sequence

# what the merchandising rules cost /recommend (interleaved with and without, 200 req/s) and /similar at 200 req/s
bench-serving-rules: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_serving_rules

# what the sequence model costs /recommend: its source on and off, interleaved at 200 req/s (about 5 minutes)
bench-serving-sequence: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_serving_sequence

# what authentication costs the API: shopper tokens with rate limits in Redis vs an API key naming the
# shopper with no limits, interleaved (/recommend at 200 req/s, POST /events closed loop; about 10 minutes)
bench-serving-auth: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_serving_auth

# the online API of this checkout against BASELINE's (another checkout with its own .venv), interleaved, at 200 req/s
bench-api-ab: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_api_ab --baseline $(BASELINE)

# personalised search vs BM25 / popularity / own-frequency baselines on Ta Feng, REES46 and the synthetic shop
bench-search: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_search

# the feedback loop closed on the synthetic shop: a night, then simulated days of requests, clicks and
# purchases through POST /events, each followed by a night on the `served` source (about 30 minutes)
bench-loop: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_loop.py

# the nightly steps on synthetic shops of growing size: per-step time, peak RSS, fitted exponents
# (default 1M, 3M, 10M events: hours on 2 cores; `--events` picks the sizes)
bench-scale: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_scale.py $(SCALE_ARGS)

# the training set built and the ranker trained, streamed part by part, at the 10M-event shop for growing samples;
# the time for every user extrapolated (about 30 minutes)
bench-train-scale: $(VENV)/.synced
	$(VENV)/bin/python -m bench.bench_train_scale $(TRAIN_SCALE_ARGS)

# the whole feature job on DuckDB and Spark local[2] at bench-scale's 1M and 10M events (made if absent), and on
# Ta Feng the capped kNN's recall and the SQL against pandas; one size or engine: ENGINES_ARGS="--events 1000000"
bench-engines: $(VENV)/.synced
	$(VENV)/bin/python bench/bench_engines.py $(ENGINES_ARGS)

clean:
	rm -rf .shoprank
