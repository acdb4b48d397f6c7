"""S3 behaviour moto lacks, enforced at the wire: checksums, Object Lock on multipart uploads,
COMPLIANCE retention that cannot be shortened, GetObjectRetention, and versioning that cannot be
suspended on an Object Lock bucket.

Multipart checksums come in AWS's two types: COMPOSITE (SHA-256 here: the object's checksum is
the SHA-256 of the part digests, then ``-N``) and FULL_OBJECT (CRC-64/NVME, the only type S3
allows for it, and CRC32/CRC32C when asked: the CRC of the whole object's bytes, as if it had
been sent in one piece). Each upload's algorithm and type are remembered from
CreateMultipartUpload, enforced on its parts and on completion, and reported by ListParts,
ListMultipartUploads, CompleteMultipartUpload and HeadObject/GetObject with checksum mode on.

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
CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")
FULL_OBJECT_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")
"""The algorithms S3 accepts with checksum type FULL_OBJECT (CRC64NVME accepts no other)."""
_lock = threading.Lock()
_uploads: dict[str, dict] = {}
"""upload id -> {"lock": (mode, until, legal_hold), "parts": {n: {alg: b64}},
"algorithm": lower-case algorithm or None, "type": "COMPOSITE" | "FULL_OBJECT" | None}"""
# Composite checksums of the multipart objects completed here, by (bucket, key, version id).
_composites: dict[tuple[str, str, str], str] = {}
# Full-object checksums of the multipart objects completed here, by (bucket, key, version id):
# (lower-case algorithm, b64).
_full_objects: dict[tuple[str, str, str], tuple[str, str]] = {}


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


_CRC_WIDTH = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}


def crc_continue(algorithm: str, data: bytes, previous: int = 0) -> int:
    """The CRC of the bytes a CRC ``previous`` was computed over, followed by ``data``."""
    if algorithm == "crc32":
        return zlib.crc32(data, previous)
    if algorithm == "crc32c":
        return crt.crc32c(data, previous)
    if algorithm == "crc64nvme":
        return crt.crc64nvme(data, previous)
    raise ValueError(algorithm)


def crc_b64(algorithm: str, crc: int) -> str:
    return b64(crc.to_bytes(_CRC_WIDTH[algorithm], "big"))


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
        expected, kind = _upload_checksum(call.param("uploadId")) if op == "UploadPart" else (None, None)
        if kind == "FULL_OBJECT" and expected not in claims:
            raise AwsError(400, "InvalidRequest",
                           "Checksum Type mismatch occurred, expected checksum Type: "
                           f"{expected}, actual checksum Type: "
                           f"{algorithms[0] if algorithms else 'null'}")
        if algorithms and not call.header("x-amz-sdk-checksum-algorithm"):
            # moto only honours a checksum announced by x-amz-sdk-checksum-algorithm; AWS takes
            # the x-amz-checksum-* header (or trailer) alone, as a precomputed checksum is sent.
            announced = expected if expected in algorithms else algorithms[0]
            call.environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = announced.upper()
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
        _requested_checksum(call)


def _requested_checksum(call: Call) -> tuple[str | None, str | None]:
    """CreateMultipartUpload's checksum algorithm (lower case) and type, defaulted and checked
    as S3 does: CRC64NVME is FULL_OBJECT only, SHA-1/SHA-256 COMPOSITE only; without a type,
    CRC64NVME is FULL_OBJECT and every other algorithm COMPOSITE."""
    algorithm = (call.header("x-amz-checksum-algorithm") or "").strip().lower() or None
    kind = (call.header("x-amz-checksum-type") or "").strip().upper() or None
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise AwsError(400, "InvalidRequest",
                       "Checksum algorithm provided is unsupported. Please try again with any of "
                       "the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    if kind is not None and kind not in CHECKSUM_TYPES:
        raise AwsError(400, "InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if algorithm is None:
        if kind is not None:
            raise AwsError(400, "InvalidRequest",
                           "The x-amz-checksum-type header can only be used with the "
                           "x-amz-checksum-algorithm header.")
        return None, None
    if kind is None:
        kind = "FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE"
    if (kind == "FULL_OBJECT" and algorithm not in FULL_OBJECT_ALGORITHMS) \
            or (kind == "COMPOSITE" and algorithm == "crc64nvme"):
        raise AwsError(400, "InvalidRequest",
                       f"The {kind} checksum type cannot be used with the {algorithm} checksum "
                       "algorithm.")
    return algorithm, kind


def _upload_checksum(upload_id: str | None) -> tuple[str | None, str | None]:
    """The checksum algorithm (lower case) and type an upload was created with."""
    with _lock:
        entry = _uploads.get(upload_id or "") or {}
    return entry.get("algorithm"), entry.get("type")


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
    parts, numbers = [], []
    for part in root.iter():
        if part.tag.split("}")[-1] != "Part":
            continue
        fields = {child.tag.split("}")[-1]: (child.text or "").strip() for child in part}
        number = int(fields.get("PartNumber", "0"))
        numbers.append(number)
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
    algorithm, kind = entry.get("algorithm"), entry.get("type")
    sent_kind = (call.header("x-amz-checksum-type") or "").strip().upper()
    if sent_kind and kind and sent_kind != kind:
        raise AwsError(400, "InvalidRequest",
                       f"The upload was created using the {kind} checksum mode. The complete "
                       "request must use the same checksum mode.")
    if kind == "FULL_OBJECT" and numbers:
        full = _full_object_checksum(call, algorithm, numbers)
        if full is None:
            return  # a part moto does not hold: moto reports InvalidPart
        sent = call.header(f"x-amz-checksum-{algorithm}")
        if sent and sent != full:
            raise AwsError(400, "BadDigest",
                           f"The {algorithm.upper()} you specified for the whole object ({sent}) "
                           f"did not match the calculated checksum ({full}).")
        call.environ["forensnap.full_checksum"] = (algorithm, full)


def _full_object_checksum(call: Call, algorithm: str, numbers: list[int]) -> str | None:
    """The CRC of the object the parts ``numbers`` (in that order) make, from the bytes moto
    holds for them; None when a part is missing."""
    bucket = _bucket(call)
    multipart = bucket.multiparts.get(call.param("uploadId") or "") if bucket is not None else None
    if multipart is None:
        return None
    crc = 0
    for number in numbers:
        part = multipart.parts.get(number)
        if part is None:
            return None
        crc = crc_continue(algorithm, part.value, crc)
    return crc_b64(algorithm, crc)


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
        algorithm, kind = _requested_checksum(call)
        if match:
            with _lock:
                _uploads[match.group(1).decode()] = {"lock": _lock_requested(call), "parts": {},
                                                     "algorithm": algorithm, "type": kind}
        if algorithm:
            headers = _set_headers(headers, {"x-amz-checksum-algorithm": algorithm.upper(),
                                             "x-amz-checksum-type": kind})
    elif op == "CompleteMultipartUpload":
        body = _add_composite_checksum(call, body)
        body = _add_full_object_checksum(call, headers, body)
        _remember_composite(call, headers, body)
        _lock_completed_object(call, headers)
    elif op in ("HeadObject", "GetObject"):
        headers = _checksum_on_read(call, status, headers)
    elif op == "UploadPart":
        part = int(call.param("partNumber") or 0)
        claims = call.environ.get("forensnap.claims", {})
        with _lock:
            entry = _uploads.setdefault(call.param("uploadId"), {"lock": (None, None, None), "parts": {}})
            entry["parts"][part] = claims
        # AWS answers with the checksums it verified; moto names at most one.
        headers = _set_headers(headers, {f"x-amz-checksum-{a}": claims[a]
                                         for a in ALGORITHMS if a in claims})
    elif op == "ListParts":
        body = _rename_root(body, b"ListPartsResponse", b"ListPartsResult")
        body = _add_part_checksums(call.param("uploadId"), body)
        body = _add_upload_checksum(call.param("uploadId"), body, b"ListPartsResult")
    elif op == "ListMultipartUploads":
        body = re.sub(rb"<Upload>.*?</Upload>", _fix_listed_upload, body, flags=re.S)
    elif op == "GetBucketVersioning":
        body = _rename_root(body, b"GetBucketVersioningResponse", b"VersioningConfiguration")
    elif op == "AbortMultipartUpload":
        with _lock:
            _uploads.pop(call.param("uploadId"), None)
    return status, headers, body


def _set_headers(headers: list, values: dict) -> list:
    """``headers`` with each of ``values`` (by lower-case name) set to exactly that value."""
    kept = [(k, v) for k, v in headers if k.lower() not in values]
    return kept + [(k, v) for k, v in values.items() if v]


_CHECKSUM_ELEMENT = re.compile(rb"<Checksum(?:CRC32|CRC32C|CRC64NVME|SHA1|SHA256|Type)>[^<]*"
                               rb"</Checksum(?:CRC32|CRC32C|CRC64NVME|SHA1|SHA256|Type)>")


def _add_full_object_checksum(call: Call, headers: list, body: bytes) -> bytes:
    """AWS answers CompleteMultipartUpload of a FULL_OBJECT upload with the whole object's CRC
    and ``<ChecksumType>FULL_OBJECT</ChecksumType>``; moto leaves both out."""
    found = call.environ.get("forensnap.full_checksum")
    version = next((v for k, v in headers if k.lower() == "x-amz-version-id"), None)
    bucket, key = s3_bucket_key(call)
    if found is None:
        # Completed before (moto answers a repeated completion with the object it made).
        with _lock:
            found = _full_objects.get((bucket, key, version or "")) if version else None
        if found is None:
            return body
    algorithm, value = found
    if version:
        with _lock:
            _full_objects[(bucket, key, version)] = found
    tag = f"Checksum{algorithm.upper()}".encode()
    extra = (b"<" + tag + b">" + value.encode() + b"</" + tag + b">"
             b"<ChecksumType>FULL_OBJECT</ChecksumType>")
    body = _CHECKSUM_ELEMENT.sub(b"", body)
    return body.replace(b"</CompleteMultipartUploadResult>", extra + b"</CompleteMultipartUploadResult>", 1)


def _add_composite_checksum(call: Call, body: bytes) -> bytes:
    """AWS answers CompleteMultipartUpload of a SHA-256 upload with the composite checksum
    (base64 of the SHA-256 of the part digests, then -N); moto leaves it out."""
    with _lock:
        entry = _uploads.get(call.param("uploadId") or "")
        parts = dict(entry["parts"]) if entry else {}
    if entry and entry.get("type") == "FULL_OBJECT":
        return body
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


_OBJECT_CHECKSUM_HEADERS = tuple(f"x-amz-checksum-{a}" for a in ALGORITHMS) + ("x-amz-checksum-type",)


def _checksum_on_read(call: Call, status: int, headers: list) -> list:
    """AWS answers HeadObject and GetObject of a multipart object (checksum mode on) with its
    checksum and type: a composite one with its part count (`...-N`) and
    `x-amz-checksum-type: COMPOSITE` (moto gives the composite digest without the part count), a
    full-object one as the whole object's CRC with `x-amz-checksum-type: FULL_OBJECT`. A part
    of the object (a range) carries no checksum of the whole."""
    if status == 206:
        return [(k, v) for k, v in headers if k.lower() not in _OBJECT_CHECKSUM_HEADERS]
    if (call.header("x-amz-checksum-mode") or "").upper() != "ENABLED":
        return headers
    version = call.param("versionId") or next(
        (v for k, v in headers if k.lower() == "x-amz-version-id"), None)
    bucket, key = s3_bucket_key(call)
    with _lock:
        composite = _composites.get((bucket, key, version or ""))
        full = _full_objects.get((bucket, key, version or ""))
    if composite is not None:
        kept = [(k, v) for k, v in headers
                if k.lower() not in ("x-amz-checksum-sha256", "x-amz-checksum-type")]
        return kept + [("x-amz-checksum-sha256", composite), ("x-amz-checksum-type", "COMPOSITE")]
    if full is not None:
        algorithm, value = full
        kept = [(k, v) for k, v in headers if k.lower() not in _OBJECT_CHECKSUM_HEADERS]
        return kept + [(f"x-amz-checksum-{algorithm}", value), ("x-amz-checksum-type", "FULL_OBJECT")]
    return headers


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


def _checksum_fields(algorithm: str | None, kind: str | None) -> bytes:
    if not algorithm:
        return b""
    return (f"<ChecksumAlgorithm>{algorithm.upper()}</ChecksumAlgorithm>"
            f"<ChecksumType>{kind}</ChecksumType>").encode()


def _add_upload_checksum(upload_id: str | None, body: bytes, root: bytes) -> bytes:
    """ListParts in AWS names the upload's checksum algorithm and type; moto leaves them out."""
    algorithm, kind = _upload_checksum(upload_id)
    if not algorithm:
        return body
    body = re.sub(rb"<ChecksumAlgorithm>[^<]*</ChecksumAlgorithm>|<ChecksumType>[^<]*</ChecksumType>",
                  b"", body)
    close = b"</" + root + b">"
    return body.replace(close, _checksum_fields(algorithm, kind) + close, 1)


def _fix_listed_upload(match: re.Match) -> bytes:
    """One ``<Upload>`` of ListMultipartUploads, naming its checksum algorithm and type as AWS
    does (moto names the type only when CreateMultipartUpload sent one)."""
    block = match.group(0)
    found = re.search(rb"<UploadId>([^<]+)</UploadId>", block)
    algorithm, kind = _upload_checksum(found.group(1).decode() if found else None)
    if not algorithm:
        named = re.search(rb"<ChecksumAlgorithm>([^<]+)</ChecksumAlgorithm>", block)
        if not named:
            return block
        algorithm = named.group(1).decode().strip().lower()
        typed = re.search(rb"<ChecksumType>([^<]+)</ChecksumType>", block)
        kind = typed.group(1).decode().strip() if typed else (
            "FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE")
    block = re.sub(rb"<ChecksumAlgorithm>[^<]*</ChecksumAlgorithm>|<ChecksumAlgorithm/>|"
                   rb"<ChecksumType>[^<]*</ChecksumType>|<ChecksumType/>", b"", block)
    return block.replace(b"</Upload>", _checksum_fields(algorithm, kind) + b"</Upload>", 1)


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
