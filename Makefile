# Waule Server. `make run` starts the platform on its embedded defaults; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test migrate seed secrets clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.runtime
	$(BIN)/flask db upgrade

seed: migrate
	$(BIN)/flask catalog seed
	$(BIN)/flask demo seed

# The sandbox gateway (port 9000) and the web server run together; Ctrl-C stops both.
run: seed
	@set -a; [ -f .env ] && . ./.env; set +a; \
	trap 'kill 0' INT TERM EXIT; \
	$(BIN)/python -m sandbox --host 127.0.0.1 --port 9000 --quiet & \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

secrets: $(VENV)/.runtime
	@$(BIN)/flask secrets generate

clean:
	rm -rf $(VENV) .pytest_cache
