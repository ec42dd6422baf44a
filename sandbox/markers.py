"""Prompt markers: `[sandbox:NAME]` or `[sandbox:NAME=VALUE]` steer the sandbox into a failure mode.

They let the platform's tests drive every error path of the gateway contract with an ordinary request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"\[sandbox:([a-z_]+)(?:=([^\]]*))?\]")

# name -> whether it takes a value
KNOWN = {
    "fail": False,
    "reject": False,
    "timeout": False,
    "slow": True,
    "badjson": False,
    "deny": False,
    "result_url": True,
    "flat_error": False,
    "task_fail": False,
    "no_stream": False,
    "usage": False,
    "stream_cut": False,
}


class MarkerError(ValueError):
    """A marker that is unknown or malformed: a typo must not silently turn into a success."""


@dataclass(frozen=True)
class Markers:
    values: dict[str, str | None] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    @property
    def slow_seconds(self) -> float | None:
        raw = self.values.get("slow")
        return None if raw is None else float(raw)

    @property
    def result_url(self) -> str | None:
        return self.values.get("result_url")


def find_markers(*texts: object) -> Markers:
    """Markers in the given texts; non-strings are ignored so this can run before validation."""
    values: dict[str, str | None] = {}
    for text in texts:
        if not isinstance(text, str):
            continue
        for match in MARKER.finditer(text):
            name, value = match.group(1), match.group(2)
            if name not in KNOWN:
                raise MarkerError(f"unknown sandbox marker [sandbox:{name}]")
            if KNOWN[name] and not value:
                raise MarkerError(f"[sandbox:{name}=…] needs a value")
            if name == "slow":
                try:
                    if float(value) < 0:
                        raise ValueError
                except ValueError:
                    raise MarkerError("[sandbox:slow=N] needs a non-negative number of seconds") from None
            if name == "result_url" and not value.strip():
                raise MarkerError("[sandbox:result_url=URL] needs a URL")
            values[name] = value.strip() if value is not None else None
    return Markers(values)


def strip_markers(text: str) -> str:
    return " ".join(MARKER.sub(" ", text).split())
