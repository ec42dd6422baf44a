"""Models & prices in the dashboard: the catalog grouped by kind, enabling and disabling a model, and
editing its price rule with a live estimate computed from the rule as typed."""
import json
import re

import pytest

from app.catalog import service as catalog
from tests.admin.conftest import audit_entries, text_of
from tests.conftest import TEST_ACTOR, key_headers

SEEDREAM = "doubao-seedream-4-0-250828"


@pytest.fixture
def seeded(app):
    return catalog.seed_catalog(TEST_ACTOR)


def find(model_id: str):
    return next((model, rule) for model, rule in catalog.list_models() if model.model_id == model_id)


def rule_form(billing_type: str, prices: dict, params: dict | None = None, **extra) -> dict:
    return {"display_name": extra.pop("display_name", "Seedream 4.0"), "billing_type": billing_type,
            "prices": json.dumps(prices), "capabilities": extra.pop("capabilities", json.dumps({"ratios": ["1:1"]})),
            "params": json.dumps(params or {}), **extra}


def credits_shown(response) -> int:
    found = re.search(r'data-credits="(\d+)"', text_of(response))
    assert found, text_of(response)[:2000]
    return int(found.group(1))


def test_the_models_page_groups_the_catalog_by_kind_with_prices(dashboard, seeded):
    response = dashboard.get("/admin/models")
    page = text_of(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert '<a href="/admin/models" aria-current="page">Models &amp; prices</a>' in page
    headings = re.findall(r'<h2 class="kind-head" id="kind-(\w+)"', page)
    assert headings == ["image", "video", "audio", "chat"] + (["midjourney"] if "midjourney" in headings else [])
    seedream = page[page.index(f'data-model="{SEEDREAM}"'):]
    seedream = seedream[:seedream.index("</tr>")]
    assert "PER_IMAGE" in seedream and "20 per image" in seedream and "4K 40" in seedream
    assert "Disable" in seedream and "enabled" in seedream

    fragment = dashboard.get("/admin/models", htmx=True)
    assert text_of(fragment).lstrip().startswith('<section id="model-list"')


def test_disabling_a_model_hides_it_from_tenants_and_is_audited(dashboard, seeded, make, client):
    acme = make.tenant("Acme")
    model, _rule = find(SEEDREAM)
    response = dashboard.post(f"/admin/models/{model.id}/active", {"active": "0"})
    assert response.status_code == 200
    row = text_of(response)[text_of(response).index(f'data-model="{SEEDREAM}"'):]
    assert "disabled" in row[:row.index("</tr>")] and "Enable" in row[:row.index("</tr>")]
    assert "Seedream 4.0 is disabled: tenants can no longer use it." in text_of(response)
    listed = client.get("/api/v1/models", headers=key_headers(acme)).get_json()["data"]
    assert SEEDREAM not in [m["id"] for m in listed]

    entry = audit_entries(action="model.update")[-1]
    assert entry.actor_name == "root" and entry.changes["is_active"] == [True, False]
    assert entry.changes["model_id"] == SEEDREAM

    assert dashboard.post(f"/admin/models/{model.id}/active", {"active": "1"}).status_code == 200
    listed = client.get("/api/v1/models", headers=key_headers(acme)).get_json()["data"]
    assert SEEDREAM in [m["id"] for m in listed]


def test_model_forms_need_the_csrf_token(dashboard, seeded):
    model, rule = find(SEEDREAM)
    assert dashboard.post(f"/admin/models/{model.id}/active", {"active": "0"}, csrf=False).status_code == 400
    response = dashboard.post(f"/admin/models/{model.id}", rule_form("PER_REQUEST", {"credits": 1}), csrf=False)
    assert response.status_code == 400
    assert find(SEEDREAM)[0].is_active and find(SEEDREAM)[1].billing_type == "PER_IMAGE"


def test_the_edit_page_shows_the_rule_and_an_estimate_for_a_sample_request(dashboard, seeded):
    model, _rule = find(SEEDREAM)
    response = dashboard.get(f"/admin/models/{model.id}")
    page = text_of(response)
    assert response.status_code == 200 and "<aside" in page
    assert '<option value="PER_IMAGE" selected>' in page
    assert "&#34;by_resolution&#34;" in page or "&quot;by_resolution&quot;" in page
    # The sample request follows the model's capabilities: one 2K image.
    assert credits_shown(response) == 20
    assert f'hx-post="/admin/models/{model.id}/preview"' in page
    assert 'hx-trigger="input from:closest form delay:300ms"' in page


def test_preview_prices_the_unsaved_rule(dashboard, seeded):
    model, _rule = find(SEEDREAM)
    url = f"/admin/models/{model.id}/preview"
    prices = {"credits": 20, "by_resolution": {"2K": 20, "4K": 40}}

    response = dashboard.post(url, rule_form("PER_IMAGE", prices, {"n": 3, "image_size": "4K"}))
    assert response.status_code == 200 and credits_shown(response) == 120
    assert text_of(response).lstrip().startswith('<p class="estimate">')  # the fragment only
    # Not a priced size: the nearest by pixel count (3000x3000 is nearer 2K than 4K).
    response = dashboard.post(url, rule_form("PER_IMAGE", prices, {"n": 3, "image_size": "3000x3000"}))
    assert credits_shown(response) == 60

    messages = [{"role": "user", "content": "abcd" * 250}]  # 250 tokens + 4 of framing
    response = dashboard.post(url, rule_form("PER_TOKEN", {"input_per_1k": 2, "output_per_1k": 8},
                                             {"messages": messages, "max_tokens": 1000}))
    assert credits_shown(response) == 9  # ceil((254 * 2 + 1000 * 8) / 1000)
    assert "input tokens" in text_of(response) and "254" in text_of(response)

    # Nothing was saved by previewing.
    assert find(SEEDREAM)[1].billing_type == "PER_IMAGE" and find(SEEDREAM)[1].prices == prices
    assert audit_entries(action="model.update") == []


def test_preview_errors_come_back_inline_with_400(dashboard, seeded):
    model, _rule = find(SEEDREAM)
    url = f"/admin/models/{model.id}/preview"
    cases = [
        (rule_form("PER_IMAGE", {"credits": -1}), "Price rule: Invalid prices for PER_IMAGE: credits"),
        (rule_form("PER_HOUR", {"credits": 1}), "Price rule: Unknown billing type"),
        ({**rule_form("PER_IMAGE", {}), "prices": "{not json"}, "Price rule: Prices is not valid JSON"),
        (rule_form("PER_IMAGE", {"credits": 5}, {"n": 99}), "Sample request: n must be a whole number from 1 to 15."),
        ({**rule_form("PER_IMAGE", {"credits": 5}), "params": "[1, 2]"}, "Sample request: Sample request must be a JSON object"),
    ]
    for form, message in cases:
        response = dashboard.post(url, form)
        assert response.status_code == 400, message
        assert "data-preview-error" in text_of(response) and message in text_of(response), text_of(response)


def test_preview_without_htmx_renders_the_editor_with_the_estimate(dashboard, seeded):
    model, _rule = find(SEEDREAM)
    response = dashboard.post(f"/admin/models/{model.id}/preview",
                              rule_form("PER_REQUEST", {"credits": 7}, display_name="Typed name"), htmx=False)
    assert response.status_code == 200 and "<aside" in text_of(response)
    assert credits_shown(response) == 7 and 'value="Typed name"' in text_of(response)
    assert find(SEEDREAM)[0].display_name == "Seedream 4.0"


def test_saving_a_price_rule_updates_the_estimates_and_is_audited(dashboard, seeded, make, client):
    acme = make.tenant("Acme")
    model, _rule = find(SEEDREAM)
    response = dashboard.post(f"/admin/models/{model.id}", rule_form(
        "PER_REQUEST", {"credits": 33}, {"n": 2}, display_name="Seedream Four",
        capabilities=json.dumps({"ratios": ["1:1", "16:9"], "max_images": 4})))
    assert response.status_code == 200
    assert "Saved. New requests are priced with this rule." in text_of(response)
    assert text_of(response).lstrip().startswith('<form id="model-form"')
    assert credits_shown(response) == 33
    assert "&#34;n&#34;: 2" in text_of(response) or "&quot;n&quot;: 2" in text_of(response)  # the sample stays

    model, rule = find(SEEDREAM)
    assert (model.display_name, rule.billing_type, rule.prices) == ("Seedream Four", "PER_REQUEST", {"credits": 33})
    assert model.capabilities == {"ratios": ["1:1", "16:9"], "max_images": 4}
    estimate = client.post("/api/v1/billing/estimate", json={"model": SEEDREAM, "prompt": "a cat"},
                           headers=key_headers(acme))
    assert estimate.status_code == 200 and estimate.get_json()["credits"] == 33

    entry = audit_entries(action="model.update")[-1]
    assert entry.actor_name == "root" and entry.target_id == str(model.id)
    assert entry.changes["billing_type"] == ["PER_IMAGE", "PER_REQUEST"]
    assert entry.changes["display_name"] == ["Seedream 4.0", "Seedream Four"]


@pytest.mark.parametrize("change, field, message", [
    ({"prices": '{"credits": "lots"}'}, "prices", "Invalid prices for PER_IMAGE: credits"),
    ({"prices": "{oops"}, "prices", "Prices is not valid JSON"),
    ({"billing_type": "PER_HOUR"}, "billing_type", "Unknown billing type"),
    ({"capabilities": '["1:1"]'}, "capabilities", "Capabilities must be a JSON object"),
    ({"display_name": "  "}, "display_name", "Display name must not be empty."),
])
def test_an_invalid_rule_comes_back_with_the_error_beside_its_field(dashboard, seeded, change, field, message):
    model, rule = find(SEEDREAM)
    form = {**rule_form("PER_IMAGE", {"credits": 21}), **change}
    response = dashboard.post(f"/admin/models/{model.id}", form)
    page = text_of(response)
    assert response.status_code == 400
    assert page.lstrip().startswith('<form id="model-form"')
    assert f'aria-describedby="model-{field}-error"' in page and message in page
    if field != "prices":
        assert "&#34;credits&#34;: 21" in page or "&quot;credits&quot;: 21" in page  # what was typed stays
    model, rule = find(SEEDREAM)
    assert rule.prices == {"credits": 20, "by_resolution": {"2K": 20, "4K": 40}} and model.display_name == "Seedream 4.0"
    assert audit_entries(action="model.update") == []


def test_unknown_models_are_404(dashboard, seeded):
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert dashboard.get(f"/admin/models/{missing}").status_code == 404
        assert dashboard.post(f"/admin/models/{missing}", rule_form("PER_REQUEST", {"credits": 1})).status_code == 404
        assert dashboard.post(f"/admin/models/{missing}/preview",
                              rule_form("PER_REQUEST", {"credits": 1})).status_code == 404
        assert dashboard.post(f"/admin/models/{missing}/active", {"active": "0"}).status_code == 404
