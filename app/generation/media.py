"""What a stored video really is: its duration and frame size, read from the file, and a first-frame
JPEG for a thumbnail. PyAV (FFmpeg) reads it; a file it cannot read yields no facts, never an error,
so billing falls back to what was asked."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import av

log = logging.getLogger(__name__)
THUMBNAIL_LONG_SIDE = 640


@dataclass(frozen=True)
class VideoFacts:
    seconds: float | None
    width: int | None
    height: int | None
    thumbnail: bytes | None  # image/jpeg

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None


def inspect_video(data: bytes | Path) -> VideoFacts:
    """`data`: the file's bytes, or the file on disk (read as needed, never whole)."""
    try:
        with av.open(str(data) if isinstance(data, Path) else io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            seconds = None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            frame = next(container.decode(stream), None)
            thumbnail = _jpeg(frame.to_image()) if frame is not None else None
            return VideoFacts(seconds, stream.codec_context.width or None, stream.codec_context.height or None,
                              thumbnail)
    except (av.FFmpegError, IndexError, StopIteration, ValueError, OSError) as error:
        log.warning("could not read the video (%s); billing falls back to what was requested", error)
        return VideoFacts(None, None, None, None)


def _jpeg(image) -> bytes:
    image.thumbnail((THUMBNAIL_LONG_SIDE, THUMBNAIL_LONG_SIDE))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
