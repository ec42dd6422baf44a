# Waule Server. `make run` starts the platform on its embedded defaults; `make test` runs the suite.
SHELL  := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := wsgi
# The port of the sandbox gateway `make run` starts (the server calls it unless WAULEAPI_URL says otherwise).
SANDBOX_PORT ?= 9000

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

# The sandbox gateway, the web server and the job worker run together; Ctrl-C (or TERM) stops all three.
# The trap names its children: `kill 0` would signal the shell itself too, and re-enter the trap without end.
run: seed
	@set -a; [ -f .env ] && . ./.env; set +a; \
	export WAULEAPI_URL=$${WAULEAPI_URL:-http://127.0.0.1:$(SANDBOX_PORT)}; \
	$(BIN)/python -m sandbox --host 127.0.0.1 --port $(SANDBOX_PORT) --quiet \
	  --files-dir "$${WAULE_INSTANCE_PATH:-instance}/sandbox-files" & sandbox=$$!; \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app & web=$$!; \
	$(BIN)/flask worker & worker=$$!; \
	trap 'trap - INT TERM; kill $$sandbox $$web $$worker 2>/dev/null; wait; exit 0' INT TERM; \
	wait -n; status=$$?; kill $$sandbox $$web $$worker 2>/dev/null; wait; exit $$status

test: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

secrets: $(VENV)/.runtime
	@$(BIN)/flask secrets generate

clean:
	rm -rf $(VENV) .pytest_cache
