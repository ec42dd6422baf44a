"""Real media for the sandbox: PNG images, a short H.264 MP4 and WAV speech, written once and reused.

File names are derived from everything that shapes the content, so a repeated request is a file lookup
(the gateway benchmark hits the same prompt thousands of times) and concurrent identical requests cannot
corrupt each other (each renders to a private temp file and renames it into place).
"""
from __future__ import annotations

import array
import hashlib
import json
import math
import os
import threading
import uuid
import wave
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFont

CONTENT_TYPES = {".png": "image/png", ".mp4": "video/mp4", ".wav": "audio/wav"}

IMAGE_LONG_SIDE = {"1K": 512, "2K": 768, "4K": 1024}
VIDEO_LONG_SIDE = 320
VIDEO_FPS = 4
SPEECH_RATE = 16000
SPEECH_SECONDS_PER_CHAR = 0.06
SPEECH_MIN_SECONDS = 0.5
SPEECH_MAX_SECONDS = 60.0


def content_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]


def parse_ratio(value: str) -> tuple[int, int]:
    """`"16:9"` (or `"16x9"`, or a pixel size `"1024x768"`) as a reduced ratio; ValueError if absurd."""
    text = value.strip().lower().replace("×", "x").replace("*", "x")
    sep = ":" if ":" in text else "x"
    left, _, right = text.partition(sep)
    width, height = int(left), int(right)
    if width <= 0 or height <= 0 or max(width, height) > 8 * min(width, height):
        raise ValueError(f"unsupported aspect ratio {value!r}")
    divisor = gcd(width, height)
    return width // divisor, height // divisor


def fit(ratio: tuple[int, int], long_side: int, even: bool = False) -> tuple[int, int]:
    rw, rh = ratio
    if rw >= rh:
        width, height = long_side, round(long_side * rh / rw)
    else:
        width, height = round(long_side * rw / rh), long_side
    if even:  # yuv420p needs even dimensions
        width, height = width - width % 2, height - height % 2
    return max(width, 16), max(height, 16)


def speech_seconds(text: str, speed: float) -> float:
    raw = len(text) * SPEECH_SECONDS_PER_CHAR / speed
    return min(max(raw, SPEECH_MIN_SECONDS), SPEECH_MAX_SECONDS)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _palette(seed: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(seed.encode()).digest()
    background = tuple(30 + digest[i] % 90 for i in range(3))
    accent = tuple(150 + digest[i + 3] % 105 for i in range(3))
    return background, accent  # type: ignore[return-value]


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, max_width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        # a word wider than the line (long URL, CJK run) is cut by characters
        while draw.textlength(word, font=font) > max_width and len(word) > 1:
            cut = len(word)
            while cut > 1 and draw.textlength(word[:cut], font=font) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


def draw_card(size: tuple[int, int], title: str, body: str, footer: str, seed: str) -> Image.Image:
    """One picture: a coloured card with a title, the wrapped body text and a footer."""
    width, height = size
    background, accent = _palette(seed)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    unit = max(min(width, height) // 24, 8)
    margin = unit
    draw.rectangle([margin // 2, margin // 2, width - margin // 2 - 1, height - margin // 2 - 1],
                   outline=accent, width=max(unit // 4, 1))
    title_font, body_font = _font(max(unit * 3 // 2, 10)), _font(max(unit, 9))
    footer_font = _font(max(unit * 3 // 4, 8))
    y = margin * 1.2
    draw.text((margin * 1.2, y), title, fill=accent, font=title_font)
    y += unit * 2.4
    line_height = unit * 1.35
    footer_top = height - margin * 1.2 - unit
    lines = _wrap(draw, body, body_font, width - margin * 2.4)
    room = max(int((footer_top - y) // line_height), 1)
    if len(lines) > room:
        lines = lines[:room]
        lines[-1] = lines[-1][: max(len(lines[-1]) - 1, 0)] + "…"
    for line in lines:
        draw.text((margin * 1.2, y), line, fill=(240, 240, 240), font=body_font)
        y += line_height
    draw.text((margin * 1.2, footer_top), footer, fill=accent, font=footer_font)
    return image


class MediaStore:
    """Files under one directory, served by the app at /files/<name>."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks = [threading.Lock() for _ in range(64)]

    def path(self, name: str) -> Path:
        return self.root / name

    def _publish(self, name: str, render: Callable[[Path], None]) -> str:
        final = self.root / name
        if final.exists():
            return name
        lock = self._locks[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(self._locks)]
        with lock:  # the same file is rendered once even when asked for concurrently
            if final.exists():
                return name
            temp = self.root / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                render(temp)
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
        return name

    def image(self, *, model: str, prompt: str, size: tuple[int, int], index: int, count: int,
              ratio: tuple[int, int], references: int = 0) -> str:
        name = f"image-{content_key('image', model, prompt, size, index, count, references)}.png"
        footer = f"{size[0]}x{size[1]} · {ratio[0]}:{ratio[1]} · image {index + 1}/{count}"
        if references:
            footer += f" · {references} reference image{'s' if references > 1 else ''}"

        def render(path: Path) -> None:
            card = draw_card(size, f"SANDBOX · {model}", prompt, footer, seed=f"{model}|{prompt}|{index}")
            card.save(path, format="PNG", compress_level=1)

        return self._publish(name, render)

    def grid(self, *, key: str, prompt: str, ratio: tuple[int, int], label: str) -> str:
        """A Midjourney-style 2×2 grid of four variants."""
        name = f"mj-{content_key('grid', key)}.png"

        def render(path: Path) -> None:
            tile = fit(ratio, 256)
            grid = Image.new("RGB", (tile[0] * 2, tile[1] * 2))
            for index in range(4):
                card = draw_card(tile, f"{label} · {index + 1}", prompt, "sandbox midjourney", seed=f"{key}|{index}")
                grid.paste(card, ((index % 2) * tile[0], (index // 2) * tile[1]))
            grid.save(path, format="PNG", compress_level=1)

        return self._publish(name, render)

    def single(self, *, key: str, prompt: str, ratio: tuple[int, int], label: str) -> str:
        name = f"mj-{content_key('single', key)}.png"

        def render(path: Path) -> None:
            draw_card(fit(ratio, 512), label, prompt, "sandbox midjourney", seed=key).save(
                path, format="PNG", compress_level=1)

        return self._publish(name, render)

    def video(self, *, duration: float, ratio: tuple[int, int]) -> str:
        """A silent H.264 MP4 (yuv420p, faststart: plays in any browser) of `duration` seconds."""
        seconds = f"{duration:g}".replace(".", "_")
        name = f"video-{ratio[0]}x{ratio[1]}-{seconds}s.mp4"

        def render(path: Path) -> None:
            import av  # heavy; only loaded when a video is first asked for

            size = fit(ratio, VIDEO_LONG_SIDE, even=True)
            frames = max(round(duration * VIDEO_FPS), 1)
            background, accent = _palette(name)
            big = _font(max(min(size[1] // 7, size[0] // 10), 10))
            small = _font(max(min(size[1] // 12, size[0] // 16), 8))
            with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
                stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"preset": "ultrafast"})
                stream.width, stream.height = size
                stream.pix_fmt = "yuv420p"
                for index in range(frames):
                    frame = Image.new("RGB", size, background)
                    draw = ImageDraw.Draw(frame)
                    progress = index / max(frames - 1, 1)
                    bar_width = round(size[0] * progress)
                    draw.rectangle([0, size[1] - size[1] // 10, bar_width, size[1]], fill=accent)
                    draw.text((size[0] // 12, size[1] // 5), "SANDBOX VIDEO", fill=accent, font=big)
                    draw.text((size[0] // 12, size[1] // 2), f"t = {index / VIDEO_FPS:.2f} s of {duration:g} s",
                              fill=(240, 240, 240), font=small)
                    for packet in stream.encode(av.VideoFrame.from_image(frame)):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)

        return self._publish(name, render)

    def speech(self, *, model: str, voice: str, text: str, speed: float) -> str:
        name = f"speech-{content_key('speech', model, voice, text, speed)}.wav"

        def render(path: Path) -> None:
            samples = synthesize(text, speech_seconds(text, speed))
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SPEECH_RATE)
                out.writeframes(samples.tobytes())

        return self._publish(name, render)


@lru_cache(maxsize=512)
def _tone(frequency: int, length: int) -> array.array:
    fade = min(length // 4, SPEECH_RATE // 200)  # 5 ms ramps: no clicks between "syllables"
    tone = array.array("h", bytes(2 * length))
    for i in range(length):
        envelope = min(1.0, i / fade if fade else 1.0, (length - 1 - i) / fade if fade else 1.0)
        tone[i] = int(9000 * envelope * math.sin(2 * math.pi * frequency * i / SPEECH_RATE))
    return tone


def synthesize(text: str, seconds: float) -> array.array:
    """A tone per character (silence for spaces): audibly follows the text, costs almost nothing."""
    total = round(seconds * SPEECH_RATE)
    chars = text or " "
    segment = max(total // len(chars), 1)
    samples = array.array("h")
    for char in chars:
        if len(samples) + segment > total:
            break
        if char.isspace():
            samples.extend(array.array("h", bytes(2 * segment)))
        else:
            samples.extend(_tone(180 + (ord(char) * 37) % 420, segment))
    samples.extend(array.array("h", bytes(2 * (total - len(samples)))))
    return samples
