"""A small Aliyun OSS on 127.0.0.1, speaking OSS's HTTP API (path-style, as oss2 uses it for an IP
endpoint) for the calls oss2 makes here: PutObject, InitiateMultipartUpload / ListParts / UploadPart /
CompleteMultipartUpload, GetObject, HeadObject, DeleteObject, ListObjects and PostObject.

Every request must carry a valid OSS V1 signature, checked the way OSS does: HMAC-SHA1 of
VERB, Content-MD5, Content-Type, Date (or, in a signed URL, Expires), the x-oss- headers and the
canonical resource /bucket/key with its sub-resources, under the secret of the access key id named;
a Date more than 15 minutes off is RequestTimeTooSkewed. A PostObject's policy is checked (signature,
expiry, content-length-range and exact-match conditions) as the bucket would."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

# The sub-resources a V1 signature covers, of those the calls above use (OSS's list has more).
SUBRESOURCES = {"uploads", "uploadId", "partNumber", "response-content-type", "response-content-disposition",
                "response-cache-control", "response-expires", "response-content-language",
                "response-content-encoding", "acl"}
SKEW_SECONDS = 15 * 60


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str = ""):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message or code


def _xml(tag: str, **children) -> bytes:
    inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in children.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag}>{inner}</{tag}>'.encode()


class FakeOss:
    def __init__(self, keys: dict[str, str]):
        self.keys = dict(keys)  # access key id -> secret
        self.buckets: dict[str, dict[str, tuple[bytes, dict]]] = {}
        self.uploads: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path?query) as received, for assertions

    def __enter__(self) -> FakeOss:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                try:
                    status, headers, body = fake.handle(self.command, self.path, dict(self.headers.items()),
                                                        self._body())
                except OssError as error:
                    status, headers = error.status, {"Content-Type": "application/xml"}
                    body = _xml("Error", Code=error.code, Message=error.message, RequestId=uuid.uuid4().hex)
                self.send_response(status)
                headers = {"x-oss-request-id": uuid.uuid4().hex, **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def create_bucket(self, name: str) -> str:
        self.buckets[name] = {}
        return name

    def _signature(self, secret: str, verb: str, headers: dict, date: str, resource: str) -> str:
        lower = {name.lower(): value for name, value in headers.items()}
        oss_headers = "".join(f"{name}:{lower[name]}\n" for name in sorted(n for n in lower if n.startswith("x-oss-")))
        text = "\n".join([verb, lower.get("content-md5", ""), lower.get("content-type", ""), date,
                          oss_headers + resource])
        return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()

    def _secret(self, key_id: str) -> str:
        secret = self.keys.get(key_id)
        if secret is None:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist.")
        return secret

    def _check_signed(self, verb: str, headers: dict, params: dict, resource: str) -> None:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            key_id, _, signature = credential.partition(":")
            date = next((v for k, v in headers.items() if k.lower() in ("x-oss-date", "date")), "")
            try:
                sent = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                raise OssError(403, "AccessDenied", "The request has no valid Date.") from None
            if abs(time.time() - sent) > SKEW_SECONDS:
                raise OssError(403, "RequestTimeTooSkewed", "The difference between the request time and the "
                                                            "current time is too large.")
            if scheme != "OSS":
                raise OssError(400, "InvalidArgument", "Only OSS V1 signatures are checked here.")
        elif "Signature" in params:  # a signed URL
            key_id, signature, date = params["OSSAccessKeyId"], params["Signature"], params.get("Expires", "")
            if not date.isdigit() or int(date) < time.time():
                raise OssError(403, "AccessDenied", "Request has expired.")
        else:
            raise OssError(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
        expected = self._signature(self._secret(key_id), verb, headers, date, resource)
        if not hmac.compare_digest(expected, signature):
            raise OssError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")

    def handle(self, verb: str, target: str, headers: dict, body: bytes):
        split = urlsplit(target)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        self.requests.append((verb, target))
        bucket, _, key = unquote(split.path).lstrip("/").partition("/")
        if verb == "POST" and not key and headers.get("Content-Type", "").startswith("multipart/form-data"):
            return self.post_object(bucket, headers, body)
        sub = sorted((name, value) for name, value in params.items() if name in SUBRESOURCES)
        resource = f"/{bucket}/{key}" + ("?" + "&".join(f"{n}={v}" if v else n for n, v in sub) if sub else "")
        self._check_signed(verb, headers, params, resource)
        with self.lock:
            if bucket not in self.buckets:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            objects = self.buckets[bucket]
            if not key:
                if verb == "GET":
                    return self.list_objects(bucket, objects, params)
                raise OssError(405, "MethodNotAllowed")
            if verb == "PUT" and "uploadId" in params:
                return self.upload_part(params, body)
            if verb == "PUT":
                return self.put(objects, key, headers, body)
            if verb == "POST" and "uploads" in params:
                upload_id = uuid.uuid4().hex.upper()
                self.uploads[upload_id] = {"bucket": bucket, "key": key, "parts": {}, "headers": headers}
                return 200, {"Content-Type": "application/xml"}, _xml(
                    "InitiateMultipartUploadResult", Bucket=bucket, Key=key, UploadId=upload_id)
            if verb == "POST" and "uploadId" in params:
                return self.complete(objects, bucket, key, params, body)
            if verb == "GET" and "uploadId" in params:
                return self.list_parts(bucket, key, params)
            if verb in ("GET", "HEAD"):
                return self.get(objects, key, params)
            if verb == "DELETE":
                objects.pop(key, None)
                return 204, {}, b""
        raise OssError(405, "MethodNotAllowed")

    @staticmethod
    def _stored_headers(headers: dict) -> dict:
        kept = {}
        for name, value in headers.items():
            if name.lower() in ("content-type", "content-disposition"):
                kept[name.title()] = value
        return kept

    def put(self, objects: dict, key: str, headers: dict, body: bytes):
        etag = f'"{hashlib.md5(body).hexdigest().upper()}"'
        objects[key] = (body, {**self._stored_headers(headers), "ETag": etag})
        return 200, {"ETag": etag}, b""

    def upload_part(self, params: dict, body: bytes):
        upload = self.uploads.get(params["uploadId"])
        if upload is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        upload["parts"][int(params["partNumber"])] = body
        return 200, {"ETag": f'"{hashlib.md5(body).hexdigest().upper()}"'}, b""

    def list_parts(self, bucket: str, key: str, params: dict):
        upload = self.uploads.get(params["uploadId"])
        if upload is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><LastModified>{now}</LastModified><ETag>"
                        f'"{hashlib.md5(data).hexdigest().upper()}"</ETag><Size>{len(data)}</Size></Part>'
                        for n, data in sorted(upload["parts"].items()))
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult><Bucket>{bucket}</Bucket><Key>'
                f"{escape(key)}</Key><UploadId>{params['uploadId']}</UploadId><PartNumberMarker>0</PartNumberMarker>"
                f"<NextPartNumberMarker>0</NextPartNumberMarker><MaxParts>1000</MaxParts>"
                f"<IsTruncated>false</IsTruncated>{parts}</ListPartsResult>").encode()
        return 200, {"Content-Type": "application/xml"}, body

    def complete(self, objects: dict, bucket: str, key: str, params: dict, body: bytes):
        upload = self.uploads.pop(params["uploadId"], None)
        if upload is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        listed = [int(part.findtext("PartNumber")) for part in ElementTree.fromstring(body).iter("Part")]
        if listed != sorted(upload["parts"]):
            raise OssError(400, "InvalidPart", "One or more of the specified parts could not be found.")
        data = b"".join(upload["parts"][n] for n in listed)
        etag = f'"{hashlib.md5(data).hexdigest().upper()}-{len(listed)}"'
        objects[key] = (data, {**self._stored_headers(upload["headers"]), "ETag": etag,
                               "x-oss-object-type": "Multipart"})
        return 200, {"Content-Type": "application/xml", "ETag": etag}, _xml(
            "CompleteMultipartUploadResult", Location=f"{self.endpoint}/{bucket}/{key}", Bucket=bucket, Key=key,
            ETag=etag)

    def get(self, objects: dict, key: str, params: dict):
        if key not in objects:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        data, headers = objects[key]
        headers = {**headers, "Last-Modified": formatdate(usegmt=True)}
        for param, header in (("response-content-type", "Content-Type"),
                              ("response-content-disposition", "Content-Disposition")):
            if param in params:
                headers[header] = params[param]
        return 200, headers, data

    def list_objects(self, bucket: str, objects: dict, params: dict):
        prefix, limit = params.get("prefix", ""), int(params.get("max-keys") or 100)
        keys = sorted(key for key in objects if key.startswith(prefix))[:limit]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        contents = "".join(
            f"<Contents><Key>{escape(key)}</Key><LastModified>{now}</LastModified><ETag>{objects[key][1]['ETag']}"
            f"</ETag><Type>Normal</Type><Size>{len(objects[key][0])}</Size><StorageClass>Standard</StorageClass>"
            f"</Contents>" for key in keys)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>{bucket}</Name><Prefix>'
                f"{escape(prefix)}</Prefix><Marker></Marker><MaxKeys>{limit}</MaxKeys><Delimiter></Delimiter>"
                f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>").encode()
        return 200, {"Content-Type": "application/xml"}, body

    def post_object(self, bucket: str, headers: dict, body: bytes):
        """A browser's upload: the policy, signed with the secret of OSSAccessKeyId, says what may come."""
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        _stream, form, files = parse_form_data(environ)
        fields = form.to_dict()
        if "file" not in files or "policy" not in fields or "key" not in fields:
            raise OssError(400, "InvalidArgument", "The form needs key, policy, signature and file.")
        expected = base64.b64encode(hmac.new(self._secret(fields.get("OSSAccessKeyId", "")).encode(),
                                             fields["policy"].encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            raise OssError(403, "SignatureDoesNotMatch", "The policy signature does not match.")
        policy = json.loads(base64.b64decode(fields["policy"]))
        expires = datetime.strptime(policy["expiration"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) > expires:
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        data = files["file"].read()
        for condition in policy.get("conditions", []):
            if isinstance(condition, list) and condition[0] == "content-length-range":
                if len(data) > condition[2]:
                    raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
                if len(data) < condition[1]:
                    raise OssError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum size.")
            elif isinstance(condition, list) and condition[0] == "eq":
                name = condition[1].lstrip("$")
                if (bucket if name == "bucket" else fields.get(name)) != condition[2]:
                    raise OssError(403, "AccessDenied", f"Invalid according to Policy: {name}.")
            elif isinstance(condition, dict):
                for name, value in condition.items():
                    if (bucket if name == "bucket" else fields.get(name)) != value:
                        raise OssError(403, "AccessDenied", f"Invalid according to Policy: {name}.")
        with self.lock:
            if bucket not in self.buckets:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            stored = {name: fields[name] for name in ("Content-Type", "Content-Disposition") if name in fields}
            _status, result_headers, _body = self.put(self.buckets[bucket], fields["key"], stored, data)
        return 204, result_headers, b""
