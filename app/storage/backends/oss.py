"""Aliyun OSS through oss2. A spooled file goes up with oss2's resumable upload (in parts of
STORAGE_PART_BYTES above that size, one part in memory at a time); its checkpoints live under
STORAGE_TEMP_DIR, never the home directory. Clients get short-lived signed URLs, on the bucket's custom
domain when it has one, and PostObject policies with a content-length-range for their own uploads."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import oss2
from flask import current_app
from oss2.exceptions import NoSuchKey, NotFound, OssError, RequestError

from app.storage.backends import (BucketConfig, UploadForm, content_disposition, failure, guard_endpoint, temp_dir,
                                  unreachable)

CONNECT_TIMEOUT_SECONDS = 10


class _Body:
    """An object's bytes as a file: read(), close(), a context manager."""

    def __init__(self, result):
        self._result = result

    def read(self, size: int = -1) -> bytes:
        return self._result.read(None if size is None or size < 0 else size)

    def __iter__(self):
        return iter(self._result)

    def close(self) -> None:
        self._result.resp.response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OssStorage:
    name = "oss"

    def __init__(self, config: BucketConfig):
        self.config, self.bucket = config, config.bucket
        auth = oss2.Auth(config.access_key_id, config.secret)
        self.client = oss2.Bucket(auth, config.endpoint, config.bucket, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        self.bucket_url = self.client._make_url(config.bucket, "")
        # Signed URLs on the custom domain bound to the bucket (a CNAME), when there is one.
        self.public = oss2.Bucket(auth, config.public_endpoint, config.bucket, is_cname=True) \
            if config.public_endpoint else self.client

    def _call(self, operation: str, call, *args, **kwargs):
        # The host oss2 connects to: bucket.endpoint-host (path-style only for an IP), checked as it is.
        guard_endpoint(self.bucket_url)
        try:
            return call(*args, **kwargs)
        except (NoSuchKey, NotFound) as error:
            if operation in ("read the file", "measure the file") and getattr(error, "code", "") in ("NoSuchKey", ""):
                raise FileNotFoundError(f"no such object in {self.bucket}") from None
            raise failure(self.bucket, operation, error.code, error.status) from None
        except RequestError:
            raise unreachable(self.bucket, operation) from None
        except OssError as error:
            raise failure(self.bucket, operation, getattr(error, "code", None), error.status) from None

    def _headers(self, key: str, content_type: str) -> dict:
        return {"Content-Type": content_type, "Content-Disposition": content_disposition(key)}

    def put(self, key: str, source: bytes | Path | BinaryIO, content_type: str) -> int:
        headers = self._headers(key, content_type)
        if isinstance(source, Path):
            part = current_app.config["STORAGE_PART_BYTES"]
            checkpoints = oss2.ResumableStore(root=str(temp_dir()), dir="oss-checkpoints")
            self._call("store the file", oss2.resumable_upload, self.client, key, str(source), store=checkpoints,
                       headers=headers, multipart_threshold=part, part_size=part, num_threads=1)
            return source.stat().st_size
        self._call("store the file", self.client.put_object, key, source, headers=headers)
        return len(source) if isinstance(source, bytes) else source.tell()

    def open(self, key: str) -> BinaryIO:
        return _Body(self._call("read the file", self.client.get_object, key))

    def size(self, key: str) -> int | None:
        try:
            return self._call("measure the file", self.client.head_object, key).content_length
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._call("delete the file", self.client.delete_object, key)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for item in self._call("list files", list, oss2.ObjectIterator(self.client, prefix=prefix)):
            yield item.key, item.size

    def url(self, key: str, *, content_type: str, expires_in: int) -> str:
        return self.public.sign_url("GET", key, expires_in, slash_safe=True,
                                    params={"response-content-type": content_type,
                                            "response-content-disposition": content_disposition(key)})

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        """A PostObject form: the policy (its content-length-range enforced by the bucket) signed as OSS
        specifies, HMAC-SHA1 of the base64 policy (oss2 has no helper for it)."""
        expiration = datetime.now(timezone.utc) + timedelta(seconds=expires_in)
        fields = {"key": key, "Content-Type": content_type, "Content-Disposition": content_disposition(key)}
        policy = {"expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                  "conditions": [{"bucket": self.bucket}, *({name: value} for name, value in fields.items()),
                                 ["content-length-range", 1, max_bytes]]}
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        signature = base64.b64encode(hmac.new(self.config.secret.encode(), encoded.encode(), hashlib.sha1).digest())
        return UploadForm(self.public._make_url(self.bucket, ""),
                          {**fields, "OSSAccessKeyId": self.config.access_key_id, "policy": encoded,
                           "Signature": signature.decode(), "success_action_status": "204"})

    def verify(self, prefix: str = "") -> None:
        """Write, read, list and delete a probe object under `prefix`: what storing results needs."""
        key = f"{prefix}waule-probe-{uuid.uuid4().hex}.txt"
        self._call("store a test file", self.client.put_object, key, b"waule", headers={"Content-Type": "text/plain"})
        self._call("read a test file back", self.client.get_object, key).read()
        self._call("list files", self.client.list_objects, prefix=key, max_keys=1)
        self._call("delete a test file", self.client.delete_object, key)
