"""S3 behaviour moto lacks, enforced at the wire: checksums, Object Lock on multipart uploads,
COMPLIANCE retention that cannot be shortened, GetObjectRetention, and versioning that cannot be
suspended on an Object Lock bucket.

``before(call)`` runs ahead of moto and may raise ``AwsError``; ``after(call, status, headers,
body)`` runs on moto's successful answer and may rewrite it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
import threading
import zlib
from xml.etree import ElementTree

from awscrt import checksums as crt

from . import clock
from .wire import AwsError, Call, s3_bucket_key

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_lock = threading.Lock()
_uploads: dict[str, dict] = {}
# Composite checksums of the multipart objects completed here, by (bucket, key, version id).
_composites: dict[tuple[str, str, str], str] = {}
"""upload id -> {"lock": (mode, until, legal_hold), "parts": {n: {alg: b64}}}"""


def digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "sha256":
        return hashlib.sha256(data).digest()
    if algorithm == "sha1":
        return hashlib.sha1(data).digest()
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "crc32c":
        return crt.crc32c(data).to_bytes(4, "big")
    if algorithm == "crc64nvme":
        return crt.crc64nvme(data).to_bytes(8, "big")
    raise ValueError(algorithm)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- aws-chunked bodies ------------------------------------------------------------------------


def decode_payload(call: Call) -> tuple[bytes, dict[str, str]]:
    """The object bytes and any trailing headers, undoing ``aws-chunked`` encoding."""
    sha = call.header("x-amz-content-sha256", "") or ""
    encoding = call.header("content-encoding", "") or ""
    if not (sha.startswith("STREAMING-") or "aws-chunked" in encoding):
        return call.body, {}
    body, pos, out, trailers = call.body, 0, bytearray(), {}
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            break
        out += body[pos:pos + size]
        pos += size + 2
    for line in body[pos:].split(b"\r\n"):
        if b":" in line:
            name, value = line.split(b":", 1)
            trailers[name.decode().strip().lower()] = value.decode().strip()
    return bytes(out), trailers


def _claimed(call: Call, trailers: dict[str, str]) -> dict[str, str]:
    claims = {}
    for algorithm in ALGORITHMS:
        name = f"x-amz-checksum-{algorithm}"
        value = call.header(name) or trailers.get(name)
        if value:
            claims[algorithm] = value
    return claims


def _verify_payload(call: Call) -> dict[str, str]:
    """Check every checksum the request claims; returns them (plus our SHA-256) by algorithm."""
    payload, trailers = decode_payload(call)
    claims = _claimed(call, trailers)
    for algorithm, value in claims.items():
        actual = b64(digest(algorithm, payload))
        if actual != value:
            raise AwsError(400, "BadDigest",
                           f"The {algorithm.upper()} you specified did not match the calculated "
                           f"checksum (sent {value}, computed {actual}).")
    md5 = call.header("content-md5")
    if md5 and b64(hashlib.md5(payload).digest()) != md5:
        raise AwsError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    if md5:
        claims["md5"] = md5
    claims.setdefault("sha256-computed", b64(digest("sha256", payload)))
    return claims


# --- moto state --------------------------------------------------------------------------------


def _backend(call: Call):
    from moto.s3.models import s3_backends

    return s3_backends[call.account]["aws"]


def _bucket(call: Call):
    bucket, _ = s3_bucket_key(call)
    try:
        return _backend(call).get_bucket(bucket)
    except Exception:
        return None


def _lock_requested(call: Call) -> tuple[str | None, str | None, str | None]:
    return (
        call.header("x-amz-object-lock-mode"),
        call.header("x-amz-object-lock-retain-until-date"),
        call.header("x-amz-object-lock-legal-hold"),
    )


def _parse_time(text: str) -> datetime.datetime:
    text = text.strip().replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def _fmt_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- before moto -------------------------------------------------------------------------------


def before(call: Call) -> None:
    op = call.operation
    if op in ("PutObject", "UploadPart"):
        claims = _verify_payload(call)
        bucket = _bucket(call)
        if bucket is not None and bucket.object_lock_enabled:
            mode, until, hold = _lock_requested(call)
            retained = mode or until or hold == "ON" or bucket.has_default_lock or op == "UploadPart"
            has_integrity = any(k != "sha256-computed" for k in claims)
            if retained and not has_integrity:
                raise AwsError(400, "InvalidRequest",
                               "Content-MD5 OR x-amz-checksum- HTTP header is required for Put "
                               "Object requests with Object Lock parameters")
        algorithms = [a for a in ALGORITHMS if a in claims]
        if algorithms and not call.header("x-amz-sdk-checksum-algorithm"):
            # moto only honours a checksum announced by x-amz-sdk-checksum-algorithm; AWS takes
            # the x-amz-checksum-* header (or trailer) alone, as a precomputed checksum is sent.
            call.environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = algorithms[0].upper()
        call.environ["forensnap.claims"] = claims
    elif op == "CompleteMultipartUpload":
        _check_complete(call)
    elif op == "PutObjectRetention":
        _check_retention_change(call)
    elif op == "PutBucketVersioning":
        bucket = _bucket(call)
        if bucket is not None and bucket.object_lock_enabled and b"Suspended" in call.body:
            raise AwsError(409, "InvalidBucketState",
                           "An Object Lock configuration is present on this bucket, so the "
                           "versioning state cannot be changed.")
    elif op == "CreateMultipartUpload":
        bucket = _bucket(call)
        mode, until, hold = _lock_requested(call)
        if (mode or until or hold) and bucket is not None and not bucket.object_lock_enabled:
            raise AwsError(400, "InvalidRequest", "Bucket is missing Object Lock Configuration")
        if bool(mode) != bool(until):
            raise AwsError(400, "InvalidArgument",
                           "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must "
                           "both be supplied")


def _check_complete(call: Call) -> None:
    upload_id = call.param("uploadId")
    with _lock:
        entry = _uploads.get(upload_id)
    if entry is None:
        return  # moto answers NoSuchUpload itself
    try:
        root = ElementTree.fromstring(call.body)
    except ElementTree.ParseError as err:
        raise AwsError(400, "MalformedXML", f"CompleteMultipartUpload body is not XML: {err}")
    parts = []
    for part in root.iter():
        if part.tag.split("}")[-1] != "Part":
            continue
        fields = {child.tag.split("}")[-1]: (child.text or "").strip() for child in part}
        number = int(fields.get("PartNumber", "0"))
        stored = entry["parts"].get(number)
        if stored is None:
            continue  # moto reports InvalidPart
        for algorithm in ALGORITHMS:
            sent = fields.get(f"Checksum{algorithm.upper()}")
            if sent and sent != b64(digest_of(stored, algorithm)):
                raise AwsError(400, "InvalidPart",
                               f"Part {number}: the {algorithm.upper()} checksum sent on "
                               "completion does not match the part that was uploaded.")
        parts.append(stored)
    sent = call.header("x-amz-checksum-sha256")
    if sent and "-" in sent and parts:
        concatenated = b"".join(digest_of(p, "sha256") for p in parts)
        composite = f"{b64(hashlib.sha256(concatenated).digest())}-{len(parts)}"
        if composite != sent:
            raise AwsError(400, "BadDigest",
                           f"The composite SHA256 you specified ({sent}) did not match the parts "
                           f"({composite}).")


def digest_of(claims: dict[str, str], algorithm: str) -> bytes:
    value = claims.get(algorithm) or (claims.get("sha256-computed") if algorithm == "sha256" else None)
    return base64.b64decode(value) if value else b""


def _check_retention_change(call: Call) -> None:
    _, key_name = s3_bucket_key(call)
    bucket = _bucket(call)
    if bucket is None:
        return
    try:
        key = _backend(call).get_object(bucket.name, key_name, version_id=call.param("versionId"))
    except Exception:
        return
    if key is None or not key.lock_mode or not key.lock_until:
        return
    current_until = _parse_time(key.lock_until)
    if current_until <= clock.now():
        return
    mode, until = None, None
    try:
        root = ElementTree.fromstring(call.body) if call.body.strip() else None
    except ElementTree.ParseError:
        root = None
    if root is not None:
        for child in root.iter():
            name = child.tag.split("}")[-1]
            if name == "Mode":
                mode = (child.text or "").strip()
            elif name == "RetainUntilDate":
                until = _parse_time(child.text or "")
    weakened = mode is None or until is None or until < current_until
    if key.lock_mode == "COMPLIANCE":
        weakened = weakened or mode != "COMPLIANCE"
        if weakened:
            raise AwsError(403, "AccessDenied",
                           "Access Denied because object protected by object lock: COMPLIANCE "
                           f"retention until {_fmt_time(current_until)} cannot be shortened, "
                           "downgraded or removed.")
    elif weakened and (call.header("x-amz-bypass-governance-retention", "") or "").lower() != "true":
        raise AwsError(403, "AccessDenied",
                       "Access Denied because object protected by object lock: GOVERNANCE "
                       "retention can only be weakened with x-amz-bypass-governance-retention.")


# --- instead of moto ---------------------------------------------------------------------------


def get_object_retention(call: Call):
    """GetObjectRetention (moto 5.2.x answers 500)."""
    bucket_name, key_name = s3_bucket_key(call)
    backend = _backend(call)
    try:
        key = backend.get_object(bucket_name, key_name, version_id=call.param("versionId"))
    except Exception:
        key = None
    if key is None:
        raise AwsError(404, "NoSuchKey", f"The specified key does not exist: {key_name}")
    if not key.lock_mode:
        raise AwsError(404, "NoSuchObjectLockConfiguration",
                       "The specified object does not have a ObjectLock configuration")
    until = _fmt_time(_parse_time(key.lock_until))
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="{S3_NS}">'
        f"<Mode>{key.lock_mode}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"
    )
    return 200, [("Content-Type", "application/xml")], body.encode()


# --- after moto --------------------------------------------------------------------------------


def after(call: Call, status: int, headers: list, body: bytes):
    if status >= 300:
        return status, headers, body
    op = call.operation
    if op == "CreateMultipartUpload":
        match = re.search(rb"<UploadId>([^<]+)</UploadId>", body)
        if match:
            with _lock:
                _uploads[match.group(1).decode()] = {"lock": _lock_requested(call), "parts": {}}
    elif op == "CompleteMultipartUpload":
        body = _add_composite_checksum(call, body)
        _remember_composite(call, headers, body)
        _lock_completed_object(call, headers)
    elif op in ("HeadObject", "GetObject"):
        headers = _composite_on_read(call, headers)
    elif op == "UploadPart":
        part = int(call.param("partNumber") or 0)
        with _lock:
            entry = _uploads.setdefault(call.param("uploadId"), {"lock": (None, None, None), "parts": {}})
            entry["parts"][part] = call.environ.get("forensnap.claims", {})
    elif op == "ListParts":
        body = _rename_root(body, b"ListPartsResponse", b"ListPartsResult")
        body = _add_part_checksums(call.param("uploadId"), body)
    elif op == "GetBucketVersioning":
        body = _rename_root(body, b"GetBucketVersioningResponse", b"VersioningConfiguration")
    elif op == "AbortMultipartUpload":
        with _lock:
            _uploads.pop(call.param("uploadId"), None)
    return status, headers, body


def _add_composite_checksum(call: Call, body: bytes) -> bytes:
    """AWS answers CompleteMultipartUpload of a SHA-256 upload with the composite checksum
    (base64 of the SHA-256 of the part digests, then -N); moto leaves it out."""
    with _lock:
        entry = _uploads.get(call.param("uploadId") or "")
        parts = dict(entry["parts"]) if entry else {}
    try:
        numbers = [int(n) for n in re.findall(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", call.body)]
    except ValueError:
        return body
    if not numbers or any(not parts.get(n, {}).get("sha256") for n in numbers):
        return body
    digests = b"".join(base64.b64decode(parts[n]["sha256"]) for n in numbers)
    composite = f"{b64(hashlib.sha256(digests).digest())}-{len(numbers)}".encode()
    extra = b"<ChecksumSHA256>" + composite + b"</ChecksumSHA256><ChecksumType>COMPOSITE</ChecksumType>"
    return body.replace(b"</CompleteMultipartUploadResult>", extra + b"</CompleteMultipartUploadResult>", 1)


def _remember_composite(call: Call, headers: list, body: bytes) -> None:
    match = re.search(rb"<ChecksumSHA256>([^<]+)</ChecksumSHA256>", body)
    version = next((v for k, v in headers if k.lower() == "x-amz-version-id"), None)
    if match and version:
        bucket, key = s3_bucket_key(call)
        with _lock:
            _composites[(bucket, key, version)] = match.group(1).decode()


def _composite_on_read(call: Call, headers: list) -> list:
    """AWS answers HeadObject and GetObject of a multipart object (checksum mode on) with its
    composite checksum, part count included (`...-N`) and `x-amz-checksum-type: COMPOSITE`;
    moto gives the composite digest without the part count."""
    if (call.header("x-amz-checksum-mode") or "").upper() != "ENABLED":
        return headers
    version = call.param("versionId") or next(
        (v for k, v in headers if k.lower() == "x-amz-version-id"), None)
    bucket, key = s3_bucket_key(call)
    with _lock:
        composite = _composites.get((bucket, key, version or ""))
    if composite is None:
        return headers
    kept = [(k, v) for k, v in headers
            if k.lower() not in ("x-amz-checksum-sha256", "x-amz-checksum-type")]
    return kept + [("x-amz-checksum-sha256", composite), ("x-amz-checksum-type", "COMPOSITE")]


def _rename_root(body: bytes, wrong: bytes, right: bytes) -> bytes:
    """moto 5.2.5 names some S3 result elements after the operation; the SDK wants AWS's names."""
    return body.replace(b"<" + wrong, b"<" + right, 1).replace(b"</" + wrong + b">", b"</" + right + b">")


def _add_part_checksums(upload_id: str | None, body: bytes) -> bytes:
    """ListParts in AWS reports each part's checksum; moto leaves it out."""
    with _lock:
        parts = dict((_uploads.get(upload_id or "") or {}).get("parts", {}))

    def add(match: re.Match) -> bytes:
        number = int(match.group(1))
        extra = b""
        for algorithm in ALGORITHMS:
            value = parts.get(number, {}).get(algorithm)
            if value:
                tag = f"Checksum{algorithm.upper()}".encode()
                extra += b"<" + tag + b">" + value.encode() + b"</" + tag + b">"
        return match.group(0) + extra

    return re.sub(rb"<PartNumber>(\d+)</PartNumber>", add, body)


def _lock_completed_object(call: Call, headers: list) -> None:
    """moto drops Object Lock on multipart objects: apply the requested or default retention."""
    upload_id = call.param("uploadId")
    with _lock:
        entry = _uploads.pop(upload_id, None)
    bucket = _bucket(call)
    if bucket is None or not bucket.object_lock_enabled:
        return
    version = next((v for k, v in headers if k.lower() == "x-amz-version-id"), None)
    _, key_name = s3_bucket_key(call)
    key = _backend(call).get_object(bucket.name, key_name, version_id=version)
    if key is None:
        return
    mode, until, hold = entry["lock"] if entry else (None, None, None)
    if mode and until:
        key.lock_mode, key.lock_until = mode, _fmt_time(_parse_time(until))
    elif bucket.has_default_lock:
        key.lock_mode, key.lock_until = bucket.default_lock_mode, bucket.default_retention()
    if hold:
        key.lock_legal_status = hold
