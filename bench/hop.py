"""The floor for bench/gateway.py: a Flask app that only forwards POST /v1/… to the sandbox.

It runs under the same gunicorn settings as Waule Server and does nothing else (no database, no
auth, no storage), so `hop − direct` is what any Python server between client and gateway costs on
this machine, before Waule does any work of its own.
"""
from __future__ import annotations

import os

import requests
from flask import Flask, Response, request

app = Flask(__name__)
_upstream = os.environ["HOP_UPSTREAM"].rstrip("/")
_session = requests.Session()
_session.headers["Authorization"] = f"Bearer {os.environ['HOP_SECRET']}"
_session.trust_env = False


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/v1/<path:path>")
def forward(path: str):
    answer = _session.post(f"{_upstream}/v1/{path}", data=request.get_data(),
                           headers={"Content-Type": "application/json"}, timeout=60)
    return Response(answer.content, answer.status_code, content_type=answer.headers.get("Content-Type"))
