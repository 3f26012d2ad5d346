# VectorStream: every target sets itself up (a .venv at the repo root, pip install -e .[test],
# Kafka's jars through Maven on first use) and starts/stops the local services it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test-deps demo test test-server kafka-start kafka-stop up down clean

setup: $(VENV)/.installed

# torch and its CUDA libraries are most of it: the .venv takes 6.4 GB, and pip needs room
# beside it to unpack the wheels; stop with one line, not pip's OSError, when the disk is short
SETUP_FREE_GB ?= 9

$(VENV)/.installed: setup.py
	@$(PYTHON) -c 'import os, shutil, sys, tempfile; need = float(sys.argv[1]); \
	dirs = {os.stat(d).st_dev: d for d in (tempfile.gettempdir(), os.path.abspath(sys.argv[2]))}; \
	short = ["%.1f GB free under %s" % (f, d) for d, f in \
	         ((d, shutil.disk_usage(d).free / 2**30) for d in dirs.values()) if f < need]; \
	short and sys.exit("make setup needs about %g GB free for the .venv and pip'"'"'s unpacking; " \
	                   "%s. Free some space (or point TMPDIR at a roomier disk) and run it again." \
	                   % (need, ", ".join(short)))' $(SETUP_FREE_GB) $(dir $(abspath $(VENV)))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

## demo: local Kafka + synthetic events + the pipeline on the DirectRunner + a report
demo: setup
	$(VENV)/bin/vectorstream demo

## test-deps: what the tests run beside the pipeline: Debian's Prometheus server (the
## dashboard-query test scrapes a real run with it)
test-deps:
	@command -v prometheus >/dev/null || \
		apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus)

## test: the whole suite against a real broker, the real model and a real Qdrant store
## (Flink's and Beam's Java pieces are built or downloaded on first use)
## (tests marked `server` need a Qdrant server and are skipped here: see test-server)
test: setup test-deps
	$(PY) -m pytest -q -rs tests

## test-server: every test that needs a Qdrant server, against VECTORSTREAM_QDRANT_URL; the
## fault tests start and kill servers of their own from the binary VECTORSTREAM_QDRANT_BIN
## (no registry here ships a server: build one, start it, point these at it)
test-server: setup test-deps
	@test -n "$$VECTORSTREAM_QDRANT_URL" -a -n "$$VECTORSTREAM_QDRANT_BIN" || { echo "make \
	test-server needs a Qdrant server: VECTORSTREAM_QDRANT_URL=http://HOST:6333 \
	VECTORSTREAM_QDRANT_BIN=/path/to/qdrant make test-server"; exit 2; }
	$(PY) -m pytest -q -rs -m server tests

kafka-start: setup
	$(VENV)/bin/vectorstream kafka start

kafka-stop: setup
	$(VENV)/bin/vectorstream kafka stop

## up / down: the docker-compose stack (Kafka, Qdrant, Flink, Beam job server and Python
## worker pool, Prometheus, Grafana); needs a Docker engine. Submit the pipeline with
## `docker compose run --rm pipeline` (docs/runners.md).
up:
	docker compose up -d --build --wait kafka qdrant flink-jobmanager flink-taskmanager \
		beam-job-server beam-worker-pool prometheus grafana

down:
	docker compose down -v

clean:
	rm -rf data .pytest_cache
