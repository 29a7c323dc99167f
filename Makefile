# Runproof developer entry points. `make run` works from a clean clone with only Python 3.11.
#
#   make run            embedded default: SQLite + filesystem broker, web + Celery worker/beat
#   make test           the whole suite on SQLite (browser tests included; services tests deselected)
#   make test-services  the whole suite on PostgreSQL + Redis (services tests included),
#                       on a test database created afresh (nothing an earlier run left)
#   make pdf-libs       check the Debian packages the proof card's PDF needs (run and test do)
#   make lint           ruff check, ruff format --check, import contracts, missing migrations
#   make check-deploy   `check --deploy` with production settings
#   make bench          the benchmark (see README, "Benchmark")
#   make fuzz           the hostile-input suite, deep (many examples), on PostgreSQL + Redis
#
# Pass extra arguments with PYTEST_ARGS="-k journey", RUN_ARGS="--port 8001", BENCH_ARGS=...

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstalls only when requirements.lock is newer than the stamp.
STAMP := $(VENV)/.requirements.lock.installed

SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/runproof
SERVICES_BROKER_URL ?= redis://127.0.0.1:6379/15

# A separate venv holds the MLflow server the connector tests start (pinned, hashed lock):
# its dependencies are not Runproof's, and Runproof itself talks to MLflow over plain REST.
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.requirements-mlflow.lock.installed

.PHONY: venv mlflow-venv run test test-services lint check-deploy bench fuzz lock lock-mlflow pdf-libs

# The proof card's PDF (WeasyPrint) needs Debian's Pango, HarfBuzz, Fontconfig and a font.
PDF_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libfontconfig1 fonts-dejavu-core
PDF_LIBS_CHECK := import ctypes.util, os, sys; \
	missing = [n for n in ("pango-1.0", "pangoft2-1.0", "harfbuzz", "fontconfig") if not ctypes.util.find_library(n)]; \
	missing += [] if os.path.isdir("/usr/share/fonts/truetype/dejavu") else ["DejaVu fonts"]; \
	sys.exit("The proof card PDF (WeasyPrint) needs " + ", ".join(missing) + \
	". Install them: sudo apt-get install -y --no-install-recommends $(PDF_PACKAGES)" if missing else 0)

venv: $(STAMP)

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Runproof needs Python 3.11; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $@

mlflow-venv: $(MLFLOW_STAMP)

$(MLFLOW_STAMP): requirements-mlflow.lock
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-mlflow.lock
	touch $@

# Regenerate the lock after changing pyproject.toml's dependencies (needs pip-tools).
lock:
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

lock-mlflow:
	echo "mlflow==3.17.2" > /tmp/runproof-mlflow.in && echo "mlflow-skinny==3.17.2" >> /tmp/runproof-mlflow.in
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url \
		--no-emit-find-links -o requirements-mlflow.lock /tmp/runproof-mlflow.in

pdf-libs:
	@$(PYTHON) -c '$(PDF_LIBS_CHECK)'

run: venv pdf-libs
	$(BIN)/python manage.py run_embedded $(RUN_ARGS)

# SQLite whatever the shell exports, so `make test` means the same thing everywhere.
test: venv mlflow-venv pdf-libs
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/pytest $(PYTEST_ARGS)

test-services: venv mlflow-venv pdf-libs
	DATABASE_URL="$${DATABASE_URL:-$(SERVICES_DATABASE_URL)}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(SERVICES_BROKER_URL)}" \
	$(BIN)/pytest --create-db $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/python manage.py makemigrations --check --dry-run

check-deploy: venv
	RUNPROOF_MODE=production \
	SECRET_KEY="$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
	ALLOWED_HOSTS=runproof.example.com \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

bench: venv
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py bench $(BENCH_ARGS)

# The hostile-input suite with many examples (HYPOTHESIS_PROFILE=fuzz; `make test` runs the
# derandomized `ci` profile), plus the hostile regressions and the URL matrix, on PostgreSQL.
fuzz: venv mlflow-venv
	DATABASE_URL="$${DATABASE_URL:-$(SERVICES_DATABASE_URL)}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(SERVICES_BROKER_URL)}" \
	HYPOTHESIS_PROFILE=fuzz \
	$(BIN)/pytest --create-db -p no:xdist tests/hostile tests/test_hostile_input.py \
		tests/test_url_matrix.py $(PYTEST_ARGS)
