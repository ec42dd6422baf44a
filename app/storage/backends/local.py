"""The local filesystem under STORAGE_DIR: the embedded default. Its objects are served by us (signed
/files/ URLs), so it presigns nothing; uploads from clients come through our own signed route."""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

COPY_CHUNK_BYTES = 1024 * 1024


class UnsafeKey(ValueError):
    """A storage key that could name something outside the storage area."""


def check_key(key: str) -> list[str]:
    parts = key.split("/")
    if (not key or key.startswith("/") or "\\" in key or "\x00" in key
            or any(part in ("", ".", "..") or part.startswith(".") for part in parts)):
        raise UnsafeKey(f"unsafe storage key {key!r}")
    return parts


class LocalStorage:
    """Files under a root folder. Writes are atomic (temp file, then rename), so a reader never sees
    half an object."""

    name = "local"
    bucket = ""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise UnsafeKey(f"storage key {key!r} resolves outside the storage directory")
        return path

    def put(self, key: str, source: bytes | Path | BinaryIO, content_type: str) -> int:
        """`source`: bytes, a file spooled to disk, or an open stream; copied in chunks, never read whole."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(draft, "xb") as file:
                if isinstance(source, bytes):
                    file.write(source)
                elif isinstance(source, Path):
                    with open(source, "rb") as spooled:
                        shutil.copyfileobj(spooled, file, COPY_CHUNK_BYTES)
                else:
                    shutil.copyfileobj(source, file, COPY_CHUNK_BYTES)
                file.flush()
                os.fsync(file.fileno())
                written = file.tell()
            os.replace(draft, path)
        except BaseException:
            draft.unlink(missing_ok=True)
            raise
        return written

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Objects under `prefix`, never a draft being written (a dot file) or anything outside the root."""
        folder = prefix.rpartition("/")[0]
        top = self._path(folder) if folder else self.root
        if not top.is_dir():
            return
        for directory, subdirectories, files in os.walk(top):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
            for name in sorted(files):
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if name.startswith(".") or not key.startswith(prefix) or path.is_symlink():
                    continue
                yield key, path.stat().st_size

    def url(self, key: str, *, content_type: str, expires_in: int) -> None:
        return None  # served by us

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> None:
        return None  # uploaded through our own signed route

    def verify(self, prefix: str = "") -> None:
        self.root.mkdir(parents=True, exist_ok=True)
