"""Authorising every request the world serves as AWS would, against the policies stored in it.

For one request this module names every IAM action AWS checks (:func:`checks_for`, the table
below), finds the caller's identity policies and the resource's policy in moto's backends (the
bucket policy, the KMS key policy, the role's trust policy: what the templates deployed), and asks
:mod:`.evaluate` for a decision. A refused request is answered ``AccessDenied`` before moto sees
it. Every decision is logged (:data:`LOG`), so a test can collect the set of
(principal, action, resource) a run needed and compare it with what the templates grant.

The table of rules, each with the AWS page it follows:

* S3 object writes (PutObject, CreateMultipartUpload): ``s3:PutObject``; with
  ``x-amz-object-lock-mode`` / ``-retain-until-date`` also ``s3:PutObjectRetention``, with
  ``x-amz-object-lock-legal-hold`` ``s3:PutObjectLegalHold``, with ``x-amz-tagging``
  ``s3:PutObjectTagging``; SSE-KMS (asked for, or the bucket default) ``kms:GenerateDataKey`` on
  the key via S3. UploadPart and CompleteMultipartUpload: ``s3:PutObject`` (and ``kms:Decrypt``
  for a part of an SSE-KMS upload). https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
  ("Required permissions"), https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#aws-managed-customer-managed-keys
* S3 bucket configuration (PutBucketPolicy, PutBucketVersioning, PutObjectLockConfiguration,
  the lifecycle, encryption, ACL, public access block, ownership, tagging, logging,
  notification and replication calls, DeleteBucket) and object tags and ACLs: their own IAM
  action on the bucket (or object), e.g. DeleteBucketLifecycle ``s3:PutLifecycleConfiguration``.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
* S3 reads: GetObject/HeadObject ``s3:GetObject`` (``s3:GetObjectVersion`` with a versionId) and
  ``kms:Decrypt`` for SSE-KMS objects; GetObjectAttributes ``s3:GetObjectAttributes`` and
  ``s3:GetObject`` (the Version forms with a versionId); ListObjects(V2) ``s3:ListBucket``,
  ListObjectVersions ``s3:ListBucketVersions``, ListMultipartUploads
  ``s3:ListBucketMultipartUploads``, ListParts ``s3:ListMultipartUploadParts``,
  GetObjectLockConfiguration ``s3:GetBucketObjectLockConfiguration``.
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html ("Permissions").
* EC2: ``ec2:<Operation>``; CreateSnapshots and CopySnapshot with TagSpecifications also
  ``ec2:CreateTags`` with ``ec2:CreateAction``; an encrypted CopySnapshot or CreateSnapshots of
  encrypted volumes ``kms:CreateGrant`` (``kms:GrantIsForAWSResource``), ``kms:Decrypt`` /
  ``kms:ReEncrypt*``, ``kms:GenerateDataKeyWithoutPlaintext``, ``kms:DescribeKey`` via
  ``ec2.REGION.amazonaws.com``. https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html
* EBS direct reads: ``ebs:ListSnapshotBlocks`` / ``ebs:GetSnapshotBlock`` on the snapshot, and
  ``kms:Decrypt`` on an encrypted snapshot's key. https://docs.aws.amazon.com/ebs/latest/userguide/ebsapi-permissions.html
* KMS: ``kms:<Operation>`` on the key (``kms:SigningAlgorithm`` for Sign); ListAliases is not
  resource-scoped. The key policy is always consulted.
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
* STS AssumeRole: ``sts:AssumeRole`` on the role, with ``sts:ExternalId``; a SourceIdentity also
  ``sts:SetSourceIdentity``; the trust policy is always consulted.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html
  GetCallerIdentity needs no permission.
* SQS (JSON protocol, ``X-Amz-Target: AmazonSQS.<Operation>``, or the query protocol): the
  queue is the one ``QueueUrl`` names (its path holds the owner account), resource
  ``arn:aws:sqs:REGION:ACCOUNT:NAME``; batch operations need their single form's action
  (SendMessageBatch ``sqs:SendMessage``, DeleteMessageBatch ``sqs:DeleteMessage``,
  ChangeMessageVisibilityBatch ``sqs:ChangeMessageVisibility``), every other queue operation
  ``sqs:<Operation>``; the queue policy is the resource policy. On a queue encrypted with a KMS
  key (``KmsMasterKeyId``) SendMessage(Batch) also needs ``kms:GenerateDataKey`` and
  ``kms:Decrypt``, ReceiveMessage ``kms:Decrypt``, on that key via ``sqs.REGION.amazonaws.com``
  with the encryption context ``aws:sqs:arn`` (the queue). ListQueues and CreateQueue are not
  resource-scoped here. https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html,
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
* DynamoDB (``X-Amz-Target: DynamoDB_20120810.<Operation>``): ``dynamodb:<Operation>`` on
  ``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`` (``TableName`` may be the ARN), on
  ``.../table/NAME/index/INDEX`` for a Query or Scan of an index; BatchGetItem and BatchWriteItem
  their own action on each table of ``RequestItems``; TransactWriteItems the action of each item
  (``dynamodb:PutItem``, ``UpdateItem``, ``DeleteItem``, ``ConditionCheckItem``),
  TransactGetItems ``dynamodb:GetItem`` per item (there is no IAM action for the transactions
  themselves). A table's resource policy, when it has one, is the resource policy.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/api-permissions-reference.html,
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
* EventBridge PutEvents: ``events:PutEvents`` on each entry's bus (``EventBusName``: a name, an
  ARN -- possibly another account's -- or absent: the default bus), with ``events:source`` and
  ``events:detail-type``; the bus policy is the resource policy, so a sender in another account
  needs both its own identity policy and the bus policy.
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html
  Delivery of a matching event to an SQS target is authorised by :func:`authorize_delivery`
  (the queue and key policies must allow ``events.amazonaws.com``, ``aws:SourceArn`` the rule).
* CloudTrail (``X-Amz-Target: ...CloudTrail_20131101.<Operation>``): ``cloudtrail:<Operation>``;
  the calls on one trail (GetTrailStatus, GetTrail, StartLogging, StopLogging, CreateTrail,
  UpdateTrail, DeleteTrail, the event and insight selectors, tags) on the trail's ARN
  ``arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME`` (``Name`` may be the ARN itself); the others
  (LookupEvents, ListPublicKeys, DescribeTrails, ListTrails) on ``*``, as they name no resource.
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudtrail.html
  S3 listings carry ``s3:prefix`` (the request's ``prefix``, absent without one), so a grant
  limited to a trail's ``AWSLogs/`` prefix allows only listings under it.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html
* SSM (``X-Amz-Target: AmazonSSM.<Operation>``): SendCommand ``ssm:SendCommand`` on the
  document (``arn:aws:ssm:REGION:ACCOUNT:document/NAME``, an AWS-owned document such as
  ``AWS-RunShellScript`` without the account, a document ARN as given) and on each instance
  (``arn:aws:ec2:REGION:ACCOUNT:instance/ID``; ``instance/*`` for a command sent by ``Targets``);
  StartSession ``ssm:StartSession`` on the instance and the session document
  (``SSM-SessionManagerRunShell`` unless named); the document calls (Create, Update, Delete,
  Describe, Get, UpdateDocumentDefaultVersion, ModifyDocumentPermission) on the document;
  GetCommandInvocation, ListCommandInvocations, ListCommands, CancelCommand and
  DescribeInstanceInformation on ``*`` (they name no resource type).
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
  EC2's DescribeInstanceTypes is ``ec2:DescribeInstanceTypes`` on ``*`` like every EC2 Describe.
* The transport is an input of every decision: ``aws:SecureTransport`` (every service; "This key
  is always included in the request context") is true unless the request came over plain HTTP,
  and S3's ``s3:TlsVersion`` is the TLS version, absent without TLS.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-securetransport,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html (``s3:TlsVersion``).
  The loopback world is plain HTTP only because it is local; a request is authorised as TLS 1.3,
  forensnap's transport on AWS, unless it carries the test-only header ``x-forensnap-transport``
  (``http``, or ``tls1.0`` .. ``tls1.3``: :data:`..wire.TRANSPORT_HEADER`).

An operation not in the table is authorised by its derived name (``service:Operation``) on
resource ``*`` against the caller's identity policies only, and logged as ``modelled: false``:
a policy that grants actions only on named resources never allows it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

from .evaluate import Decision, PolicyError, Request, ResourcePolicyKind, evaluate

_lock = threading.Lock()
LOG: list[dict] = []
"""Every decision since the last reset: principal, action, resource, allowed, reason."""

_ASSUMED = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_USER = re.compile(r"^arn:aws:iam::(\d{12}):user/(?:.*/)?([^/]+)$")


@dataclass
class Check:
    """One IAM action AWS evaluates for a request."""

    action: str
    resource: str
    resource_account: str | None = None
    context: dict = field(default_factory=dict)
    kind: ResourcePolicyKind = ResourcePolicyKind.OPTIONAL
    resource_policy: tuple[str, dict] | None = None
    deferred: bool = False
    """Checked after the call returns, as EC2 does for the KMS keys of a snapshot or copy: a
    refusal makes the snapshot end in state ``error`` (the world's snapshot lifecycle decides
    that), not the request fail. Logged like the others."""
    hides: tuple[str, ...] = ()
    """Response headers AWS leaves out when this check fails, instead of refusing the request
    (HeadObject/GetObject name an object's lock only to a caller allowed to read it)."""


def reset() -> None:
    with _lock:
        LOG.clear()


def _persist(entry: dict) -> None:
    """With ``FORENSNAP_AUTHZ_LOG_DIR`` set, every decision of every world is also appended to
    ``<dir>/<pid>.jsonl``: what a whole test suite needed, for the least-privilege check
    (``policy/least_privilege.py``). Called with the lock held."""
    import os

    folder = os.environ.get("FORENSNAP_AUTHZ_LOG_DIR")
    if not folder:
        return
    with open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def log_snapshot() -> list[dict]:
    with _lock:
        return list(LOG)


# --- policies stored in moto -------------------------------------------------------------------


def _doc(text) -> dict:
    if isinstance(text, dict):
        return text
    if isinstance(text, bytes):
        text = text.decode()
    from urllib.parse import unquote

    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def role_policies(account: str, role_name: str) -> list[tuple[str, dict]]:
    """The inline and managed policies of a role (none for a role deleted since)."""
    from moto.iam.models import iam_backends

    try:
        role = iam_backends[account]["aws"].get_role(role_name)
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        return []
    return _policies_of([role])


def identity_policies(principal_arn: str) -> list[tuple[str, dict]]:
    """The inline and managed policies of the role (for a session) or user behind an ARN."""
    from moto.iam.models import iam_backends

    match = _ASSUMED.match(principal_arn)
    if match:
        return role_policies(match.group(1), match.group(2))
    match = _USER.match(principal_arn)
    if not match:
        return []
    account, user_name = match.group(1), match.group(2)
    backend = iam_backends[account]["aws"]
    try:
        user = backend.get_user(user_name)
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        return []
    return _policies_of([user] + [g for g in backend.groups.values() if user in g.users])


def _policies_of(holders) -> list[tuple[str, dict]]:
    """(name, document) of every inline and managed policy of roles, users or groups."""
    out: list[tuple[str, dict]] = []
    for holder in holders:
        for name, text in holder.policies.items():
            out.append((f"{holder.name} inline {name}", _doc(text)))
        for arn, policy in holder.managed_policies.items():
            version = next(
                (v for v in policy.versions if v.is_default), None
            ) if hasattr(policy, "versions") else None
            document = version.document if version is not None else policy.document
            out.append((f"{holder.name} managed {arn}", _doc(document)))
    return out


def _bucket(name: str):
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(name)
    if owner is None:
        return None, None
    partition, account = owner
    backend = s3_backends[account][partition]
    return backend.buckets.get(name), account


def _key(key_ref: str, caller_account: str, region: str):
    """The KMS key a reference names (id, ARN, alias name or alias ARN) and its account."""
    from moto.kms.models import kms_backends

    account, key_region = caller_account, region
    match = re.match(r"^arn:aws:kms:([\w-]+):(\d{12}):(key|alias)/(.+)$", key_ref)
    if match:
        key_region, account = match.group(1), match.group(2)
    backend = kms_backends[account][key_region]
    try:
        key_id = backend.any_id_to_key_id(key_ref)
    except Exception:  # noqa: BLE001 - an alias that names nothing
        return None
    return backend.keys.get(key_id)


def _key_checks(actions, key_ref: str, caller_account: str, region: str, context: dict,
                deferred: bool = False) -> list[Check]:
    key = _key(key_ref, caller_account, region) if key_ref else None
    if key is None:
        return []  # moto answers NotFound itself
    policy = (f"key policy of {key.arn}", _doc(key.policy))
    return [
        Check(action, key.arn, key.account_id, dict(context), ResourcePolicyKind.KEY_POLICY, policy,
              deferred)
        for action in actions
    ]


# --- the table -----------------------------------------------------------------------------------


def _s3_checks(call, account: str) -> list[Check]:
    from ..wire import s3_bucket_key

    op = call.operation
    bucket_name, key = s3_bucket_key(call)
    bucket, owner = _bucket(bucket_name)
    policy = None
    if bucket is not None and bucket.policy:
        policy = (f"bucket policy of {bucket_name}", _doc(bucket.policy))
    version = call.query.get("versionId", [None])[0]
    obj = f"arn:aws:s3:::{bucket_name}/{key}"
    whole = f"arn:aws:s3:::{bucket_name}"
    context: dict = {}
    if call.tls_version is not None:
        # "s3:TlsVersion ... the TLS version used by the client"; a plain HTTP request has none.
        context["s3:TlsVersion"] = call.tls_version
    for header in (
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-object-lock-legal-hold",
        "x-amz-acl",
    ):
        value = call.header(header)
        if value is not None:
            name = {
                "x-amz-object-lock-mode": "s3:object-lock-mode",
                "x-amz-object-lock-retain-until-date": "s3:object-lock-retain-until-date",
                "x-amz-object-lock-legal-hold": "s3:object-lock-legal-hold",
            }.get(header, f"s3:{header}")
            context[name] = value

    if op in ("ListObjects", "ListObjectsV2", "ListObjectVersions") and "prefix" in call.query:
        context["s3:prefix"] = call.query["prefix"][0]

    def s3(action: str, resource: str) -> Check:
        return Check(action, resource, owner, dict(context), ResourcePolicyKind.OPTIONAL, policy)

    checks: list[Check] = []
    kms_key = _sse_kms_key(call, bucket)
    if op in ("PutObject", "CreateMultipartUpload"):
        checks.append(s3("s3:PutObject", obj))
        if call.header("x-amz-object-lock-mode") or call.header("x-amz-object-lock-retain-until-date"):
            checks.append(s3("s3:PutObjectRetention", obj))
        if call.header("x-amz-object-lock-legal-hold"):
            checks.append(s3("s3:PutObjectLegalHold", obj))
        if call.header("x-amz-tagging"):
            checks.append(s3("s3:PutObjectTagging", obj))
        if kms_key:
            checks += _key_checks(["kms:GenerateDataKey"], kms_key, account, call.region,
                                  _via("s3", call.region, account))
    elif op in ("UploadPart", "CompleteMultipartUpload"):
        checks.append(s3("s3:PutObject", obj))
        if kms_key and op == "UploadPart":
            checks += _key_checks(["kms:Decrypt"], kms_key, account, call.region,
                                  _via("s3", call.region, account))
    elif op in ("GetObject", "HeadObject"):
        checks.append(s3("s3:GetObjectVersion" if version else "s3:GetObject", obj))
        # "x-amz-object-lock-mode ... returned only if the requester has the
        # s3:GetObjectRetention permission" (and the legal hold with s3:GetObjectLegalHold):
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
        retention = s3("s3:GetObjectRetention", obj)
        retention.hides = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date")
        hold = s3("s3:GetObjectLegalHold", obj)
        hold.hides = ("x-amz-object-lock-legal-hold",)
        checks += [retention, hold]
        stored_key = _stored_object_key(bucket, key, version)
        if stored_key:
            checks += _key_checks(["kms:Decrypt"], stored_key, account, call.region,
                                  _via("s3", call.region, account))
    elif op == "GetObjectAttributes":
        if version:
            checks += [s3("s3:GetObjectVersion", obj), s3("s3:GetObjectVersionAttributes", obj)]
        else:
            checks += [s3("s3:GetObject", obj), s3("s3:GetObjectAttributes", obj)]
    else:
        simple = {
            "GetObjectRetention": ("s3:GetObjectRetention", obj),
            "PutObjectRetention": ("s3:PutObjectRetention", obj),
            "GetObjectLegalHold": ("s3:GetObjectLegalHold", obj),
            "PutObjectLegalHold": ("s3:PutObjectLegalHold", obj),
            "DeleteObject": ("s3:DeleteObjectVersion" if version else "s3:DeleteObject", obj),
            "AbortMultipartUpload": ("s3:AbortMultipartUpload", obj),
            "ListParts": ("s3:ListMultipartUploadParts", obj),
            "ListObjects": ("s3:ListBucket", whole),
            "ListObjectsV2": ("s3:ListBucket", whole),
            "HeadBucket": ("s3:ListBucket", whole),
            "ListObjectVersions": ("s3:ListBucketVersions", whole),
            "ListMultipartUploads": ("s3:ListBucketMultipartUploads", whole),
            "GetBucketVersioning": ("s3:GetBucketVersioning", whole),
            "GetObjectLockConfiguration": ("s3:GetBucketObjectLockConfiguration", whole),
            "GetBucketLocation": ("s3:GetBucketLocation", whole),
            "GetBucketEncryption": ("s3:GetEncryptionConfiguration", whole),
            "GetBucketPolicy": ("s3:GetBucketPolicy", whole),
            # Bucket configuration: what would change a bucket's protection (or a trail's
            # delivery) is checked like any other call, never let through unmodelled.
            "PutBucketPolicy": ("s3:PutBucketPolicy", whole),
            "DeleteBucketPolicy": ("s3:DeleteBucketPolicy", whole),
            "GetBucketPolicyStatus": ("s3:GetBucketPolicyStatus", whole),
            "PutBucketVersioning": ("s3:PutBucketVersioning", whole),
            "PutObjectLockConfiguration": ("s3:PutBucketObjectLockConfiguration", whole),
            "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration", whole),
            "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration", whole),
            "DeleteBucketLifecycle": ("s3:PutLifecycleConfiguration", whole),
            "PutBucketEncryption": ("s3:PutEncryptionConfiguration", whole),
            "DeleteBucketEncryption": ("s3:PutEncryptionConfiguration", whole),
            "GetBucketAcl": ("s3:GetBucketAcl", whole),
            "PutBucketAcl": ("s3:PutBucketAcl", whole),
            "GetPublicAccessBlock": ("s3:GetBucketPublicAccessBlock", whole),
            "PutPublicAccessBlock": ("s3:PutBucketPublicAccessBlock", whole),
            "DeletePublicAccessBlock": ("s3:PutBucketPublicAccessBlock", whole),
            "GetBucketOwnershipControls": ("s3:GetBucketOwnershipControls", whole),
            "PutBucketOwnershipControls": ("s3:PutBucketOwnershipControls", whole),
            "DeleteBucketOwnershipControls": ("s3:PutBucketOwnershipControls", whole),
            "GetBucketTagging": ("s3:GetBucketTagging", whole),
            "PutBucketTagging": ("s3:PutBucketTagging", whole),
            "DeleteBucketTagging": ("s3:PutBucketTagging", whole),
            "GetBucketLogging": ("s3:GetBucketLogging", whole),
            "PutBucketLogging": ("s3:PutBucketLogging", whole),
            "GetBucketNotificationConfiguration": ("s3:GetBucketNotification", whole),
            "PutBucketNotificationConfiguration": ("s3:PutBucketNotification", whole),
            "PutBucketReplication": ("s3:PutReplicationConfiguration", whole),
            "DeleteBucketReplication": ("s3:PutReplicationConfiguration", whole),
            "DeleteBucket": ("s3:DeleteBucket", whole),
            "GetObjectTagging": ("s3:GetObjectVersionTagging" if version else "s3:GetObjectTagging", obj),
            "PutObjectTagging": ("s3:PutObjectVersionTagging" if version else "s3:PutObjectTagging", obj),
            "DeleteObjectTagging": ("s3:DeleteObjectVersionTagging" if version else "s3:DeleteObjectTagging", obj),
            "GetObjectAcl": ("s3:GetObjectVersionAcl" if version else "s3:GetObjectAcl", obj),
            "PutObjectAcl": ("s3:PutObjectVersionAcl" if version else "s3:PutObjectAcl", obj),
        }.get(op)
        if simple is None:
            return []  # not modelled: see authorize()
        checks.append(s3(*simple))
    return checks


def _via(service: str, region: str, account: str) -> dict:
    return {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account}


def _sse_kms_key(call, bucket) -> str | None:
    """The KMS key an object write is encrypted with: the one asked for, else the bucket's
    default (SSE-KMS), else none."""
    asked = call.header("x-amz-server-side-encryption")
    if asked and asked != "aws:kms":
        return None
    named = call.header("x-amz-server-side-encryption-aws-kms-key-id")
    if named:
        return named
    if asked == "aws:kms":
        return "alias/aws/s3"
    if bucket is None or not bucket.encryption:
        return None
    try:
        rule = bucket.encryption["Rule"]
        rule = rule[0] if isinstance(rule, list) else rule
        default = rule["ApplyServerSideEncryptionByDefault"]
    except (KeyError, TypeError, IndexError):
        return None
    if default.get("SSEAlgorithm") != "aws:kms":
        return None
    return default.get("KMSMasterKeyID") or "alias/aws/s3"


def _stored_object_key(bucket, key: str, version: str | None) -> str | None:
    if bucket is None:
        return None
    try:
        if version:
            obj = next((v for v in bucket.keys.getlist(key, []) if v.version_id == version), None)
        else:
            obj = bucket.keys.get(key)
    except Exception:  # noqa: BLE001 - moto's key store shapes vary; no key then no KMS check
        return None
    if obj is None or getattr(obj, "encryption", None) != "aws:kms":
        return None
    return getattr(obj, "kms_key_id", None) or "alias/aws/s3"


def _indexed(call, prefix: str, suffix: str) -> list[str]:
    """Values of EC2 query parameters ``<prefix>.N.<suffix>`` (N from 1), in order."""
    found = []
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.{re.escape(suffix)}$")
    for name, values in call.params.items():
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), values[0]))
    return [value for _, value in sorted(found)]


def _numbered(call, prefix: str) -> list[str]:
    """Values of EC2 query parameters ``<prefix>.N``, in order."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)$")
    found = sorted((int(m.group(1)), v[0]) for k, v in call.params.items() if (m := pattern.match(k)))
    return [value for _, value in found]


def _request_tags(call) -> dict:
    """``aws:TagKeys`` and ``aws:RequestTag/<key>`` of the tags a request puts on what it makes."""
    keys = _indexed(call, "TagSpecification.1.Tag", "Key") or _indexed(call, "Tag", "Key")
    values = _indexed(call, "TagSpecification.1.Tag", "Value") or _indexed(call, "Tag", "Value")
    context: dict = {}
    if keys:
        context["aws:TagKeys"] = keys
        for key, value in zip(keys, values):
            context[f"aws:RequestTag/{key}"] = value
    return context


def _find_snapshot(snapshot_id: str, region: str):
    """(EC2 backend, snapshot) of a snapshot in whichever account holds it, or (None, None)."""
    from moto.ec2.models import ec2_backends

    for account in list(ec2_backends.keys()):
        try:
            backend = ec2_backends[account][region]
        except KeyError:
            continue
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is not None:
            return backend, snapshot
    return None, None


def _snapshot_tags(snapshot_id: str, region: str) -> dict:
    """``aws:ResourceTag/<key>`` of an existing snapshot."""
    backend, snapshot = _find_snapshot(snapshot_id, region)
    if snapshot is None:
        return {}
    return {f"aws:ResourceTag/{k}": v for k, v in backend.tags.get(snapshot_id, {}).items()}


def _ec2_checks(call, account: str) -> list[Check]:
    op = call.operation
    region = call.region
    snapshot_any = f"arn:aws:ec2:{region}::snapshot/*"
    via = _via("ec2", region, account)
    checks: list[Check] = []

    def ec2(action: str, resource: str, **context) -> Check:
        return Check(action, resource, account, dict(context))

    tagged = any(k.startswith("TagSpecification") for k in call.params)
    tags = _request_tags(call)
    if op == "CopySnapshot":
        source = call.param("SourceSnapshotId") or "*"
        checks += [Check("ec2:CopySnapshot", f"arn:aws:ec2:{region}::snapshot/{source}", account,
                         _snapshot_tags(source, call.param("SourceRegion") or region)),
                   ec2("ec2:CopySnapshot", snapshot_any, **tags)]
        if tagged:
            checks.append(ec2("ec2:CreateTags", snapshot_any,
                              **{"ec2:CreateAction": "CopySnapshot"}, **tags))
        target = call.param("KmsKeyId")
        source_key = _snapshot_key(source, call.param("SourceRegion") or region)
        if source_key:
            grant = dict(via, **{"kms:GrantIsForAWSResource": True})
            checks += _key_checks(["kms:DescribeKey", "kms:Decrypt"], source_key, account, region,
                                  via, deferred=True)
            checks += _key_checks(["kms:CreateGrant"], source_key, account, region, grant,
                                  deferred=True)
        if target:
            grant = dict(via, **{"kms:GrantIsForAWSResource": True})
            checks += _key_checks(
                ["kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext",
                 "kms:ReEncryptTo"],
                target, account, region, via, deferred=True)
            checks += _key_checks(["kms:CreateGrant"], target, account, region, grant,
                                  deferred=True)
            if source_key:
                checks += _key_checks(["kms:ReEncryptFrom"], source_key, account, region, via,
                                      deferred=True)
    elif op == "CreateSnapshots":
        instance = call.param("InstanceSpecification.InstanceId") or "*"
        checks += [ec2("ec2:CreateSnapshots", f"arn:aws:ec2:{region}:{account}:instance/{instance}"),
                   ec2("ec2:CreateSnapshots", snapshot_any)]
        if tagged:
            checks.append(ec2("ec2:CreateTags", snapshot_any,
                              **{"ec2:CreateAction": "CreateSnapshots"}, **tags))
        for key_ref in _instance_volume_keys(account, region, instance):
            grant = dict(via, **{"kms:GrantIsForAWSResource": True})
            checks += _key_checks(["kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext"],
                                  key_ref, account, region, via, deferred=True)
            checks += _key_checks(["kms:CreateGrant"], key_ref, account, region, grant,
                                  deferred=True)
    elif op == "CreateSnapshot":
        volume = call.param("VolumeId") or "*"
        checks += [ec2("ec2:CreateSnapshot", f"arn:aws:ec2:{region}:{account}:volume/{volume}"),
                   ec2("ec2:CreateSnapshot", snapshot_any, **tags)]
        if tagged:
            checks.append(ec2("ec2:CreateTags", snapshot_any,
                              **{"ec2:CreateAction": "CreateSnapshot"}, **tags))
    elif op in ("AttachVolume", "DetachVolume", "DeleteVolume", "ModifyVolume"):
        volume = call.param("VolumeId") or "*"
        checks.append(ec2(f"ec2:{op}", f"arn:aws:ec2:{region}:{account}:volume/{volume}"))
    elif op in ("StopInstances", "StartInstances", "RebootInstances", "TerminateInstances"):
        for instance in _numbered(call, "InstanceId") or ["*"]:
            checks.append(ec2(f"ec2:{op}", f"arn:aws:ec2:{region}:{account}:instance/{instance}"))
    elif op == "GetConsoleOutput":
        instance = call.param("InstanceId") or "*"
        checks.append(ec2("ec2:GetConsoleOutput", f"arn:aws:ec2:{region}:{account}:instance/{instance}"))
    elif op in ("ModifySnapshotAttribute", "DeleteSnapshot", "DescribeSnapshotAttribute"):
        snapshot = call.param("SnapshotId") or "*"
        context = _snapshot_tags(snapshot, region)
        if op == "ModifySnapshotAttribute":
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
            # (ec2:Add/userId, ec2:Add/group, ec2:Remove/userId, ec2:Remove/group)
            for verb in ("Add", "Remove"):
                users = _indexed(call, f"CreateVolumePermission.{verb}", "UserId")
                groups = _indexed(call, f"CreateVolumePermission.{verb}", "Group")
                if call.param("OperationType") == verb.lower():
                    # The older form: OperationType with UserId.N / UserGroup.N.
                    users += _numbered(call, "UserId")
                    groups += _numbered(call, "UserGroup")
                if users:
                    context[f"ec2:{verb}/userId"] = users
                if groups:
                    context[f"ec2:{verb}/group"] = groups
        checks.append(Check(f"ec2:{op}", f"arn:aws:ec2:{region}::snapshot/{snapshot}", account, context))
    elif op == "CreateTags":
        for name, values in call.params.items():
            if re.match(r"^ResourceId\.\d+$", name):
                resource = values[0]
                kind = {"snap": "snapshot", "vol": "volume", "i": "instance"}.get(resource.split("-")[0], "resource")
                arn = (f"arn:aws:ec2:{region}::snapshot/{resource}" if kind == "snapshot"
                       else f"arn:aws:ec2:{region}:{account}:{kind}/{resource}")
                checks.append(ec2("ec2:CreateTags", arn, **tags))
    else:
        checks.append(ec2(f"ec2:{op}", "*"))
    return checks


def _snapshot_key(snapshot_id: str, region: str) -> str | None:
    """The KMS key of an encrypted snapshot, in whichever account holds it."""
    _, snapshot = _find_snapshot(snapshot_id, region)
    if snapshot is None or not snapshot.encrypted:
        return None
    return snapshot.kms_key_id


def _instance_volume_keys(account: str, region: str, instance_id: str) -> list[str]:
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account][region]
    keys = []
    for volume in backend.volumes.values():
        attached = getattr(volume, "attachment", None)
        if attached is not None and getattr(attached.instance, "id", None) == instance_id:
            if volume.encrypted and volume.kms_key_id:
                keys.append(volume.kms_key_id)
    return keys


def _kms_checks(call, account: str) -> list[Check]:
    op = call.operation
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        body = {}
    if op in ("ListAliases", "ListKeys", "CreateKey"):
        return [Check(f"kms:{op}", "*", account)]
    key_ref = body.get("KeyId") or body.get("TargetKeyId") or ""
    context = {"kms:CallerAccount": account}
    if op == "Sign" or op == "Verify":
        context["kms:SigningAlgorithm"] = body.get("SigningAlgorithm", "")
        context["kms:MessageType"] = body.get("MessageType", "RAW")
    return _key_checks([f"kms:{op}"], key_ref, account, call.region, context)


def _sts_checks(call, account: str) -> list[Check]:
    op = call.operation
    if op == "GetCallerIdentity":
        return []
    if op != "AssumeRole":
        return [Check(f"sts:{op}", "*", account)]
    from moto.iam.models import iam_backends

    role_arn = call.param("RoleArn") or ""
    match = re.match(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
    if not match:
        return []  # identity.check_assume_role names the malformed ARN
    role_account, role_name = match.group(1), match.group(2)
    try:
        role = iam_backends[role_account]["aws"].get_role(role_name)
    except Exception:  # noqa: BLE001 - moto answers NoSuchEntity
        return []
    trust = (f"trust policy of {role_arn}", _doc(role.assume_role_policy_document))
    context = {"sts:RoleSessionName": call.param("RoleSessionName") or ""}
    if call.param("ExternalId") is not None:
        context["sts:ExternalId"] = call.param("ExternalId")
    source_identity = call.param("SourceIdentity")
    if source_identity is not None:
        context["sts:SourceIdentity"] = source_identity
    checks = [Check("sts:AssumeRole", role_arn, role_account, dict(context),
                    ResourcePolicyKind.TRUST_POLICY, trust)]
    if source_identity is not None:
        checks.append(Check("sts:SetSourceIdentity", role_arn, role_account, dict(context),
                            ResourcePolicyKind.TRUST_POLICY, trust))
    if any(name.startswith("Tags.member.") for name in call.params):
        checks.append(Check("sts:TagSession", role_arn, role_account, dict(context),
                            ResourcePolicyKind.TRUST_POLICY, trust))
    return checks


def _ebs_checks(call, account: str, snapshot_id: str) -> list[Check]:
    resource = f"arn:aws:ec2:{call.region}::snapshot/{snapshot_id}"
    checks = [Check(f"ebs:{call.operation}", resource, account)]
    key = _snapshot_key(snapshot_id, call.region)
    if key:
        checks += _key_checks(["kms:Decrypt"], key, account, call.region,
                              {"kms:CallerAccount": account})
    return checks


def _json_body(call) -> dict:
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _sqs_key_checks(actions, queue, arn: str, owner: str, account: str, region: str,
                    context: dict | None = None) -> list[Check]:
    """The KMS checks of a message sent to or received from a queue on a KMS key, as SQS makes
    them on the caller's behalf. SQS managed SSE (no ``KmsMasterKeyId``) needs none."""
    key_ref = getattr(queue, "kms_master_key_id", None) if queue is not None else None
    if not key_ref:
        return []
    if not key_ref.startswith("arn:"):
        key_ref = f"arn:aws:kms:{region}:{owner}:{key_ref}" if key_ref.startswith("alias/") \
            else f"arn:aws:kms:{region}:{owner}:key/{key_ref}"
    via = dict(_via("sqs", region, account), **{"kms:EncryptionContext:aws:sqs:arn": arn})
    via.update(context or {})
    return _key_checks(actions, key_ref, owner, region, via)


_SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs_checks(call, account: str) -> tuple[list[Check], bool]:
    from ..queues import find_queue, queue_arn, queue_of, request_body

    op, region = call.operation, call.region
    params = request_body(call)
    if op in ("ListQueues", "CreateQueue"):
        return [Check(f"sqs:{op}", "*", account)], True
    if op == "GetQueueUrl":
        named = (params.get("QueueOwnerAWSAccountId") or account, params.get("QueueName") or "")
    else:
        named = queue_of(params.get("QueueUrl"), account)
    if named is None or not named[1]:
        return [Check(f"sqs:{op}", "*", account)], False
    owner, name = named
    arn = queue_arn(region, owner, name)
    queue = find_queue(owner, region, name)
    policy = None
    if queue is not None and queue.policy:
        policy = (f"queue policy of {arn}", _doc(queue.policy))
    checks = [Check(f"sqs:{_SQS_ACTIONS.get(op, op)}", arn, owner, {}, ResourcePolicyKind.OPTIONAL, policy)]
    if op in ("SendMessage", "SendMessageBatch"):
        checks += _sqs_key_checks(["kms:GenerateDataKey", "kms:Decrypt"], queue, arn, owner, account, region)
    elif op == "ReceiveMessage":
        checks += _sqs_key_checks(["kms:Decrypt"], queue, arn, owner, account, region)
    return checks, True


def _table_arn(reference: str, account: str, region: str) -> tuple[str, str]:
    """(ARN, owner account) of a TableName, which may be the table's ARN."""
    if reference.startswith("arn:"):
        parts = reference.split(":", 5)
        return reference, (parts[4] if len(parts) == 6 else account)
    return f"arn:aws:dynamodb:{region}:{account}:table/{reference}", account


def _table_policy(arn: str, owner: str, region: str):
    from moto.dynamodb.models import dynamodb_backends

    try:
        found = dynamodb_backends[owner][region].resource_policies.get(arn)
    except (KeyError, AttributeError):
        return None
    return (f"resource policy of {arn}", _doc(found.policy_doc)) if found is not None else None


def _dynamodb_checks(call, account: str) -> tuple[list[Check], bool]:
    op, region = call.operation, call.region
    body = _json_body(call)

    def table(reference: str, action: str, index: str | None = None) -> Check:
        arn, owner = _table_arn(reference, account, region)
        policy = _table_policy(arn.split("/index/")[0], owner, region)
        resource = f"{arn}/index/{index}" if index else arn
        return Check(f"dynamodb:{action}", resource, owner, {}, ResourcePolicyKind.OPTIONAL, policy)

    if op in ("BatchGetItem", "BatchWriteItem"):
        names = list((body.get("RequestItems") or {}).keys())
        return [table(name, op) for name in names] or [Check(f"dynamodb:{op}", "*", account)], True
    if op in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        for item in body.get("TransactItems") or []:
            for kind, action in kinds.items():
                if isinstance(item, dict) and isinstance(item.get(kind), dict):
                    checks.append(table(item[kind].get("TableName") or "", action))
        return checks or [Check(f"dynamodb:{op}", "*", account)], True
    if body.get("TableName") or body.get("TableArn") or body.get("ResourceArn"):
        reference = body.get("TableName") or body.get("TableArn") or body.get("ResourceArn")
        index = body.get("IndexName") if op in ("Query", "Scan") else None
        return [table(reference, op, index)], True
    return [Check(f"dynamodb:{op}", "*", account)], op in ("ListTables", "DescribeLimits", "DescribeEndpoints")


def _event_bus(account: str, region: str, name: str):
    from moto.events.models import events_backends

    try:
        return events_backends[account][region].event_buses.get(name)
    except KeyError:
        return None


def _events_checks(call, account: str) -> tuple[list[Check], bool]:
    from ..eventbridge import bus_owner

    op, region = call.operation, call.region
    body = _json_body(call)
    if op != "PutEvents":
        return [Check(f"events:{op}", "*", account)], False
    checks = []
    for entry in body.get("Entries") or []:
        if not isinstance(entry, dict):
            continue
        owner, bus_region, name = bus_owner(entry.get("EventBusName"), account, region)
        arn = f"arn:aws:events:{bus_region}:{owner}:event-bus/{name}"
        bus = _event_bus(owner, bus_region, name)
        policy = (f"bus policy of {arn}", _doc(bus.policy)) if bus is not None and bus.policy else None
        context = {"events:source": entry.get("Source", ""), "events:detail-type": entry.get("DetailType", "")}
        checks.append(Check("events:PutEvents", arn, owner, context, ResourcePolicyKind.OPTIONAL, policy))
    return checks or [Check("events:PutEvents", f"arn:aws:events:{region}:{account}:event-bus/default",
                            account)], True


_TRAIL_SCOPED = {"GetTrailStatus", "GetTrail", "StartLogging", "StopLogging", "CreateTrail",
                 "UpdateTrail", "DeleteTrail", "PutEventSelectors", "GetEventSelectors",
                 "PutInsightSelectors", "GetInsightSelectors", "AddTags", "RemoveTags", "ListTags"}
_UNSCOPED_CLOUDTRAIL = {"LookupEvents", "ListPublicKeys", "DescribeTrails", "ListTrails"}


def _cloudtrail_checks(call, account: str) -> tuple[list[Check], bool]:
    op, region = call.operation, call.region
    if op in _UNSCOPED_CLOUDTRAIL:
        return [Check(f"cloudtrail:{op}", "*", account)], True
    if op not in _TRAIL_SCOPED:
        return [Check(f"cloudtrail:{op}", "*", account)], False
    body = _json_body(call)
    names = body.get("ResourceIdList") or [body.get("Name") or body.get("TrailName")
                                           or body.get("ResourceId") or "*"]
    checks = []
    for name in names:
        arn = name if str(name).startswith("arn:") else f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"
        owner = arn.split(":")[4] if arn.count(":") >= 5 else account
        checks.append(Check(f"cloudtrail:{op}", arn, owner))
    return checks, True


_SSM_UNSCOPED = {"GetCommandInvocation", "ListCommandInvocations", "ListCommands", "CancelCommand",
                 "DescribeInstanceInformation"}
_SSM_DOCUMENT_CALLS = {"CreateDocument", "UpdateDocument", "DeleteDocument", "DescribeDocument", "GetDocument",
                       "UpdateDocumentDefaultVersion", "ModifyDocumentPermission", "DescribeDocumentPermission"}
_AWS_OWNED_DOCUMENTS = ("AWS-", "AWSEC2-", "AWSSupport-", "AmazonCloudWatch-", "AWSFleetManager-")


def ssm_document_arn(name: str, region: str, account: str) -> str:
    """The ARN IAM evaluates for an SSM document named by name or ARN."""
    if name.startswith("arn:"):
        return name
    if name.startswith(_AWS_OWNED_DOCUMENTS):
        return f"arn:aws:ssm:{region}::document/{name}"
    return f"arn:aws:ssm:{region}:{account}:document/{name}"


def _instance_arn(instance_id: str, region: str, account: str) -> str:
    if instance_id.startswith("mi-"):
        return f"arn:aws:ssm:{region}:{account}:managed-instance/{instance_id}"
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def _ssm_checks(call, account: str) -> tuple[list[Check], bool]:
    op, region = call.operation, call.region
    body = _json_body(call)
    if op in _SSM_UNSCOPED:
        return [Check(f"ssm:{op}", "*", account)], True
    if op == "SendCommand":
        document = ssm_document_arn(str(body.get("DocumentName") or ""), region, account)
        instances = [str(i) for i in body.get("InstanceIds") or []]
        resources = [document] + ([_instance_arn(i, region, account) for i in instances]
                                  or [f"arn:aws:ec2:{region}:{account}:instance/*"])
        return [Check("ssm:SendCommand", r, account) for r in resources], True
    if op == "StartSession":
        target = str(body.get("Target") or "*")
        document = ssm_document_arn(str(body.get("DocumentName") or "SSM-SessionManagerRunShell"), region, account)
        return [Check("ssm:StartSession", _instance_arn(target, region, account), account),
                Check("ssm:StartSession", document, account)], True
    if op in _SSM_DOCUMENT_CALLS:
        document = ssm_document_arn(str(body.get("Name") or "*"), region, account)
        return [Check(f"ssm:{op}", document, account)], True
    return [Check(f"ssm:{op}", "*", account)], False


def checks_for(call, account: str, snapshot_id: str | None = None) -> tuple[list[Check], bool]:
    """The IAM checks of a request and whether the table models its operation."""
    service = call.service
    if service == "s3":
        checks = _s3_checks(call, account)
        return checks, bool(checks)
    if service == "ec2":
        return _ec2_checks(call, account), True
    if service == "kms":
        return _kms_checks(call, account), True
    if service == "sts":
        return _sts_checks(call, account), True
    if service == "ebs" and snapshot_id:
        return _ebs_checks(call, account, snapshot_id), True
    if service == "sqs":
        return _sqs_checks(call, account)
    if service == "dynamodb":
        return _dynamodb_checks(call, account)
    if service == "events":
        return _events_checks(call, account)
    if service == "cloudtrail":
        return _cloudtrail_checks(call, account)
    if service == "ssm":
        return _ssm_checks(call, account)
    return [Check(f"{service}:{call.operation}", "*", account)], False


# --- deciding ------------------------------------------------------------------------------------


_deferred = threading.local()


def deferred_refusal() -> str | None:
    """The first deferred check the request being served failed (EC2's KMS checks of a snapshot
    or copy), or None: the world's snapshot lifecycle makes the snapshots of that request end in
    state ``error`` with it, as EBS does when it cannot use a key.
    https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html"""
    refusals = getattr(_deferred, "refusals", None)
    return refusals[0] if refusals else None


def authorize_request(call, principal_arn: str, account: str,
                      snapshot_id: str | None = None) -> tuple[Decision, list[str]]:
    """Evaluate every check of the request: the first refusal is the decision. Also returns the
    response headers to leave out (checks that hide rather than refuse, and failed). A refused
    deferred check does not refuse the request; it is kept for :func:`deferred_refusal`."""
    _deferred.refusals = []
    checks, modelled = checks_for(call, account, snapshot_id)
    # The root user is not subject to identity policies; resource policies still bind it.
    if principal_arn.endswith(":root"):
        identity = [("root user", _ALLOW_ALL)]
    else:
        identity = identity_policies(principal_arn) if checks else []
    hidden: list[str] = []
    secure = call.secure_transport
    for check in checks:
        request = _request(call, principal_arn, account, check, secure)
        decision = evaluate(request, identity, check.resource_policy, check.kind)
        entry = {
            "principal": principal_arn,
            "action": check.action,
            "resource": check.resource,
            "operation": f"{call.service}:{call.operation}",
            "allowed": decision.allowed,
            "reason": decision.reason,
            "modelled": modelled,
            "deferred": check.deferred,
            "hides": bool(check.hides),
        }
        with _lock:
            LOG.append(entry)
            _persist(entry)
        if not decision.allowed and check.hides:
            hidden.extend(check.hides)
            continue
        if not decision.allowed and check.deferred:
            _deferred.refusals.append(f"{check.action} on {check.resource}: {decision.reason}")
            continue
        if not decision.allowed:
            # AWS's AccessDenied names the action and the resource, then why.
            return Decision(False, f"to perform: {check.action} on resource: {check.resource} "
                                   f"because {decision.reason}", decision.deciding), hidden
    reason = "every check allows it" if checks else "no check applies"
    return Decision(True, reason, None), hidden


def _request(call, principal_arn: str, account: str, check: Check, secure: bool) -> Request:
    """The evaluator's view of one check: the global keys of the request plus the check's own."""
    context = {
        "aws:SecureTransport": secure,
        "aws:PrincipalAccount": account,
        "aws:RequestedRegion": call.region,
    }
    if check.resource_account:
        context["aws:ResourceAccount"] = check.resource_account
    context.update(check.context)
    return Request(principal_arn, check.action, check.resource, context, check.resource_account)


_ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def authorize_delivery(service_principal: str, source_arn: str, source_account: str,
                       queue_account: str, region: str, queue_name: str) -> Decision:
    """Whether an AWS service (``events.amazonaws.com`` for an EventBridge rule) may send a
    message to a queue: ``sqs:SendMessage`` against the queue policy and, for a queue on a KMS
    key, ``kms:GenerateDataKey`` and ``kms:Decrypt`` against the key policy -- a service
    principal has no identity policies, so only statements naming the service allow it. The
    context carries ``aws:SourceArn`` (the rule) and ``aws:SourceAccount``, the keys AWS
    documents against the confused deputy. Every check is logged like a request's.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html"""
    from ..queues import find_queue, queue_arn

    arn = queue_arn(region, queue_account, queue_name)
    queue = find_queue(queue_account, region, queue_name)
    policy = (f"queue policy of {arn}", _doc(queue.policy)) if queue is not None and queue.policy else None
    source = {"aws:SourceArn": source_arn, "aws:SourceAccount": source_account}
    checks = [Check("sqs:SendMessage", arn, queue_account, dict(source), ResourcePolicyKind.OPTIONAL, policy)]
    checks += _sqs_key_checks(["kms:GenerateDataKey", "kms:Decrypt"], queue, arn, queue_account,
                              source_account, region, source)
    for check in checks:
        context = {"aws:SecureTransport": True, "aws:RequestedRegion": region}
        if check.resource_account:
            context["aws:ResourceAccount"] = check.resource_account
        context.update(check.context)
        context.pop("kms:CallerAccount", None)  # the caller is a service, not an account
        request = Request(service_principal, check.action, check.resource, context, check.resource_account)
        try:
            decision = evaluate(request, [], check.resource_policy, check.kind)
        except PolicyError as err:
            decision = Decision(False, f"the policy cannot be evaluated: {err}", None)
        entry = {"principal": service_principal, "action": check.action, "resource": check.resource,
                 "operation": f"delivery by {source_arn}", "allowed": decision.allowed,
                 "reason": decision.reason, "modelled": True, "deferred": False, "hides": False}
        with _lock:
            LOG.append(entry)
            _persist(entry)
        if not decision.allowed:
            return Decision(False, f"{service_principal} may not perform: {check.action} on resource: "
                                   f"{check.resource} because {decision.reason}", decision.deciding)
    return Decision(True, "the queue (and key) policies allow the delivery", None)


def trust_decision(call, principal_arn: str) -> Decision:
    """An AssumeRole decided by the role's trust policy alone, for a world that evaluates no other
    policy (``policies = false``): the caller's identity policies count as allowing everything, as
    they are not evaluated anywhere else in such a world. The trust policy is read by the same
    evaluator as in a world with policies (every condition operator, ``Null`` included), so a
    trust policy means the same thing in both. A policy the evaluator cannot read refuses.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
    """
    checks = _sts_checks(call, call.account) if call.operation == "AssumeRole" else []
    if not checks:
        return Decision(False, "no trust policy to evaluate (no such role)", None)
    identity = [("identity policies (not evaluated: policies = false)", _ALLOW_ALL)]
    secure = call.secure_transport
    for check in checks:
        request = _request(call, principal_arn, call.account, check, secure)
        try:
            decision = evaluate(request, identity, check.resource_policy, check.kind)
        except PolicyError as err:
            return Decision(False, f"the trust policy cannot be evaluated: {err}", None)
        if not decision.allowed:
            return decision
    return Decision(True, "the trust policy allows every action of the request", None)


# --- least privilege ---------------------------------------------------------------------------


def grants_unused(role_arns: list[str]) -> list[dict]:
    """Every (role, statement, action) an Allow statement of the role's identity policies grants
    that no allowed decision since the last reset used: an action used on a resource the
    statement names (wildcards as IAM reads them; conditions are not re-evaluated). An empty
    list means every grant was needed by what ran."""
    from .evaluate import _action_matches, _arn_like

    with _lock:
        decisions = [d for d in LOG if d["allowed"]]
    unused = []
    for role_arn in role_arns:
        match = re.match(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
        if not match:
            raise ValueError(f"{role_arn!r} is not a role ARN")
        account, name = match.group(1), match.group(2)
        session = f"arn:aws:sts::{account}:assumed-role/{name}/"
        used = [d for d in decisions if d["principal"].startswith(session)]
        for policy_name, document in role_policies(account, name):
            statements = document.get("Statement", [])
            statements = [statements] if isinstance(statements, dict) else statements
            for n, statement in enumerate(statements, 1):
                if statement.get("Effect") != "Allow":
                    continue
                sid = statement.get("Sid") or f"statement {n}"
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                resources = statement.get("Resource", "*")
                resources = [resources] if isinstance(resources, str) else resources
                for action in actions:
                    if not any(
                        _action_matches(action, d["action"])
                        and any(r == "*" or d["resource"] == r or _arn_like(r, d["resource"])
                                for r in resources)
                        for d in used
                    ):
                        unused.append({"role": role_arn, "policy": policy_name,
                                       "statement": sid, "action": action})
    return unused
