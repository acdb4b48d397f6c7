"""The extension's self-test: fails loudly when moto changes under the patches.

Two layers. *Structure*: the pinned moto version and every private attribute the patches touch
still exist. *Behaviour*: a small world is served in-process and exercised with boto3 through
each gap the extension closes. Prints one line per check and a closing ``N passed, M failed``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import importlib
import os
import sys
import tempfile
import threading
import traceback

from . import BLOCK_SIZE, MOTO_VERSION

STRUCTURE = [
    ("moto.ec2.models.elastic_block_store", "Snapshot.__init__"),
    ("moto.ec2.models.elastic_block_store", "EBSBackend.create_snapshot"),
    ("moto.ec2.models.elastic_block_store", "EBSBackend.copy_snapshot"),
    ("moto.ec2.models.elastic_block_store", "EBSBackend.describe_snapshots"),
    ("moto.ec2.models.elastic_block_store", "EBSBackend.add_create_volume_permission"),
    ("moto.ec2.models.elastic_block_store", "EBSBackend._create_default_encryption_key"),
    ("moto.ec2.responses.elastic_block_store", "ElasticBlockStore.describe_snapshots"),
    ("moto.ec2.responses.elastic_block_store", "ElasticBlockStore.copy_snapshot"),
    ("moto.ec2.exceptions", "EC2ClientError"),
    ("moto.ec2.utils", "random_snapshot_id"),
    ("moto.ec2.utils", "generic_filter"),
    ("moto.ec2.models", "ec2_backends"),
    ("moto.sts.models", "STSBackend.assume_role"),
    ("moto.iam.models", "get_account_id_from"),
    ("moto.iam.models", "iam_backends"),
    ("moto.kms.models", "kms_backends"),
    ("moto.kms.responses", "KmsResponse.sign"),
    ("moto.kms.responses", "KmsResponse.verify"),
    ("moto.kms.responses", "KmsResponse.get_public_key"),
    ("moto.kms.exceptions", "ValidationException"),
    ("moto.s3.models", "s3_backends"),
    ("moto.s3.models", "FakeBucket.default_retention"),
    ("moto.s3.models", "FakeBucket.has_default_lock"),
    ("moto.moto_api._internal", "moto_api_backend"),
    ("moto.server", "DomainDispatcherApplication"),
    ("moto.server", "create_backend_app"),
    ("moto.core.responses", "ActionResult"),
    # eventbridge.py and queues.py
    ("moto.events.models", "EventsBackend.put_events"),
    ("moto.events.models", "EventsBackend.describe_event_bus"),
    ("moto.events.models", "Rule.send_to_targets"),
    ("moto.events.models", "Rule._send_to_sqs_queue"),
    ("moto.events.models", "events_backends"),
    ("moto.events.utils", "EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE"),
    ("moto.events.utils", "_BASE_EVENT_MESSAGE"),
    ("moto.events.exceptions", "ValidationException"),
    ("moto.core.utils", "iso_8601_datetime_without_milliseconds"),
    ("moto.core.utils", "utcfromtimestamp"),
    ("moto.sqs.models", "sqs_backends"),
    ("moto.sqs.models", "SQSBackend.change_message_visibility"),
    ("moto.sqs.models", "SQSBackend.get_queue_attributes"),
    ("moto.sqs.models", "SQSBackend.send_message"),
    ("moto.dynamodb.models", "dynamodb_backends"),
    # cloudtrail.py and trails.py
    ("moto.cloudtrail.models", "cloudtrail_backends"),
    ("moto.cloudtrail.models", "CloudTrailBackend.get_trail"),
    ("moto.cloudtrail.models", "CloudTrailBackend.get_trail_status"),
    ("moto.cloudtrail.models", "CloudTrailBackend.describe_trails"),
    ("moto.cloudtrail.models", "Trail.arn"),
    ("moto.core.exceptions", "JsonRESTError"),
    ("moto.s3.models", "S3Backend.put_object"),
    ("moto.s3.models", "S3Backend.get_object"),
    ("moto.s3.models", "S3Backend.delete_object"),
    ("moto.s3.models", "FakeKey.set_metadata"),
    ("moto.s3.models", "FakeKey.metadata"),
    # ssm.py and the presigned URLs of identity.py
    ("moto.ssm.models", "ssm_backends"),
    ("moto.ssm.models", "Document.hash"),
    ("moto.ssm.models", "Documents.get_default_version"),
    ("moto.ssm.models", "Documents.get_latest_version"),
    ("moto.ssm.models", "Documents.find_by_version"),
    ("moto.ssm.models", "SimpleSystemManagerBackend.get_command_by_id"),
    ("moto.ec2.models.instances", "Instance.private_ip"),
]


class Checks:
    def __init__(self) -> None:
        self.passed, self.failed = 0, 0

    def run(self, name, fn) -> None:
        try:
            fn()
        except Exception:  # every failure is reported, none stops the others
            self.failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)


def _resolve(module: str, path: str):
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def check_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise AssertionError(
            f"moto {moto.__version__} is installed but the extension was written for "
            f"{MOTO_VERSION}: re-check every patch in patches.py and s3checks.py, then update "
            "MOTO_VERSION and localworld/requirements.txt together"
        )


def check_instance_attributes() -> None:
    from moto.cloudtrail.models import Trail
    from moto.dynamodb.models import DynamoDBBackend
    from moto.iam.models import Role, User
    from moto.events.models import EventBus, Rule
    from moto.kms.models import Key
    from moto.s3.models import FakeBucket, FakeKey, FakeMultipart
    from moto.sqs.models import Queue, SQSBackend
    from moto.sts.models import AssumedRole
    from moto.ssm.models import Document, SimpleSystemManagerBackend
    from moto.iam.models import AccessKey, IAMBackend
    import inspect

    for cls, names in (
        (AssumedRole, ["access_key_id", "secret_access_key", "session_token", "expiration", "arn", "account_id"]),
        (AccessKey, ["access_key_id", "secret_access_key"]),
        (IAMBackend, ["access_keys"]),
        (Document, ["content_json", "document_type", "document_version", "owner", "name"]),
        (SimpleSystemManagerBackend, ["_documents"]),
        (FakeKey, ["lock_mode", "lock_until", "lock_legal_status", "value", "last_modified"]),
        (Trail, ["trail_name", "bucket_name", "s3_key_prefix", "is_multi_region", "log_validation",
                 "account_id", "region_name"]),
        (Role, ["id", "arn", "name"]),
        (User, ["id", "arn", "name"]),
        (FakeBucket, ["multiparts"]),
        (FakeMultipart, ["parts"]),
        (Key, ["policy", "key_usage", "key_state", "aliases", "arn"]),
        (Queue, ["policy", "kms_master_key_id", "redrive_policy"]),
        (SQSBackend, ["queues"]),
        (DynamoDBBackend, ["resource_policies"]),
        (EventBus, ["rules", "policy", "arn"]),
        (Rule, ["targets", "state", "event_pattern", "arn", "account_id"]),
    ):
        source = inspect.getsource(cls)
        missing = [n for n in names if f"self.{n}" not in source and f"def {n}" not in source]
        if missing:
            raise AssertionError(f"{cls.__module__}.{cls.__name__} lost attributes {missing}")


def behaviour(checks: Checks) -> None:
    from .seed import seed
    from .server import make_world_server

    server = make_world_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    tmp = tempfile.mkdtemp(prefix="forensnap-selftest-")
    with open(os.path.join(tmp, "world.toml"), "w") as handle:
        handle.write(
            # A hand-made world: these checks probe moto's own S3/EC2/KMS behaviour, which the
            # templates' policies would refuse before moto saw it (policy/test_*.py and the
            # end-to-end suite cover the templates and their evaluation).
            'region = "us-east-1"\npolicies = false\n[forensic]\naccount = "123456789012"\n'
            'evidence_bucket = "selftest"\n'
            '[security]\naccount = "555555555555"\n'
            '[[members]]\naccount = "111111111111"\nexternal_id = "x-1"\n'
            '[[members.instances]]\nname = "i"\nmemory_mib = 4\n[[members.instances.volumes]]\ndevice = "/dev/xvda"\n'
            'image = "a.img"\nencryption = "default"\nbuild = { kind = "pattern", blocks = 3, offset_blocks = 1 }\n'
        )
    world = seed(os.path.join(tmp, "world.toml"), endpoint)
    try:
        _behaviour(checks, endpoint, world)
    finally:
        server.shutdown()


def _behaviour(checks: Checks, endpoint: str, world: dict) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    forensic = world["forensic"]
    member = world["members"][0]
    volume = member["instances"][0]["volumes"][0]
    config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    base = boto3.session.Session(
        aws_access_key_id=forensic["access_key_id"],
        aws_secret_access_key=forensic["secret_access_key"], region_name="us-east-1",
    )
    client = lambda s, session=base: session.client(s, endpoint_url=endpoint, config=config)  # noqa: E731

    def code(fn) -> str:
        try:
            fn()
        except ClientError as err:
            return err.response["Error"]["Code"]
        return "no error"

    sts = client("sts")
    state = {}

    def assume_role():
        assert code(lambda: sts.assume_role(RoleArn=member["role_arn"], RoleSessionName="st", ExternalId="no")) == "AccessDenied"
        creds = sts.assume_role(RoleArn=member["role_arn"], RoleSessionName="st", ExternalId="x-1")["Credentials"]
        state["member"] = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], region_name="us-east-1",
        )

    checks.run("sts: ExternalId enforced, role assumed", assume_role)

    def snapshot_share_copy():
        m_ec2, f_ec2 = client("ec2", state["member"]), client("ec2")
        snap = m_ec2.create_snapshot(VolumeId=volume["volume_id"])["SnapshotId"]
        grant = dict(Attribute="createVolumePermission", OperationType="add", UserIds=[forensic["account"]])
        assert code(lambda: m_ec2.modify_snapshot_attribute(SnapshotId=snap, **grant)) == "OperationNotPermitted"
        copy = m_ec2.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1", Encrypted=True,
                                   KmsKeyId=forensic["ebs_key_arn"])["SnapshotId"]
        m_ec2.modify_snapshot_attribute(SnapshotId=copy, **grant)
        seen = f_ec2.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
        assert [s["SnapshotId"] for s in seen] == [copy], seen
        state["evidence"] = f_ec2.copy_snapshot(SourceSnapshotId=copy, SourceRegion="us-east-1",
                                                Encrypted=True, KmsKeyId=forensic["ebs_key_arn"])["SnapshotId"]

    checks.run("ec2: aws/ebs refuses sharing; share + cross-account copy", snapshot_share_copy)

    def ebs_reads():
        ebs = client("ebs")
        page = ebs.list_snapshot_blocks(SnapshotId=state["evidence"], MaxResults=100)
        assert page["BlockSize"] == BLOCK_SIZE and [b["BlockIndex"] for b in page["Blocks"]] == [1, 2, 3]
        digest = hashlib.sha256()
        written = 0
        for block in page["Blocks"]:
            got = ebs.get_snapshot_block(SnapshotId=state["evidence"], BlockIndex=block["BlockIndex"],
                                         BlockToken=block["BlockToken"])
            data = got["BlockData"].read()
            assert base64.b64encode(hashlib.sha256(data).digest()).decode() == got["Checksum"]
            digest.update(bytes(block["BlockIndex"] * BLOCK_SIZE - written) + data)
            written = (block["BlockIndex"] + 1) * BLOCK_SIZE
        remaining = page["VolumeSize"] * (1 << 30) - written
        while remaining:
            step = min(remaining, 1 << 24)
            digest.update(bytes(step))
            remaining -= step
        assert digest.hexdigest() == volume["image_sha256"]
        assert code(lambda: ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")) == "ResourceNotFoundException"

    checks.run("ebs: direct reads of a copied snapshot hold the seeded bytes", ebs_reads)

    def s3_lock():
        s3 = client("s3")
        bucket = forensic["evidence_bucket"]
        upload = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
        data = b"x" * (5 << 20)
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        bad = dict(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=data,
                   ChecksumSHA256=base64.b64encode(hashlib.sha256(b"no").digest()).decode())
        assert code(lambda: s3.upload_part(**bad)) == "BadDigest"
        etag = s3.upload_part(**dict(bad, ChecksumSHA256=sha))["ETag"]
        done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag, "ChecksumSHA256": sha}]})
        version = done["VersionId"]
        retention = s3.get_object_retention(Bucket=bucket, Key="k", VersionId=version)["Retention"]
        assert retention["Mode"] == "COMPLIANCE", retention
        assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=version)) == "AccessDenied"
        shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)}
        assert code(lambda: s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version, Retention=shorter)) == "AccessDenied"

    checks.run("s3: multipart keeps COMPLIANCE lock; checksums and retention enforced", s3_lock)

    def s3_crc64nvme():
        from awscrt import checksums

        assert checksums.crc64nvme(b"123456789") == 0xAE8B14860A799888  # CRC-64/NVME check value
        crc = lambda n: base64.b64encode(n.to_bytes(8, "big")).decode()  # noqa: E731
        s3 = client("s3")
        bucket = forensic["evidence_bucket"]
        assert code(lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="crc", ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE")) == "InvalidRequest"
        created = s3.create_multipart_upload(Bucket=bucket, Key="crc", ChecksumAlgorithm="CRC64NVME",
                                             ChecksumType="FULL_OBJECT")
        assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == ("CRC64NVME", "FULL_OBJECT"), created
        upload = created["UploadId"]
        sha_upload = s3.create_multipart_upload(Bucket=bucket, Key="crc-sha", ChecksumAlgorithm="SHA256")["UploadId"]
        data = [b"c" * (5 << 20), b"d" * 1000]
        part = dict(Bucket=bucket, Key="crc", UploadId=upload)
        assert code(lambda: s3.upload_part(**part, PartNumber=1, Body=data[0],
                                           ChecksumCRC64NVME=crc(checksums.crc64nvme(b"no")))) == "BadDigest"
        assert code(lambda: s3.upload_part(**part, PartNumber=1, Body=data[0], ChecksumAlgorithm="CRC32")) == "InvalidRequest"
        parts = []
        for number, body in enumerate(data, 1):
            sent = s3.upload_part(**part, PartNumber=number, Body=body, ChecksumAlgorithm="CRC64NVME")
            assert sent["ChecksumCRC64NVME"] == crc(checksums.crc64nvme(body)), sent
            parts.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC64NVME": sent["ChecksumCRC64NVME"]})
        listed = {u["UploadId"]: (u.get("ChecksumAlgorithm"), u.get("ChecksumType"))
                  for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="crc")["Uploads"]}
        assert listed == {upload: ("CRC64NVME", "FULL_OBJECT"), sha_upload: ("SHA256", "COMPOSITE")}, listed
        s3.abort_multipart_upload(Bucket=bucket, Key="crc-sha", UploadId=sha_upload)
        got = s3.list_parts(**part)
        assert (got["ChecksumAlgorithm"], got["ChecksumType"]) == ("CRC64NVME", "FULL_OBJECT"), got
        assert [p["ChecksumCRC64NVME"] for p in got["Parts"]] == [p["ChecksumCRC64NVME"] for p in parts], got
        full = crc(checksums.crc64nvme(data[1], checksums.crc64nvme(data[0])))
        complete = dict(part, ChecksumType="FULL_OBJECT", MultipartUpload={"Parts": parts})
        assert code(lambda: s3.complete_multipart_upload(**complete, ChecksumCRC64NVME=crc(1))) == "BadDigest"
        wrong_part = dict(complete, MultipartUpload={"Parts": [dict(parts[0], ChecksumCRC64NVME=crc(1)), parts[1]]})
        assert code(lambda: s3.complete_multipart_upload(**wrong_part, ChecksumCRC64NVME=full)) == "InvalidPart"
        done = s3.complete_multipart_upload(**complete, ChecksumCRC64NVME=full)
        assert (done.get("ChecksumCRC64NVME"), done.get("ChecksumType")) == (full, "FULL_OBJECT"), done
        head = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
        assert (head.get("ChecksumCRC64NVME"), head.get("ChecksumType")) == (full, "FULL_OBJECT"), head
        assert head["VersionId"] == done["VersionId"] and head["ContentLength"] == sum(map(len, data)), head
        whole = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
        assert (whole.get("ChecksumCRC64NVME"), whole.get("ChecksumType")) == (full, "FULL_OBJECT"), whole
        assert whole["Body"].read() == b"".join(data)
        ranged = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED", Range="bytes=0-9")
        assert "ChecksumCRC64NVME" not in ranged and "ChecksumType" not in ranged, ranged
        assert ranged["Body"].read() == data[0][:10]
        # Ranged reads read the range only (patches._patch_s3_ranged_reads), with S3's answers.
        joined = b"".join(data)
        for spec, want in [("bytes=5-", joined[5:]), ("bytes=3-7", joined[3:8]),
                           (f"bytes={len(joined) - 2}-{len(joined) + 50}", joined[-2:]),
                           ("bytes=-4", joined[-4:])]:
            got = s3.get_object(Bucket=bucket, Key="crc", Range=spec)
            assert got["Body"].read() == want, spec
            assert got["ContentRange"].endswith(f"/{len(joined)}"), got["ContentRange"]
        assert code(lambda: s3.get_object(Bucket=bucket, Key="crc", Range=f"bytes={len(joined) + 1}-")) == "InvalidRange"

    checks.run("s3: CRC64NVME FULL_OBJECT multipart: parts, listings, whole-object CRC enforced and read back", s3_crc64nvme)

    def kms_digest():
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        kms = client("kms")
        key = forensic["signing_key_arn"]
        big = b"x" * 5000
        assert code(lambda: kms.sign(KeyId=key, Message=big, MessageType="RAW",
                                     SigningAlgorithm="ECDSA_SHA_256")) == "ValidationException"
        digest = hashlib.sha256(big).digest()
        signature = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST",
                             SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        answer = kms.get_public_key(KeyId=key)
        assert answer["KeySpec"] == "ECC_NIST_P256" and answer["KeyId"] == key, answer
        public = serialization.load_der_public_key(answer["PublicKey"])
        public.verify(signature, big, ec.ECDSA(hashes.SHA256()))  # raises when it does not verify
        assert kms.verify(KeyId=key, Message=digest, MessageType="DIGEST", Signature=signature,
                          SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]

    checks.run("kms: DIGEST signatures verify over the message; RAW limited to 4096 bytes; GetPublicKey names KeySpec", kms_digest)

    _daemon_services(checks, endpoint, world, client, code)
    _memory(checks, endpoint, world, client, state)
    _cloudtrail(checks, endpoint, forensic, client, code)


def _memory(checks: Checks, endpoint: str, world: dict, client, state: dict) -> None:
    """SSM (``ssm``, ``avml``, presigned URLs in ``identity``): forensnap's own document, run by
    the stand-in agent, uploads the stand-in AVML's image through presigned UploadPart URLs."""
    import json
    import time
    import urllib.error
    import urllib.request

    import boto3
    from botocore.config import Config

    from . import avml

    forensic, instance = world["forensic"], world["members"][0]["instances"][0]

    def capture():
        session = boto3.session.Session(aws_access_key_id=forensic["access_key_id"],
                                        aws_secret_access_key=forensic["secret_access_key"], region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=endpoint, config=Config(
            retries={"max_attempts": 1}, s3={"addressing_style": "path"}, signature_version="s3v4"))
        bucket, key = forensic["evidence_bucket"], "cases/SELFTEST/evidence/memory/data/memory.lime"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        part = s3.generate_presigned_url("upload_part", ExpiresIn=600, Params={
            "Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": 1})
        plan = {"schema": "forensnap.memory-plan/v1", "part_bytes": 5 << 20, "parts": [{"number": 1, "url": part}]}
        s3.put_object(Bucket=bucket, Key="cases/SELFTEST/plan.json", Body=json.dumps(plan).encode(),
                      ChecksumAlgorithm="SHA256")
        get = lambda k: s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k},  # noqa: E731
                                                  ExpiresIn=600)
        ssm = client("ssm", state["member"])
        info = ssm.describe_instance_information()["InstanceInformationList"]
        assert [(i["InstanceId"], i["PingStatus"]) for i in info] == [(instance["instance_id"], "Online")], info
        command = ssm.send_command(DocumentName="ForensnapCaptureMemory", InstanceIds=[instance["instance_id"]],
                                   TimeoutSeconds=120, Parameters={
                                       "AvmlUrl": [get(forensic["avml_key"])], "AvmlSha256": [forensic["avml_sha256"]],
                                       "PlanUrl": [get("cases/SELFTEST/plan.json")]})["Command"]["CommandId"]
        deadline = time.monotonic() + 60
        while True:
            got = ssm.get_command_invocation(CommandId=command, InstanceId=instance["instance_id"])
            if got["Status"] not in ("Pending", "InProgress") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (got["Status"], got["ResponseCode"]) == ("Success", 0), got
        host_sha256 = got["StandardOutputContent"].split("sha256=")[1].split()[0]
        parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        expected = b"".join(avml.image(instance["instance_id"], 4))
        assert stored == expected and hashlib.sha256(stored).hexdigest() == host_sha256
        try:
            urllib.request.urlopen(part.replace("partNumber=1", "partNumber=2"), timeout=30)
            raise AssertionError("a changed presigned URL was served")
        except urllib.error.HTTPError as err:
            assert err.code == 403 and b"SignatureDoesNotMatch" in err.read(), err

    checks.run("ssm: forensnap's document, run by the stand-in agent, uploads the stand-in AVML image through "
               "presigned part URLs; both hashes agree; a changed URL is refused", capture)


def _cloudtrail(checks: Checks, endpoint: str, forensic: dict, client, code) -> None:
    """CloudTrail (``cloudtrail``, ``trails``): the calls made above are management events,
    refusals with their error; a trail delivers a digest signed with a ListPublicKeys key.
    Runs last: it moves the world clock an hour on."""
    import gzip
    import json
    import urllib.request

    def events():
        lookup = client("cloudtrail").lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRole"}])["Events"]
        records = [json.loads(e["CloudTrailEvent"]) for e in lookup]
        assert len(records) == 2 and records[0]["eventTime"] >= records[1]["eventTime"], records
        refused = [r for r in records if r.get("errorCode")]
        allowed = [r for r in records if not r.get("errorCode")]
        assert [r["errorCode"] for r in refused] == ["AccessDenied"] and len(allowed) == 1, records
        assert allowed[0]["userIdentity"]["accessKeyId"] == forensic["access_key_id"], allowed
        assert allowed[0]["responseElements"]["credentials"]["accessKeyId"].startswith("ASIA"), allowed

    checks.run("cloudtrail: served calls are LookupEvents events, newest first, refusals with errorCode", events)

    def digest():
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        s3, cloudtrail = client("s3"), client("cloudtrail")
        s3.create_bucket(Bucket="selftest-trail")
        cloudtrail.create_trail(Name="selftest", S3BucketName="selftest-trail", EnableLogFileValidation=True)
        cloudtrail.start_logging(Name="selftest")
        for path, payload in (("clock", {"advance_seconds": 3601}), ("cloudtrail/deliver", {})):
            request = urllib.request.Request(f"{endpoint}/_forensnap/{path}", data=json.dumps(payload).encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30).read()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="selftest-trail")["Contents"]]
        digest_key, = [k for k in keys if "/CloudTrail-Digest/" in k]
        got = s3.get_object(Bucket="selftest-trail", Key=digest_key)
        content = gzip.decompress(got["Body"].read())
        document = json.loads(content)
        public = {k["Fingerprint"]: k["Value"] for k in cloudtrail.list_public_keys()["PublicKeyList"]}
        signed = (f"{document['digestEndTime']}\nselftest-trail/{digest_key}\n"
                  f"{hashlib.sha256(content).hexdigest()}\nnull").encode()
        load_der_public_key(public[document["digestPublicKeyFingerprint"]]).verify(
            bytes.fromhex(got["Metadata"]["signature"]), signed, padding.PKCS1v15(), hashes.SHA256())
        assert [f["s3Object"] for f in document["logFiles"]] == [k for k in keys if "/CloudTrail/" in k], document

    checks.run("cloudtrail: a trail delivers log files and a signed digest (ListPublicKeys verifies it)", digest)


def _daemon_services(checks: Checks, endpoint: str, world: dict, client, code) -> None:
    """What forensnap's daemon relies on: SQS visibility, redrive and long polling, DynamoDB
    conditions and transactions (moto's own, unpatched: moto-fidelity.md says they work, this
    keeps it true), and the EventBridge intake (``eventbridge`` patches). Each check is bounded
    by short timeouts; together about 10 seconds."""
    import json
    import time
    import urllib.request

    import boto3

    forensic = world["forensic"]
    sqs, ddb = client("sqs"), client("dynamodb")

    def queue(name: str, **attributes) -> str:
        return sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]

    def receive(url: str, wait: int = 0, **args) -> list:
        return sqs.receive_message(QueueUrl=url, WaitTimeSeconds=wait, AttributeNames=["All"],
                                   MaxNumberOfMessages=10, **args).get("Messages", [])

    def visibility():
        url = queue("selftest-visibility", VisibilityTimeout=1)
        sqs.send_message(QueueUrl=url, MessageBody="m")
        first, = receive(url)
        assert receive(url) == [], "a received message must be invisible"
        time.sleep(1.3)
        again, = receive(url)
        assert again["MessageId"] == first["MessageId"] and again["Attributes"]["ApproximateReceiveCount"] == "2"
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=3)
        time.sleep(1.3)
        assert receive(url) == [], "ChangeMessageVisibility must extend the timeout"
        time.sleep(2.0)
        last, = receive(url)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=last["ReceiptHandle"])
        assert receive(url) == []

    checks.run("sqs: a received message is invisible for VisibilityTimeout; ChangeMessageVisibility extends it", visibility)

    def redrive():
        dlq = queue("selftest-dlq")
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = queue("selftest-redrive", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
        sent = sqs.send_message(QueueUrl=url, MessageBody="poison")["MessageId"]
        for _ in range(2):
            got, = receive(url, VisibilityTimeout=0)
            assert got["MessageId"] == sent
        assert receive(url, VisibilityTimeout=0) == [], "the third receive must find it dead-lettered"
        dead, = receive(dlq)
        assert dead["MessageId"] == sent and dead["Body"] == "poison", dead

    checks.run("sqs: redrive to the dead-letter queue after maxReceiveCount receives", redrive)

    def long_polling():
        url = queue("selftest-long-poll")
        started = time.monotonic()
        assert receive(url, wait=1) == []
        assert 0.9 <= time.monotonic() - started < 3, "an empty long poll waits WaitTimeSeconds"
        timer = threading.Timer(0.5, lambda: client("sqs").send_message(QueueUrl=url, MessageBody="late"))
        timer.start()
        try:
            started = time.monotonic()
            got, = receive(url, wait=10)
            elapsed = time.monotonic() - started
        finally:
            timer.cancel()
        assert got["Body"] == "late" and elapsed < 3, f"a long poll returns when a message arrives ({elapsed:.1f} s)"

    checks.run("sqs: long polling waits when empty and returns early when a message arrives", long_polling)

    def conditions():
        table, key = forensic["case_table"], {"case_id": {"S": "IR-1"}, "item": {"S": "case"}}
        claim = dict(TableName=table, Item={**key, "attempts": {"N": "0"}},
                     ConditionExpression="attribute_not_exists(case_id)")
        ddb.put_item(**claim)
        assert code(lambda: ddb.put_item(**claim)) == "ConditionalCheckFailedException"
        bump = dict(TableName=table, Key=key, UpdateExpression="SET attempts = attempts + :one",
                    ConditionExpression="attempts < :max",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": "2"}}, ReturnValues="UPDATED_NEW")
        assert ddb.update_item(**bump)["Attributes"]["attempts"] == {"N": "1"}
        ddb.update_item(**bump)
        assert code(lambda: ddb.update_item(**bump)) == "ConditionalCheckFailedException"
        other = {"case_id": {"S": "IR-1"}, "item": {"S": "step#1"}}
        assert code(lambda: ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": other}},
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET attempts = :z",
                        "ConditionExpression": "attempts = :wrong",
                        "ExpressionAttributeValues": {":z": {"N": "0"}, ":wrong": {"N": "7"}}}}])) \
            == "TransactionCanceledException"
        assert "Item" not in ddb.get_item(TableName=table, Key=other, ConsistentRead=True), "all or nothing"
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": other}}])
        assert "Item" in ddb.get_item(TableName=table, Key=other, ConsistentRead=True)

    checks.run("dynamodb: conditional PutItem, UpdateItem on a number, TransactWriteItems all or nothing", conditions)

    def intake():
        security = world["security"]
        sender = boto3.session.Session(aws_access_key_id=security["admin_access_key_id"],
                                       aws_secret_access_key=security["admin_secret_access_key"],
                                       region_name="us-east-1")
        events = client("events", sender)
        finding = {"EventBusName": forensic["intake_bus"], "Source": "aws.guardduty",
                   "DetailType": "GuardDuty Finding", "Resources": ["arn:aws:ec2:us-east-1:111111111111:instance/i-1"],
                   "Detail": json.dumps({"severity": 8, "resource": {"resourceType": "Instance",
                                                                     "instanceDetails": {"instanceId": "i-1"}}})}
        other = dict(finding, Detail=json.dumps({"resource": {"resourceType": "AccessKey"}}))
        answer = events.put_events(Entries=[other, finding, dict(finding, Source="aws.guardduty.fake")])
        assert answer["FailedEntryCount"] == 0, answer
        url = forensic["request_queue_url"]
        messages = receive(url, wait=2)
        assert len(messages) == 1, [m["Body"] for m in messages]
        event = json.loads(messages[0]["Body"])
        assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region",
                               "resources", "detail"], event
        assert (event["id"], event["account"], event["region"]) == (answer["Entries"][1]["EventId"],
                                                                    security["account"], "us-east-1"), event
        assert event["resources"] == finding["Resources"] and event["detail"]["resource"]["instanceDetails"] == {"instanceId": "i-1"}
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])

    checks.run("events: a GuardDuty instance finding put cross-account on the intake bus arrives in the queue "
               "with the whole envelope; others do not", intake)

    def duplicate():
        url = queue("selftest-duplicate", VisibilityTimeout=30)
        sqs.send_message(QueueUrl=url, MessageBody="twice")
        request = urllib.request.Request(f"{endpoint}/_forensnap/faults", method="POST", headers={
            "Content-Type": "application/json"}, data=json.dumps(
            {"kind": "duplicate", "service": "sqs", "operation": "ReceiveMessage", "count": 1}).encode())
        urllib.request.urlopen(request, timeout=30).read()
        first, = receive(url)
        second, = receive(url)
        assert first["MessageId"] == second["MessageId"] and first["ReceiptHandle"] != second["ReceiptHandle"]
        assert receive(url) == [], "only the faulted receive is duplicated"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_forensnap/faults", method="DELETE"), timeout=30)

    checks.run("faults: duplicate delivery answers a received SQS message a second time", duplicate)


def main_selftest(argv) -> None:
    argparse.ArgumentParser(prog="forensnap_world selftest").parse_args(argv)
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    checks = Checks()
    checks.run(f"moto is the pinned {MOTO_VERSION}", check_version)
    for module, path in STRUCTURE:
        checks.run(f"moto internals: {module}.{path}", lambda m=module, p=path: _resolve(m, p))
    checks.run("moto internals: instance attributes", check_instance_attributes)
    if checks.failed == 0:
        behaviour(checks)
    print(f"selftest: {checks.passed} passed, {checks.failed} failed")
    sys.exit(1 if checks.failed else 0)
