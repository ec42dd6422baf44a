"""Speech in the format asked for: the sandbox gateway delivers WAV, and `response_format` gets mp3, opus,
aac, flac, wav or pcm, with the right Content-Type, stored that way (the generation's signed URL serves
the same bytes), and checked here by their magic bytes and by decoding them."""
from __future__ import annotations

import base64
import io

import av
import pytest

from app.billing import ledger
from tests.conftest import assert_error, key_headers

SPEECH = "speech-2.6-hd"   # PER_CHARACTER: 20 per 1000 characters
TEXT = "The quick brown fox jumps over the lazy dog. " * 3


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def speak(client, created, text=TEXT, **body):
    return client.post("/api/v1/audio/speech", headers=key_headers(created),
                       json={"model": SPEECH, "input": text, "voice": "alloy", **body})


def seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


MAGIC = {
    "mp3": lambda data: data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0),
    "opus": lambda data: data[:4] == b"OggS" and b"OpusHead" in data[:64],
    "aac": lambda data: data[0] == 0xFF and data[1] & 0xF6 == 0xF0,  # ADTS
    "flac": lambda data: data[:4] == b"fLaC",
    "wav": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WAVE",
}
TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav",
         "pcm": "audio/pcm"}


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav"])
def test_each_format_is_what_it_says_and_as_long_as_the_gateways_audio(client, acme, response_format):
    delivered = speak(client, acme).data  # the gateway's own WAV
    response = speak(client, acme, response_format=response_format)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == TYPES[response_format]
    assert MAGIC[response_format](response.data), response.data[:16]
    assert seconds(response.data) == pytest.approx(seconds(delivered), abs=0.1)
    assert ledger.account(acme.tenant.id).balance == 1000 - 2 * 20


def test_pcm_is_raw_16_bit_mono_at_24_khz(client, acme):
    delivered = speak(client, acme).data
    response = speak(client, acme, response_format="pcm")
    assert response.status_code == 200 and response.mimetype == "audio/pcm"
    assert response.data[:4] != b"RIFF" and len(response.data) % 2 == 0
    assert len(response.data) / 2 / 24_000 == pytest.approx(seconds(delivered), abs=0.1)


def test_the_stored_object_is_in_the_asked_format_and_its_url_serves_it(client, acme):
    response = speak(client, acme, response_format="mp3")
    generation = client.get(f"/api/v1/generations/{response.headers['X-Generation-Id']}",
                            headers=key_headers(acme)).get_json()
    result = generation["results"][0]
    assert result["content_type"] == "audio/mpeg" and result["size_bytes"] == len(response.data)
    served = client.get(result["url"].replace("http://localhost", ""))
    assert served.mimetype == "audio/mpeg" and served.data == response.data


def test_without_a_format_the_gateways_audio_is_answered_as_it_came(client, acme):
    plain, wav = speak(client, acme), speak(client, acme, response_format="wav")
    assert plain.mimetype == wav.mimetype == "audio/wav"
    assert plain.data == wav.data  # WAV asked, WAV delivered: kept, not re-encoded


def test_audio_that_cannot_be_converted_fails_as_the_gateways_fault_and_charges_nothing(client, acme):
    garbage = base64.b64encode(b"this is not audio at all" * 10).decode()
    response = speak(client, acme, text=f"hello [sandbox:result_url=data:audio/mpeg;base64,{garbage}]",
                     response_format="flac")
    error = assert_error(response, 502, "upstream_bad_result")
    assert "flac" in error["message"]
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000, 0) and ledger.verify() == []


def test_an_unknown_format_is_refused_naming_the_ones_we_produce(client, acme):
    error = assert_error(speak(client, acme, response_format="ogg"), 400)
    assert error["param"] == "response_format"
    assert all(name in error["message"] for name in ("mp3", "opus", "aac", "flac", "wav", "pcm"))
