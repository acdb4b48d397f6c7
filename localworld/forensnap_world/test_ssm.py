"""Memory capture through SSM in the local world (issue 15): forensnap's own document, run by
the world's stand-in agent, uploads the stand-in AVML's image through presigned part URLs.

Run: ``cd localworld && $PY -m unittest forensnap_world.test_ssm -v``. One in-process world,
seeded from a world file with policies on (both templates deployed), is shared by the tests;
every capture is driven as forensnap drives it: the collector role creates the multipart
upload, presigns one UploadPart URL per part, stores the plan and presigns GETs of the plan and
the pinned AVML build; the member role (assumed with ExternalId and SourceIdentity) checks the
agent, sends the command and polls the invocation; the collector lists the parts, completes the
upload and hashes what S3 holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import tomllib
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import avml, ssm
from .policy import authorize as authz
from .policy import templates as t

REGION = "us-east-1"
MEMBER = "111111111111"
EXTERNAL_ID = "ext-memory-0123456789"
MEMORY_MIB = 8
PART_BYTES = 5 * avml.MIB
"""S3's smallest part: an 8 MiB image is two parts."""
WORLD = f"""
region = "{REGION}"
[forensic]
account = "123456789012"
retention_days = 1
[[members]]
account = "{MEMBER}"
external_id = "{EXTERNAL_ID}"
[[members.instances]]
name = "web"
memory_mib = {MEMORY_MIB}
[[members.instances.volumes]]
device = "/dev/xvda"
image = "web.img"
build = {{ kind = "pattern", blocks = 1 }}
[[members.instances]]
name = "db"
memory_mib = {MEMORY_MIB}
[[members.instances.volumes]]
device = "/dev/xvda"
image = "db.img"
build = {{ kind = "pattern", blocks = 1 }}
[[members.instances]]
name = "lost"
ssm = "offline"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "lost.img"
build = {{ kind = "pattern", blocks = 1 }}
[[members.instances]]
name = "unmanaged"
ssm = "none"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "unmanaged.img"
build = {{ kind = "pattern", blocks = 1 }}
[[members.instances]]
name = "plain"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "plain.img"
build = {{ kind = "pattern", blocks = 1 }}
"""
DOCUMENT = "ForensnapCaptureMemory"
LINE = re.compile(r"^forensnap-memory sha256=([0-9a-f]{64}) bytes=(\d+) parts=(\d+) avml_sha256=([0-9a-f]{64})$")
CONFIG = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, signature_version="s3v4")
"""SigV4 everywhere, presigned URLs included (botocore would presign S3 with SigV2)."""


def image_bytes(instance_id: str, memory_mib: int) -> bytes:
    return b"".join(avml.image(instance_id, memory_mib))


class MemoryWorldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from .seed import seed
        from .server import make_world_server

        cls.server = make_world_server("127.0.0.1", 0)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.endpoint = f"http://127.0.0.1:{cls.server.server_port}"
        cls.folder = tempfile.mkdtemp(prefix="forensnap-ssm-test-")
        try:
            path = os.path.join(cls.folder, "world.toml")
            with open(path, "w") as handle:
                handle.write(WORLD)
            cls.world = seed(path, cls.endpoint)
            cls.forensic = cls.world["forensic"]
            cls.bucket = cls.forensic["evidence_bucket"]
            cls.member = cls.world["members"][0]
            cls.instances = {i["name"]: i for i in cls.member["instances"]}
            cls.collector = boto3.session.Session(aws_access_key_id=cls.forensic["access_key_id"],
                                                  aws_secret_access_key=cls.forensic["secret_access_key"],
                                                  region_name=REGION)
            cls.s3 = cls.client(cls.collector, "s3")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{cls.endpoint}/_forensnap/reset", method="POST"),
                                   timeout=60).read()
        finally:
            cls.server.shutdown()
            cls.server.server_close()
            cls.thread.join(timeout=10)
            shutil.rmtree(cls.folder, ignore_errors=True)

    @classmethod
    def client(cls, session, service: str):
        return session.client(service, endpoint_url=cls.endpoint, config=CONFIG)

    def control(self, method: str, name: str, payload: dict | None = None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.endpoint}/_forensnap/{name}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def behaviour(self, name: str, mode: str) -> None:
        self.control("POST", "ssm/behaviour", {"instance_id": self.instances[name]["instance_id"], "mode": mode})
        self.addCleanup(self.control, "POST", "ssm/behaviour",
                        {"instance_id": self.instances[name]["instance_id"], "mode": "normal"})

    def member_session(self):
        """The member role, assumed by the collector as forensnap does."""
        answer = self.client(self.collector, "sts").assume_role(
            RoleArn=self.member["role_arn"], RoleSessionName="forensnap-IR-15", ExternalId=EXTERNAL_ID,
            SourceIdentity="IR-15")
        creds = answer["Credentials"]
        return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                     aws_secret_access_key=creds["SecretAccessKey"],
                                     aws_session_token=creds["SessionToken"], region_name=REGION)

    # --- the collector's side ---------------------------------------------------------------

    def prepare(self, name: str, parts: int = 2, part_bytes: int = PART_BYTES, case: str = "IR-15",
                expires: int = 3600) -> dict:
        """The upload, the plan and the presigned GETs of a capture of instance ``name``."""
        instance_id = self.instances[name]["instance_id"]
        prefix = f"cases/{case}/evidence/{instance_id}-memory"
        key = f"{prefix}/data/memory.lime"
        upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        urls = [self.s3.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
            ExpiresIn=expires) for n in range(1, parts + 1)]
        plan = {"schema": "forensnap.memory-plan/v1", "part_bytes": part_bytes,
                "parts": [{"number": n, "url": url} for n, url in enumerate(urls, 1)]}
        plan_key = f"{prefix}/transfer/plan.json"
        self.s3.put_object(Bucket=self.bucket, Key=plan_key, Body=json.dumps(plan).encode(),
                           ChecksumAlgorithm="SHA256")
        get = lambda k: self.s3.generate_presigned_url(  # noqa: E731
            "get_object", Params={"Bucket": self.bucket, "Key": k}, ExpiresIn=expires)
        return {"instance_id": instance_id, "key": key, "upload_id": upload_id, "plan_key": plan_key,
                "parameters": {"AvmlUrl": [get(self.forensic["avml_key"])],
                               "AvmlSha256": [self.forensic["avml_sha256"]], "PlanUrl": [get(plan_key)]}}

    def send(self, capture: dict, ssm_client=None, timeout: int = 600, **overrides) -> str:
        ssm_client = ssm_client or self.client(self.member_session(), "ssm")
        parameters = dict(capture["parameters"], **overrides)
        return ssm_client.send_command(DocumentName=DOCUMENT, InstanceIds=[capture["instance_id"]],
                                       TimeoutSeconds=timeout, Comment="IR-15/memory", Parameters=parameters,
                                       )["Command"]["CommandId"]

    def wait(self, command_id: str, instance_id: str, ssm_client=None, limit: float = 60.0) -> dict:
        ssm_client = ssm_client or self.client(self.member_session(), "ssm")
        deadline = time.monotonic() + limit
        while True:
            invocation = ssm_client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            if invocation["Status"] not in ("Pending", "InProgress", "Delayed"):
                return invocation
            self.assertLess(time.monotonic(), deadline, f"still {invocation['Status']}")
            time.sleep(0.2)

    def parts(self, capture: dict) -> list[dict]:
        return self.s3.list_parts(Bucket=self.bucket, Key=capture["key"],
                                  UploadId=capture["upload_id"]).get("Parts", [])

    def complete(self, capture: dict) -> bytes:
        parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self.parts(capture)]
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=capture["key"], UploadId=capture["upload_id"],
                                          MultipartUpload={"Parts": parts})
        return self.s3.get_object(Bucket=self.bucket, Key=capture["key"])["Body"].read()

    # --- the capture ---------------------------------------------------------------------------

    def test_a_capture_uploads_every_part_and_both_hashes_match(self):
        capture = self.prepare("web")
        ssm_client = self.client(self.member_session(), "ssm")
        command_id = self.send(capture, ssm_client)
        invocation = self.wait(command_id, capture["instance_id"], ssm_client)
        self.assertEqual((invocation["Status"], invocation["ResponseCode"]), ("Success", 0), invocation)
        self.assertEqual(invocation["StandardErrorContent"], "")
        line = invocation["StandardOutputContent"].strip()
        self.assertEqual(len(invocation["StandardOutputContent"].splitlines()), 1)
        host_sha256, size, parts, avml_sha256 = LINE.match(line).groups()
        expected = image_bytes(capture["instance_id"], MEMORY_MIB)
        self.assertEqual((int(size), int(parts)), (len(expected), 2))
        self.assertEqual(avml_sha256, self.forensic["avml_sha256"])
        self.assertEqual([p["Size"] for p in self.parts(capture)], [PART_BYTES, len(expected) - PART_BYTES])
        stored = self.complete(capture)
        self.assertEqual(hashlib.sha256(stored).hexdigest(), host_sha256)
        self.assertEqual(stored, expected)
        for n in range(avml.PLANTED_STRINGS):
            self.assertIn(f"FORENSNAP-PLANTED-{capture['instance_id']}-{n}".encode(), stored)
        self.assertEqual(stored.count(b"BEGIN RSA PRIVATE KEY"), 1)
        self.assertEqual(stored[:4], (0x4C694D45).to_bytes(4, "little"))
        # The object is evidence like any other: locked by the bucket's default retention.
        retention = self.s3.head_object(Bucket=self.bucket, Key=capture["key"])
        self.assertEqual(retention["ObjectLockMode"], "COMPLIANCE")
        # The invocation as the API reports it.
        self.assertEqual((invocation["DocumentName"], invocation["PluginName"], invocation["Comment"]),
                         (DOCUMENT, "captureMemory", "IR-15/memory"))
        self.assertRegex(invocation["ExecutionStartDateTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(invocation["ExecutionElapsedTime"], r"^PT\d+\.\d{3}S$")
        # ListCommandInvocations (the member role may not call it: forensnap does not need it).
        admin = boto3.session.Session(aws_access_key_id=self.member["admin_access_key_id"],
                                      aws_secret_access_key=self.member["admin_secret_access_key"],
                                      region_name=REGION)
        listed = self.client(admin, "ssm").list_command_invocations(
            CommandId=command_id, Details=True)["CommandInvocations"]
        self.assertEqual([(i["InstanceId"], i["Status"]) for i in listed], [(capture["instance_id"], "Success")])
        self.assertEqual(listed[0]["CommandPlugins"][0]["Output"].strip(), line)

    def test_the_host_receives_the_document_and_three_parameters_and_no_credentials(self):
        capture = self.prepare("db", case="IR-15-text")
        member = self.member_session()
        command_id = self.send(capture, self.client(member, "ssm"))
        self.wait(command_id, capture["instance_id"])
        ran, = [c for c in self.control("GET", "ssm/commands")["commands"] if c["command_id"] == command_id]
        self.assertEqual(sorted(ran["parameters"]), ["AvmlSha256", "AvmlUrl", "PlanUrl"])
        # The script is the template's, with the three values in place of {{ Name }}.
        template = t.load_template(t.MEMBER_TEMPLATE)["Resources"]["MemoryCaptureDocument"]["Properties"]
        body = template["Content"]["mainSteps"][0]["inputs"]["runCommand"][0]
        values = {k: v[0] for k, v in capture["parameters"].items()}
        self.assertEqual(ran["script"], ssm.substitute(body, values))
        self.assertNotIn("{{", ran["script"])
        admin = boto3.session.Session(aws_access_key_id=self.member["admin_access_key_id"],
                                      aws_secret_access_key=self.member["admin_secret_access_key"],
                                      region_name=REGION)
        stored = json.loads(self.client(admin, "ssm").get_document(Name=DOCUMENT)["Content"])
        self.assertEqual(stored, template["Content"])
        self.assertEqual(ran["document_hash"], hashlib.sha256(json.dumps(template["Content"]).encode()).hexdigest())
        credentials = member.get_credentials()
        for secret in (self.forensic["secret_access_key"], credentials.secret_key, credentials.token,
                       credentials.access_key):
            self.assertNotIn(secret, ran["script"])
        self.assertNotIn("AWS_", " ".join(n for n in ran["environment"] if n.startswith("AWS_") and
                                          n not in ("AWS_SSM_INSTANCE_ID", "AWS_SSM_REGION_NAME")))
        # The case name reaches the host only inside the presigned URLs' object key.
        self.assertEqual(ran["comment"], "IR-15/memory")

    def test_an_avml_with_another_hash_is_refused_and_not_run(self):
        capture = self.prepare("web", case="IR-15-hash")
        command_id = self.send(capture, AvmlSha256=["0" * 64])
        invocation = self.wait(command_id, capture["instance_id"])
        self.assertEqual((invocation["Status"], invocation["ResponseCode"]), ("Failed", 3), invocation)
        self.assertIn(f"AVML's SHA-256 is {self.forensic['avml_sha256']}, not the pinned {'0' * 64}: refusing to run it",
                      invocation["StandardErrorContent"])
        self.assertEqual(invocation["StandardOutputContent"], "")
        self.assertEqual(self.parts(capture), [])

    def test_parameters_are_checked_against_the_document(self):
        capture = self.prepare("web", parts=1, case="IR-15-params")
        ssm_client = self.client(self.member_session(), "ssm")
        for overrides, needle in (({"AvmlSha256": ["not-hex"]}, "AvmlSha256"),
                                  ({"PlanUrl": ["http://x/'; rm -rf / #"]}, "PlanUrl"),
                                  ({"Extra": ["1"]}, "Extra")):
            with self.subTest(overrides=overrides):
                with self.assertRaises(ClientError) as caught:
                    self.send(capture, ssm_client, **overrides)
                self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameters")
                self.assertIn(needle, caught.exception.response["Error"]["Message"])

    # --- the agent and the instances -------------------------------------------------------------

    def test_describe_instance_information_lists_the_managed_instances(self):
        ssm_client = self.client(self.member_session(), "ssm")
        listed = {i["InstanceId"]: i for i in ssm_client.describe_instance_information()["InstanceInformationList"]}
        ids = {name: i["instance_id"] for name, i in self.instances.items()}
        self.assertEqual(set(listed), {ids["web"], ids["db"], ids["lost"]})
        web = listed[ids["web"]]
        self.assertEqual((web["PingStatus"], web["PlatformType"], web["ResourceType"]), ("Online", "Linux", "EC2Instance"))
        self.assertTrue(web["AgentVersion"])
        self.assertEqual(listed[ids["lost"]]["PingStatus"], "ConnectionLost")
        one = ssm_client.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [ids["web"]]}])["InstanceInformationList"]
        self.assertEqual([i["InstanceId"] for i in one], [ids["web"]])
        other = ssm_client.describe_instance_information(
            InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": [ids["unmanaged"]]}])
        self.assertEqual(other["InstanceInformationList"], [])
        self.assertEqual(self.instances["web"]["ssm"], "online")
        self.assertEqual(self.instances["lost"]["memory_mib"], 64)
        self.assertNotIn("ssm", self.instances["plain"])

    def test_a_command_to_an_instance_without_a_reachable_agent_is_invalid_instance_id(self):
        ssm_client = self.client(self.member_session(), "ssm")
        capture = self.prepare("web", parts=1, case="IR-15-unreachable")
        for name in ("lost", "unmanaged"):
            with self.subTest(instance=name), self.assertRaises(ClientError) as caught:
                self.send(dict(capture, instance_id=self.instances[name]["instance_id"]), ssm_client)
            self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidInstanceId")
            self.assertIn("not in a valid state", caught.exception.response["Error"]["Message"])
        self.behaviour("web", "unreachable")
        web = self.instances["web"]["instance_id"]
        info = ssm_client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [web]}])
        self.assertEqual(info["InstanceInformationList"][0]["PingStatus"], "ConnectionLost")
        with self.assertRaises(ClientError) as caught:
            self.send(capture, ssm_client)
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidInstanceId")

    def test_a_hung_capture_times_out_on_the_world_clock_and_uploads_nothing_more(self):
        self.behaviour("db", "hang")
        capture = self.prepare("db", case="IR-15-hang", parts=2, part_bytes=PART_BYTES)
        ssm_client = self.client(self.member_session(), "ssm")
        command_id = self.send(capture, ssm_client, timeout=60)
        deadline = time.monotonic() + 30
        while ssm_client.get_command_invocation(CommandId=command_id, InstanceId=capture["instance_id"])[
                "Status"] != "InProgress":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        time.sleep(2)  # the stand-in has written half the image (4 MiB: not a whole part) and waits
        running = ssm_client.get_command_invocation(CommandId=command_id, InstanceId=capture["instance_id"])
        self.assertEqual((running["Status"], running["ResponseCode"], running["StandardOutputContent"]),
                         ("InProgress", -1, ""))
        self.control("POST", "clock", {"advance_seconds": 61})
        invocation = self.wait(command_id, capture["instance_id"], ssm_client)
        self.assertEqual((invocation["Status"], invocation["StatusDetails"]), ("TimedOut", "Execution Timed Out"))
        self.assertEqual(self.parts(capture), [])
        time.sleep(1)
        self.assertEqual(self.parts(capture), [], "nothing is uploaded after the timeout")

    def test_a_truncated_upload_leaves_s3_with_less_than_the_host_hashed(self):
        self.behaviour("web", "truncate")
        capture = self.prepare("web", case="IR-15-truncate")
        command_id = self.send(capture)
        invocation = self.wait(command_id, capture["instance_id"])
        self.assertEqual((invocation["Status"], invocation["ResponseCode"]), ("Success", 0), invocation)
        host_sha256, size, parts, _ = LINE.match(invocation["StandardOutputContent"].strip()).groups()
        expected = image_bytes(capture["instance_id"], MEMORY_MIB)
        self.assertEqual((host_sha256, int(size), int(parts)),
                         (hashlib.sha256(expected).hexdigest(), len(expected), 2))
        self.assertEqual([p["PartNumber"] for p in self.parts(capture)], [1])
        stored = self.complete(capture)
        self.assertEqual(stored, expected[:PART_BYTES])
        self.assertNotEqual(hashlib.sha256(stored).hexdigest(), host_sha256)

    def test_an_image_larger_than_the_presigned_parts_fails_the_upload(self):
        self.behaviour("web", "oversize")
        capture = self.prepare("web", case="IR-15-oversize", parts=2)
        invocation = self.wait(self.send(capture), capture["instance_id"])
        self.assertEqual((invocation["Status"], invocation["ResponseCode"]), ("Failed", 5), invocation)
        self.assertIn("capture larger than the presigned parts (2 parts of 5242880 bytes)",
                      invocation["StandardErrorContent"])
        self.assertEqual([p["PartNumber"] for p in self.parts(capture)], [1, 2])

    def test_a_document_other_than_forensnaps_is_left_to_moto(self):
        """With policies off (an administrator), AWS-RunShellScript is recorded and runs nothing."""
        self.control("POST", "settings", {"policies": False})
        self.addCleanup(self.control, "POST", "settings", {"policies": True})
        admin = boto3.session.Session(aws_access_key_id=self.member["admin_access_key_id"],
                                      aws_secret_access_key=self.member["admin_secret_access_key"],
                                      region_name=REGION)
        ssm_client = self.client(admin, "ssm")
        before = len(self.control("GET", "ssm/commands")["commands"])
        ssm_client.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[self.instances["web"]["instance_id"]],
                                Parameters={"commands": ["touch /tmp/forensnap-world-must-not-run"]})
        self.assertEqual(len(self.control("GET", "ssm/commands")["commands"]), before)
        self.assertFalse(os.path.exists("/tmp/forensnap-world-must-not-run"))

    # --- presigned URLs ----------------------------------------------------------------------------

    def test_an_expired_presigned_url_is_refused(self):
        # Signed by the real clock; valid for 60 seconds of the world clock (which other tests
        # may have moved on).
        offset = self.control("POST", "clock", {"advance_seconds": 0})["offset_seconds"]
        capture = self.prepare("web", parts=1, case="IR-15-expired", expires=60 + int(offset))
        url = capture["parameters"]["PlanUrl"][0]
        self.assertEqual(json.loads(urllib.request.urlopen(url, timeout=30).read())["part_bytes"], PART_BYTES)
        self.control("POST", "clock", {"advance_seconds": 61})
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=30)
        body = caught.exception.read().decode()
        self.assertEqual(caught.exception.code, 403)
        self.assertIn("<Code>AccessDenied</Code>", body)
        self.assertIn("Request has expired", body)

    def test_a_sigv2_presigned_url_is_refused(self):
        sigv2 = self.collector.client("s3", endpoint_url=self.endpoint, config=Config(
            s3={"addressing_style": "path"}, signature_version="s3"))
        url = sigv2.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.forensic["avml_key"]},
                                           ExpiresIn=600)
        self.assertIn("AWSAccessKeyId=", url)
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=30)
        self.assertEqual(caught.exception.code, 400)
        self.assertIn("Please use AWS4-HMAC-SHA256", caught.exception.read().decode())

    def test_a_changed_presigned_url_is_refused(self):
        capture = self.prepare("web", parts=2, case="IR-15-tampered")
        plan_url = capture["parameters"]["PlanUrl"][0]
        plan = json.loads(urllib.request.urlopen(plan_url, timeout=30).read())
        one = plan["parts"][0]["url"]
        for changed in (one.replace("partNumber=1", "partNumber=3"),
                        one.replace("/data/memory.lime", "/data/other.lime"),
                        plan_url.replace("plan.json", "other.json")):
            with self.subTest(url=changed):
                method = "GET" if "plan" in changed or "other.json" in changed else "PUT"
                request = urllib.request.Request(changed, data=b"x" if method == "PUT" else None, method=method)
                with self.assertRaises(urllib.error.HTTPError) as caught:
                    urllib.request.urlopen(request, timeout=30)
                self.assertEqual(caught.exception.code, 403)
                self.assertIn("<Code>SignatureDoesNotMatch</Code>", caught.exception.read().decode())

    def test_presigned_requests_are_authorised_as_their_signer(self):
        capture = self.prepare("web", parts=1, case="IR-15-signer")
        authz.reset()
        urllib.request.urlopen(capture["parameters"]["AvmlUrl"][0], timeout=30).read()
        decision, = [d for d in authz.log_snapshot() if d["action"] == "s3:GetObject"]
        self.assertEqual(decision["principal"], self.forensic["operator_arn"])
        self.assertTrue(decision["principal"].startswith("arn:aws:sts::123456789012:assumed-role/forensnap-collector/"))
        self.assertEqual(decision["resource"], f"arn:aws:s3:::{self.bucket}/{self.forensic['avml_key']}")
        # A URL signed by someone the bucket policy refuses writes to is refused as them.
        admin = boto3.session.Session(aws_access_key_id=self.forensic["admin_access_key_id"],
                                      aws_secret_access_key=self.forensic["admin_secret_access_key"],
                                      region_name=REGION)
        url = self.client(admin, "s3").generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": capture["key"], "UploadId": capture["upload_id"],
                                   "PartNumber": 1}, ExpiresIn=600)
        md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()  # noqa: S324 - S3's Content-MD5
        request = urllib.request.Request(url, data=b"x", method="PUT", headers={"Content-MD5": md5})
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        self.assertEqual(caught.exception.code, 403)
        self.assertIn("DenyWritesExceptCollectorRole", caught.exception.read().decode())

    # --- the script without python3 -----------------------------------------------------------------

    def test_the_script_reads_the_plan_without_python3(self):
        """The document's script on a host without python3: the plan is read with grep and sed.
        Run directly (not by the agent), with a PATH of the tools it needs and no python3; the
        "AVML" is a shell script uploaded for the test, its hash pinned."""
        tools = tempfile.mkdtemp(prefix="forensnap-ssm-tools-")
        scratch = tempfile.mkdtemp(prefix="forensnap-ssm-scratch-")
        self.addCleanup(shutil.rmtree, tools, True)
        self.addCleanup(shutil.rmtree, scratch, True)
        for tool in ("bash", "curl", "sha256sum", "md5sum", "split", "tee", "mkfifo", "base64", "mktemp", "stat",
                     "df", "awk", "sed", "grep", "cut", "wc", "cat", "head", "tail", "rm", "chmod", "sleep"):
            found = shutil.which(tool)
            self.assertIsNotNone(found, tool)
            os.symlink(found, os.path.join(tools, tool))
        fake = b"#!/bin/bash\nhead -c 7000000 /dev/zero > \"$1\"\n"
        fake_key = "tools/avml/test-shell/avml"
        self.s3.put_object(Bucket=self.bucket, Key=fake_key, Body=fake, ChecksumAlgorithm="SHA256")
        capture = self.prepare("web", parts=2, case="IR-15-nopython")
        values = {"AvmlUrl": self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": fake_key},
                                                            ExpiresIn=600),
                  "AvmlSha256": hashlib.sha256(fake).hexdigest(), "PlanUrl": capture["parameters"]["PlanUrl"][0]}
        template = t.load_template(t.MEMBER_TEMPLATE)["Resources"]["MemoryCaptureDocument"]["Properties"]
        script = ssm.substitute(template["Content"]["mainSteps"][0]["inputs"]["runCommand"][0], values)
        ran = subprocess.run([os.path.join(tools, "bash"), "-c", script], capture_output=True, timeout=120,
                             env={"PATH": tools, "FORENSNAP_SCRATCH_ROOT": scratch})
        self.assertEqual(ran.returncode, 0, ran.stderr.decode())
        host_sha256, size, parts, _ = LINE.match(ran.stdout.decode().strip()).groups()
        self.assertEqual((host_sha256, int(size), int(parts)),
                         (hashlib.sha256(b"\0" * 7000000).hexdigest(), 7000000, 2))
        self.assertEqual(os.listdir(scratch), [], "the scratch directory is removed")

    # --- policies ----------------------------------------------------------------------------------

    def test_the_member_role_may_run_forensnaps_document_and_nothing_else(self):
        member = self.member_session()
        ssm_client = self.client(member, "ssm")
        web = self.instances["web"]["instance_id"]

        def refused(call, action):
            with self.assertRaises(ClientError) as caught:
                call()
            self.assertEqual(caught.exception.response["Error"]["Code"], "AccessDeniedException")
            self.assertIn(action, caught.exception.response["Error"]["Message"])
            return caught.exception.response["Error"]["Message"]

        message = refused(lambda: ssm_client.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[web],
                                                          Parameters={"commands": ["id"]}), "ssm:SendCommand")
        self.assertIn("document/AWS-RunShellScript", message)
        self.assertIn("DenyCommandsButForensnapMemoryCapture", message)
        refused(lambda: ssm_client.start_session(Target=web), "ssm:StartSession")
        refused(lambda: ssm_client.update_document(Name=DOCUMENT, Content="{}", DocumentVersion="$LATEST"),
                "ssm:UpdateDocument")
        refused(lambda: ssm_client.delete_document(Name=DOCUMENT), "ssm:DeleteDocument")
        authz.reset()
        capture = self.prepare("web", parts=1, case="IR-15-policy")
        command_id = self.send(capture, ssm_client)
        self.wait(command_id, web, ssm_client)
        ssm_client.describe_instance_information()
        types = self.client(member, "ec2").describe_instance_types(InstanceTypes=["t3.micro"])["InstanceTypes"]
        self.assertEqual(types[0]["MemoryInfo"]["SizeInMiB"], 1024)
        used = {(d["action"], d["resource"]) for d in authz.log_snapshot()
                if d["allowed"] and d["principal"].startswith(f"arn:aws:sts::{MEMBER}:assumed-role/ForensnapCollector/")}
        self.assertLessEqual({
            ("ssm:SendCommand", f"arn:aws:ssm:{REGION}:{MEMBER}:document/{DOCUMENT}"),
            ("ssm:SendCommand", f"arn:aws:ec2:{REGION}:{MEMBER}:instance/{web}"),
            ("ssm:GetCommandInvocation", "*"),
            ("ssm:DescribeInstanceInformation", "*"), ("ec2:DescribeInstanceTypes", "*")}, used)
        # What the template grants in SSM is exactly that.
        document = t.load_template(t.MEMBER_TEMPLATE)["Resources"]["CollectorRole"]["Properties"]["Policies"][0]
        granted = {a for st in document["PolicyDocument"]["Statement"] if isinstance(st, dict) and st.get("Effect") == "Allow"
                   for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]) if a.startswith("ssm:")}
        self.assertEqual(granted, {"ssm:SendCommand", "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation",
                                   "ssm:DescribeDocument"})

    def test_cloudtrail_records_the_command_without_its_parameters(self):
        capture = self.prepare("web", parts=1, case="IR-15-trail")
        member = self.member_session()
        command_id = self.send(capture, self.client(member, "ssm"))
        self.wait(command_id, capture["instance_id"])
        admin = boto3.session.Session(aws_access_key_id=self.member["admin_access_key_id"],
                                      aws_secret_access_key=self.member["admin_secret_access_key"],
                                      region_name=REGION)
        events = self.client(admin, "cloudtrail").lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "SendCommand"}])["Events"]
        records = [json.loads(e["CloudTrailEvent"]) for e in events]
        mine = [r for r in records if r["userIdentity"].get("accessKeyId") == member.get_credentials().access_key]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["requestParameters"]["parameters"], "HIDDEN_DUE_TO_SECURITY_REASONS")
        self.assertEqual(mine[0]["requestParameters"]["documentName"], DOCUMENT)
        self.assertNotIn("X-Amz-Signature", json.dumps(mine[0]))

    # --- the seed ------------------------------------------------------------------------------------

    def test_the_seed_pins_the_stand_in_avml_and_names_it_in_the_config(self):
        with open(avml.__file__, "rb") as handle:
            source = handle.read()
        self.assertEqual(self.forensic["avml_key"], "tools/avml/v0.14.0-forensnap-world/avml")
        self.assertEqual(self.forensic["avml_sha256"], hashlib.sha256(source).hexdigest())
        stored = self.s3.get_object(Bucket=self.bucket, Key=self.forensic["avml_key"])["Body"].read()
        self.assertEqual(stored, source)
        with open(self.world["config"], "rb") as handle:
            text = handle.read().decode()
        config = tomllib.loads(text)
        self.assertEqual(config["memory"], {"transfer_bucket": self.forensic["transfer_bucket"],
                                            "avml_key": self.forensic["avml_key"],
                                            "avml_sha256": self.forensic["avml_sha256"]})
        self.assertTrue(text.rstrip().endswith(f'avml_sha256 = "{self.forensic["avml_sha256"]}"'))


class StandInAvmlTest(unittest.TestCase):
    """The image the stand-in writes, without a world."""

    def test_lime_ranges_and_planted_strings(self):
        import struct

        data = image_bytes("i-0123456789abcdef0", 64)
        self.assertEqual(len(data), avml.image_size(64))
        first = struct.unpack("<IIQQ8x", data[:32])
        self.assertEqual(first, (0x4C694D45, 1, 0, 16 * avml.MIB - 1))
        second = struct.unpack("<IIQQ8x", data[32 + 16 * avml.MIB:64 + 16 * avml.MIB])
        self.assertEqual(second, (0x4C694D45, 1, 17 * avml.MIB, 17 * avml.MIB + 48 * avml.MIB - 1))
        for n in range(8):
            self.assertEqual(data.count(f"FORENSNAP-PLANTED-i-0123456789abcdef0-{n}\0".encode()), 1)
        self.assertEqual(data.count(b"-----BEGIN RSA PRIVATE KEY-----"), 1)
        self.assertEqual(data, image_bytes("i-0123456789abcdef0", 64), "deterministic")
        self.assertNotEqual(data[64:1064], image_bytes("i-0fedcba9876543210", 64)[64:1064])


class DocumentScriptTest(unittest.TestCase):
    """Lines of forensnap's document script, run alone."""

    def test_the_reported_size_stays_an_integer_past_4_gib(self):
        """A 16 GiB host: awk's ``print`` wrote the sum of the parts as 1.71799e+10, which the
        script's integer test refused ("AVML wrote an empty image"); found by scripts/bench-memory."""
        content = t.load_template(t.MEMBER_TEMPLATE)["Resources"]["MemoryCaptureDocument"]["Properties"]["Content"]
        script = "\n".join(content["mainSteps"][0]["inputs"]["runCommand"])
        (line,) = [l.strip() for l in script.splitlines() if l.strip().startswith('bytes="$(awk')]
        with tempfile.TemporaryDirectory() as scratch:
            with open(os.path.join(scratch, "uploaded"), "w") as handle:
                for n in range(1, 257):
                    handle.write(f"{n} {64 * 2**20}\n")
            out = subprocess.run(["bash", "-c", f'scratch="{scratch}"; {line}; echo "$bytes"'],
                                 capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(out, str(16 * 2**30))


if __name__ == "__main__":
    unittest.main()
