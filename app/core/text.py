"""Text from outside. PostgreSQL cannot store U+0000 in text or jsonb, and no field here has a use for it,
so a request that carries one anywhere is refused at the edge (`refuse_nul`, run before every view) with
400 `invalid_request` naming the field, rather than failing later in the database."""
from __future__ import annotations

import json

from app.core.errors import InvalidInput

NUL = "\x00"


def nul_path(value) -> str | None:
    """The dotted path ('messages.0.content') of a string or key in decoded JSON that holds U+0000, "" for
    `value` itself, None when none does. Iterative, because the client chooses the nesting depth."""
    pending = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if NUL in str(key):
                    return where
                pending.append((where, child))
        elif isinstance(item, list):
            pending.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(item))
    return None


def _json_nul_path(raw: bytes) -> str | None:
    # JSON can only spell U+0000 as the escape \u0000, so most bodies need no second parse. A body that does
    # not parse is left to the view, which reports it as malformed.
    if b"\\u0000" not in raw:
        return None
    try:
        return nul_path(json.loads(raw))
    except (ValueError, RecursionError):
        return None


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refused(param: str | None, where: str) -> InvalidInput:
    return InvalidInput(f"{param or where}: text must not contain the NUL character (U+0000).", param=param)


def refuse_nul(request, *, json_body: bool) -> None:
    """Refuse U+0000 in the URL, the query string, and the body: parsed as JSON where `json_body` (the APIs
    read every body as JSON), as a form otherwise (the dashboard)."""
    if NUL in request.path:
        names = [name for name, value in (request.view_args or {}).items() if NUL in str(value)]
        raise _refused(names[0] if names else None, "The URL")
    pairs = list(request.args.items(multi=True))
    if not json_body and request.mimetype in FORM_TYPES:  # other bodies (an upload's bytes) are not read here
        pairs += request.form.items(multi=True)
    for name, value in pairs:
        if NUL in name or NUL in value:
            raise _refused(name, "A field name")
    if json_body:
        where = _json_nul_path(request.get_data(cache=True))
        if where is not None:
            raise _refused(where or None, "The body")
