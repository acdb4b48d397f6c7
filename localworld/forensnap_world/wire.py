"""Reading requests and writing AWS-shaped responses, independent of moto's internals.

``Call`` is what every other module needs to know about a request: the service (from the SigV4
credential scope), the operation name as in the AWS API reference, the caller's access key and
account, and the (buffered) body.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_QUERY_CREDENTIAL = re.compile(r"^([^/\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request$")
"""``X-Amz-Credential`` of a presigned URL (SigV4 query-string authentication)."""
_EBS_BLOCKS = re.compile(r"^/snapshots/([^/]+)/blocks/?$")
_EBS_BLOCK = re.compile(r"^/snapshots/([^/]+)/blocks/(\d+)$")

TRANSPORT_HEADER = "x-forensnap-transport"
"""Test-only request header naming the transport a request is authorised as having used.

The world itself listens on plain HTTP on loopback, yet AWS's ``aws:SecureTransport`` and
``s3:TlsVersion`` describe the connection between the client and AWS, which for forensnap is
HTTPS (its SDK clients use the endpoints' https URLs, and AWS endpoints require TLS 1.2 or
later). So a request without this header is authorised as TLS 1.3; a test sends
``x-forensnap-transport: http`` to stand for a request that reached AWS over plain HTTP
(``aws:SecureTransport`` false, no ``s3:TlsVersion``), or ``tls1.0`` .. ``tls1.3`` for HTTPS with
that TLS version. The header matters wherever the world evaluates a policy: every request with
``policies = true``, the trust policy of an AssumeRole otherwise. An unknown value is refused
with ``InvalidArgument``, never read as a default."""

TRANSPORTS: dict[str, str | None] = {
    "https": "1.3",
    "tls1.3": "1.3",
    "tls1.2": "1.2",
    "tls1.1": "1.1",
    "tls1.0": "1.0",
    "http": None,
}
"""``x-forensnap-transport`` value -> TLS version (``None``: plain HTTP, no TLS at all)."""

DEFAULT_TLS_VERSION = "1.3"
"""The TLS version of a request without ``x-forensnap-transport``."""

JSON_PROTOCOL = {"kms": "1.1", "events": "1.1", "dynamodb": "1.0", "sqs": "1.0", "cloudtrail": "1.1",
                 "ssm": "1.1"}
"""Services whose errors are JSON (awsJson protocol version): what the SDKs expect."""

XML_NS = {
    "ec2": None,
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}


@dataclass
class Call:
    """One request, parsed once."""

    environ: dict
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    service: str
    region: str
    access_key: str | None
    operation: str
    params: dict[str, list[str]] = field(default_factory=dict)
    presigned: bool = False
    """Authenticated by SigV4 query parameters (a presigned URL), not an Authorization header:
    ``access_key``, ``region`` and ``service`` come from ``X-Amz-Credential``."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name) or self.query.get(name)
        return values[0] if values else default

    @property
    def tls_version(self) -> str | None:
        """The TLS version the request is authorised as having used, ``None`` for plain HTTP
        (see :data:`TRANSPORT_HEADER`). Raises :class:`AwsError` for an unknown header value."""
        value = self.header(TRANSPORT_HEADER)
        if value is None:
            return DEFAULT_TLS_VERSION
        try:
            return TRANSPORTS[value.strip().lower()]
        except KeyError:
            raise AwsError(400, "InvalidArgument",
                           f"{TRANSPORT_HEADER}: {value!r} is not one of "
                           f"{', '.join(TRANSPORTS)}") from None

    @property
    def secure_transport(self) -> bool:
        """``aws:SecureTransport``: whether the request is authorised as sent over TLS."""
        return self.tls_version is not None

    @property
    def account(self) -> str:
        """The account moto will act in: header, then access key, then moto's default."""
        explicit = self.header("x-moto-account-id")
        if explicit:
            return explicit
        from moto.iam.models import get_account_id_from

        return get_account_id_from(self.access_key or "AKIAEXAMPLE")


def read_call(environ: dict) -> Call:
    """Parse a WSGI request and buffer its body so the next application can read it again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    access_key, region, service, presigned = None, "us-east-1", "", False
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    if not match and "authorization" not in headers:
        match = _QUERY_CREDENTIAL.match((query.get("X-Amz-Credential") or [""])[0])
        presigned = match is not None
        if not presigned and "AWSAccessKeyId" in query and "Signature" in query:
            # SigV2 query authentication (S3 only): refused by identity.check_presigned.
            access_key, service, presigned = query["AWSAccessKeyId"][0], "s3", True
    if match:
        access_key, region, service = match.group(1), match.group(2), match.group(3)
    method = environ["REQUEST_METHOD"]
    path = unquote(environ.get("PATH_INFO", "/"))
    params: dict[str, list[str]] = {}
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    call = Call(environ, method, path, query, headers, body, service, region, access_key, "", params,
                presigned)
    call.operation = operation_of(call)
    return call


def operation_of(call: Call) -> str:
    """The AWS operation name, as fault rules and checks refer to it."""
    target = call.header("x-amz-target")
    if target:
        return target.split(".")[-1]
    action = call.param("Action")
    if action:
        return action
    if call.service == "ebs":
        if _EBS_BLOCK.match(call.path):
            return "GetSnapshotBlock" if call.method == "GET" else "PutSnapshotBlock"
        if _EBS_BLOCKS.match(call.path):
            return "ListSnapshotBlocks"
        return "EbsOther"
    if call.service == "s3":
        return _s3_operation(call)
    return "Unknown"


def _s3_operation(call: Call) -> str:
    q, m = call.query, call.method
    parts = call.path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    sub = {
        "retention": "ObjectRetention",
        "legal-hold": "ObjectLegalHold",
        "versioning": "BucketVersioning",
        "object-lock": "ObjectLockConfiguration",
        "tagging": "ObjectTagging" if has_key else "BucketTagging",
        "attributes": "ObjectAttributes",
        "acl": "ObjectAcl" if has_key else "BucketAcl",
    }
    if not has_key:
        # Bucket configuration (sub-resources of the bucket), named as the S3 API names them.
        sub.update({
            "policy": "BucketPolicy",
            "lifecycle": "BucketLifecycleConfiguration",
            "encryption": "BucketEncryption",
            "publicAccessBlock": "PublicAccessBlock",
            "ownershipControls": "BucketOwnershipControls",
            "logging": "BucketLogging",
            "notification": "BucketNotificationConfiguration",
            "cors": "BucketCors",
            "website": "BucketWebsite",
            "replication": "BucketReplication",
            "policyStatus": "BucketPolicyStatus",
        })
        if "location" in q and m == "GET":
            return "GetBucketLocation"
    for name, suffix in sub.items():
        if name in q:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(m, m)
            if suffix == "BucketLifecycleConfiguration" and verb == "Delete":
                return "DeleteBucketLifecycle"
            return verb + suffix
    if has_key:
        if m == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if "uploadId" in q:
            return {
                "PUT": "UploadPart",
                "POST": "CompleteMultipartUpload",
                "GET": "ListParts",
                "DELETE": "AbortMultipartUpload",
            }.get(m, "S3Other")
        if m == "PUT":
            return "CopyObject" if call.header("x-amz-copy-source") else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(m, "S3Other")
    if m == "GET":
        if "uploads" in q:
            return "ListMultipartUploads"
        if "versions" in q:
            return "ListObjectVersions"
        if parts[0] == "":
            return "ListBuckets"
        return "ListObjectsV2" if q.get("list-type") == ["2"] else "ListObjects"
    if m == "POST" and "delete" in q:
        return "DeleteObjects"
    return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(m, "S3Other")


def s3_bucket_key(call: Call) -> tuple[str, str]:
    parts = call.path.lstrip("/").split("/", 1)
    return parts[0], (parts[1] if len(parts) == 2 else "")


# --- responses -------------------------------------------------------------------------------


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error(service: str, status: int, code: str, message: str, reason: str | None = None):
    """An error in the wire format of ``service``'s protocol, as (status, headers, body)."""
    request_id = str(uuid.uuid4())
    msg = _xml_escape(message)
    if service == "ebs":
        payload = {"Message": message, "message": message}
        if reason:
            payload["Reason"] = reason
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id),
        ]
        return status, headers, json.dumps(payload).encode()
    if service in JSON_PROTOCOL:
        headers = [("Content-Type", f"application/x-amz-json-{JSON_PROTOCOL[service]}"),
                   ("x-amzn-RequestId", request_id)]
        if service == "sqs":
            # SQS speaks JSON but keeps its query-protocol error codes in this header
            # (awsQueryCompatible): SDKs report that code, as they would against AWS.
            headers.append(("x-amzn-query-error", f"{code};{'Receiver' if status >= 500 else 'Sender'}"))
        return status, headers, json.dumps({"__type": code, "message": message}).encode()
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body.encode()
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return status, [("Content-Type", "text/xml")], body.encode()
    ns = XML_NS.get(service) or XML_NS["sts"]
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{msg}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body.encode()


class AwsError(Exception):
    """Raised by checks; turned into ``error(...)`` by the server for the caller's service."""

    def __init__(self, status: int, code: str, message: str, reason: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


STATUS_TEXT = {
    200: "OK", 204: "No Content", 206: "Partial Content", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def respond(start_response, status: int, headers, body: bytes):
    headers = list(headers)
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {STATUS_TEXT.get(status, 'Status')}", headers)
    return [body]
