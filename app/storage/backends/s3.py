"""Any S3-compatible bucket through boto3: AWS S3, Cloudflare R2 (region "auto"), MinIO. Large files go
up in parts (STORAGE_PART_BYTES) read from the spooled file one at a time, so memory stays flat; clients
get short-lived presigned URLs (GET, and POST with a content-length-range the bucket enforces)."""
from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app

from app.storage.backends import (BucketConfig, UploadForm, content_disposition, failure, guard_endpoint,
                                  unreachable)


def probe_key(prefix: str) -> str:
    return f"{prefix}waule-probe-{uuid.uuid4().hex}.txt"


_session: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    """One boto3 session for every S3 client of the process: it loads S3's model once (about 15 MiB);
    a client per tenant bucket then costs a fraction of a MiB. Clients are made under backends' lock
    (a session is not safe to share between threads while it makes clients)."""
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session


def _client(config: BucketConfig, endpoint: str):
    settings = Config(signature_version="s3v4", connect_timeout=5, read_timeout=60,
                      retries={"max_attempts": 3, "mode": "standard"},
                      # Checksums only where S3 requires them: R2 and MinIO do not all take the newer ones.
                      request_checksum_calculation="when_required", response_checksum_validation="when_required",
                      s3={"addressing_style": "path" if endpoint else "virtual"})
    return _shared_session().client(
        "s3", endpoint_url=endpoint or None, region_name=config.region or None, config=settings,
        aws_access_key_id=config.access_key_id, aws_secret_access_key=config.secret)


class S3Storage:
    name = "s3"

    def __init__(self, config: BucketConfig):
        self.config, self.bucket = config, config.bucket
        # The host boto3 connects to: the endpoint itself (path-style), or AWS's bucket host.
        self.endpoint = config.endpoint or f"https://{config.bucket}.s3.{config.region}.amazonaws.com"
        self.client = _client(config, config.endpoint)
        # Presigned URLs name the host clients reach; signing makes no request.
        self.public = _client(config, config.public_endpoint) if config.public_endpoint else self.client

    def _call(self, operation: str, call, *args, **kwargs):
        guard_endpoint(self.endpoint)
        try:
            return call(*args, **kwargs)
        except (ClientError, S3UploadFailedError) as error:
            # upload_file raises S3UploadFailedError over the ClientError that says why.
            refused = error if isinstance(error, ClientError) else error.__context__
            if not isinstance(refused, ClientError):
                raise unreachable(self.bucket, operation) from None
            details = refused.response.get("Error", {})
            code, status = details.get("Code"), refused.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404") and operation in ("read the file", "measure the file"):
                raise FileNotFoundError(f"no such object in {self.bucket}") from None
            raise failure(self.bucket, operation, code, status) from None
        except BotoCoreError:
            raise unreachable(self.bucket, operation) from None

    def put(self, key: str, source: bytes | Path | BinaryIO, content_type: str) -> int:
        part = current_app.config["STORAGE_PART_BYTES"]
        # One part at a time, on this thread: memory stays at about one part, whatever the file's size.
        transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, use_threads=False)
        extra = {"ContentType": content_type, "ContentDisposition": content_disposition(key)}
        if isinstance(source, Path):
            self._call("store the file", self.client.upload_file, str(source), self.bucket, key, ExtraArgs=extra,
                       Config=transfer)
            return source.stat().st_size
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        self._call("store the file", self.client.upload_fileobj, stream, self.bucket, key, ExtraArgs=extra,
                   Config=transfer)
        return len(source) if isinstance(source, bytes) else stream.tell()

    def open(self, key: str) -> BinaryIO:
        body = self._call("read the file", self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
        return body  # botocore's StreamingBody: read(), iteration, close()

    def size(self, key: str) -> int | None:
        try:
            return self._call("measure the file", self.client.head_object, Bucket=self.bucket, Key=key)[
                "ContentLength"]
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._call("delete the file", self.client.delete_object, Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in self._call("list files", list, pages):  # the pages are fetched here, errors mapped
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def url(self, key: str, *, content_type: str, expires_in: int) -> str:
        return self.public.generate_presigned_url(
            "get_object", ExpiresIn=expires_in,
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(key)})

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        fields = {"Content-Type": content_type, "Content-Disposition": content_disposition(key)}
        conditions = [{"Content-Type": content_type}, {"Content-Disposition": content_disposition(key)},
                      ["content-length-range", 1, max_bytes]]
        post = self.public.generate_presigned_post(self.bucket, key, Fields=fields, Conditions=conditions,
                                                   ExpiresIn=expires_in)
        return UploadForm(post["url"], post["fields"])

    def verify(self, prefix: str = "") -> None:
        """Write, read, list and delete a probe object under `prefix`: what storing results needs."""
        key = probe_key(prefix)
        self._call("store a test file", self.client.put_object, Bucket=self.bucket, Key=key, Body=b"waule",
                   ContentType="text/plain")
        body = self._call("read a test file back", self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
        body.read()
        body.close()
        self._call("list files", self.client.list_objects_v2, Bucket=self.bucket, Prefix=key, MaxKeys=1)
        self._call("delete a test file", self.client.delete_object, Bucket=self.bucket, Key=key)
