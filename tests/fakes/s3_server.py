"""A real S3-protocol server on 127.0.0.1: moto's ThreadedMotoServer with signature checking on. IAM
keys are created in it while it still accepts anonymous calls; then authentication is switched on for
every request (INITIAL_NO_AUTH_ACTION_COUNT=0, through moto's own reset-auth route), so a wrong key or
secret is refused as AWS would refuse it.

moto checks only the Authorization header. A presigned GET (SigV4 in the query string) and a browser's
POST (a policy signed with SigV4) carry none, so a small WSGI layer in front of it checks those the way
S3 does — the signature recomputed with botocore's own signer, the expiry, and the POST policy's
conditions, content-length-range included — and hands moto only the requests that pass."""
from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from unittest import mock
from urllib.parse import parse_qsl, urlencode

import boto3
import requests
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import settings as moto_settings
from moto.server import ThreadedMotoServer
from werkzeug.formparser import parse_form_data

REGION = "us-east-1"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
AMZ_TIME = "%Y%m%dT%H%M%SZ"


def s3_error(start_response, status: str, code: str):
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>".encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class SignedWithoutHeader:
    """WSGI: checks presigned GETs and POST policies, which moto cannot, then lets moto serve them."""

    def __init__(self, app, keys: dict[str, str]):
        self.app, self.keys = app, keys  # access key id -> secret
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if "X-Amz-Signature" in query and "HTTP_AUTHORIZATION" not in environ:
            refusal = self.check_query(environ, query)
        elif environ["REQUEST_METHOD"] == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            refusal = self.check_post(environ)
        else:
            return self.app(environ, start_response)
        if refusal is not None:
            return s3_error(start_response, *refusal)
        with self.lock:  # checked here: moto serves it as an anonymous request
            previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            try:
                return list(self.app(environ, start_response))
            finally:
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = previous

    def _signer(self, credential: str, cls, **kwargs):
        key_id, _day, region, service, _end = credential.split("/")
        secret = self.keys.get(key_id)
        return (cls(Credentials(key_id, secret), service, region, **kwargs) if secret else None), key_id

    def check_query(self, environ, query: dict):
        signed_at = datetime.strptime(query["X-Amz-Date"], AMZ_TIME).replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) > signed_at + timedelta(seconds=int(query["X-Amz-Expires"])):
            return "403 Forbidden", "AccessDenied"
        signer, _key_id = self._signer(query["X-Amz-Credential"], S3SigV4QueryAuth,
                                       expires=int(query["X-Amz-Expires"]))
        if signer is None:
            return "403 Forbidden", "InvalidAccessKeyId"
        operation = {k: v for k, v in query.items() if not k.startswith("X-Amz-")}
        host = environ["HTTP_HOST"]
        url = f"http://{host}{environ.get('RAW_URI', environ['PATH_INFO']).split('?', 1)[0]}"
        request = AWSRequest(method=environ["REQUEST_METHOD"], url=url + ("?" + urlencode(operation) if operation
                                                                         else ""), headers={"host": host})
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at.replace(tzinfo=None)):
            signer.add_auth(request)
        expected = dict(parse_qsl(request.url.split("?", 1)[1]))["X-Amz-Signature"]
        return None if expected == query["X-Amz-Signature"] else ("403 Forbidden", "SignatureDoesNotMatch")

    def check_post(self, environ):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        _stream, form, files = parse_form_data({**environ, "wsgi.input": io.BytesIO(body)})
        fields = form.to_dict()
        if "policy" not in fields or "file" not in files:
            return "400 Bad Request", "InvalidArgument"
        signer, _key_id = self._signer(fields.get("x-amz-credential", "-/-/-/-/-"), SigV4Auth)
        if signer is None:
            return "403 Forbidden", "InvalidAccessKeyId"
        request = AWSRequest()
        request.context["timestamp"] = fields.get("x-amz-date", "")
        if signer.signature(fields["policy"], request) != fields.get("x-amz-signature"):
            return "403 Forbidden", "SignatureDoesNotMatch"
        policy = json.loads(base64.b64decode(fields["policy"]))
        expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) > expires:
            return "403 Forbidden", "AccessDenied"
        size = len(files["file"].read())
        bucket = environ["PATH_INFO"].strip("/").split("/", 1)[0]
        for condition in policy["conditions"]:
            if isinstance(condition, list) and condition[0] == "content-length-range":
                if not condition[1] <= size <= condition[2]:
                    return "400 Bad Request", "EntityTooLarge" if size > condition[2] else "EntityTooSmall"
            elif isinstance(condition, dict):
                for name, value in condition.items():
                    if (bucket if name == "bucket" else fields.get(name)) != value:
                        return "403 Forbidden", "AccessDenied"
        return None


class S3Server:
    def __init__(self):
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> S3Server:
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        user = f"waule-{uuid.uuid4().hex[:8]}"  # moto's state is per process: each server has its own user
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.access_key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        wsgi = self.server._server
        wsgi.app = SignedWithoutHeader(wsgi.app, {self.access_key_id: self.secret})
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        return self

    def __exit__(self, *exc) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
        self.server.stop()

    def client(self, secret: str | None = None):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=secret or self.secret)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name
