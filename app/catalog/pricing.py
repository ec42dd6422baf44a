"""The pricing engine (docs/architecture.md, "Pricing"): (model's price rule, request params) → the estimate we hold,
and (rule, params, what the vendor returned) → the actual charge we settle.

Rounding: every computation is in integers and rounds *up* to a whole credit once, at the end
(so 1,001 characters at 10 credits per 1,000 cost 11). The actual charge is capped at the
estimate (a hold can never be overdrawn) and is never negative.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.errors import InvalidInput

Credits = Field(ge=0, le=10_000_000)
Positive = Field(gt=0, le=10_000_000)
MAX_SECONDS = 3600


class _Prices(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PerRequest(_Prices):
    credits: int = Credits


class PerImage(_Prices):
    credits: int = Credits  # per image when no resolution price applies
    by_resolution: dict[str, int] = {}  # "1024x1024" or "2K" → credits per image


class PerSecond(_Prices):
    credits_per_second: int = Credits
    default_seconds: int = Field(default=5, gt=0, le=MAX_SECONDS)


class DurationResolution(_Prices):
    tiers: dict[str, int] = {}       # "720p_5" → flat credits for up to 5 s at 720p
    per_second: dict[str, int] = {}  # "720p" → credits per second (used when no tiers)
    default_resolution: str = "720p"
    default_seconds: int = Field(default=5, gt=0, le=MAX_SECONDS)


class PerCharacter(_Prices):
    credits: int = Credits  # per `per_characters` characters (or part of them)
    per_characters: int = Field(default=1000, gt=0, le=1_000_000)
    minimum_credits: int = Field(default=0, ge=0, le=10_000_000)


class PerToken(_Prices):
    input_per_1k: int = Credits
    output_per_1k: int = Credits
    default_output_tokens: int = Field(default=1024, gt=0, le=1_000_000)


class DurationMode(_Prices):
    per_second: dict[str, int]  # mode → credits per second
    default_mode: str
    default_seconds: int = Field(default=5, gt=0, le=MAX_SECONDS)


class OperationMode(_Prices):
    operations: dict[str, int]    # operation → credits in the reference mode
    mode_percent: dict[str, int]  # mode → multiplier in percent (relax 50, fast 100, turbo 200)
    default_operation: str = "imagine"
    default_mode: str = "fast"


SCHEMAS: dict[str, type[_Prices]] = {
    "PER_REQUEST": PerRequest, "PER_IMAGE": PerImage, "PER_SECOND": PerSecond,
    "DURATION_RESOLUTION": DurationResolution, "PER_CHARACTER": PerCharacter, "PER_TOKEN": PerToken,
    "DURATION_MODE": DurationMode, "OPERATION_MODE": OperationMode,
}


def parse_prices(billing_type: str, prices: dict) -> _Prices:
    schema = SCHEMAS.get(billing_type)
    if schema is None:
        raise InvalidInput(f"Unknown billing type {billing_type!r}; known: {', '.join(SCHEMAS)}.",
                           param="billing_type")
    try:
        parsed = schema.model_validate(prices or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"Invalid prices for {billing_type}: {where}: {first['msg']}.", param="prices") from None
    for name, value in _price_maps(parsed):
        if any(v < 0 or v > 10_000_000 for v in value.values()):
            raise InvalidInput(f"Invalid prices for {billing_type}: {name} must be 0 to 10,000,000.", param="prices")
    if isinstance(parsed, DurationResolution):
        if not parsed.tiers and not parsed.per_second:
            raise InvalidInput("DURATION_RESOLUTION needs tiers or per_second prices.", param="prices")
        for key in parsed.tiers:
            _split_tier(key)
    if isinstance(parsed, DurationMode) and parsed.default_mode not in parsed.per_second:
        raise InvalidInput("default_mode must be one of the priced modes.", param="prices")
    if isinstance(parsed, OperationMode) and (parsed.default_mode not in parsed.mode_percent
                                              or parsed.default_operation not in parsed.operations):
        raise InvalidInput("default_mode and default_operation must be priced.", param="prices")
    return parsed


def _price_maps(parsed: _Prices):
    for name in ("by_resolution", "tiers", "per_second", "operations", "mode_percent"):
        value = getattr(parsed, name, None)
        if isinstance(value, dict):
            yield name, value


@dataclass
class Usage:
    """What a call really produced, as far as billing cares. None = not reported."""

    images: int | None = None
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    characters: int | None = None


@dataclass
class Quote:
    credits: int
    breakdown: dict = field(default_factory=dict)


_LABEL_PIXELS = {"1k": 1024 * 1024, "2k": 2048 * 2048, "4k": 4096 * 4096, "480p": 854 * 480, "540p": 960 * 540,
                 "720p": 1280 * 720, "768p": 1366 * 768, "1080p": 1920 * 1080, "1440p": 2560 * 1440,
                 "2160p": 3840 * 2160}


def pixels(resolution: str | None) -> int | None:
    """Pixel count of '1024x1024', '2K', '720p' (None when it is not a resolution, e.g. '16:9')."""
    if not resolution:
        return None
    text = str(resolution).strip().lower()
    match = re.fullmatch(r"(\d{2,5})\s*[x*×]\s*(\d{2,5})", text)
    if match:
        return int(match.group(1)) * int(match.group(2))
    return _LABEL_PIXELS.get(text)


def _nearest(requested: str | None, known) -> str | None:
    """Exact (case-insensitive) match, else the known resolution nearest by pixel count."""
    known = list(known)
    if requested is None:
        return None
    for key in known:
        if key.lower() == str(requested).strip().lower():
            return key
    want = pixels(requested)
    if want is None:
        return None
    priced = [(abs(pixels(k) - want), pixels(k), k) for k in known if pixels(k) is not None]
    return min(priced)[2] if priced else None


def _seconds(value, default: int, param: str = "duration") -> int:
    if value is None or value == 0:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:  # NaN too
        raise InvalidInput(f"{param} must be a number of seconds from 1 to {MAX_SECONDS}.", param=param)
    return max(1, math.ceil(value))


def _count(value, default: int, param: str, maximum: int = 100) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"{param} must be a whole number from 1 to {maximum}.", param=param)
    return value


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def count_tokens(text: str) -> int:
    """Our token count when upstream gives none: each CJK character is one token (CJK tokenizers
    rarely merge them), other text one token per 4 characters, rounded up."""
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def message_tokens(messages) -> int:
    """Prompt tokens of chat messages: their text and the tool calls in them, plus 4 tokens of framing
    per message."""
    if messages is not None and not isinstance(messages, list):
        raise InvalidInput("messages must be a list of messages.", param="messages")
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(part["text"] for part in content
                               if isinstance(part, dict) and isinstance(part.get("text"), str))
        total += 4 + count_tokens(content if isinstance(content, str) else "")
        if isinstance(message, dict):
            total += tool_call_tokens(message.get("tool_calls"), message.get("function_call"))
    return total


def tool_call_tokens(tool_calls, function_call=None) -> int:
    """Tokens of the calls a model wrote: each function's name and its JSON arguments."""
    calls = [call.get("function") for call in tool_calls if isinstance(call, dict)] \
        if isinstance(tool_calls, list) else []
    calls.append(function_call)
    return sum(count_tokens(call.get("name") if isinstance(call.get("name"), str) else "")
               + count_tokens(call.get("arguments") if isinstance(call.get("arguments"), str) else "")
               for call in calls if isinstance(call, dict))


def prompt_tokens(params: dict) -> int:
    """Prompt tokens of a chat request: its messages, and the tool and output schemas the model reads too."""
    total = message_tokens(params.get("messages"))
    response_format = params.get("response_format")
    schemas = [params.get("tools"), params.get("functions"),
               response_format.get("json_schema") if isinstance(response_format, dict) else None]
    return total + sum(count_tokens(json.dumps(schema, ensure_ascii=False, separators=(",", ":")))
                       for schema in schemas if schema)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _image_price(prices: PerImage, params: dict) -> tuple[int, str | None]:
    requested = params.get("image_size") or params.get("size")
    key = _nearest(requested, prices.by_resolution) if prices.by_resolution else None
    return (prices.by_resolution[key], key) if key else (prices.credits, None)


def _video_price(prices: DurationResolution, resolution: str, seconds: int) -> tuple[int, dict]:
    tiers: dict[str, dict[int, int]] = {}
    for key, credits in prices.tiers.items():
        res, duration = _split_tier(key)
        tiers.setdefault(res, {})[duration] = credits
    if tiers:
        res = _nearest(resolution, tiers) or min(tiers, key=lambda r: pixels(r) or 0)
        by_duration = tiers[res]
        fitting = [d for d in sorted(by_duration) if d >= seconds]
        if fitting:
            tier = fitting[0]
            return by_duration[tier], {"resolution": res, "tier": f"{res}_{tier}", "seconds": seconds}
        longest = max(by_duration)  # beyond the longest tier: that tier's price, pro rata
        return (_ceil_div(by_duration[longest] * seconds, longest),
                {"resolution": res, "tier": f"{res}_{longest}", "seconds": seconds, "pro_rata": True})
    res = _nearest(resolution, prices.per_second) or min(prices.per_second, key=lambda r: pixels(r) or 0)
    return prices.per_second[res] * seconds, {"resolution": res, "per_second": prices.per_second[res],
                                              "seconds": seconds}


def _split_tier(key: str) -> tuple[str, int]:
    res, _, duration = key.rpartition("_")
    if not res or not duration.isdigit() or int(duration) <= 0:
        raise InvalidInput(f"Tier {key!r} must look like '720p_5' (resolution_seconds).", param="prices")
    return res, int(duration)


def _mode(value, priced: dict, default: str, param: str) -> str:
    mode = value or default
    if not isinstance(mode, str) or mode not in priced:
        raise InvalidInput(f"{param} must be one of: {', '.join(sorted(priced))}.", param=param)
    return mode


def quote(billing_type: str, prices_data: dict, params: dict, usage: Usage | None = None) -> Quote:
    """The estimate (usage None) or the charge for what `usage` reports."""
    prices = parse_prices(billing_type, prices_data)
    params = params or {}
    used = usage or Usage()

    if isinstance(prices, PerRequest):
        return Quote(prices.credits, {"per_request": prices.credits})

    if isinstance(prices, PerImage):
        images = used.images if used.images is not None else \
            _count(params.get("max_images") or params.get("n"), 1, "n", maximum=15)
        each, resolution = _image_price(prices, params)
        return Quote(each * images, {"images": images, "per_image": each, "resolution": resolution})

    if isinstance(prices, PerSecond):
        seconds = _seconds(used.seconds or params.get("duration"), prices.default_seconds)
        return Quote(prices.credits_per_second * seconds, {"seconds": seconds,
                                                           "per_second": prices.credits_per_second})

    if isinstance(prices, DurationResolution):
        seconds = _seconds(used.seconds or params.get("duration"), prices.default_seconds)
        credits, breakdown = _video_price(prices, params.get("resolution") or prices.default_resolution, seconds)
        return Quote(credits, breakdown)

    if isinstance(prices, PerCharacter):
        characters = used.characters if used.characters is not None else len(str(params.get("input") or ""))
        credits = max(prices.minimum_credits, _ceil_div(characters, prices.per_characters) * prices.credits)
        return Quote(credits, {"characters": characters, "per_characters": prices.per_characters,
                               "credits_per_unit": prices.credits})

    if isinstance(prices, PerToken):
        input_tokens = used.input_tokens if used.input_tokens is not None else prompt_tokens(params)
        output_tokens = used.output_tokens if used.output_tokens is not None else _count(
            params.get("max_completion_tokens") or params.get("max_tokens"), prices.default_output_tokens,
            "max_tokens", maximum=1_000_000)
        credits = _ceil_div(input_tokens * prices.input_per_1k + output_tokens * prices.output_per_1k, 1000)
        return Quote(credits, {"input_tokens": input_tokens, "output_tokens": output_tokens,
                               "input_per_1k": prices.input_per_1k, "output_per_1k": prices.output_per_1k})

    if isinstance(prices, DurationMode):
        mode = _mode(params.get("mode"), prices.per_second, prices.default_mode, "mode")
        seconds = _seconds(used.seconds or params.get("duration"), prices.default_seconds)
        return Quote(prices.per_second[mode] * seconds, {"mode": mode, "seconds": seconds,
                                                         "per_second": prices.per_second[mode]})

    assert isinstance(prices, OperationMode)
    operation = _mode(params.get("operation"), prices.operations, prices.default_operation, "operation")
    mode = _mode(params.get("mode"), prices.mode_percent, prices.default_mode, "mode")
    credits = _ceil_div(prices.operations[operation] * prices.mode_percent[mode], 100)
    return Quote(credits, {"operation": operation, "mode": mode, "base": prices.operations[operation],
                           "mode_percent": prices.mode_percent[mode]})


def estimate(billing_type: str, prices: dict, params: dict) -> Quote:
    return quote(billing_type, prices, params)


def actual(billing_type: str, prices: dict, params: dict, usage: Usage) -> Quote:
    """What to settle: the charge for `usage`, never above the estimate, never negative."""
    held = estimate(billing_type, prices, params)
    charged = quote(billing_type, prices, params, usage)
    credits = max(0, min(charged.credits, held.credits))
    breakdown = dict(charged.breakdown)
    if credits < charged.credits:
        breakdown["capped_at_estimate"] = held.credits
    return Quote(credits, breakdown)
