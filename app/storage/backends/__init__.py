"""Storage backends: where the bytes of an object live. Each StoredFile names its backend, so an
object is always read, signed and deleted where it was written, whatever new objects use today."""
from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

from flask import current_app

from app.storage.backends.local import LocalStorage, UnsafeKey

__all__ = ["Backend", "LocalStorage", "UnsafeKey", "current", "named"]


class Backend(Protocol):
    name: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object whose key starts with `prefix`, as (key, size in bytes): what `flask storage verify
        --deep` compares with the records."""
        ...


def named(name: str) -> Backend:
    """The backend a stored object names."""
    if name == LocalStorage.name:
        return LocalStorage(current_app.config["STORAGE_DIR"])
    raise LookupError(f"unknown storage backend {name!r}")


def current() -> Backend:
    """Where new objects are written."""
    return named(LocalStorage.name)
