"""The whole /api/v1 OpenAPI document, fuzzed on PostgreSQL (where text is strictest) by schemathesis:
whatever a client sends, valid by the document or not, the answer is never a 5xx. Undocumented 4xx
are not failures here; only server errors are.

Bounded and repeatable: a fixed number of examples per operation and mode, derandomized, no example
database (nothing is written into the checkout). It runs against a live server with an API key of a
well-funded tenant (both scopes), and body `model`s are often swapped for real catalog models, so the
paid paths run too; the test config points every gateway at the in-process sandbox, so no vendor is
called."""
from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.identity import api_keys
from tests.conftest import TEST_ACTOR, require_postgres

EXAMPLES = 25
MODELS = ["doubao-seedream-4-0-250828", "speech-2.6-hd", "gemini-2.5-pro"]
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def test_no_request_anywhere_in_the_api_answers_a_server_error(live_server, make, is_postgres):
    require_postgres(is_postgres)
    created = make.funded_tenant(credits=10_000_000)
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="fuzz", scopes=["generate", "admin"])
    headers = {"Authorization": f"Bearer {raw}"}
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    session = requests.Session()
    server_errors: dict[str, str] = {}

    def fuzz(operation, mode):
        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode), model=st.sampled_from([None, *MODELS]))
        def run(case, model):
            if model and isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = model
            response = case.call(base_url=live_server, session=session, headers=headers, timeout=30)
            if response.status_code >= 500:
                server_errors.setdefault(f"{operation.label} ({mode.value})",
                                         f"{response.status_code} {response.text[:300]}\n    "
                                         f"{case.as_curl_command(headers=headers, base_url=live_server)}")

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode)
    assert not server_errors, "\n".join(f"{label}: {error}" for label, error in server_errors.items())
