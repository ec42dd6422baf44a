"""Chat: OpenAI chat.completion without usage, never streamed, deterministic; Sora answers HTML."""
import re

import pytest

from tests.sandbox.conftest import fetch, post


def chat(sandbox_client, content, path="/v1/chat/completions", **extra):
    body = {"model": "gemini-2.5-pro", "messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": content}], **extra}
    return post(sandbox_client, path, body)


def test_answers_a_chat_completion_without_usage(sandbox_client):
    response = chat(sandbox_client, "What is the sandbox?")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemini-2.5-pro"
    assert "usage" not in body
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Sandbox answer to: What is the sandbox?")
    assert choice["finish_reason"] == "stop"


def test_the_answer_is_deterministic_and_follows_the_last_user_message(sandbox_client):
    first = chat(sandbox_client, "tell me a joke").get_json()["choices"][0]["message"]["content"]
    again = chat(sandbox_client, "tell me a joke").get_json()["choices"][0]["message"]["content"]
    assert first == again
    body = {"model": "gemini-2.5-pro", "messages": [
        {"role": "user", "content": "first question"}, {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]}]}
    content = post(sandbox_client, "/v1/chat/completions", body).get_json()["choices"][0]["message"]["content"]
    assert content.startswith("Sandbox answer to: second question")


def test_stream_true_still_answers_one_json_completion(sandbox_client):
    response = chat(sandbox_client, "hello", stream=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["object"] == "chat.completion"


@pytest.mark.parametrize("max_tokens, expected", [
    (3, "Sandbox answer to:"),
    (5, "Sandbox answer to: one two"),
])
def test_max_tokens_truncates_the_answer(sandbox_client, max_tokens, expected):
    choice = chat(sandbox_client, "one two three four", max_tokens=max_tokens).get_json()["choices"][0]
    assert choice["message"]["content"] == expected
    assert choice["finish_reason"] == "length"


def test_cjk_characters_count_one_token_each(sandbox_client):
    choice = chat(sandbox_client, "你好世界", max_tokens=5).get_json()["choices"][0]
    assert choice["message"]["content"] == "Sandbox answer to: 你好"


@pytest.mark.parametrize("body", [
    {"model": "gemini-2.5-pro"},
    {"model": "gemini-2.5-pro", "messages": []},
    {"model": "gemini-2.5-pro", "messages": [{"content": "no role"}]},
    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": "hi"}]},
    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
])
def test_invalid_chat_requests_are_refused(sandbox_client, body):
    response = post(sandbox_client, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("model, tag, content_type", [
    ("sora-video-landscape-10s", "video", "video/mp4"),
    ("sora-2", "video", "video/mp4"),
    ("sora-image", "img", "image/png"),
])
def test_sora_answers_html_with_a_real_file_behind_the_url(sandbox_client, model, tag, content_type):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "a lighthouse"}]}
    response = post(sandbox_client, "/v1/sora/chat/completions", body)
    assert response.status_code == 200
    completion = response.get_json()
    assert completion["object"] == "chat.completion"
    content = completion["choices"][0]["message"]["content"]
    match = re.fullmatch(rf'<{tag}(?: controls)? src="([^"]+)">(?:</video>)?', content)
    assert match, content
    media = fetch(sandbox_client, match.group(1))
    assert media.status_code == 200
    assert media.mimetype == content_type


def test_sora_video_length_follows_the_model_name(sandbox_client):
    body = {"model": "sora-video-portrait-15s", "messages": [{"role": "user", "content": "x"}]}
    content = post(sandbox_client, "/v1/sora/chat/completions", body).get_json()["choices"][0]["message"]["content"]
    assert "video-9x16-15s.mp4" in content
