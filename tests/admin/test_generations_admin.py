"""Generations in the dashboard: the cross-tenant list with its filters and keyset pages, the detail
page with the result preview, and today's numbers on the home dashboard. Generations are made through
the real API against the in-process sandbox gateway."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from app.admin import generations as generation_views
from app.models import utcnow
from tests.admin.conftest import text_of
from tests.conftest import TEST_ACTOR, key_headers

IMAGE = "doubao-seedream-4-0-250828"   # PER_IMAGE: 20 per 2K image
SPEECH = "speech-2.6-hd"               # PER_CHARACTER
CHAT = "gemini-2.5-pro"                # PER_TOKEN


def generate_image(client, created, prompt="a red fox in snow", **extra) -> dict:
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": IMAGE, "prompt": prompt, **extra})
    assert response.status_code in (200, 502), response.get_json()
    return response.get_json()


def generate_chat(client, created, content="Tell me about foxes") -> dict:
    response = client.post("/api/v1/chat/completions", headers=key_headers(created),
                           json={"model": CHAT, "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def generate_speech(client, created, text="Hello from the sandbox") -> None:
    response = client.post("/api/v1/audio/speech", headers=key_headers(created),
                           json={"model": SPEECH, "input": text, "voice": "alloy"})
    assert response.status_code == 200


@pytest.fixture
def shop(make):
    """Two paying tenants over the seeded catalog."""
    return make.funded_tenant("Acme Studio"), make.funded_tenant("Globex")


def listed(response) -> list[tuple[str, str]]:
    """(generation id, status) of each row shown, in order."""
    return re.findall(r'<tr data-generation="([^"]+)" data-status="(\w+)">', text_of(response))


def latest_generation_id(created) -> str:
    from app.generation.queries import list_generations
    return str(list_generations(created.tenant.id, limit=1).generations[0].id)


def test_the_list_shows_every_tenants_generations_and_filters_them(client, dashboard, shop):
    acme, globex = shop
    fox = generate_image(client, acme)["generation_id"]
    generate_image(client, acme, prompt="broken [sandbox:fail]")
    failed = latest_generation_id(acme)
    owl = generate_image(client, globex, prompt="an owl")["generation_id"]
    generate_chat(client, globex)
    chat = latest_generation_id(globex)

    everything = dashboard.get("/admin/generations")
    assert everything.status_code == 200
    assert [gid for gid, _ in listed(everything)] == [chat, owl, failed, fox]  # newest first
    page = text_of(everything)
    assert "Acme Studio" in page and "Globex" in page
    assert 'aria-current="page">Generations' in page

    assert {gid for gid, _ in listed(dashboard.get("/admin/generations?tenant=acme"))} == {fox, failed}
    assert {gid for gid, _ in listed(dashboard.get(f"/admin/generations?tenant={globex.tenant.id}"))} == {owl, chat}
    assert listed(dashboard.get("/admin/generations?status=FAILED")) == [(failed, "FAILED")]
    assert [gid for gid, _ in listed(dashboard.get("/admin/generations?kind=chat"))] == [chat]
    assert {gid for gid, _ in listed(dashboard.get(f"/admin/generations?model={IMAGE}"))} == {fox, failed, owl}
    assert [gid for gid, _ in listed(dashboard.get(f"/admin/generations?q={owl}"))] == [owl]
    today = utcnow().date()
    assert len(listed(dashboard.get(f"/admin/generations?date_from={today}&date_to={today}"))) == 4
    yesterday = (today - timedelta(days=1)).isoformat()
    nothing = dashboard.get(f"/admin/generations?date_to={yesterday}")
    assert listed(nothing) == [] and "No generations here." in text_of(nothing)


def test_filters_answer_a_fragment_for_htmx_and_bad_input_beside_its_field(dashboard, shop):
    fragment = dashboard.get("/admin/generations?kind=image", htmx=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert text_of(fragment).lstrip().startswith('<div id="generation-table">')
    assert "<html" not in text_of(fragment)

    bad_id = dashboard.get("/admin/generations?q=not-an-id")
    assert bad_id.status_code == 400 and "Search by a generation&#39;s full id" in text_of(bad_id)
    bad_day = dashboard.get("/admin/generations?date_from=yesterday")
    assert bad_day.status_code == 400 and "From must be a date (YYYY-MM-DD)." in text_of(bad_day)
    assert dashboard.get("/admin/generations?cursor=garbage").status_code == 400


def test_older_pages_follow_the_keyset_cursor(client, dashboard, shop, monkeypatch):
    monkeypatch.setattr(generation_views, "GENERATIONS_PER_PAGE", 2)
    acme, _globex = shop
    made = [generate_image(client, acme, prompt=f"fox {n}")["generation_id"] for n in range(3)]
    first = dashboard.get("/admin/generations")
    assert [gid for gid, _ in listed(first)] == made[::-1][:2]
    older = re.search(r'href="(/admin/generations\?cursor=[^"]+)"[^>]*rel="next"', text_of(first)).group(1)
    second = dashboard.get(older.replace("&amp;", "&"))
    assert [gid for gid, _ in listed(second)] == [made[0]]
    assert 'rel="next"' not in text_of(second) and "← Newest" in text_of(second)


def test_the_detail_shows_params_timeline_credits_and_the_image_preview(client, dashboard, shop):
    acme, _globex = shop
    generation_id = generate_image(client, acme, prompt="a red fox in snow")["generation_id"]
    response = dashboard.get(f"/admin/generations/{generation_id}")
    assert response.status_code == 200
    page = text_of(response)
    assert "a red fox in snow" in page  # the request's params
    assert re.search(r'data-credits="held">20<', page) and re.search(r'data-credits="charged">20<', page)
    assert "hold settled" in page
    assert re.findall(r'data-step="(\w+)"', page) == ["PENDING", "GENERATING", "UPLOADING", "COMPLETED"]
    image_url = re.search(r'<img src="([^"]+)"[^>]*data-preview="image"', page).group(1).replace("&amp;", "&")
    picture = client.get(image_url)
    assert picture.status_code == 200 and picture.data.startswith(b"\x89PNG")
    assert "Acme Studio" in page and "API key" in page


def test_the_detail_plays_audio_shows_chat_text_and_explains_a_failure(client, dashboard, shop):
    acme, globex = shop
    generate_speech(client, acme)
    audio = text_of(dashboard.get(f"/admin/generations/{latest_generation_id(acme)}"))
    assert re.search(r'<audio controls[^>]*src="/files/[^"]+"', audio)

    answer = generate_chat(client, globex, "Tell me about owls")
    chat = text_of(dashboard.get(f"/admin/generations/{latest_generation_id(globex)}"))
    assert answer["choices"][0]["message"]["content"][:40] in chat.replace("&#39;", "'")
    assert 'data-preview="text"' in chat and "Tell me about owls" in chat

    generate_image(client, acme, prompt="fox [sandbox:fail]")
    failed = text_of(dashboard.get(f"/admin/generations/{latest_generation_id(acme)}"))
    assert "upstream_error" in failed and "Nothing was charged: the hold was released." in failed
    assert re.search(r'data-credits="charged">0<', failed) and "hold released" in failed


def test_an_unknown_generation_is_a_404_page(dashboard, shop):
    assert dashboard.get(f"/admin/generations/{uuid.uuid4()}").status_code == 404
    assert dashboard.get("/admin/generations/not-an-id").status_code == 404


def test_signed_out_the_screens_redirect_to_sign_in(client, shop):
    response = client.get("/admin/generations")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def today_numbers(response) -> dict:
    return {name: int(value.replace(",", "")) for name, value in
            re.findall(r'data-today="(\w+)">([\d,]+)<', text_of(response))}


def test_the_home_dashboard_shows_todays_generations_credits_failures_and_top_tenants(client, dashboard, shop, make):
    acme, globex = shop
    empty = dashboard.get("/admin/")
    assert today_numbers(empty) == {"requests": 0, "credits": 0, "failures": 0}
    assert "No generations yet today." in text_of(empty)

    generate_image(client, acme, n=2)           # 2 × 20
    generate_image(client, acme, prompt="x [sandbox:fail]")
    generate_image(client, globex)              # 20
    from app.identity import api_keys
    _key, raw = api_keys.create_key(globex.tenant.id, TEST_ACTOR, name="test", mode="test")
    client.post("/api/v1/images/generations", headers={"Authorization": f"Bearer {raw}"},
                json={"model": IMAGE, "prompt": "a free test fox"})  # test mode: not counted

    home = dashboard.get("/admin/")
    assert today_numbers(home) == {"requests": 3, "credits": 60, "failures": 1}  # n=2 is one generation
    top = re.findall(r'<tr data-top-tenant="([^"]+)">.*?data-col="requests">(\d+)<.*?data-col="failures">(\d+)<'
                     r'.*?data-col="credits"><strong>(\d+)<', text_of(home), re.S)
    assert top == [("Acme Studio", "2", "1", "40"), ("Globex", "1", "0", "20")]
