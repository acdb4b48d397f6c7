"""CloudTrail as the world serves it: LookupEvents (one lookup attribute, newest first, pages
that stay put while events arrive, the 2 requests/s quota), ListPublicKeys, and trails whose
log and digest files an independent implementation of ``aws cloudtrail validate-logs``
(:class:`Validator`, written from awscli/customizations/cloudtrail/validation.py and the AWS
documentation, sharing no code with ``trails``) accepts -- and in which it names every kind of
tampering. A seeded StopLogging stops delivery; seeded events are found by the instance id of
the instance-profile session that made them.

Run: ``cd localworld && $PY -m unittest forensnap_world.test_cloudtrail -v`` (``scripts/test``
discovers it with the policy tests).
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import unittest
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .policy.test_must_deny import Principal, WorldTestCase, control

REGION = "us-east-1"
MEMBER = "111111111111"
UTC = datetime.timezone.utc


# --- an independent validate-logs ----------------------------------------------------------------


def _der_item(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def pkcs1_public_key(der: bytes):
    """An RSA public key from DER PKCS#1 ``RSAPublicKey`` (SEQUENCE of modulus and exponent);
    raises on anything else (a SubjectPublicKeyInfo starts with a nested SEQUENCE)."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    tag, start, end = _der_item(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER SEQUENCE")
    tag, n_start, n_end = _der_item(der, start)
    if tag != 0x02:
        raise ValueError("not PKCS#1 RSAPublicKey: the first element is not the modulus INTEGER")
    tag, e_start, e_end = _der_item(der, n_end)
    if tag != 0x02 or e_end != end:
        raise ValueError("not PKCS#1 RSAPublicKey: no exponent INTEGER")
    modulus = int.from_bytes(der[n_start:n_end], "big")
    exponent = int.from_bytes(der[e_start:e_end], "big")
    return RSAPublicNumbers(exponent, modulus).public_key()


class Validator:
    """``aws cloudtrail validate-logs`` for one trail and source region: the trail's digests
    listed from the bucket, walked from the newest back through each one's previous digest; each
    digest's signature checked with the public key ListPublicKeys gives for its fingerprint over
    ``digestEndTime\\nbucket/key\\nsha256(uncompressed digest)\\nprevious signature|null``, its
    location, its predecessor's hash, and every log file it lists by SHA-256 of its uncompressed
    content. Problems are named as validate-logs names them."""

    def __init__(self, s3, cloudtrail, bucket: str, prefix: str, account: str, region: str, trail: str,
                 home_region: str):
        self.s3, self.cloudtrail = s3, cloudtrail
        self.bucket, self.prefix = bucket, prefix
        self.account, self.region, self.trail, self.home = account, region, trail, home_region
        self.valid_digests: list[dict] = []
        self.valid_logs: list[str] = []
        self.problems: list[str] = []

    def _key(self, rest: str) -> str:
        return f"{self.prefix}/{rest}" if self.prefix else rest

    def digest_keys(self) -> list[str]:
        pattern = re.compile("^" + re.escape(self._key(f"AWSLogs/{self.account}/CloudTrail-Digest/{self.region}/"))
                             + r"\d+/\d+/\d+/" + re.escape(f"{self.account}_CloudTrail-Digest_{self.region}_"
                                                            f"{self.trail}_{self.home}_") + r"\d{8}T\d{6}Z\.json\.gz$")
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key("AWSLogs/")):
            keys += [o["Key"] for o in page.get("Contents", []) if pattern.match(o["Key"])]
        return sorted(keys, key=lambda k: k[-24:-8])

    def public_keys(self, start: datetime.datetime, end: datetime.datetime) -> dict:
        answer = self.cloudtrail.list_public_keys(StartTime=start, EndTime=end)["PublicKeyList"]
        return {k["Fingerprint"]: k for k in answer}

    def run(self, start: datetime.datetime, end: datetime.datetime) -> "Validator":
        listed = self.digest_keys()
        keys = self.public_keys(start, end)
        key = listed.pop() if listed else None
        expected_hash: dict[str, str] = {}
        while key:
            try:
                digest, content, signature = self._fetch(key)
            except ClientError as err:
                if err.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                    raise
                self.problems.append(f"Digest file\ts3://{self.bucket}/{key}\tINVALID: not found")
                key = self._older(listed, key)
                continue
            why = self._invalid(key, digest, content, signature, keys, expected_hash)
            if why:
                self.problems.append(f"Digest file\ts3://{self.bucket}/{key}\tINVALID: {why}")
                key = self._older(listed, key)
                continue
            self.valid_digests.append(digest)
            for log in digest["logFiles"]:
                self._check_log(log)
            if digest["previousDigestS3Bucket"] is None:
                key = self._older(listed, key)  # the start of a chain: any older one is another chain
            else:
                key = digest["previousDigestS3Object"]
                expected_hash[key] = digest["previousDigestHashValue"]
        return self

    @staticmethod
    def _older(listed: list[str], key: str) -> str | None:
        while listed:
            candidate = listed.pop()
            if candidate[-24:-8] < key[-24:-8]:
                return candidate
        return None

    def _fetch(self, key: str):
        got = self.s3.get_object(Bucket=self.bucket, Key=key)
        content = gzip.decompress(got["Body"].read())
        metadata = got["Metadata"]
        return json.loads(content), content, (metadata.get("signature"), metadata.get("signature-algorithm"))

    def _invalid(self, key, digest, content, signature, keys, expected_hash) -> str | None:
        for field in ("digestPublicKeyFingerprint", "digestS3Bucket", "digestS3Object",
                      "previousDigestSignature", "digestEndTime", "digestStartTime"):
            if field not in digest:
                return "invalid format"
        if (digest["digestS3Bucket"], digest["digestS3Object"]) != (self.bucket, key):
            return "has been moved from its original location"
        if signature[0] is None or signature[1] != "SHA256withRSA":
            return "signature verification failed"
        public = keys.get(digest["digestPublicKeyFingerprint"])
        if public is None:
            return f"public key not found for fingerprint {digest['digestPublicKeyFingerprint']}"
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        previous = digest["previousDigestSignature"]
        signed = (f"{digest['digestEndTime']}\n{digest['digestS3Bucket']}/{digest['digestS3Object']}\n"
                  f"{hashlib.sha256(content).hexdigest()}\n{'null' if previous is None else previous}")
        try:
            pkcs1_public_key(public["Value"]).verify(bytes.fromhex(signature[0]), signed.encode(),
                                                     padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "signature verification failed"
        if key in expected_hash and expected_hash[key] != hashlib.sha256(content).hexdigest():
            return "hash does not match the next digest's previousDigestHashValue"
        return None

    def _check_log(self, log: dict) -> None:
        where = f"Log file\ts3://{log['s3Bucket']}/{log['s3Object']}\tINVALID"
        try:
            body = self.s3.get_object(Bucket=log["s3Bucket"], Key=log["s3Object"])["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            self.problems.append(f"{where}: not found")
            return
        if hashlib.sha256(gzip.decompress(body)).hexdigest() != log["hashValue"]:
            self.problems.append(f"{where}: hash value doesn't match")
            return
        self.valid_logs.append(log["s3Object"])


# --- helpers ---------------------------------------------------------------------------------------


class Paced:
    """LookupEvents at most twice a second (the quota), for tests that page a lot."""

    def __init__(self, client) -> None:
        self.client, self.last = client, 0.0

    def __call__(self, **kwargs) -> dict:
        wait = self.last + 0.55 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last = time.monotonic()
        return self.client.lookup_events(**kwargs)

    def all(self, **kwargs) -> list[dict]:
        events, token = [], None
        while True:
            page = self(**kwargs, **({"NextToken": token} if token else {}))
            events += page["Events"]
            token = page.get("NextToken")
            if not token:
                return events


def error_code(call) -> str:
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "no error"


def world_now(endpoint: str) -> datetime.datetime:
    offset = control(endpoint, "clock", {"advance_seconds": 0})["offset_seconds"]
    return datetime.datetime.now(UTC) + datetime.timedelta(seconds=offset)


# --- LookupEvents ----------------------------------------------------------------------------------


class LookupEventsTest(WorldTestCase):
    """A bare world: IAM users in a member account call EC2 and IAM; LookupEvents finds them."""

    @classmethod
    def setUpClass(cls):
        cls.start_world()
        try:
            cls.alice = cls.user(MEMBER, "alice")
            cls.bob = cls.user(MEMBER, "bob", policy=None)
            cls.ec2 = cls.alice.client("ec2")
            for _ in range(3):
                cls.ec2.describe_volumes()
                control(cls.endpoint, "clock", {"advance_seconds": 61})
            cls.ec2.describe_instances()
            cls.alice.client("iam").list_users()
            # No client-side checks: the world answers MaxResults 0 itself, as AWS does.
            cls.lookup = Paced(cls.alice.session.client(
                "cloudtrail", endpoint_url=cls.endpoint,
                config=Config(retries={"max_attempts": 1}, parameter_validation=False)))
        except BaseException:
            cls.tearDownClass()
            raise

    def test_every_call_is_an_event_with_its_caller(self):
        events = self.lookup.all(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "alice"}])
        names = [e["EventName"] for e in events]
        for name in ("DescribeVolumes", "DescribeInstances", "ListUsers"):
            self.assertIn(name, names)
        event = next(e for e in events if e["EventName"] == "DescribeInstances")
        self.assertEqual((event["ReadOnly"], event["EventSource"], event["Username"]),
                         ("true", "ec2.amazonaws.com", "alice"))
        self.assertIsInstance(event["EventTime"], datetime.datetime)
        record = json.loads(event["CloudTrailEvent"])
        self.assertEqual(record["eventVersion"], "1.11")
        self.assertEqual(record["userIdentity"]["type"], "IAMUser")
        self.assertEqual(record["userIdentity"]["arn"], self.alice.arn)
        self.assertEqual(record["userIdentity"]["accessKeyId"], event["AccessKeyId"])
        self.assertEqual((record["sourceIPAddress"], record["awsRegion"], record["recipientAccountId"]),
                         ("127.0.0.1", REGION, MEMBER))
        self.assertTrue(record["userAgent"].startswith("Boto3/"))
        self.assertEqual((record["eventType"], record["managementEvent"], record["eventCategory"], record["readOnly"]),
                         ("AwsApiCall", True, "Management", True))
        self.assertEqual(record["eventID"], event["EventId"])
        self.assertTrue(record["eventTime"].endswith("Z") and "." not in record["eventTime"])
        # The world's builder (the seed's clients, which made alice) is not an actor.
        about_alice = self.lookup(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "alice"}])
        self.assertNotIn("CreateUser", [e["EventName"] for e in about_alice["Events"]])

    def test_newest_first_and_paging_by_max_results(self):
        query = {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "DescribeVolumes"}]}
        everything = self.lookup(**query)["Events"]
        self.assertGreaterEqual(len(everything), 3)
        pages, token = [], None
        while True:
            page = self.lookup(**query, MaxResults=1, **({"NextToken": token} if token else {}))
            self.assertLessEqual(len(page["Events"]), 1)
            pages += page["Events"]
            token = page.get("NextToken")
            if not token:
                break
        self.assertEqual([e["EventId"] for e in pages], [e["EventId"] for e in everything])
        order = [(-e["EventTime"].timestamp(), e["EventId"]) for e in everything]
        self.assertEqual(order, sorted(order), "newest first, ties by event id")

    def test_one_lookup_attribute_and_max_results_within_1_to_50(self):
        two = [{"AttributeKey": "Username", "AttributeValue": "alice"},
               {"AttributeKey": "EventName", "AttributeValue": "ListUsers"}]
        self.assertEqual(error_code(lambda: self.lookup(LookupAttributes=two)), "InvalidLookupAttributesException")
        for wrong in (0, 51):
            self.assertEqual(error_code(lambda: self.lookup(MaxResults=wrong)), "InvalidMaxResultsException")
        self.assertEqual(len(self.lookup(MaxResults=50)["Events"]) <= 50, True)
        self.assertEqual(error_code(lambda: self.lookup(NextToken="not-a-token")), "InvalidNextTokenException")

    def test_the_time_range_is_inclusive(self):
        event = self.lookup(LookupAttributes=[{"AttributeKey": "EventName",
                                               "AttributeValue": "ListUsers"}])["Events"][0]
        at = event["EventTime"]
        found = self.lookup(StartTime=at, EndTime=at)["Events"]
        self.assertIn(event["EventId"], [e["EventId"] for e in found])
        self.assertTrue(all(e["EventTime"] == at for e in found))
        self.assertEqual(error_code(lambda: self.lookup(StartTime=at, EndTime=at - datetime.timedelta(seconds=1))),
                         "InvalidTimeRangeException")
        by_id = self.lookup(LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": event["EventId"]}])
        self.assertEqual([e["EventId"] for e in by_id["Events"]], [event["EventId"]])
        by_read_only = self.lookup(LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "false"}])
        self.assertTrue(all(e["ReadOnly"] == "false" for e in by_read_only["Events"]))

    def test_pages_stay_put_while_new_events_arrive(self):
        query = {"LookupAttributes": [{"AttributeKey": "AccessKeyId",
                                       "AttributeValue": self.alice.session.get_credentials().access_key}]}
        first = self.lookup(**query, MaxResults=2)
        before = first["Events"]
        for _ in range(4):
            self.ec2.describe_volumes()  # new events, newer than every one of the first page
        token, rest, calls = first["NextToken"], [], 1
        while token:
            page = self.lookup(**query, MaxResults=2, NextToken=token)
            rest += page["Events"]
            token = page.get("NextToken")
            calls += 1
        ids = [e["EventId"] for e in before + rest]
        self.assertEqual(len(ids), len(set(ids)), "no event twice")
        fresh = self.lookup.all(**query)
        self.assertEqual(len(fresh), len(ids) + 4 + calls,
                         "the snapshot holds every event up to the first page; later ones (the four calls "
                         "and the LookupEvents calls themselves) only in a new lookup")
        self.assertEqual([e["EventId"] for e in fresh if e["EventId"] in set(ids)], ids)
        # A token is for the parameters it came with.
        token = self.lookup(**query, MaxResults=1)["NextToken"]
        self.assertEqual(error_code(lambda: self.lookup(MaxResults=1, NextToken=token)), "InvalidNextTokenException")

    def test_refused_and_failed_calls_are_events_with_their_error(self):
        control(self.endpoint, "settings", {"policies": True})
        try:
            self.assertEqual(error_code(lambda: self.bob.client("ec2").describe_snapshots()), "UnauthorizedOperation")
            self.assertEqual(error_code(lambda: self.bob.client("iam").list_roles()), "AccessDenied")
        finally:
            control(self.endpoint, "settings", {"policies": False})
        self.assertEqual(error_code(lambda: self.alice.client("iam").get_role(RoleName="nobody")), "NoSuchEntity")
        bob = {json.loads(e["CloudTrailEvent"])["eventName"]: json.loads(e["CloudTrailEvent"])
               for e in self.lookup(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "bob"}])["Events"]}
        self.assertEqual(bob["DescribeSnapshots"]["errorCode"], "Client.UnauthorizedOperation")
        self.assertIn("not authorized", bob["DescribeSnapshots"]["errorMessage"])
        self.assertEqual(bob["ListRoles"]["errorCode"], "AccessDenied")
        failed = json.loads(self.lookup(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "GetRole"}])
                            ["Events"][0]["CloudTrailEvent"])
        self.assertEqual(failed["errorCode"], "NoSuchEntity")
        self.assertEqual(failed["requestParameters"], {"roleName": "nobody"})

    def test_data_events_are_left_out(self):
        s3 = self.alice.client("s3")
        s3.create_bucket(Bucket="alice-data")
        s3.put_object(Bucket="alice-data", Key="k", Body=b"x")
        s3.get_object(Bucket="alice-data", Key="k")
        s3.list_objects_v2(Bucket="alice-data")
        names = {e["EventName"] for e in self.lookup(
            LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "s3.amazonaws.com"}])["Events"]}
        self.assertEqual(names, {"CreateBucket"})
        created = self.lookup(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "alice-data"}])
        self.assertEqual([e["EventName"] for e in created["Events"]], ["CreateBucket"])

    def test_resources_name_what_a_call_touched(self):
        ec2 = self.alice.client("ec2")
        volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        events = self.lookup(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": snapshot}])["Events"]
        self.assertEqual([e["EventName"] for e in events], ["CreateSnapshot"])
        self.assertIn({"ResourceType": "AWS::EC2::Volume", "ResourceName": volume}, events[0]["Resources"])
        by_type = self.lookup(LookupAttributes=[{"AttributeKey": "ResourceType", "AttributeValue": "AWS::EC2::Volume"}])
        self.assertEqual({e["EventName"] for e in by_type["Events"]}, {"CreateVolume", "CreateSnapshot"})

    def test_a_new_access_key_is_named_by_its_event(self):
        iam = self.alice.client("iam")
        iam.create_user(UserName="carol")
        key = iam.create_access_key(UserName="carol")["AccessKey"]["AccessKeyId"]
        events = self.lookup(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key}])["Events"]
        self.assertEqual([e["EventName"] for e in events], ["CreateAccessKey"])
        record = json.loads(events[0]["CloudTrailEvent"])
        self.assertEqual(record["responseElements"]["accessKey"]["accessKeyId"], key)
        self.assertNotIn("secret", json.dumps(record).lower(), "never the secret")
        self.assertEqual(record["requestParameters"], {"userName": "carol"})

    def test_two_requests_per_second_per_account_and_region(self):
        region = "eu-central-1"  # a bucket of its own, untouched by the other tests
        once = Config(retries={"total_max_attempts": 1})  # no retry: see every answer
        client = self.alice.session.client("cloudtrail", region_name=region, endpoint_url=self.endpoint, config=once)

        def burst(count: int) -> tuple[list, float]:
            answers, started = [], time.monotonic()
            for _ in range(count):
                try:
                    client.lookup_events(MaxResults=1)
                    answers.append(None)
                except ClientError as err:
                    answers.append(err.response)
            return answers, time.monotonic() - started

        time.sleep(1.1)
        answers, elapsed = burst(4)
        self.assertEqual(answers[:2], [None, None], "a burst of two")
        refused = [a for a in answers if a is not None]
        self.assertGreaterEqual(len(refused), 1 if elapsed < 0.5 else 0, f"4 calls in {elapsed:.2f} s")
        self.assertLessEqual(len(answers) - len(refused), 2 + int(elapsed * 2) + 1)
        for answer in refused:
            self.assertEqual((answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"],
                              answer["Error"]["Message"]), (400, "ThrottlingException", "Rate exceeded"))
        other = self.alice.session.client("cloudtrail", region_name="eu-west-3", endpoint_url=self.endpoint,
                                          config=once)
        self.assertEqual(error_code(lambda: other.lookup_events(MaxResults=1)), "no error", "another region's quota")
        time.sleep(0.6)
        self.assertEqual(error_code(lambda: client.lookup_events(MaxResults=1)), "no error", "refilled")

    def test_list_public_keys(self):
        client = self.alice.client("cloudtrail")
        now = world_now(self.endpoint)
        current = client.list_public_keys()["PublicKeyList"]
        self.assertEqual(len(current), 1)
        both = client.list_public_keys(StartTime=now - datetime.timedelta(days=29), EndTime=now)["PublicKeyList"]
        self.assertEqual(len(both), 2)
        older, newer = sorted(both, key=lambda k: k["ValidityStartTime"])
        self.assertEqual(newer["Fingerprint"], current[0]["Fingerprint"])
        self.assertEqual(older["ValidityEndTime"], newer["ValidityStartTime"])
        self.assertLess(older["ValidityStartTime"], now - datetime.timedelta(days=29))
        self.assertGreater(newer["ValidityEndTime"], now + datetime.timedelta(days=300))
        for key in both:
            self.assertEqual(key["Fingerprint"], hashlib.md5(key["Value"]).hexdigest())
            self.assertEqual(pkcs1_public_key(key["Value"]).key_size, 2048)
        old_only = client.list_public_keys(StartTime=now - datetime.timedelta(days=20),
                                           EndTime=now - datetime.timedelta(days=19))["PublicKeyList"]
        self.assertEqual([k["Fingerprint"] for k in old_only], [older["Fingerprint"]])


# --- trails ------------------------------------------------------------------------------------------

TRAIL_WORLD = """
region = "us-east-1"
policies = false
[forensic]
account = "123456789012"
evidence_bucket = "trail-test-evidence"
[[members]]
account = "111111111111"
external_id = "ext-0123456789abcdef"
[[members.instances]]
name = "web-1"
instance_profile = "web-1-role"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "web.img"
build = { kind = "zeros", size_mib = 1 }
[members.trail]
name = "org-trail"
bucket = "trail-logs-111111111111"
prefix = "ct"
history_hours = 6
[[members.trail_events]]
minutes_ago = 125
event_source = "sts.amazonaws.com"
event_name = "GetCallerIdentity"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
[[members.trail_events]]
minutes_ago = 113
event_source = "iam.amazonaws.com"
event_name = "CreateAccessKey"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
request_parameters = { userName = "backup-svc" }
[[members.trail_events]]
minutes_ago = 110
event_source = "iam.amazonaws.com"
event_name = "AttachUserPolicy"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
request_parameters = { userName = "backup-svc", policyArn = "arn:aws:iam::aws:policy/AdministratorAccess" }
error_code = "AccessDenied"
[[members.trail_events]]
minutes_ago = 95
event_source = "cloudtrail.amazonaws.com"
event_name = "StopLogging"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
request_parameters = { name = "arn:aws:cloudtrail:us-east-1:111111111111:trail/org-trail" }
"""


class TrailWorldTest(WorldTestCase):
    """A member with a 6-hour trail history (prefix ``ct``) whose last act is the attacker's
    StopLogging 95 minutes ago."""

    @classmethod
    def setUpClass(cls):
        from .seed import seed

        cls.start_world()
        cls.folder = tempfile.mkdtemp(prefix="forensnap-trail-test-")
        try:
            path = os.path.join(cls.folder, "world.toml")
            with open(path, "w") as handle:
                handle.write(TRAIL_WORLD)
            cls.world = seed(path, cls.endpoint)
            cls.seeded_at = world_now(cls.endpoint)
            member = cls.world["members"][0]
            cls.trail = member["trail"]
            cls.instance = member["instances"][0]
            cls.admin = Principal(cls.endpoint, member["admin_access_key_id"], member["admin_secret_access_key"])
            cls.s3, cls.cloudtrail = cls.admin.client("s3"), cls.admin.client("cloudtrail")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.folder, ignore_errors=True)

    def validator(self, trail: dict | None = None) -> Validator:
        trail = trail or self.trail
        return Validator(self.s3, self.cloudtrail, trail["bucket"], trail["prefix"], MEMBER, REGION,
                         trail["name"], trail["home_region"])

    def validate(self, trail: dict | None = None) -> Validator:
        end = world_now(self.endpoint) + datetime.timedelta(hours=1)
        return self.validator(trail).run(end - datetime.timedelta(days=2), end)

    def snapshot(self, bucket: str) -> dict:
        objects = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                got = self.s3.get_object(Bucket=bucket, Key=item["Key"])
                objects[item["Key"]] = (got["Body"].read(), got["Metadata"])
        return objects

    def restore(self, bucket: str, objects: dict) -> None:
        for key, (body, metadata) in objects.items():
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)

    def test_the_trail_answers_as_aws_describes_it(self):
        trail = self.cloudtrail.describe_trails(trailNameList=[self.trail["arn"]])["trailList"]
        self.assertEqual(len(trail), 1)
        self.assertEqual({k: trail[0][k] for k in ("Name", "S3BucketName", "S3KeyPrefix", "HomeRegion", "TrailARN",
                                                    "LogFileValidationEnabled", "IsMultiRegionTrail")},
                         {"Name": "org-trail", "S3BucketName": "trail-logs-111111111111", "S3KeyPrefix": "ct",
                          "HomeRegion": REGION, "TrailARN": self.trail["arn"], "LogFileValidationEnabled": True,
                          "IsMultiRegionTrail": True})
        status = self.cloudtrail.get_trail_status(Name="org-trail")
        self.assertFalse(status["IsLogging"], "the attacker stopped it")
        stopped = self.seeded_at - datetime.timedelta(minutes=95)
        self.assertLess(abs((status["StopLoggingTime"] - stopped).total_seconds()), 60)
        self.assertLess(status["StartLoggingTime"], self.seeded_at - datetime.timedelta(hours=5, minutes=59))
        ec2 = self.admin.client("ec2")
        instance = ec2.describe_instances(InstanceIds=[self.instance["instance_id"]])["Reservations"][0]["Instances"][0]
        self.assertEqual(instance["IamInstanceProfile"]["Arn"], self.instance["instance_profile_arn"])

    def test_seeded_events_are_found_by_the_instance_id(self):
        lookup = Paced(self.cloudtrail)
        events = lookup.all(LookupAttributes=[{"AttributeKey": "Username",
                                               "AttributeValue": self.instance["instance_id"]}])
        self.assertEqual([e["EventName"] for e in events],
                         ["StopLogging", "AttachUserPolicy", "CreateAccessKey", "GetCallerIdentity"])
        record = json.loads(events[-1]["CloudTrailEvent"])
        identity = record["userIdentity"]
        self.assertEqual(identity["type"], "AssumedRole")
        self.assertEqual(identity["arn"],
                         f"arn:aws:sts::{MEMBER}:assumed-role/web-1-role/{self.instance['instance_id']}")
        self.assertEqual(identity["sessionContext"]["sessionIssuer"]["arn"], self.instance["instance_role_arn"])
        self.assertEqual(identity["sessionContext"]["sessionIssuer"]["userName"], "web-1-role")
        self.assertEqual((record["sourceIPAddress"], identity["accessKeyId"]), ("203.0.113.50", "ASIAEXAMPLEATTACKER1"))
        refused = json.loads(events[1]["CloudTrailEvent"])
        self.assertEqual(refused["errorCode"], "AccessDenied")
        by_key = lookup(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "backup-svc"}])
        self.assertEqual([e["EventName"] for e in by_key["Events"]], ["AttachUserPolicy", "CreateAccessKey"])
        ops = lookup(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "ops-user"}], MaxResults=50)
        self.assertGreaterEqual(len(ops["Events"]), 23, "the operator's DescribeInstances every 15 minutes")

    def test_the_delivered_trail_validates(self):
        report = self.validate()
        self.assertEqual(report.problems, [])
        self.assertEqual(len(report.valid_digests), self.trail["digest_files"])
        self.assertEqual(len(report.valid_logs), self.trail["log_files"])
        digests = sorted(report.valid_digests, key=lambda d: d["digestEndTime"])
        self.assertIsNone(digests[0]["previousDigestS3Object"])
        for before, after in zip(digests, digests[1:]):
            self.assertEqual(after["digestStartTime"], before["digestEndTime"], "each starts where the last ended")
            self.assertEqual(after["previousDigestS3Object"], before["digestS3Object"])
        self.assertEqual(len({d["digestPublicKeyFingerprint"] for d in digests}), 2,
                         "the key changed 3 hours before world start, inside the 6-hour history")
        for digest in digests:
            self.assertTrue(digest["digestS3Object"].startswith(f"ct/AWSLogs/{MEMBER}/CloudTrail-Digest/{REGION}/"))
            for log in digest["logFiles"]:
                self.assertRegex(log["s3Object"], rf"^ct/AWSLogs/{MEMBER}/CloudTrail/{REGION}/\d{{4}}/\d\d/\d\d/"
                                                  rf"{MEMBER}_CloudTrail_{REGION}_\d{{8}}T\d{{4}}Z_[A-Za-z0-9]{{16}}\.json\.gz$")

    def test_stop_logging_stops_delivery(self):
        stopped = self.seeded_at - datetime.timedelta(minutes=95, seconds=30)
        report = self.validate()
        newest = max(d["digestEndTime"] for d in report.valid_digests)
        self.assertLess(datetime.datetime.fromisoformat(newest.replace("Z", "+00:00")),
                        self.seeded_at - datetime.timedelta(minutes=30), "no digest after the hour it stopped in")
        records = []
        for key in report.valid_logs:
            body = self.s3.get_object(Bucket=self.trail["bucket"], Key=key)["Body"].read()
            records += json.loads(gzip.decompress(body))["Records"]
        times = [datetime.datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) for r in records]
        self.assertLess(max(times), stopped + datetime.timedelta(minutes=1))
        self.assertEqual(records[times.index(max(times))]["eventName"], "StopLogging", "its own event is the last")
        before = len(self.snapshot(self.trail["bucket"]))
        control(self.endpoint, "clock", {"advance_seconds": 3 * 3600})
        delivered = control(self.endpoint, "cloudtrail/deliver", {})
        self.assertEqual(len(self.snapshot(self.trail["bucket"])), before, delivered)

    def test_a_trail_started_through_the_api_delivers_on_demand(self):
        s3, cloudtrail = self.s3, self.cloudtrail
        s3.create_bucket(Bucket="second-trail-logs")
        cloudtrail.create_trail(Name="second", S3BucketName="second-trail-logs", EnableLogFileValidation=True)
        cloudtrail.start_logging(Name="second")
        self.admin.client("ec2").describe_instances()
        control(self.endpoint, "clock", {"advance_seconds": 2 * 3600 + 60})
        self.admin.client("ec2").describe_volumes()
        control(self.endpoint, "cloudtrail/deliver", {})
        trail = {"bucket": "second-trail-logs", "prefix": "", "name": "second", "home_region": REGION}
        report = self.validate(trail)
        self.assertEqual(report.problems, [])
        self.assertEqual(len(report.valid_digests), 2)
        self.assertGreaterEqual(len(report.valid_logs), 1)
        cloudtrail.stop_logging(Name="second")
        control(self.endpoint, "clock", {"advance_seconds": 3600})
        self.assertEqual(control(self.endpoint, "cloudtrail/deliver", {})["digest_files"], 1, "the last hour's digest")
        control(self.endpoint, "clock", {"advance_seconds": 3600})
        self.assertEqual(control(self.endpoint, "cloudtrail/deliver", {}), {"log_files": 0, "digest_files": 0})
        report = self.validate(trail)
        self.assertEqual((report.problems, len(report.valid_digests)), ([], 3))
        names = set()
        for key in report.valid_logs:
            body = s3.get_object(Bucket="second-trail-logs", Key=key)["Body"].read()
            names |= {r["eventName"] for r in json.loads(gzip.decompress(body))["Records"]}
        self.assertTrue({"StartLogging", "DescribeInstances", "DescribeVolumes", "StopLogging"} <= names, names)
        self.assertFalse(cloudtrail.get_trail_status(Name="second")["IsLogging"])

    def test_each_kind_of_tampering_is_named(self):
        bucket = self.trail["bucket"]
        original = self.snapshot(bucket)
        expected = {
            "log-modified": "Log file\ts3://{b}/{k}\tINVALID: hash value doesn't match",
            "log-deleted": "Log file\ts3://{b}/{k}\tINVALID: not found",
            "digest-modified": "Digest file\ts3://{b}/{k}\tINVALID: signature verification failed",
            "digest-deleted": "Digest file\ts3://{b}/{k}\tINVALID: not found",
            "signature-replaced": "Digest file\ts3://{b}/{k}\tINVALID: signature verification failed",
        }
        for kind, message in expected.items():
            with self.subTest(kind=kind):
                try:
                    key = control(self.endpoint, "cloudtrail/tamper",
                                  {"account": MEMBER, "region": REGION, "kind": kind, "trail": "org-trail"})["key"]
                    report = self.validate()
                    self.assertEqual(report.problems, [message.format(b=bucket, k=key)])
                finally:
                    self.restore(bucket, original)
        self.assertEqual(self.validate().problems, [])
        first = control(self.endpoint, "cloudtrail/tamper", {"account": MEMBER, "region": REGION,
                                                             "kind": "log-deleted", "index": 0,
                                                             "trail": "org-trail"})["key"]
        try:
            self.assertIn(f"Log file\ts3://{bucket}/{first}\tINVALID: not found", self.validate().problems)
        finally:
            self.restore(bucket, original)
        with self.assertRaises(urllib.error.HTTPError):
            control(self.endpoint, "cloudtrail/tamper", {"account": MEMBER, "region": REGION, "kind": "rename"})


if __name__ == "__main__":
    unittest.main()
