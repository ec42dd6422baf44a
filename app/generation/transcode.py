"""Speech in the format the client asked for (OpenAI's `response_format`), whatever the gateway delivered.

The gateway picks its own format (the sandbox answers WAV), so the audio is re-encoded with PyAV's
bundled FFmpeg before it is stored: the stored object, its signed URL and the answer are all in the
asked format, and a replayed request serves the same bytes without encoding again. Output is 24 kHz,
as OpenAI's; `pcm` is raw 16-bit little-endian mono samples, as OpenAI's is.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from app.gateway.client import UpstreamFailed

SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class Format:
    content_type: str
    container: str
    codec: str
    # Content types the gateway may send that are this format already (kept as they are).
    already: tuple[str, ...] = ()


FORMATS = {
    "mp3": Format("audio/mpeg", "mp3", "libmp3lame", ("audio/mpeg", "audio/mp3")),
    "opus": Format("audio/ogg", "ogg", "libopus"),  # Ogg Opus, as OpenAI's; audio/ogg may be Vorbis, so always encoded
    "aac": Format("audio/aac", "adts", "aac", ("audio/aac",)),
    "flac": Format("audio/flac", "flac", "flac", ("audio/flac", "audio/x-flac")),
    "wav": Format("audio/wav", "wav", "pcm_s16le", ("audio/wav", "audio/x-wav", "audio/wave")),
    "pcm": Format("audio/pcm", "s16le", "pcm_s16le"),
}


def to_format(data: bytes, content_type: str, response_format: str) -> tuple[bytes, str]:
    """`data` as `response_format`: (the bytes, their content type). Audio already in that format is
    returned untouched. Audio FFmpeg cannot read is the gateway's fault: 502 upstream_bad_result."""
    target = FORMATS[response_format]
    if content_type.split(";")[0].strip().lower() in target.already:
        return data, target.content_type
    import av  # heavy; loaded when speech is first converted

    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(data)) as source, av.open(out, "w", format=target.container) as sink:
            audio = source.streams.audio[0]
            # FFmpeg names a WAV's single channel "1 channels", which encoders refuse: say mono or stereo.
            layout = "mono" if response_format == "pcm" or audio.channels == 1 else "stereo"
            stream = sink.add_stream(target.codec, rate=SAMPLE_RATE, layout=layout)
            for frame in source.decode(audio):
                frame.pts = None  # the encoder resamples and re-times
                sink.mux(stream.encode(frame))
            sink.mux(stream.encode(None))
    except (av.error.FFmpegError, IndexError) as error:
        raise UpstreamFailed(f"The AI gateway's audio could not be converted to {response_format}: {error}.",
                             code="upstream_bad_result") from None
    return out.getvalue(), target.content_type
