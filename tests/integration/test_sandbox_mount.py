"""The in-process sandbox answers test-mode calls, and under the test configuration the suite's own
gateway URL; it is never mounted in front of a live gateway otherwise."""
from __future__ import annotations

from app.gateway import client as gateway
from app.gateway.sandbox import SANDBOX_BASE
from tests.conftest import make_app


def mounted(target) -> bool:
    return f"{SANDBOX_BASE}/" in gateway.session_for(target).adapters


def test_test_mode_calls_reach_the_in_process_sandbox(app):
    target = gateway.sandbox_target()
    assert target.in_process and mounted(target)


def test_under_the_test_configuration_the_suites_gateway_url_is_the_sandbox(app):
    target = gateway.default_target()
    assert target.base_url == SANDBOX_BASE and target.in_process and mounted(target)


def test_outside_tests_a_live_gateway_named_sandbox_local_is_not_answered_in_process(test_env, tmp_path):
    live = make_app({**test_env, "WAULE_ENV": "development"}, tmp_path / "instance")
    with live.app_context():
        target = gateway.default_target()
        assert target.base_url == SANDBOX_BASE and not target.in_process
        assert not mounted(target)
        assert gateway.sandbox_target().in_process  # test-mode keys still use it
