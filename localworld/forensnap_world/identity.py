"""STS as forensnap relies on it: AssumeRole checks the role and its trust policy (principal,
``sts:ExternalId``, ``sts:SetSourceIdentity``), and temporary credentials stop working when they
expire (by the world clock) or when presented without their session token.

Presigned URLs (SigV4 query-string authentication, :func:`check_presigned`): the URL must not
have expired (``X-Amz-Date`` plus ``X-Amz-Expires`` against the world clock: 403 AccessDenied
"Request has expired", as S3 answers), and its signature must be the one its key's secret makes
over the request as it arrived (method, path, query, signed headers), else 403
SignatureDoesNotMatch: a URL whose key, part number or upload id was changed is refused, so a
presigned UploadPart URL is good for its one part of its one object. The signer is then the
caller, authorised like any other (an instance-profile key is its role session). SigV2 query
authentication (``AWSAccessKeyId``, ``Signature``) is refused, as S3 refuses it today.
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import threading
from urllib.parse import quote, unquote

from . import clock
from .wire import AwsError, Call

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")
_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_lock = threading.Lock()
_sessions: dict[str, object] = {}
"""access key id -> moto AssumedRole, for every credential STS has issued."""
_profiles: dict[str, str] = {}
"""access key id -> assumed-role session ARN, for keys the world hands out as an instance
profile's credentials (what the instance metadata service gives an EC2 instance)."""


def install() -> None:
    """Record every AssumedRole moto creates, so requests can be checked against it."""
    from moto.sts.models import STSBackend

    original = STSBackend.assume_role

    def assume_role(self, *args, **kwargs):
        role = original(self, *args, **kwargs)
        # moto dates the session from real time; the world's clock may have been advanced
        # (to expire earlier sessions), and a new session lasts its duration from now.
        role.expiration = role.expiration + datetime.timedelta(seconds=clock.offset_seconds())
        with _lock:
            _sessions[role.access_key_id] = role
        return role

    STSBackend.assume_role = assume_role


def forget_all() -> None:
    with _lock:
        _sessions.clear()
        _profiles.clear()


def act_as_role(access_key_id: str, account: str, role_name: str, session: str) -> str:
    """Make requests signed with ``access_key_id`` come from a session of ``role_name``, as an
    instance profile's credentials do on EC2 (EC2 assumed the role: no trust check here)."""
    arn = f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}"
    with _lock:
        _profiles[access_key_id] = arn
    return arn


def check_credentials(call: Call) -> None:
    """Refuse expired or token-less temporary credentials, as AWS does."""
    if not call.access_key:
        return
    with _lock:
        role = _sessions.get(call.access_key)
    if role is None:
        return
    token = call.header("x-amz-security-token") or call.param("X-Amz-Security-Token")
    if token != role.session_token:
        raise AwsError(403, "InvalidClientTokenId" if call.service != "s3" else "InvalidToken",
                       "The security token included in the request is invalid.")
    if clock.now() >= role.expiration:
        code = {"ec2": "RequestExpired", "s3": "ExpiredToken", "sts": "ExpiredToken",
                "iam": "ExpiredToken"}.get(call.service, "ExpiredTokenException")
        raise AwsError(400 if call.service != "ebs" else 403, code,
                       "The security token included in the request is expired")


MAX_PRESIGNED_SECONDS = 604_800
"""X-Amz-Expires may be at most 7 days."""


def secret_of(access_key: str) -> str | None:
    """The secret of an access key the world issued (an STS session's or an IAM user's)."""
    with _lock:
        role = _sessions.get(access_key)
    if role is not None:
        return role.secret_access_key
    from moto.iam.models import iam_backends

    for _, backends in list(iam_backends.items()):
        key = backends["aws"].access_keys.get(access_key)
        if key is not None:
            return key.secret_access_key
    return None


def check_presigned(call: Call) -> None:
    """Refuse a presigned request that has expired or whose signature is not its key's."""
    if not call.presigned:
        return
    if call.param("X-Amz-Credential") is None:
        # SigV2 (AWSAccessKeyId, Signature, Expires): S3 takes only SigV4 in the regions and
        # for the buckets of the last years.
        raise AwsError(400, "InvalidRequest", "The authorization mechanism you have provided is not supported. "
                                              "Please use AWS4-HMAC-SHA256.")
    if call.param("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise AwsError(400, "AuthorizationQueryParametersError",
                       'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    try:
        signed_at = datetime.datetime.strptime(call.param("X-Amz-Date") or "", "%Y%m%dT%H%M%SZ")
        expires = int(call.param("X-Amz-Expires") or "")
    except ValueError:
        raise AwsError(400, "AuthorizationQueryParametersError",
                       "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\" and "
                       "X-Amz-Expires a number of seconds") from None
    if not 1 <= expires <= MAX_PRESIGNED_SECONDS:
        raise AwsError(400, "AuthorizationQueryParametersError",
                       "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if clock.now() > signed_at + datetime.timedelta(seconds=expires):
        raise AwsError(403, "AccessDenied", "Request has expired")
    secret = secret_of(call.access_key or "")
    if secret is None:
        raise AwsError(403, "InvalidAccessKeyId",
                       "The AWS Access Key Id you provided does not exist in our records.")
    if not hmac.compare_digest(presigned_signature(call, secret), call.param("X-Amz-Signature") or ""):
        raise AwsError(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you provided. "
                       "Check your key and signing method.")


def presigned_signature(call: Call, secret: str) -> str:
    """The SigV4 signature of a query-authenticated request, as S3 computes it (no double
    encoding of the path, the payload ``UNSIGNED-PAYLOAD`` unless the URL names a hash)."""
    raw = call.environ.get("RAW_URI") or call.environ.get("REQUEST_URI") or call.path
    raw_path = raw.split("?", 1)[0]
    canonical_uri = quote(unquote(raw_path), safe="/~")
    pairs = []
    for part in (call.environ.get("QUERY_STRING") or "").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if name != "X-Amz-Signature":
            pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    canonical_query = "&".join(f"{n}={v}" for n, v in sorted(pairs))
    signed = (call.param("X-Amz-SignedHeaders") or "host").lower().split(";")
    headers = "".join(f"{name}:{' '.join((call.header(name) or '').split())}\n" for name in signed)
    payload = call.param("X-Amz-Content-Sha256") or "UNSIGNED-PAYLOAD"
    request = "\n".join([call.method, canonical_uri, canonical_query, headers, ";".join(signed), payload])
    credential = call.param("X-Amz-Credential") or ""
    scope = credential.split("/", 1)[1] if "/" in credential else ""
    to_sign = "\n".join(["AWS4-HMAC-SHA256", call.param("X-Amz-Date") or "", scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def profile_session(call: Call) -> str | None:
    """The role session an instance-profile key acts as, if the key is one."""
    with _lock:
        return _profiles.get(call.access_key or "")


def get_caller_identity(call: Call):
    """GetCallerIdentity for an instance-profile key: the role session, as STS answers on EC2
    (moto would name the IAM user the key was minted for)."""
    import uuid

    arn = profile_session(call)
    account = arn.split(":")[4]
    role, session = arn.split("/")[1], arn.split("/")[2]
    body = (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{role_unique_id(account, role)}:{session}</UserId>"
        f"<Account>{account}</Account></GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()
    return 200, [("Content-Type", "text/xml")], body


def role_unique_id(account: str, role_name: str) -> str:
    """The role's unique id (``AROA...``) as STS and CloudTrail name a session's role: the
    world's own when it holds the role, else one derived from its name."""
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["aws"].get_role(role_name).id
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        return f"AROA{role_name.upper()[:12]}"


def caller_arn(call: Call) -> str:
    with _lock:
        profile = _profiles.get(call.access_key or "")
        role = _sessions.get(call.access_key or "")
    if profile is not None:
        return profile
    if role is not None:
        return role.arn
    from moto.iam.models import iam_backends

    user = iam_backends[call.account]["aws"].get_user_from_access_key_id(call.access_key or "")
    return user.arn if user else f"arn:aws:iam::{call.account}:root"


def check_assume_role(call: Call, trust: bool = True) -> None:
    """Validate an AssumeRole request the way AWS does before moto issues credentials; with
    ``trust`` (a world with ``policies = false``) also the role's trust policy alone, read by the
    policy evaluator (``policy.authorize.trust_decision``). When the world evaluates every policy,
    ``policy.authorize`` decides the trust policy together with the caller's identity policies
    instead, so ``trust`` is false then."""
    role_arn = call.param("RoleArn") or ""
    session = call.param("RoleSessionName") or ""
    if not _NAME.match(session):
        raise AwsError(400, "ValidationError",
                       f"RoleSessionName {session!r} must be 2-64 characters of [\\w+=,.@-]")
    source_identity = call.param("SourceIdentity")
    if source_identity is not None and not _NAME.match(source_identity):
        raise AwsError(400, "ValidationError",
                       f"SourceIdentity {source_identity!r} must be 2-64 characters of [\\w+=,.@-]")
    caller = caller_arn(call)
    denied = AwsError(403, "AccessDenied",
                      f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: "
                      f"{role_arn}")
    match = _ROLE_ARN.match(role_arn)
    if not match:
        raise AwsError(400, "ValidationError", f"{role_arn!r} is not a valid role ARN")
    from moto.iam.models import iam_backends

    try:
        role = iam_backends[match.group(1)]["aws"].get_role_by_arn(role_arn)
    except Exception:
        raise denied from None
    duration = int(call.param("DurationSeconds") or 3600)
    max_duration = int(getattr(role, "max_session_duration", 3600) or 3600)
    if not 900 <= duration <= max_duration:
        raise AwsError(400, "ValidationError",
                       f"The requested DurationSeconds {duration} must be between 900 and the "
                       f"role's MaxSessionDuration {max_duration}.")
    try:
        json.loads(unquote(role.assume_role_policy_document))
    except (ValueError, TypeError):
        raise denied from None  # a trust policy that is not JSON trusts nobody
    if not trust:
        return
    from .policy.authorize import trust_decision

    decision = trust_decision(call, caller)
    if not decision.allowed:
        raise AwsError(403, "AccessDenied", f"{denied.message}: {decision.reason}")
