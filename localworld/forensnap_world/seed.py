"""Build a world from a TOML file, through the public AWS APIs (boto3), and print every id as JSON.

The world file (see ``config/demo-world.toml``)::

    region = "us-east-1"            # any region: buckets outside us-east-1 get a LocationConstraint
    policies = true                 # default: deploy forensic-vpc/*.yaml and evaluate policies
    [forensic]                      # the forensic account forensnap runs in
    account, name_prefix (the template's NamePrefix), retention_days,
    queue_visibility_timeout_seconds (QueueVisibilityTimeoutSeconds, default 900),
    event_source_accounts (EventSourceAccountIds: accounts allowed to put events on the intake bus)
    (policies = false, a hand-made world: evidence_bucket, ebs_key_alias, signing_key_alias)
    [security]                      # optional: the organisation's security tooling account
    account                         # (GuardDuty / Security Hub administrator): an administrator
                                    # user is seeded there, and the account is the intake bus's
                                    # event source unless [forensic] event_source_accounts is set
    [[members]]                     # member accounts with a collector role
    account, role, external_id, cmk_usable_by_forensic (default true)
    [[members.instances]]           # name (Name tag), instance_type, tags, instance_profile,
                                    # memory_mib, ssm (the world's SSM: see below)
    [[members.instances.volumes]]   # device, image | build, size_gib, encryption
    [members.trail]                 # optional: a CloudTrail trail of the member account
    name, bucket, prefix (S3KeyPrefix, default none), history_hours (default 6),
    multi_region (default true)
    [[members.trail_events]]        # optional: activity in the member's CloudTrail history
    minutes_ago, event_source, event_name, principal ("instance-role:NAME" or an ARN),
    access_key_id, source_ip, user_agent, request_parameters, response_elements,
    resources = [{ type, name }], error_code, error_message, read_only, region

``image`` is a raw image, relative to the world file. When it does not exist and the volume has a
``build`` table, the image is made first: ``build = { kind = "ext4", from = "dir", size_mib = 64 }``
runs ``mkfs.ext4 -d dir`` (a real file system), ``kind = "pattern"`` writes ``blocks`` numbered
512 KiB blocks at ``offset_mib`` plus ``offset_blocks`` (for paging tests), ``kind = "zeros"`` an
empty image. A member's ``trust_source_identity = false`` leaves ``sts:SetSourceIdentity`` out of
the role's trust policy; ``cmk_usable_by_forensic = false`` keeps the forensic account out of the
member CMK's key policy.

An instance's ``instance_profile = "NAME"`` makes an IAM role NAME trusting EC2 and an instance
profile NAME holding it, and launches the instance with it (DescribeInstances shows its
``IamInstanceProfile``); the printed instance gains ``instance_profile``,
``instance_profile_arn`` and ``instance_role_arn``.

An instance's ``memory_mib = 64`` (its RAM, in MiB) and ``ssm = "online" | "offline" | "none"``
make it an instance of the world's SSM (``ssm.py``), which runs forensnap's memory capture
document (``member-role.yaml`` deploys it; a hand-made world's members get the same document).
``online`` (the default once ``memory_mib`` is set; without either key moto's behaviour is kept)
is listed by DescribeInstanceInformation as ``Online``, and the stand-in agent runs the document
there: its stand-in AVML writes a deterministic LiME image of ``memory_mib`` (default 64) MiB.
``offline`` is listed as ``ConnectionLost``; ``none`` is not managed (SendCommand answers
``InvalidInstanceId`` for both). The printed instance gains ``memory_mib`` and ``ssm``. When an
instance is in the world's SSM (``memory_mib`` or ``ssm``), the evidence bucket holds the world's
pinned "AVML build" (``avml.py``) at ``tools/avml/v0.14.0-forensnap-world/avml``, the printed
world gains ``forensic.avml_key`` and ``forensic.avml_sha256``, and the generated config ends
with a ``[memory]`` table naming both (``avml_key``, ``avml_sha256``).

A member's ``[members.trail]`` makes, in the member account, the bucket (with the bucket policy
CloudTrail needs, no Object Lock) and the trail (log file validation on, home region the world's
region), logging since ``history_hours`` before now; the member role may read the bucket's
``AWSLogs/`` (member-role.yaml ``TrailBucketName``, ``TrailKeyPrefix``). The history holds an
operator's benign activity (IAM user ``ops-user``, DescribeInstances every 15 minutes) and the
``[[members.trail_events]]``, each ``minutes_ago`` before now; ``principal =
"instance-role:web-1"`` is the session of web-1's instance-profile role named after its instance
id (the credentials an intruder on the instance would take). A seeded ``StopLogging`` naming
the trail (``request_parameters = { name = "<trail ARN or name>" }``) stops its delivery from
then on. The history is delivered at once (log files and hourly signed digests; later
activity on ``POST /_forensnap/cloudtrail/deliver``); the printed member gains ``trail``
(``name, arn, bucket, prefix, home_region, multi_region, history_hours, log_files,
digest_files``) and ``trail_events`` (how many were seeded). The generated config of a world
with neither table in any member ends with ``[cloudtrail] enabled = false``.

Both kinds of world hold what forensnap's daemon uses: the request queue
``<name_prefix>-requests`` (dead-letter queue ``<name_prefix>-requests-dlq`` after 5 receives), the
case table ``<name_prefix>-cases`` (``case_id`` HASH, ``item`` RANGE, strings) and the intake bus
``<name_prefix>-intake`` whose two rules (GuardDuty instance findings, Security Hub custom actions)
send matching events to the queue. A world with policies deploys them from forensic-account.yaml;
a hand-made one makes them with the template's settings and patterns but without KMS keys and
policies. The printed world gains ``forensic.request_queue_url``, ``dead_letter_queue_url``,
``case_table``, ``intake_bus`` (the bus ARN: PutEvents takes it as ``EventBusName`` from any
account) and ``intake_bus_name``, and, with a ``[security]`` table, ``security.account``,
``admin_access_key_id``, ``admin_secret_access_key``; the generated config gains a ``[daemon]``
table (``queue_url``, ``dead_letter_queue_url``, ``case_table``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import BLOCK_SIZE
from .volumes import load, padded_sha256

ENCRYPTIONS = ("none", "default", "cmk")


class SeedError(Exception):
    """A world file that cannot be built; the message names the key and the fix."""


def _clients(endpoint: str, region: str, account: str):
    """boto3 clients acting in ``account`` (moto's x-moto-account-id header)."""
    session = boto3.session.Session(
        aws_access_key_id="seed", aws_secret_access_key="seed", region_name=region
    )
    config = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"})

    def make(service):
        client = session.client(service, endpoint_url=endpoint, config=config)
        client.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", account),
        )
        return client

    make.endpoint = endpoint
    return make


def _control(endpoint: str, path: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{endpoint}/_forensnap/{path}", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def _require(table: dict, key: str, where: str):
    if key not in table:
        raise SeedError(f"{where}: missing key '{key}'")
    return table[key]


def build_image(volume: dict, path: str, base: str, where: str) -> None:
    build = volume.get("build")
    if not build:
        raise SeedError(f"{where}: image {path} does not exist and the volume has no 'build' table")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    kind = build.get("kind")
    tmp = path + ".partial"
    if kind == "ext4":
        source = os.path.join(base, _require(build, "from", where + ".build"))
        size_mib = int(build.get("size_mib", 64))
        env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-d", source, "-L", build.get("label", "evidence"),
             "-U", build.get("uuid", "0b1e5a2c-2026-4f00-9e1d-5ea1ed000001"),
             "-E", "hash_seed=0b1e5a2c-2026-4f00-9e1d-5ea1ed000002", tmp, f"{size_mib}M"],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
    elif kind == "pattern":
        blocks = int(_require(build, "blocks", where + ".build"))
        offset = int(build.get("offset_mib", 0)) * (1 << 20) + int(build.get("offset_blocks", 0)) * BLOCK_SIZE
        with open(tmp, "wb") as handle:
            handle.truncate(offset + blocks * BLOCK_SIZE)
            for i in range(blocks):
                handle.seek(offset + i * BLOCK_SIZE)
                stamp = f"forensnap world block {i} of {path}\n".encode()
                handle.write((stamp * (BLOCK_SIZE // len(stamp) + 1))[:BLOCK_SIZE])
    elif kind == "zeros":
        with open(tmp, "wb") as handle:
            handle.truncate(int(build.get("size_mib", 1)) * (1 << 20))
    else:
        raise SeedError(f"{where}.build: kind must be ext4, pattern or zeros, not {kind!r}")
    os.replace(tmp, path)


def seed(world_path: str, endpoint: str) -> dict:
    with open(world_path, "rb") as handle:
        try:
            world = tomllib.load(handle)
        except tomllib.TOMLDecodeError as err:
            raise SeedError(f"{world_path} is not valid TOML: {err}") from None
    base = os.path.dirname(os.path.abspath(world_path))
    region = world.get("region", "us-east-1")
    forensic = _require(world, "forensic", world_path)
    f_account = str(_require(forensic, "account", "[forensic]"))
    members = world.get("members", [])
    member_accounts = [str(_require(m, "account", "[[members]]")) for m in members]
    fclient = _clients(endpoint, region, f_account)
    policies = world.get("policies", True)
    if not isinstance(policies, bool):
        raise SeedError(f"{world_path}: policies must be true or false, not {policies!r}")
    if policies and "evidence_bucket" in forensic:
        raise SeedError(
            f"{world_path}: [forensic] evidence_bucket: forensic-account.yaml names the bucket "
            f"<name_prefix>-evidence-<account>-<region>; set name_prefix instead (or policies = false "
            f"for a hand-made world that evaluates no policy)"
        )
    security = world.get("security")
    s_account = str(_require(security, "account", "[security]")) if security is not None else None
    if s_account is not None and s_account in [f_account, *member_accounts]:
        raise SeedError(f"[security] account {s_account} is also the forensic or a member account; "
                        "the security tooling account is a separate account")
    sources = forensic.get("event_source_accounts")
    if sources is None:
        sources = [s_account] if s_account else []
    if not isinstance(sources, list) or not all(isinstance(a, str) and len(a) == 12 and a.isdigit() for a in sources):
        raise SeedError(f"[forensic] event_source_accounts must be a list of 12-digit account ids, not {sources!r}")
    if policies:
        f_out = _deploy_forensic(fclient, endpoint, forensic, f_account, members, member_accounts, region,
                                 sources)
    else:
        f_out = _seed_forensic(fclient, forensic, f_account, member_accounts, region)
        f_out.update(_seed_intake(fclient, forensic, region, sources))
    if any("memory_mib" in i or "ssm" in i for m in world["members"] for i in m.get("instances", [])):
        # Only a world with memory capture holds the pinned AVML: an object in the evidence
        # bucket changes what its owner may still do to it (moto refuses a new Object Lock
        # configuration on a bucket that is not empty, which the hostile tests do).
        f_out.update(_upload_avml(fclient, f_out["evidence_bucket"]))
    f_out.update(_admin(fclient))
    out = {"region": region, "endpoint": endpoint, "policies": policies, "forensic": f_out}
    if s_account is not None:
        out["security"] = {"account": s_account, **_admin(_clients(endpoint, region, s_account))}
    out["members"] = []
    for index, (member, acct) in enumerate(zip(members, member_accounts)):
        mclient = _clients(endpoint, region, acct)
        seeded = _seed_member(mclient, member, acct, f_account, region, base, endpoint, index,
                              f_out if policies else None)
        seeded.update(_admin(mclient))
        out["members"].append(seeded)
    if policies:
        # From here on every request is authorised against what the templates deployed.
        _control(endpoint, "settings", {"policies": True})
    stem = os.path.splitext(os.path.basename(world_path))[0]
    out["config"] = write_config(out, os.path.join(base, "generated", f"{stem}.forensnap.toml"))
    if policies:
        # The stacks as describe-stacks prints them, for `forensnap config from-stack`.
        folder = os.path.join(base, "generated", f"{stem}.stacks")
        os.makedirs(folder, exist_ok=True)
        files = []
        for name, stack in [("forensic", out["forensic"].pop("stack"))] + [
            (f"member-{m['account']}", m.pop("stack")) for m in out["members"]
        ]:
            path = os.path.join(folder, f"{name}.json")
            with open(path, "w") as handle:
                json.dump(stack, handle, indent=2)
            files.append(path)
        out["stacks"] = {"forensic": files[0], "members": files[1:]}
    return out


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_config(world: dict, path: str) -> str:
    """A forensnap config for this world, ready for ``forensnap collect`` with no edits."""
    f = world["forensic"]
    lines = [
        "# Written by `scripts/emulator seed` for the local AWS world it seeded. Do not edit:",
        "# seed the world again instead. config/forensnap.toml documents every key.",
        'operator = "local responder"',
        "",
        "[forensic]",
        f"account = {_toml_str(f['account'])}",
        f"region = {_toml_str(world['region'])}",
        f"evidence_bucket = {_toml_str(f['evidence_bucket'])}",
        f"ebs_key_arn = {_toml_str(f['ebs_key_arn'])}",
        f"signing_key_arn = {_toml_str(f['signing_key_arn'])}",
        f"retention_days = {int(f['retention_days'])}",
        "",
        "[aws]",
        f"endpoint_url = {_toml_str(world['endpoint'])}",
        f"credentials = {{ access_key_id = {_toml_str(f['access_key_id'])}, "
        f"secret_access_key = {_toml_str(f['secret_access_key'])} }}",
        "",
        "[collect]",
        "poll_initial_seconds = 0.2",
        "poll_max_seconds = 1.0",
    ]
    if f.get("request_queue_url"):
        lines += [
            "",
            "[daemon]",
            f"queue_url = {_toml_str(f['request_queue_url'])}",
            f"dead_letter_queue_url = {_toml_str(f['dead_letter_queue_url'])}",
            f"case_table = {_toml_str(f['case_table'])}",
        ]
    for member in world["members"]:
        lines += [
            "",
            "[[members]]",
            f"account = {_toml_str(member['account'])}",
            f"role = {_toml_str(member['role_arn'])}",
            f"external_id = {_toml_str(member['external_id'])}",
        ]
    if not any("trail" in m or "trail_events" in m for m in world["members"]):
        # No CloudTrail in this world (no [members.trail], no [[members.trail_events]]):
        # collect preserves none, as before the world had it. Last but for [memory].
        lines += ["", "[cloudtrail]", "enabled = false"]
    if any("memory_mib" in i for m in world["members"] for i in m["instances"]):
        # An instance in the world's SSM (memory_mib or ssm): memory capture through SSM, with
        # the pinned AVML build the seed put in the evidence bucket. Kept last in the file.
        lines += ["", "[memory]", f"transfer_bucket = {_toml_str(f['transfer_bucket'])}",
                  f"avml_key = {_toml_str(f['avml_key'])}",
                  f"avml_sha256 = {_toml_str(f['avml_sha256'])}"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def _key_policy(owner: str, users: list[str]) -> str:
    statements = [{
        "Sid": "Admin", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{owner}:root"}, "Action": "kms:*", "Resource": "*",
    }]
    if users:
        statements.append({
            "Sid": "UseForSnapshotCopies", "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in users]},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:DescribeKey", "kms:CreateGrant"],
            "Resource": "*",
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _seed_forensic(client, forensic: dict, account: str, members: list[str], region: str) -> dict:
    bucket = forensic.get("evidence_bucket") or bucket_name(forensic, account, region)
    days = int(forensic.get("retention_days", 30))
    s3, kms = client("s3"), client("kms")
    location = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}  # S3 refuses it elsewhere
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True, **location)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
        },
    )
    # The transfer bucket (forensic-account.yaml's TransferBucket): no Object Lock, no versions.
    s3.create_bucket(Bucket=transfer_bucket_name(forensic, account, region), **location)
    ebs_key = kms.create_key(
        Description="forensnap: re-encrypts evidence snapshots",
        Policy=_key_policy(account, members),
    )["KeyMetadata"]
    kms.create_alias(AliasName=forensic.get("ebs_key_alias", "alias/forensnap-ebs"), TargetKeyId=ebs_key["KeyId"])
    signing = kms.create_key(
        Description="forensnap: signs custody checkpoints and tag manifests",
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Policy=_key_policy(account, []),
    )["KeyMetadata"]
    kms.create_alias(AliasName=forensic.get("signing_key_alias", "alias/forensnap-signing"), TargetKeyId=signing["KeyId"])
    user, key = _operator_key(client, forensic, account)
    return {
        "account": account,
        "evidence_bucket": bucket,
        "transfer_bucket": transfer_bucket_name(forensic, account, region),
        "retention_days": days,
        "ebs_key_arn": ebs_key["Arn"],
        "signing_key_arn": signing["Arn"],
        "operator_arn": user["Arn"],
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
    }


def _upload_avml(client, bucket: str) -> dict:
    """The world's pinned "AVML build" (the stand-in ``avml.py``, byte for byte) into the
    evidence bucket, written as the account root before any policy is evaluated (the bucket's
    Object Lock keeps it like any evidence)."""
    from . import avml

    with open(avml.__file__, "rb") as handle:
        data = handle.read()
    client("s3").put_object(Bucket=bucket, Key=avml.AVML_KEY, Body=data, ChecksumAlgorithm="SHA256")
    return {"avml_key": avml.AVML_KEY, "avml_sha256": hashlib.sha256(data).hexdigest()}


def _admin(client) -> dict:
    """An administrator of the account (an IAM user allowed everything by its own policy, still
    bound by resource policies and explicit denies), for tests to set up and inspect what
    forensnap's least-privilege roles may not touch."""
    iam = client("iam")
    iam.create_user(UserName="world-admin")
    iam.put_user_policy(UserName="world-admin", PolicyName="administrator", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName="world-admin")["AccessKey"]
    return {"admin_access_key_id": key["AccessKeyId"], "admin_secret_access_key": key["SecretAccessKey"]}


def bucket_name(forensic: dict, account: str, region: str) -> str:
    """The evidence bucket's name as forensic-account.yaml makes it."""
    return f"{forensic.get('name_prefix', 'forensnap')}-evidence-{account}-{region}"


def transfer_bucket_name(forensic: dict, account: str, region: str) -> str:
    """The transfer bucket's name as forensic-account.yaml makes it."""
    return f"{forensic.get('name_prefix', 'forensnap')}-transfer-{account}-{region}"


def _operator_key(client, forensic: dict, account: str) -> tuple[dict, dict]:
    """The operator's IAM user and its access key (fixed when the world file names one)."""
    iam = client("iam")
    user = iam.create_user(UserName=forensic.get("operator", "forensnap-operator"))["User"]
    if forensic.get("operator_access_key_id"):
        key = {
            "AccessKeyId": forensic["operator_access_key_id"],
            "SecretAccessKey": _require(forensic, "operator_secret_access_key", "[forensic]"),
        }
        _control(client.endpoint, "access-keys", {
            "account": account, "user_name": user["UserName"],
            "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
        })
    else:
        key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
    return user, key


def _seed_intake(client, forensic: dict, region: str, sources: list[str]) -> dict:
    """A hand-made world's request queue, dead-letter queue, case table, intake bus and rules:
    forensic-account.yaml's names, settings and event patterns (read from the template, so the
    two kinds of world cannot drift apart), without KMS keys or queue policies (such a world
    evaluates no policy). The bus policy names ``sources``, as the template's would."""
    from .policy.templates import FORENSIC_TEMPLATE, load_template

    resources = load_template(FORENSIC_TEMPLATE)["Resources"]
    prefix = forensic.get("name_prefix", "forensnap")

    def named(lid: str) -> str:
        props = resources[lid]["Properties"]
        key = {"AWS::SQS::Queue": "QueueName", "AWS::DynamoDB::Table": "TableName"}.get(
            resources[lid]["Type"], "Name")
        return props[key]["Fn::Sub"].replace("${NamePrefix}", prefix)

    sqs, ddb, events = client("sqs"), client("dynamodb"), client("events")
    dlq_props = resources["RequestDeadLetterQueue"]["Properties"]
    dlq_url = sqs.create_queue(QueueName=named("RequestDeadLetterQueue"), Attributes={
        "MessageRetentionPeriod": str(dlq_props["MessageRetentionPeriod"])})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    props = resources["RequestQueue"]["Properties"]
    queue_url = sqs.create_queue(QueueName=named("RequestQueue"), Attributes={
        "VisibilityTimeout": str(int(forensic.get("queue_visibility_timeout_seconds", 900))),
        "MessageRetentionPeriod": str(props["MessageRetentionPeriod"]),
        "ReceiveMessageWaitTimeSeconds": str(props["ReceiveMessageWaitTimeSeconds"]),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": int(props["RedrivePolicy"]["maxReceiveCount"])}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    table = resources["CaseTable"]["Properties"]
    ddb.create_table(TableName=named("CaseTable"), AttributeDefinitions=table["AttributeDefinitions"],
                     KeySchema=table["KeySchema"], BillingMode=table["BillingMode"])
    bus = named("IntakeEventBus")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    if sources:
        events.put_permission(EventBusName=bus, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "EventSourceAccountsPutEvents", "Effect": "Allow", "Principal": {"AWS": sources},
            "Action": "events:PutEvents", "Resource": bus_arn}]}))
    for lid in ("GuardDutyFindingsRule", "SecurityHubCustomActionRule"):
        rule = resources[lid]["Properties"]
        events.put_rule(Name=named(lid), EventBusName=bus, State=rule["State"],
                        EventPattern=json.dumps(rule["EventPattern"]))
        events.put_targets(Rule=named(lid), EventBusName=bus, Targets=[
            {"Id": target["Id"], "Arn": queue_arn} for target in rule["Targets"]])
    return {"request_queue_url": queue_url, "dead_letter_queue_url": dlq_url, "case_table": named("CaseTable"),
            "intake_bus": bus_arn, "intake_bus_name": bus}


def _deploy_forensic(client, endpoint, forensic, account, members, member_accounts, region,
                     sources: list[str]) -> dict:
    """The forensic account as ``forensic-vpc/forensic-account.yaml`` makes it (keys, bucket,
    policies, collector role); the operator's key then acts as the collector role's
    instance-profile session, as forensnap runs on AWS."""
    from .policy.templates import deploy_forensic

    roles = {m.get("role", "ForensnapCollector") for m in members}
    if len(roles) > 1:
        raise SeedError(f"[[members]] role: the forensic template names one member role (MemberRoleName); these differ: {sorted(roles)}")
    days = int(forensic.get("retention_days", 30))
    parameters = {
        "MemberAccountIds": member_accounts,
        "MemberRoleName": roles.pop() if roles else "ForensnapCollector",
        "EvidenceRetentionDays": str(days),
        "EventSourceAccountIds": list(sources),
    }
    if "queue_visibility_timeout_seconds" in forensic:
        parameters["QueueVisibilityTimeoutSeconds"] = str(int(forensic["queue_visibility_timeout_seconds"]))
    if forensic.get("name_prefix"):
        parameters["NamePrefix"] = forensic["name_prefix"]
    outputs = deploy_forensic(endpoint, region, account, parameters)
    stack = _described("forensnap-forensic", outputs, parameters)
    _, key = _operator_key(client, forensic, account)
    session = _control(endpoint, "instance-profile", {
        "access_key_id": key["AccessKeyId"], "account": account,
        "role_name": outputs["CollectorRoleName"], "session": "i-forensnap-collector",
    })["principal"]
    return {
        "account": account,
        "evidence_bucket": outputs["EvidenceBucketName"],
        "transfer_bucket": outputs["TransferBucketName"],
        "retention_days": days,
        "ebs_key_arn": outputs["EbsKeyArn"],
        "signing_key_arn": outputs["SigningKeyArn"],
        "collector_role_arn": outputs["CollectorRoleArn"],
        "request_queue_url": outputs["RequestQueueUrl"],
        "dead_letter_queue_url": outputs["RequestDeadLetterQueueUrl"],
        "case_table": outputs["CaseTableName"],
        "intake_bus": outputs["IntakeEventBusArn"],
        "intake_bus_name": outputs["IntakeEventBusName"],
        "stack": stack,
        "operator_arn": session,
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
    }


def _described(name: str, outputs: dict, parameters: dict, no_echo: tuple = ()) -> dict:
    """A stack as ``aws cloudformation describe-stacks`` prints it (what
    ``forensnap config from-stack`` reads): outputs, and parameters with NoEcho ones masked."""
    def value(key, v):
        if key in no_echo:
            return "****"
        return ",".join(v) if isinstance(v, list) else str(v)
    return {"Stacks": [{
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": value(k, v)} for k, v in parameters.items()],
        "Outputs": [{"OutputKey": k, "OutputValue": str(v)} for k, v in outputs.items()],
    }]}


def _deploy_member_role(member: dict, account: str, region: str, endpoint: str, forensic: dict,
                        where: str) -> tuple[str, dict]:
    """The member role as ``forensic-vpc/member-role.yaml`` makes it; returns its ARN."""
    from .policy.templates import deploy_member

    external_id = _require(member, "external_id", where)
    if len(external_id) < 16:
        raise SeedError(f"{where}: external_id {external_id!r} is shorter than the 16 characters member-role.yaml requires (parameter ExternalId)")
    parameters = {
        "RoleName": member.get("role", "ForensnapCollector"),
        "ForensicCollectorRoleArn": forensic["collector_role_arn"],
        "ExternalId": external_id,
        "ForensicEbsKeyArn": forensic["ebs_key_arn"],
    }
    trail = member.get("trail")
    if trail:
        # The member role may read the trail's bucket (member-role.yaml TrailBucketName).
        parameters["TrailBucketName"] = _require(trail, "bucket", f"{where} [members.trail]")
        if trail.get("prefix"):
            parameters["TrailKeyPrefix"] = trail["prefix"]
    outputs = deploy_member(endpoint, region, account, parameters)
    if not member.get("trust_source_identity", True):
        # A member role deployed wrongly (its trust without sts:SetSourceIdentity), for the
        # tests that forensnap names that mistake.
        iam = _clients(endpoint, region, account)("iam")
        name = outputs["RoleName"]
        trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        trust["Statement"] = [
            st for st in trust["Statement"] if "sts:SetSourceIdentity" not in (
                [st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        ]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    return outputs["RoleArn"], _described(f"forensnap-member-{account}", outputs, parameters,
                                          no_echo=("ExternalId",))


def _trust_policy(forensic_account: str, external_id: str, source_identity: bool) -> str:
    principal = {"AWS": f"arn:aws:iam::{forensic_account}:root"}
    condition = {"StringEquals": {"sts:ExternalId": external_id}}
    statements = [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", "Condition": condition},
    ]
    if source_identity:
        statements.append(
            {"Effect": "Allow", "Principal": principal, "Action": ["sts:SetSourceIdentity", "sts:TagSession"]}
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _seed_member(client, member, account, forensic_account, region, base, endpoint, index,
                 deployed: dict | None = None) -> dict:
    where = f"[[members]] #{index + 1} ({account})"
    role_name = member.get("role", "ForensnapCollector")
    external_id = _require(member, "external_id", where)
    iam, ec2, kms = client("iam"), client("ec2"), client("kms")
    stack = None
    if deployed is not None:
        arn, stack = _deploy_member_role(member, account, region, endpoint, deployed, where)
        role = {"Arn": arn}
    else:
        role = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=_trust_policy(
                forensic_account, external_id, member.get("trust_source_identity", True)
            ),
            MaxSessionDuration=int(member.get("max_session_seconds", 3600)),
        )["Role"]
        _memory_document(client, account, region)
    cmk_arn = None
    instances = []
    profiles: dict[str, dict] = {}
    for n, instance in enumerate(member.get("instances", [])):
        iwhere = f"{where} instance #{n + 1}"
        name = _require(instance, "name", iwhere)
        volumes = instance.get("volumes", [])
        if not volumes:
            raise SeedError(f"{iwhere} ({name}): needs at least one [[members.instances.volumes]]")
        mappings, contents = [], []
        for v, volume in enumerate(volumes):
            vwhere = f"{iwhere} volume #{v + 1}"
            device = _require(volume, "device", vwhere)
            image = os.path.join(base, _require(volume, "image", vwhere))
            if not os.path.exists(image):
                build_image(volume, image, base, vwhere)
            encryption = volume.get("encryption", "none")
            if encryption not in ENCRYPTIONS:
                raise SeedError(f"{vwhere}: encryption must be one of {ENCRYPTIONS}, not {encryption!r}")
            try:
                content = load(image, volume.get("size_gib"))
            except ValueError as err:
                raise SeedError(f"{vwhere}: {err}") from None
            ebs = {"VolumeSize": content.size_gib, "VolumeType": "gp3", "DeleteOnTermination": False}
            if encryption != "none":
                ebs["Encrypted"] = True
            if encryption == "cmk":
                if cmk_arn is None:
                    users = [forensic_account] if member.get("cmk_usable_by_forensic", True) else []
                    key = kms.create_key(Description="member volume key", Policy=_key_policy(account, users))["KeyMetadata"]
                    kms.create_alias(AliasName=member.get("cmk_alias", "alias/member-ebs"), TargetKeyId=key["KeyId"])
                    cmk_arn = key["Arn"]
                ebs["KmsKeyId"] = cmk_arn
            mappings.append({"DeviceName": device, "Ebs": ebs})
            contents.append((device, image, content, encryption))
        tags = [{"Key": "Name", "Value": name}] + [
            {"Key": k, "Value": str(v)} for k, v in instance.get("tags", {}).items()
        ]
        launch = {}
        profile = instance.get("instance_profile")
        if profile:
            if profile not in profiles:
                profiles[profile] = _instance_profile(iam, profile, iwhere)
            launch["IamInstanceProfile"] = {"Name": profile}
        launched = ec2.run_instances(
            ImageId=instance.get("image_id", "ami-0f0rens1c0000001"), MinCount=1, MaxCount=1,
            InstanceType=instance.get("instance_type", "t3.micro"), BlockDeviceMappings=mappings,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}], **launch,
        )["Instances"][0]
        by_device = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in launched["BlockDeviceMappings"]}
        out_volumes = []
        for device, image, content, encryption in contents:
            volume_id = by_device[device]
            _control(endpoint, "volumes", {"volume_id": volume_id, "image": image, "size_gib": content.size_gib})
            out_volumes.append({
                "device": device, "volume_id": volume_id, "size_gib": content.size_gib,
                "encryption": encryption, "image": image, "data_blocks": len(content.blocks),
                "image_sha256": padded_sha256(content),
            })
        seeded = {"name": name, "instance_id": launched["InstanceId"], "volumes": out_volumes}
        if "memory_mib" in instance or "ssm" in instance:
            seeded.update(_managed_instance(instance, account, region, endpoint, launched["InstanceId"],
                                            f"{iwhere} ({name})"))
        if profile:
            seeded["instance_profile"] = profile
            seeded["instance_profile_arn"] = profiles[profile]["instance_profile_arn"]
            seeded["instance_role_arn"] = profiles[profile]["role_arn"]
        instances.append(seeded)
    out = {
        "account": account, "role_arn": role["Arn"], "external_id": external_id,
        "cmk_arn": cmk_arn, "instances": instances,
    }
    if member.get("trail") or member.get("trail_events"):
        out.update(_seed_trail(client, member, account, region, endpoint, instances, where))
    if stack is not None:
        out["stack"] = stack
    return out


def _memory_document(client, account: str, region: str) -> None:
    """A hand-made world's member gets forensnap's memory capture document as member-role.yaml
    makes it (the same resource, deployed the same way), so that both kinds of world run it."""
    from .policy.templates import MEMBER_TEMPLATE, Deployment, _Deployer, load_template

    resource = load_template(MEMBER_TEMPLATE)["Resources"]["MemoryCaptureDocument"]
    _Deployer(client, region, account, Deployment(outputs={})).ssm_document("MemoryCaptureDocument",
                                                                           resource["Properties"])


def _managed_instance(instance: dict, account: str, region: str, endpoint: str, instance_id: str,
                      where: str) -> dict:
    """``memory_mib`` and ``ssm``: the instance in the world's SSM (``ssm.py``)."""
    memory = instance.get("memory_mib", 64)
    if not isinstance(memory, int) or isinstance(memory, bool) or memory < 1:
        raise SeedError(f"{where}: memory_mib must be a whole number of MiB, at least 1, not {memory!r}")
    state = instance.get("ssm", "online")
    if state not in ("online", "offline", "none"):
        raise SeedError(f"{where}: ssm must be \"online\", \"offline\" or \"none\", not {state!r}")
    _control(endpoint, "ssm/instances", {"account": account, "region": region, "instance_id": instance_id,
                                         "memory_mib": memory, "ssm": state})
    return {"memory_mib": memory, "ssm": state}


# --- CloudTrail: the trail, its history and the seeded activity -----------------------------------


def _instance_profile(iam, name: str, where: str) -> dict:
    """An instance profile ``name`` holding the role ``name`` (trusting EC2), as an instance
    launched with it gets its credentials from."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    try:
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as err:
        raise SeedError(f"{where}: instance_profile {name!r}: {err}") from None
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return {"role_arn": role["Arn"], "instance_profile_arn": profile["Arn"]}


def trail_bucket_policy(bucket: str, prefix: str, account: str, trail_arn: str) -> dict:
    """The bucket policy CloudTrail needs to deliver to ``bucket`` (the one the console writes).
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html"""
    logs = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}AWSLogs/{account}/*"
    source = {"aws:SourceArn": trail_arn}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringEquals": source}},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": logs,
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source}}},
    ]}


BACKGROUND_USER = "ops-user"
"""The member's benign background activity: an operator's IAM user listing the instances."""


def _seed_trail(client, member: dict, account: str, region: str, endpoint: str, instances: list,
                where: str) -> dict:
    """``[members.trail]`` (a trail in the member account, logging for ``history_hours`` with
    log file validation, its bucket in the account) and ``[[members.trail_events]]`` (the
    attacker's activity), with background activity through the history; delivered at once."""
    spec = member.get("trail")
    events, out, trail = [], {}, None
    if spec:
        twhere = f"{where} [members.trail]"
        unknown = set(spec) - {"name", "bucket", "prefix", "history_hours", "multi_region"}
        if unknown:
            raise SeedError(f"{twhere}: unknown keys {sorted(unknown)}; allowed: bucket, history_hours, "
                            "multi_region, name, prefix")
        name, bucket = _require(spec, "name", twhere), _require(spec, "bucket", twhere)
        prefix = str(spec.get("prefix", "")).strip("/")
        hours = spec.get("history_hours", 6)
        if not isinstance(hours, (int, float)) or isinstance(hours, bool) or not 0 < hours <= 720:
            raise SeedError(f"{twhere}: history_hours must be a number of hours within 0..720, not {hours!r}")
        s3, cloudtrail = client("s3"), client("cloudtrail")
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        arn = f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(trail_bucket_policy(bucket, prefix, account, arn)))
        args = {"Name": name, "S3BucketName": bucket, "EnableLogFileValidation": True,
                "IsMultiRegionTrail": bool(spec.get("multi_region", True))}
        if prefix:
            args["S3KeyPrefix"] = prefix
        arn = cloudtrail.create_trail(**args)["TrailARN"]
        cloudtrail.start_logging(Name=name)
        trail = {"name": name, "history_hours": hours}
        out["trail"] = {"name": name, "arn": arn, "bucket": bucket, "prefix": prefix, "home_region": region,
                        "multi_region": args["IsMultiRegionTrail"], "history_hours": hours}
        events += _background(client, account, hours)
    for n, event in enumerate(member.get("trail_events", [])):
        events.append(_trail_event(event, account, instances, f"{where} trail event #{n + 1}"))
    seeded = _control(endpoint, "cloudtrail/seed", {"account": account, "region": region, "trail": trail,
                                                    "events": events})
    if trail:
        out["trail"].update({"log_files": seeded["log_files"], "digest_files": seeded["digest_files"]})
    out["trail_events"] = len(member.get("trail_events", []))
    return out


def _background(client, account: str, hours: float) -> list[dict]:
    """An operator (IAM user ``ops-user``) calling DescribeInstances every 15 minutes."""
    iam = client("iam")
    user = iam.create_user(UserName=BACKGROUND_USER)["User"]
    key = iam.create_access_key(UserName=BACKGROUND_USER)["AccessKey"]["AccessKeyId"]
    return [{
        "minutes_ago": minutes, "event_source": "ec2.amazonaws.com", "event_name": "DescribeInstances",
        "principal": user["Arn"], "access_key_id": key, "source_ip": "198.51.100.23",
        "user_agent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 command/ec2.describe-instances",
        "request_parameters": {"instancesSet": {}, "filterSet": {}},
    } for minutes in range(int(hours * 60) - 5, 0, -15)]


_EVENT_KEYS = {"minutes_ago", "event_source", "event_name", "principal", "access_key_id", "source_ip",
               "user_agent", "request_parameters", "response_elements", "resources", "error_code",
               "error_message", "read_only", "region"}


def _trail_event(event: dict, account: str, instances: list, where: str) -> dict:
    """One ``[[members.trail_events]]`` table as the world's seed endpoint takes it: the
    principal resolved to an ARN (``instance-role:NAME``: the session of instance NAME's
    instance-profile role, named after the instance id, as EC2 names it)."""
    unknown = set(event) - _EVENT_KEYS
    if unknown:
        raise SeedError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_EVENT_KEYS)}")
    for key in ("minutes_ago", "event_source", "event_name", "principal"):
        _require(event, key, where)
    minutes = event["minutes_ago"]
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes < 0:
        raise SeedError(f"{where}: minutes_ago must be a number >= 0, not {minutes!r}")
    principal = event["principal"]
    if principal.startswith("instance-role:"):
        name = principal.split(":", 1)[1]
        instance = next((i for i in instances if i["name"] == name), None)
        if instance is None or "instance_profile" not in instance:
            raise SeedError(f"{where}: principal {principal!r}: no instance {name!r} with an instance_profile "
                            "in this member")
        principal = f"arn:aws:sts::{account}:assumed-role/{instance['instance_profile']}/{instance['instance_id']}"
    elif not principal.startswith("arn:"):
        raise SeedError(f"{where}: principal {principal!r} is neither instance-role:NAME nor an ARN")
    out = dict(event, principal=principal)
    if "access_key_id" not in out:
        prefix = "ASIA" if ":assumed-role/" in principal else "AKIA"
        digest = hashlib.sha256(principal.encode()).hexdigest().upper()
        out["access_key_id"] = prefix + "".join(c for c in digest if c.isalnum())[:16]
    if "resources" in out:
        for resource in out["resources"]:
            if set(resource) != {"type", "name"}:
                raise SeedError(f"{where}: each resource is {{ type = ..., name = ... }}, not {resource!r}")
    return out


def main_seed(argv) -> None:
    parser = argparse.ArgumentParser(prog="forensnap_world seed")
    parser.add_argument("world", help="world file (TOML)")
    parser.add_argument("--endpoint", required=True, help="URL of the running world")
    args = parser.parse_args(argv)
    try:
        result = seed(args.world, args.endpoint.rstrip("/"))
    except SeedError as err:
        sys.exit(f"seed: {err}")
    except ClientError as err:
        sys.exit(
            f"seed: {args.world}: {err}. A world can be seeded once per running emulator: "
            "restart it (scripts/emulator stop; scripts/emulator start) or change the names."
        )
    except FileNotFoundError as err:
        sys.exit(f"seed: {err.filename}: no such file (paths are relative to the world file)")
    json.dump(result, sys.stdout, indent=2)
    print()
