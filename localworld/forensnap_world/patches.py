"""Fixes to moto's behaviour for the calls forensnap makes (see moto-fidelity.md).

Each ``_patch_*`` function replaces or wraps one piece of moto's private internals; ``apply()``
runs them all once. ``selftest`` checks that every attribute patched here still exists with the
shape these functions expect, so a moto upgrade fails loudly instead of silently.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading

from . import clock
from .volumes import REGISTRY

_applied = False
_lock = threading.Lock()

MAX_CONCURRENT_COPIES = 20
"""AWS: at most 20 concurrent snapshot copies per destination region (not adjustable)."""


class Settings:
    """World timings, changed at run time through ``/_forensnap/settings``."""

    snapshot_seconds: float = 0.0
    """How long a new snapshot (CreateSnapshot/CreateSnapshots) stays ``pending``."""
    copy_seconds: float = 0.0
    """How long a snapshot copy (CopySnapshot) stays ``pending``."""
    policies: bool = False
    """Whether every request is authorised against the IAM, bucket, key and trust policies stored
    in the world (``policy.authorize``), as AWS does."""

    @classmethod
    def to_json(cls) -> dict:
        return {"snapshot_seconds": cls.snapshot_seconds, "copy_seconds": cls.copy_seconds,
                "policies": cls.policies}

    @classmethod
    def update(cls, values: dict) -> None:
        for key, value in values.items():
            if key == "policies":
                if not isinstance(value, bool):
                    raise ValueError("policies must be true or false")
                cls.policies = value
                continue
            if key not in ("snapshot_seconds", "copy_seconds"):
                raise ValueError(f"unknown setting {key!r}")
            if float(value) < 0:
                raise ValueError(f"{key} must be >= 0")
            setattr(cls, key, float(value))


def apply() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        _patch_snapshot_lifecycle()
        _patch_snapshot_sources()
        _patch_describe_snapshots()
        _patch_copy_snapshot()
        _patch_share_snapshot()
        _patch_kms_digest()
        _patch_kms_aws_managed()
        _patch_s3_bucket_policy()
        _patch_s3_ranged_reads()
        _applied = True


# --- snapshots: pending state and progress -----------------------------------------------------


def _patch_snapshot_lifecycle() -> None:
    from moto.ec2.models.elastic_block_store import Snapshot

    original_init = Snapshot.__init__

    def __init__(self, *args, **kwargs):
        self._fs_created = clock.now()
        self._fs_pending = Settings.snapshot_seconds
        self._fs_failed: str | None = None
        self._fs_is_copy = False
        original_init(self, *args, **kwargs)

    def _elapsed_fraction(self) -> float:
        pending = getattr(self, "_fs_pending", 0.0)
        if pending <= 0:
            return 1.0
        elapsed = (clock.now() - self._fs_created).total_seconds()
        return max(0.0, min(1.0, elapsed / pending))

    def _get_status(self) -> str:
        fraction = _elapsed_fraction(self)
        if fraction < 1.0:
            return "pending"
        return "error" if getattr(self, "_fs_failed", None) else "completed"

    def _set_status(self, value: str) -> None:
        # moto assigns "completed" in __init__; the state is derived from the clock instead.
        if value not in ("completed", "pending"):
            self._fs_failed = value

    def _progress(self) -> str:
        return f"{int(_elapsed_fraction(self) * 100)}%"

    def _state_message(self):
        if _get_status(self) == "error":
            return self._fs_failed
        return None

    Snapshot.__init__ = __init__
    Snapshot.status = property(_get_status, _set_status)
    Snapshot.state = property(_get_status, _set_status)
    Snapshot.progress = property(_progress)
    Snapshot.state_message = property(_state_message)


def _patch_snapshot_sources() -> None:
    """CreateSnapshot(s) captures the volume's bytes for the EBS direct APIs."""
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.create_snapshot

    def create_snapshot(self, volume_id, description, owner_id=None, from_ami=None):
        snapshot = original(self, volume_id, description, owner_id=owner_id, from_ami=from_ami)
        volume = self.get_volume(volume_id)
        if volume.encrypted and not snapshot.kms_key_id:
            snapshot.kms_key_id = volume.kms_key_id  # moto forgets the volume's key
        REGISTRY.snapshot_taken(snapshot.id, volume_id)
        return snapshot

    EBSBackend.create_snapshot = create_snapshot


# --- snapshots shared across accounts ----------------------------------------------------------


def ec2_error(code: str, message: str):
    """An EC2 error moto renders in EC2's own XML (status 400)."""
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _ec2_backend(account: str, region: str):
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def shared_with(account: str, region: str) -> list:
    """Snapshots in other accounts of ``region`` that ``account`` may use (explicit or public)."""
    from moto.ec2.models import ec2_backends

    found = []
    for owner in list(ec2_backends.keys()):
        if owner == account:
            continue
        backend = ec2_backends[owner].get(region) if region in ec2_backends[owner] else None
        if backend is None:
            continue
        for snapshot in list(backend.snapshots.values()):
            if account in snapshot.create_volume_permission_userids or (
                "all" in snapshot.create_volume_permission_groups
            ):
                found.append(snapshot)
    return found


def visible_snapshot(account: str, region: str, snapshot_id: str):
    """A snapshot ``account`` owns or that is shared with it, else ``None``."""
    own = _ec2_backend(account, region).snapshots.get(snapshot_id)
    if own is not None:
        return own
    for snapshot in shared_with(account, region):
        if snapshot.id == snapshot_id:
            return snapshot
    return None


def _patch_describe_snapshots() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.utils import generic_filter

    def describe_snapshots(self, snapshot_ids=None, filters=None, owner_ids=None, restorable_by=None):
        own = list(self.snapshots.values())
        shared = shared_with(self.account_id, self.region_name)
        if owner_ids:
            wanted = {self.account_id if o == "self" else o for o in owner_ids}
            matches = [s for s in own + shared if s.owner_id in wanted]
        elif restorable_by:
            wanted = {self.account_id if r == "self" else r for r in restorable_by}
            matches = [
                s for s in own + shared
                if s.owner_id in wanted or wanted & s.create_volume_permission_userids
                or "all" in s.create_volume_permission_groups
            ]
        else:
            matches = own + shared
        if snapshot_ids:
            matches = [s for s in matches if s.id in snapshot_ids]
            if len(set(snapshot_ids)) > len(matches):
                missing = sorted(set(snapshot_ids) - {s.id for s in matches})
                raise ec2_error("InvalidSnapshot.NotFound",
                                f"The snapshot '{', '.join(missing)}' does not exist.")
        if filters:
            matches = generic_filter(filters, matches)
        return matches

    EBSBackend.describe_snapshots = describe_snapshots

    from moto.ec2.responses.elastic_block_store import ElasticBlockStore
    from moto.core.responses import ActionResult

    def describe_snapshots_response(self):
        filters = self._filters_from_querystring()
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []),
            filters=filters,
            owner_ids=self._get_param("OwnerIds", []),
            restorable_by=self._get_param("RestorableByUserIds", []),
        )
        return ActionResult({"Snapshots": snapshots})

    ElasticBlockStore.describe_snapshots = describe_snapshots_response


# --- KMS keys as EBS sees them -----------------------------------------------------------------

_KEY_ARN = re.compile(r"^arn:aws[\w-]*:kms:([\w-]+):(\d{12}):(key|alias)/(.+)$")
_KEY_ID = re.compile(r"^(mrk-)?[0-9a-fA-F-]{32,36}$")
_NEEDED_CROSS_ACCOUNT = ("kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant")


def key_reference_is_valid(ref: str) -> bool:
    return bool(_KEY_ARN.match(ref) or _KEY_ID.match(ref) or ref.startswith("alias/"))


def resolve_key(caller: str, region: str, ref: str):
    """The KMS key ``ref`` names, as seen by ``caller``: ``(key, None)`` or ``(None, why)``."""
    from moto.kms.models import kms_backends

    owner, key_region = caller, region
    match = _KEY_ARN.match(ref)
    if match:
        key_region, owner = match.group(1), match.group(2)
    try:
        key = kms_backends[owner][key_region].describe_key(ref)
    except Exception:  # moto raises several NotFound flavours
        return None, f"KMS key {ref} does not exist"
    if getattr(key, "key_state", "Enabled") != "Enabled":
        return None, f"KMS key {ref} is {key.key_state}"
    if (getattr(key, "key_usage", None) or "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        return None, f"KMS key {ref} is not an encryption key"
    if owner != caller:
        if is_aws_managed(owner, key_region, key.id):
            return None, f"KMS key {ref} is AWS managed and cannot be used by account {caller}"
        if not policy_allows(key.policy, caller, _NEEDED_CROSS_ACCOUNT):
            return None, f"key policy of {ref} does not let account {caller} use it"
    return key, None


def fail_new_snapshots(call, body: bytes, why: str) -> None:
    """The snapshots a CopySnapshot, CreateSnapshot or CreateSnapshots just made end in state
    ``error``: EBS could not use a KMS key the caller's policies or the key policy refuse (the
    request itself succeeded, as in AWS; the failure shows in DescribeSnapshots'
    ``StateMessage``)."""
    from moto.ec2.models import ec2_backends

    if call.operation not in ("CopySnapshot", "CreateSnapshot", "CreateSnapshots"):
        return
    backend = ec2_backends[call.account][call.region]
    for snapshot_id in set(re.findall(rb"snap-[0-9a-f]{8,17}", body)):
        snapshot = backend.snapshots.get(snapshot_id.decode())
        if snapshot is not None and getattr(snapshot, "_fs_failed", None) is None:
            snapshot._fs_failed = f"Given key ID is not accessible ({why})"


def is_aws_managed(account: str, region: str, key_id: str) -> bool:
    """AWS managed keys (``alias/aws/...``, such as ``aws/ebs``) are never usable cross-account."""
    from moto.kms.models import kms_backends

    key = kms_backends[account][region].keys.get(key_id)
    return key is not None and any(str(name).startswith("alias/aws/") for name in key.aliases)


def policy_allows(policy_text: str | None, account: str, actions) -> bool:
    """Whether an Allow statement grants every one of ``actions`` to principals of ``account``."""
    try:
        policy = json.loads(policy_text or "{}")
    except ValueError:
        return False
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    granted: list[str] = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        if principal != "*":
            aws = principal.get("AWS", []) if isinstance(principal, dict) else []
            aws = [aws] if isinstance(aws, str) else aws
            if not any(
                p == "*" or p == account or p.startswith(f"arn:aws:iam::{account}:") for p in aws
            ):
                continue
        acts = statement.get("Action", [])
        granted += [acts] if isinstance(acts, str) else acts
    return all(any(fnmatch.fnmatch(a, g) for g in granted) for a in actions)


def _default_key(backend) -> str:
    if not backend.default_kms_key_id:
        backend._create_default_encryption_key()
    return backend.default_kms_key_id


# --- CopySnapshot ------------------------------------------------------------------------------


def _patch_copy_snapshot() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore
    from moto.ec2.utils import random_snapshot_id

    def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id, encrypted=False):
        source_region = source_region or self.region_name
        source = visible_snapshot(self.account_id, source_region, source_snapshot_id)
        if source is None:
            raise ec2_error("InvalidSnapshot.NotFound",
                           f"The snapshot '{source_snapshot_id}' does not exist.")
        if source.status != "completed":
            raise ec2_error("IncorrectState",
                           f"Snapshot '{source_snapshot_id}' is in state {source.status!r}; "
                           "only completed snapshots can be copied.")
        if kms_key_id and not encrypted:
            raise ec2_error("InvalidParameterDependency",
                           "The parameter KmsKeyId requires the parameter Encrypted to be set.")
        if kms_key_id and not key_reference_is_valid(kms_key_id):
            raise ec2_error("InvalidParameterValue", f"Invalid id: \"{kms_key_id}\" (expecting \"key ID, alias or ARN\")")
        in_flight = sum(
            1 for s in list(self.snapshots.values())
            if getattr(s, "_fs_is_copy", False) and s.status == "pending"
        )
        if in_flight >= MAX_CONCURRENT_COPIES:
            raise ec2_error("ResourceLimitExceeded",
                           f"You have reached the maximum of {MAX_CONCURRENT_COPIES} concurrent "
                           "snapshot copies in this region.")
        failure = None
        if source.encrypted:
            key, why = resolve_key(self.account_id, source_region, source.kms_key_id or "")
            if key is None:
                failure = f"Given key ID is not accessible ({why})"
        if kms_key_id:
            key, why = resolve_key(self.account_id, self.region_name, kms_key_id)
            target_key = key.arn if key is not None else kms_key_id
            if key is None and failure is None:
                failure = f"Given key ID is not accessible ({why})"
        elif encrypted or (source.encrypted and source.owner_id != self.account_id):
            target_key = _default_key(self)
        else:
            target_key = source.kms_key_id if source.encrypted else None
        snapshot = Snapshot(
            self, random_snapshot_id(), volume=source.volume, description=description,
            encrypted=bool(target_key), kms_key_id=target_key,
        )
        snapshot._fs_is_copy = True
        snapshot._fs_pending = Settings.copy_seconds
        snapshot._fs_failed = failure
        snapshot.source_snapshot_id = source.id
        self.snapshots[snapshot.id] = snapshot
        REGISTRY.snapshot_copied(snapshot.id, source.id)
        return snapshot

    EBSBackend.copy_snapshot = copy_snapshot

    def copy_snapshot_response(self):
        tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snapshot = self.ec2_backend.copy_snapshot(
            source_snapshot_id=self._get_param("SourceSnapshotId"),
            source_region=self._get_param("SourceRegion"),
            description=self._get_param("Description"),
            kms_key_id=self._get_param("KmsKeyId"),
            encrypted=self._get_bool_param("Encrypted", False),
        )
        snapshot.add_tags(tags)
        return ActionResult({"SnapshotId": snapshot.id, "Tags": snapshot.tag_set})

    ElasticBlockStore.copy_snapshot = copy_snapshot_response


# --- ModifySnapshotAttribute -------------------------------------------------------------------


def _patch_share_snapshot() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.add_create_volume_permission

    def add_create_volume_permission(self, snapshot_id, user_ids, groups):
        snapshot = self.get_snapshot(snapshot_id)
        if snapshot.encrypted and (user_ids or groups):
            key, _ = resolve_key(self.account_id, self.region_name, snapshot.kms_key_id or "")
            if key is not None and is_aws_managed(self.account_id, self.region_name, key.id):
                raise ec2_error("OperationNotPermitted",
                               "Encrypted snapshots with EBS default key cannot be shared")
            if groups:
                raise ec2_error("OperationNotPermitted",
                               "Encrypted snapshots cannot be made public")
        return original(self, snapshot_id, user_ids, groups)

    EBSBackend.add_create_volume_permission = add_create_volume_permission


# --- kms: Sign/Verify with MessageType=DIGEST, and the RAW message limit ------------------------

RAW_MESSAGE_LIMIT = 4096
"""AWS: a RAW Sign/Verify message is at most 4,096 bytes; larger ones are signed as a DIGEST."""


def _patch_kms_digest() -> None:
    """moto ignores MessageType and hashes a DIGEST again; AWS signs the given digest as is, which
    is what lets a signature over a large file be made from its SHA-256 and still verify with
    ``openssl dgst -sha256 -verify`` over the file itself."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse

    original_sign, original_verify = KmsResponse.sign, KmsResponse.verify
    hash_of = {"ECDSA_SHA_256": hashes.SHA256, "ECDSA_SHA_384": hashes.SHA384, "ECDSA_SHA_512": hashes.SHA512}

    def checked(self):
        """(message type, message) after AWS's size rules."""
        message_type = self._get_param("MessageType") or "RAW"
        message = self._get_param("Message") or b""
        if message_type == "RAW" and len(message) > RAW_MESSAGE_LIMIT:
            raise ValidationException(
                f"1 validation error detected: Value at 'Message' failed to satisfy constraint: "
                f"Member must have length less than or equal to {RAW_MESSAGE_LIMIT}")
        return message_type, message

    def prehashed(self, digest):
        algorithm = self._get_param("SigningAlgorithm")
        if algorithm not in hash_of:
            raise ValidationException(f"MessageType DIGEST with {algorithm} is not emulated by the local world")
        if len(digest) != hash_of[algorithm].digest_size:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        private = getattr(key.private_key, "private_key", None)
        if key.key_usage != "SIGN_VERIFY" or not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValidationException(f"{key.arn} key usage is {key.key_usage}, not an ECC SIGN_VERIFY key")
        return key, private, ec.ECDSA(Prehashed(hash_of[algorithm]()))

    def sign(self):
        message_type, message = checked(self)
        if message_type != "DIGEST":
            return original_sign(self)
        key, private, scheme = prehashed(self, message)
        signature = private.sign(message, scheme)
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": self._get_param("SigningAlgorithm")})

    def verify(self):
        message_type, message = checked(self)
        if message_type != "DIGEST":
            return original_verify(self)
        key, private, scheme = prehashed(self, message)
        signature = base64.b64decode(self._get_param("Signature"))
        try:
            private.public_key().verify(signature, message, scheme)
            valid = True
        except InvalidSignature:
            valid = False
        return json.dumps({"KeyId": key.arn, "SignatureValid": valid,
                           "SigningAlgorithm": self._get_param("SigningAlgorithm")})

    original_get_public_key = KmsResponse.get_public_key

    def get_public_key(self):
        """AWS answers with the key's ARN and ``KeySpec``; moto with its bare id and only the
        deprecated ``CustomerMasterKeySpec``."""
        answer = json.loads(original_get_public_key(self))
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        answer["KeyId"] = key.arn
        answer["KeySpec"] = key.key_spec
        return json.dumps(answer)

    KmsResponse.sign, KmsResponse.verify = sign, verify
    KmsResponse.get_public_key = get_public_key


# --- KMS: AWS managed keys ---------------------------------------------------------------------


def aws_managed_key_policy(account: str, region: str, service: str) -> dict:
    """The key policy AWS gives an AWS managed key such as ``aws/ebs``: every principal of the
    account may use it through the one service, and nobody may change it.
    https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key"""
    via = f"{service}.{region}.amazonaws.com"
    return {
        "Version": "2012-10-17",
        "Id": f"auto-{service}-2",
        "Statement": [
            {
                "Sid": f"Allow access through {service.upper()} for all principals in the account that are authorized to use {service.upper()}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account, "kms:ViaService": via}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    }


def _patch_kms_aws_managed() -> None:
    """moto makes ``alias/aws/...`` keys as customer keys with the default policy. AWS reports
    them with ``KeyManager: AWS`` (what forensnap reads to tell aws/ebs apart) and gives them the
    service-scoped policy above, which the world's policy evaluation then enforces."""
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.kms.models import KmsBackend, kms_backends

    def mark(backend, key_id: str, service: str) -> None:
        key = backend.keys[key_id]
        key.key_manager = "AWS"
        key.policy = json.dumps(aws_managed_key_policy(backend.account_id, backend.region_name, service))

    original = KmsBackend._generate_default_keys

    def generate(self, alias_name: str):
        key_id = original(self, alias_name)
        if key_id is not None:
            mark(self, key_id, alias_name.split("/")[-1])
        return key_id

    KmsBackend._generate_default_keys = generate
    original_ebs = EBSBackend._create_default_encryption_key

    def create_default(self):
        key_id = original_ebs(self)
        backend = kms_backends[self.account_id][self.region_name]
        mark(backend, backend.get_key_id(key_id), "ec2")
        return key_id

    EBSBackend._create_default_encryption_key = create_default


def _patch_s3_bucket_policy() -> None:
    """moto applies a bucket policy's Deny statements with their conditions ignored, so the
    forensic template's "deny writes except the collector role" (ArnNotEquals aws:PrincipalArn)
    refuses every write. The world authorises every request itself (``policy.authorize``, with
    conditions), so moto's own check stands aside."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL


# --- S3: ranged reads read the range ------------------------------------------------------------


_ranged = threading.local()


class _LazyValue:
    """A stored object's bytes as moto's GetObject handler sees them during a single-range read:
    its length is the object's, and slicing reads only the slice from the key's buffer. moto
    5.2.5 reads the whole object (and copies it) on every GetObject and slices the range after:
    128 reads of 8 MiB from a 1 GiB object moved 256 GiB through memory, where S3 moves 1 GiB."""

    def __init__(self, key):
        self._key = key

    def __len__(self) -> int:
        return self._key.size

    def __bool__(self) -> bool:
        return self._key.size > 0

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step not in (None, 1):
            return self.materialise()[index]
        start, stop, _ = index.indices(self._key.size)
        with self._key.lock:
            self._key._value_buffer.seek(start)
            return self._key._value_buffer.read(max(0, stop - start))

    def materialise(self) -> bytes:
        with self._key.lock:
            self._key._value_buffer.seek(0)
            return self._key._value_buffer.read()


def _patch_s3_ranged_reads() -> None:
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    value_property = FakeKey.value

    def lazy_value(self):
        if getattr(_ranged, "on", False):
            return _LazyValue(self)
        return value_property.fget(self)

    FakeKey.value = property(lazy_value, value_property.fset)

    original = S3Response.key_response

    def key_response(self, request, full_url, *rest):
        spec = (request.headers.get("range") or "") if request.method == "GET" else ""
        single = bool(re.fullmatch(r"bytes=\d+-\d*", spec.strip())) and "partNumber" not in full_url
        if not single:
            return original(self, request, full_url, *rest)
        _ranged.on = True
        try:
            status, headers, body = original(self, request, full_url, *rest)
        finally:
            _ranged.on = False
        if isinstance(body, _LazyValue):
            # A path that did not slice it (an error, a conditional answer): the whole object.
            body = body.materialise()
        return status, headers, body

    S3Response.key_response = key_response

