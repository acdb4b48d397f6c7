"""Tests of :mod:`.evaluate`: each condition operator family with its absent-key behaviour, and the
allow/deny rules of identity, resource, key and trust policies, same-account and cross-account.

Expected answers are the ones AWS documents (pages cited in evaluate.py); where a test pins an
interpretation rather than a quoted rule, its docstring says so.
"""

from __future__ import annotations

import datetime
import unittest

from .evaluate import Decision, PolicyError, Request, ResourcePolicyKind, evaluate

ACCT = "111122223333"
OTHER = "444455556666"
USER = f"arn:aws:iam::{ACCT}:user/op"
ROLE = f"arn:aws:iam::{ACCT}:role/Collector"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/Collector/run-1"
OTHER_SESSION = f"arn:aws:sts::{OTHER}:assumed-role/Auditor/s"
BUCKET_OBJ = "arn:aws:s3:::evidence-bucket/case-1/disk.raw"
KEY = f"arn:aws:kms:eu-west-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TARGET_ROLE = f"arn:aws:iam::{ACCT}:role/ForensnapCollector"

KMS = ResourcePolicyKind.KEY_POLICY
TRUST = ResourcePolicyKind.TRUST_POLICY


def allow(action="*", resource="*", condition=None, sid=None, **extra) -> dict:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition is not None:
        statement["Condition"] = condition
    if sid:
        statement["Sid"] = sid
    return statement


def deny(action="*", resource="*", condition=None, sid=None, **extra) -> dict:
    statement = allow(action, resource, condition, sid, **extra)
    statement["Effect"] = "Deny"
    return statement


def policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def decide(condition, context, principal=USER) -> Decision:
    """An identity policy allowing s3:GetObject only under `condition`."""
    request = Request(principal, "s3:GetObject", BUCKET_OBJ, context)
    return evaluate(request, [("p", policy(allow("s3:GetObject", "*", condition)))], None)


class AbsentKeys(unittest.TestCase):
    """ "If the key that you specify in a policy condition is not present in the request context,
    the values do not match and the condition is false. If the policy condition requires that the
    key is not matched, such as StringNotLike or ArnNotLike, and the right key is not present, the
    condition is true." (condition operators page)"""

    def test_every_positive_operator_is_false_when_the_key_is_absent(self):
        for operator, value in [
            ("StringEquals", "x"), ("StringEqualsIgnoreCase", "x"), ("StringLike", "*"),
            ("NumericEquals", "1"), ("NumericLessThan", "10"), ("NumericLessThanEquals", "10"),
            ("NumericGreaterThan", "0"), ("NumericGreaterThanEquals", "0"),
            ("DateEquals", "2024-01-01T00:00:00Z"), ("DateLessThan", "2999-01-01T00:00:00Z"),
            ("DateLessThanEquals", "2999-01-01"), ("DateGreaterThan", "1970-01-02T00:00:00Z"),
            ("DateGreaterThanEquals", "0"), ("Bool", "true"), ("BinaryEquals", "QmluYXJ5"),
            ("IpAddress", "0.0.0.0/0"), ("ArnEquals", "*"), ("ArnLike", "arn:*:*:*:*:*"),
        ]:
            with self.subTest(operator=operator):
                self.assertFalse(decide({operator: {"test:Key": value}}, {}).allowed)

    def test_every_negated_operator_is_true_when_the_key_is_absent(self):
        for operator, value in [
            ("StringNotEquals", "x"), ("StringNotEqualsIgnoreCase", "x"), ("StringNotLike", "*"),
            ("NumericNotEquals", "1"), ("DateNotEquals", "2024-01-01T00:00:00Z"),
            ("NotIpAddress", "10.0.0.0/8"), ("ArnNotEquals", ROLE), ("ArnNotLike", "arn:*"),
        ]:
            with self.subTest(operator=operator):
                self.assertTrue(decide({operator: {"test:Key": value}}, {}).allowed)

    def test_if_exists_is_true_when_the_key_is_absent(self):
        """ "If the key is not present, evaluate the condition element as true." (IfExists)"""
        for operator in ("StringEqualsIfExists", "StringNotEqualsIfExists", "BoolIfExists",
                         "NumericLessThanIfExists", "ArnLikeIfExists", "IpAddressIfExists"):
            value = {"BoolIfExists": "true", "NumericLessThanIfExists": "5",
                     "IpAddressIfExists": "10.0.0.0/8"}.get(operator, "x")
            with self.subTest(operator=operator):
                self.assertTrue(decide({operator: {"test:Key": value}}, {}).allowed)

    def test_if_exists_applies_the_operator_when_the_key_is_present(self):
        condition = {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}
        self.assertFalse(decide(condition, {"s3:x-amz-server-side-encryption": "aws:kms"}).allowed)
        self.assertTrue(decide(condition, {"s3:x-amz-server-side-encryption": "AES256"}).allowed)

    def test_deny_with_string_not_equals_applies_when_the_key_is_absent(self):
        """The classic 'deny unencrypted uploads': a request without the header is denied."""
        bucket = policy(deny("s3:PutObject", "arn:aws:s3:::evidence-bucket/*",
                             {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
                             sid="DenyUnencrypted", Principal="*"))
        identity = [("p", policy(allow("s3:PutObject", "*")))]
        request = Request(USER, "s3:PutObject", BUCKET_OBJ)
        decision = evaluate(request, identity, ("bucket policy", bucket))
        self.assertFalse(decision.allowed)
        self.assertEqual(decision.deciding, "DenyUnencrypted")
        with_header = Request(USER, "s3:PutObject", BUCKET_OBJ,
                              {"s3:x-amz-server-side-encryption": "aws:kms"})
        self.assertTrue(evaluate(with_header, identity, ("bucket policy", bucket)).allowed)

    def test_null(self):
        """Null "true": the key is absent; "false": it is present."""
        self.assertTrue(decide({"Null": {"aws:TokenIssueTime": "true"}}, {}).allowed)
        self.assertFalse(decide({"Null": {"aws:TokenIssueTime": "false"}}, {}).allowed)
        present = {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}
        self.assertTrue(decide({"Null": {"aws:TokenIssueTime": False}}, present).allowed)
        self.assertFalse(decide({"Null": {"aws:TokenIssueTime": "TRUE"}}, present).allowed)

    def test_set_operators_with_an_absent_or_empty_key(self):
        """ForAllValues "also returns true if ... the context key doesn't exist"; ForAnyValue
        "returns false if ... the key resolves to a null data set" (single-vs-multivalued page)."""
        for context in ({}, {"aws:TagKeys": []}):
            with self.subTest(context=context):
                self.assertTrue(decide({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}},
                                       context).allowed)
                self.assertFalse(decide({"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}},
                                        context).allowed)
                self.assertFalse(decide({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}},
                                        context).allowed)


class Operators(unittest.TestCase):
    def test_string_equals_is_case_sensitive_and_ignore_case_is_not(self):
        self.assertTrue(decide({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
                               {"aws:RequestedRegion": "eu-west-1"}).allowed)
        self.assertFalse(decide({"StringEquals": {"aws:RequestedRegion": "EU-west-1"}},
                                {"aws:RequestedRegion": "eu-west-1"}).allowed)
        self.assertTrue(decide({"StringEqualsIgnoreCase": {"aws:RequestedRegion": "EU-WEST-1"}},
                               {"aws:RequestedRegion": "eu-west-1"}).allowed)
        self.assertFalse(decide({"StringNotEqualsIgnoreCase": {"aws:RequestedRegion": "EU-WEST-1"}},
                                {"aws:RequestedRegion": "eu-west-1"}).allowed)

    def test_condition_key_names_are_case_insensitive_values_are_not(self):
        self.assertTrue(decide({"StringEquals": {"AWS:requestedregion": "eu-west-1"}},
                               {"aws:RequestedRegion": "eu-west-1"}).allowed)

    def test_string_like_wildcards(self):
        condition = {"StringLike": {"s3:prefix": "case-?/*"}}
        self.assertTrue(decide(condition, {"s3:prefix": "case-1/disk/raw"}).allowed)
        self.assertFalse(decide(condition, {"s3:prefix": "case-12/disk"}).allowed)
        self.assertFalse(decide(condition, {"s3:prefix": "CASE-1/disk"}).allowed)
        self.assertFalse(decide({"StringNotLike": {"s3:prefix": "case-*"}},
                                {"s3:prefix": "case-9"}).allowed)

    def test_several_values_are_ored_and_negated_ones_nored(self):
        """ "If a single negated matching condition operator includes multiple values for a
        context key, those values are evaluated using a logical NOR." """
        self.assertTrue(decide({"StringEquals": {"k:k": ["a", "b"]}}, {"k:k": "b"}).allowed)
        self.assertFalse(decide({"StringNotEquals": {"k:k": ["a", "b"]}}, {"k:k": "b"}).allowed)
        self.assertTrue(decide({"StringNotEquals": {"k:k": ["a", "b"]}}, {"k:k": "c"}).allowed)

    def test_keys_and_operators_are_anded(self):
        condition = {"StringEquals": {"k:a": "1", "k:b": "2"}, "Bool": {"aws:SecureTransport": True}}
        full = {"k:a": "1", "k:b": "2", "aws:SecureTransport": True}
        self.assertTrue(decide(condition, full).allowed)
        self.assertFalse(decide(condition, {**full, "k:b": "3"}).allowed)
        self.assertFalse(decide(condition, {**full, "aws:SecureTransport": False}).allowed)

    def test_numeric(self):
        self.assertTrue(decide({"NumericLessThanEquals": {"s3:max-keys": "10"}},
                               {"s3:max-keys": 10}).allowed)
        self.assertFalse(decide({"NumericLessThan": {"s3:max-keys": 10}},
                                {"s3:max-keys": "10"}).allowed)
        self.assertTrue(decide({"NumericGreaterThan": {"s3:object-lock-remaining-retention-days":
                                                       "30"}},
                               {"s3:object-lock-remaining-retention-days": 365}).allowed)
        self.assertFalse(decide({"NumericNotEquals": {"k:n": "3"}}, {"k:n": 3}).allowed)
        self.assertTrue(decide({"NumericEquals": {"k:n": "2.5"}}, {"k:n": 2.5}).allowed)
        with self.assertRaises(PolicyError):
            decide({"NumericEquals": {"k:n": "ten"}}, {"k:n": 10})

    def test_dates_in_iso_8601_and_epoch_seconds(self):
        when = {"aws:CurrentTime": "2024-06-01T12:00:00Z"}
        self.assertTrue(decide({"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}},
                               when).allowed)
        self.assertFalse(decide({"DateLessThan": {"aws:CurrentTime": "2024-01-01"}}, when).allowed)
        epoch = str(int(datetime.datetime(2024, 6, 1, 12, tzinfo=datetime.timezone.utc)
                        .timestamp()))
        self.assertTrue(decide({"DateEquals": {"aws:CurrentTime": epoch}}, when).allowed)
        self.assertTrue(decide({"DateLessThanEquals": {"aws:EpochTime": "2024-06-01T12:00:00+00:00"}},
                               {"aws:EpochTime": int(epoch)}).allowed)
        self.assertFalse(decide({"DateNotEquals": {"aws:CurrentTime": epoch}}, when).allowed)

    def test_bool_compares_true_and_false_case_insensitively(self):
        self.assertTrue(decide({"Bool": {"aws:SecureTransport": "True"}},
                               {"aws:SecureTransport": True}).allowed)
        self.assertTrue(decide({"Bool": {"aws:SecureTransport": False}},
                               {"aws:SecureTransport": "FALSE"}).allowed)
        self.assertFalse(decide({"Bool": {"aws:SecureTransport": "true"}},
                                {"aws:SecureTransport": False}).allowed)
        with self.assertRaises(PolicyError):
            decide({"Bool": {"aws:SecureTransport": "yes"}}, {})

    def test_binary_equals(self):
        self.assertTrue(decide({"BinaryEquals": {"k:b": "QmluYXJ5VmFsdWU="}},
                               {"k:b": b"BinaryValue"}).allowed)
        self.assertFalse(decide({"BinaryEquals": {"k:b": "QmluYXJ5VmFsdWU="}},
                                {"k:b": b"other"}).allowed)

    def test_ip_address(self):
        condition = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}}
        self.assertTrue(decide(condition, {"aws:SourceIp": "203.0.113.7"}).allowed)
        self.assertTrue(decide(condition, {"aws:SourceIp": "2001:db8::1"}).allowed)
        self.assertFalse(decide(condition, {"aws:SourceIp": "198.51.100.1"}).allowed)
        self.assertFalse(decide({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
                                {"aws:SourceIp": "203.0.113.7"}).allowed)
        self.assertTrue(decide({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
                               {"aws:SourceIp": "198.51.100.1"}).allowed)

    def test_arn_operators_match_segment_by_segment(self):
        context = {"aws:SourceArn": f"arn:aws:ec2:eu-west-1:{ACCT}:snapshot/snap-1"}
        self.assertTrue(decide({"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:*:snapshot/*"}},
                               context).allowed)
        self.assertTrue(decide({"ArnEquals": {"aws:SourceArn": f"arn:aws:ec2:eu-west-1:{ACCT}:*"}},
                               context).allowed)
        # A * stays inside its colon-delimited segment.
        self.assertFalse(decide({"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:snapshot/*"}},
                                context).allowed)
        self.assertFalse(decide({"ArnNotLike": {"aws:SourceArn": "arn:aws:ec2:*:*:snapshot/*"}},
                                context).allowed)

    def test_for_all_values_and_for_any_value_with_present_keys(self):
        condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["case", "owner"]}}
        self.assertTrue(decide(condition, {"aws:TagKeys": ["case"]}).allowed)
        self.assertFalse(decide(condition, {"aws:TagKeys": ["case", "secret"]}).allowed)
        condition = {"ForAnyValue:StringLike": {"aws:TagKeys": "ca*"}}
        self.assertTrue(decide(condition, {"aws:TagKeys": ["x", "case"]}).allowed)
        self.assertFalse(decide(condition, {"aws:TagKeys": ["x", "y"]}).allowed)
        condition = {"ForAllValues:StringNotEquals": {"aws:TagKeys": "secret"}}
        self.assertTrue(decide(condition, {"aws:TagKeys": ["a", "b"]}).allowed)
        self.assertFalse(decide(condition, {"aws:TagKeys": ["a", "secret"]}).allowed)


class Rules(unittest.TestCase):
    def test_explicit_deny_in_identity_policy_beats_resource_allow(self):
        bucket = policy(allow("s3:PutObject", "arn:aws:s3:::evidence-bucket/*", Principal={"AWS": USER}))
        identity = [("guard", policy(deny("s3:Put*", "*", sid="NoWrites")))]
        decision = evaluate(Request(USER, "s3:PutObject", BUCKET_OBJ), identity, ("b", bucket))
        self.assertFalse(decision.allowed)
        self.assertEqual(decision.deciding, "NoWrites")
        self.assertIn("explicit deny", decision.reason)

    def test_explicit_deny_in_bucket_policy_beats_identity_allow(self):
        bucket = policy(deny("s3:PutObject", "arn:aws:s3:::evidence-bucket/*",
                             {"ArnNotEquals": {"aws:PrincipalArn": ROLE}},
                             sid="DenyWritesExceptCollectorRole", Principal="*"))
        identity = [("p", policy(allow("s3:*", "*")))]
        user = evaluate(Request(USER, "s3:PutObject", BUCKET_OBJ), identity, ("bucket policy", bucket))
        self.assertFalse(user.allowed)
        self.assertEqual(user.deciding, "DenyWritesExceptCollectorRole")
        self.assertIn("DenyWritesExceptCollectorRole", user.reason)
        # A session of the role carries aws:PrincipalArn = the ROLE ARN, so the deny skips it.
        session = evaluate(Request(SESSION, "s3:PutObject", BUCKET_OBJ), identity,
                           ("bucket policy", bucket))
        self.assertTrue(session.allowed, session.reason)

    def test_a_caller_cannot_spoof_the_principal_keys(self):
        bucket = policy(deny("s3:*", "*", {"ArnNotEquals": {"aws:PrincipalArn": ROLE}},
                             Principal="*"))
        request = Request(USER, "s3:GetObject", BUCKET_OBJ, {"aws:PrincipalArn": ROLE})
        self.assertFalse(evaluate(request, [("p", policy(allow()))], ("b", bucket)).allowed)

    def test_a_role_path_given_in_the_context_is_kept(self):
        """A session ARN drops the role's path; the caller may supply the full role ARN."""
        with_path = f"arn:aws:iam::{ACCT}:role/forensics/Collector"
        identity = [("p", policy(allow("s3:GetObject", "*",
                                       {"ArnEquals": {"aws:PrincipalArn": with_path}})))]
        request = Request(SESSION, "s3:GetObject", BUCKET_OBJ, {"aws:PrincipalArn": with_path})
        self.assertTrue(evaluate(request, identity, None).allowed)
        # ... but not a different role's ARN.
        spoofed = Request(SESSION, "s3:GetObject", BUCKET_OBJ,
                          {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/forensics/Admin"})
        admin = [("p", policy(allow("s3:GetObject", "*", {"ArnLike": {"aws:PrincipalArn": "*/Admin"}})))]
        self.assertFalse(evaluate(spoofed, admin, None).allowed)

    def test_same_account_identity_or_resource_policy_suffices(self):
        request = Request(USER, "s3:GetObject", BUCKET_OBJ)
        self.assertTrue(evaluate(request, [("p", policy(allow("s3:GetObject", BUCKET_OBJ)))],
                                 None).allowed)
        bucket = policy(allow("s3:GetObject", "arn:aws:s3:::evidence-bucket/*",
                              Principal={"AWS": [USER]}, sid="ReadForOp"))
        decision = evaluate(request, [], ("bucket policy", bucket))
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.deciding, "ReadForOp")
        self.assertFalse(evaluate(request, [], None).allowed)

    def test_role_arn_in_a_resource_policy_covers_its_sessions(self):
        bucket = policy(allow("s3:GetObject", "*", Principal={"AWS": ROLE}))
        self.assertTrue(evaluate(Request(SESSION, "s3:GetObject", BUCKET_OBJ), [],
                                 ("b", bucket)).allowed)
        other = f"arn:aws:sts::{ACCT}:assumed-role/Someone/run-1"
        self.assertFalse(evaluate(Request(other, "s3:GetObject", BUCKET_OBJ), [],
                                  ("b", bucket)).allowed)
        # A session ARN names that session only.
        exact = policy(allow("s3:GetObject", "*", Principal={"AWS": SESSION}))
        self.assertTrue(evaluate(Request(SESSION, "s3:GetObject", BUCKET_OBJ), [],
                                 ("b", exact)).allowed)
        other_session = f"arn:aws:sts::{ACCT}:assumed-role/Collector/run-2"
        self.assertFalse(evaluate(Request(other_session, "s3:GetObject", BUCKET_OBJ), [],
                                  ("b", exact)).allowed)

    def test_principal_arn_condition_with_arn_equals(self):
        identity = [("p", policy(allow("s3:GetObject", "*",
                                       {"ArnEquals": {"aws:PrincipalArn": ROLE}})))]
        self.assertTrue(evaluate(Request(SESSION, "s3:GetObject", BUCKET_OBJ), identity,
                                 None).allowed)
        self.assertFalse(evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), identity,
                                  None).allowed)
        account = [("p", policy(allow("s3:GetObject", "*",
                                      {"StringEquals": {"aws:PrincipalAccount": ACCT}})))]
        self.assertTrue(evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), account, None).allowed)

    def test_bucket_policy_naming_the_account_delegates_to_iam(self):
        """Interpretation: a resource policy naming the account grants to the account, and the
        account's IAM policies grant to its principals (same rule as the KMS default key policy)."""
        bucket = policy(allow("s3:GetObject", "*", Principal={"AWS": f"arn:aws:iam::{ACCT}:root"}))
        request = Request(USER, "s3:GetObject", BUCKET_OBJ)
        self.assertFalse(evaluate(request, [], ("b", bucket)).allowed)
        self.assertTrue(evaluate(request, [("p", policy(allow("s3:GetObject")))],
                                 ("b", bucket)).allowed)

    def test_cross_account_needs_both_sides(self):
        request = Request(OTHER_SESSION, "s3:GetObject", BUCKET_OBJ, resource_account=ACCT)
        identity = [("auditor", policy(allow("s3:GetObject", "arn:aws:s3:::evidence-bucket/*")))]
        bucket = policy(allow("s3:GetObject", "*", Principal={"AWS": f"arn:aws:iam::{OTHER}:root"},
                              sid="AuditorAccount"))
        self.assertFalse(evaluate(request, identity, None).allowed)
        self.assertFalse(evaluate(request, [], ("b", bucket)).allowed)
        decision = evaluate(request, identity, ("b", bucket))
        self.assertTrue(decision.allowed, decision.reason)
        self.assertEqual(decision.deciding, "AuditorAccount")
        denied = evaluate(request, [], ("b", bucket))
        self.assertIn("cross-account", denied.reason)
        # A bucket policy naming the role directly still needs the identity side cross-account.
        direct = policy(allow("s3:GetObject", "*",
                              Principal={"AWS": f"arn:aws:iam::{OTHER}:role/Auditor"}))
        self.assertFalse(evaluate(request, [], ("b", direct)).allowed)
        self.assertTrue(evaluate(request, identity, ("b", direct)).allowed)

    def test_not_action_and_not_resource(self):
        identity = [("p", policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))]
        self.assertTrue(evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), identity, None).allowed)
        self.assertFalse(evaluate(Request(USER, "iam:CreateUser", "*"), identity, None).allowed)
        guarded = [("p", policy(allow("s3:*", "*"),
                                {"Effect": "Deny", "Action": "s3:DeleteObject",
                                 "NotResource": "arn:aws:s3:::scratch/*"}))]
        self.assertFalse(evaluate(Request(USER, "s3:DeleteObject", BUCKET_OBJ), guarded,
                                  None).allowed)
        self.assertTrue(evaluate(Request(USER, "s3:DeleteObject", "arn:aws:s3:::scratch/x"),
                                 guarded, None).allowed)

    def test_wildcard_actions_are_case_insensitive(self):
        identity = [("p", policy(allow(["kms:ReEncrypt*", "kms:Decrypt"], KEY)))]
        for action, expected in [("kms:ReEncryptFrom", True), ("kms:reencryptto", True),
                                 ("KMS:DECRYPT", True), ("kms:Encrypt", False)]:
            with self.subTest(action=action):
                decision = evaluate(Request(USER, action, KEY), identity, None)
                self.assertEqual(decision.allowed, expected)
        s3_all = [("p", policy(allow("s3:*", "arn:aws:s3:::evidence-bucket/*")))]
        self.assertTrue(evaluate(Request(USER, "s3:PutObjectRetention", BUCKET_OBJ), s3_all,
                                 None).allowed)
        self.assertFalse(evaluate(Request(USER, "ec2:CreateSnapshot", BUCKET_OBJ), s3_all,
                                  None).allowed)

    def test_resource_wildcards_are_case_sensitive(self):
        identity = [("p", policy(allow("s3:GetObject", "arn:aws:s3:::evidence-bucket/case-?/*")))]
        self.assertTrue(evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), identity, None).allowed)
        self.assertFalse(evaluate(Request(USER, "s3:GetObject",
                                          "arn:aws:s3:::Evidence-bucket/case-1/x"),
                                  identity, None).allowed)
        self.assertFalse(evaluate(Request(USER, "s3:GetObject",
                                          "arn:aws:s3:::evidence-bucket/case-10/x"),
                                  identity, None).allowed)

    def test_statement_and_elements_may_be_single_values(self):
        document = {"Version": "2012-10-17",
                    "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}
        self.assertTrue(evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), [("p", document)],
                                 None).allowed)

    def test_root_user_has_full_access_in_its_account(self):
        root = f"arn:aws:iam::{ACCT}:root"
        self.assertTrue(evaluate(Request(root, "s3:DeleteObject", BUCKET_OBJ), [], None).allowed)
        bucket = policy(deny("s3:DeleteObject", "*", Principal="*"))
        self.assertFalse(evaluate(Request(root, "s3:DeleteObject", BUCKET_OBJ), [],
                                  ("b", bucket)).allowed)


class KeyPolicies(unittest.TestCase):
    ROOT_STATEMENT = allow("kms:*", "*", sid="EnableIAMUserPermissions",
                           Principal={"AWS": f"arn:aws:iam::{ACCT}:root"})

    def test_account_principal_delegates_to_iam(self):
        key_policy = ("key policy", policy(self.ROOT_STATEMENT))
        request = Request(SESSION, "kms:Decrypt", KEY)
        self.assertFalse(evaluate(request, [], key_policy, KMS).allowed)
        identity = [("collector", policy(allow("kms:Decrypt", KEY)))]
        self.assertTrue(evaluate(request, identity, key_policy, KMS).allowed)

    def test_bare_account_id_also_delegates(self):
        key_policy = ("k", policy(allow("kms:*", "*", Principal={"AWS": ACCT})))
        request = Request(USER, "kms:Encrypt", KEY)
        self.assertFalse(evaluate(request, [], key_policy, KMS).allowed)
        self.assertTrue(evaluate(request, [("p", policy(allow("kms:Encrypt")))], key_policy,
                                 KMS).allowed)

    def test_principal_named_in_key_policy_needs_no_identity_policy(self):
        key_policy = ("k", policy(allow(["kms:Decrypt", "kms:GenerateDataKey*"], "*",
                                        sid="CollectorUse", Principal={"AWS": ROLE})))
        decision = evaluate(Request(SESSION, "kms:GenerateDataKeyWithoutPlaintext", KEY), [],
                            key_policy, KMS)
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.deciding, "CollectorUse")

    def test_identity_allow_without_key_policy_allow_is_denied(self):
        identity = [("p", policy(allow("kms:*", "*")))]
        key_policy = ("k", policy(allow("kms:*", "*", Principal={"AWS": ROLE})))
        self.assertFalse(evaluate(Request(USER, "kms:Decrypt", KEY), identity, key_policy,
                                  KMS).allowed)
        self.assertFalse(evaluate(Request(USER, "kms:Decrypt", KEY), identity, None, KMS).allowed)

    def test_root_needs_the_key_policy_too(self):
        root = f"arn:aws:iam::{ACCT}:root"
        self.assertTrue(evaluate(Request(root, "kms:Decrypt", KEY), [],
                                 ("k", policy(self.ROOT_STATEMENT)), KMS).allowed)
        only_role = ("k", policy(allow("kms:*", "*", Principal={"AWS": ROLE})))
        self.assertFalse(evaluate(Request(root, "kms:Decrypt", KEY), [], only_role, KMS).allowed)

    def test_cross_account_key_use(self):
        request = Request(OTHER_SESSION, "kms:Decrypt", KEY, resource_account=ACCT)
        identity = [("auditor", policy(allow("kms:Decrypt", KEY)))]
        by_account = ("k", policy(allow("kms:Decrypt", "*", Principal={"AWS": OTHER})))
        by_role = ("k", policy(allow("kms:Decrypt", "*",
                                     Principal={"AWS": f"arn:aws:iam::{OTHER}:role/Auditor"})))
        self.assertTrue(evaluate(request, identity, by_account, KMS).allowed)
        self.assertTrue(evaluate(request, identity, by_role, KMS).allowed)
        self.assertFalse(evaluate(request, [], by_role, KMS).allowed)
        self.assertFalse(evaluate(request, identity, ("k", policy(self.ROOT_STATEMENT)),
                                  KMS).allowed)

    def test_service_principal(self):
        key_policy = ("k", policy(
            self.ROOT_STATEMENT,
            allow(["kms:Decrypt", "kms:CreateGrant"], "*", sid="EbsService",
                  Principal={"Service": "ec2.amazonaws.com"})))
        decision = evaluate(Request("ec2.amazonaws.com", "kms:CreateGrant", KEY), [], key_policy,
                            KMS)
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.deciding, "EbsService")
        self.assertFalse(evaluate(Request("s3.amazonaws.com", "kms:Decrypt", KEY), [], key_policy,
                                  KMS).allowed)
        self.assertFalse(evaluate(Request("ec2.amazonaws.com", "kms:Encrypt", KEY), [], key_policy,
                                  KMS).allowed)
        # A Service principal does not match an IAM caller.
        self.assertFalse(evaluate(Request(USER, "kms:Decrypt", KEY), [],
                                  ("k", policy(key_policy[1]["Statement"][1])), KMS).allowed)


class TrustPolicies(unittest.TestCase):
    def trust(self, principal, condition=None):
        statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal,
                     "Sid": "TrustOperator"}
        if condition:
            statement["Condition"] = condition
        return ("trust policy of ForensnapCollector", policy(statement))

    def test_external_id_absent_is_denied(self):
        trust = self.trust({"AWS": USER}, {"StringEquals": {"sts:ExternalId": "case-0042"}})
        absent = Request(USER, "sts:AssumeRole", TARGET_ROLE)
        self.assertFalse(evaluate(absent, [], trust, TRUST).allowed)
        wrong = Request(USER, "sts:AssumeRole", TARGET_ROLE, {"sts:ExternalId": "case-0043"})
        self.assertFalse(evaluate(wrong, [], trust, TRUST).allowed)
        right = Request(USER, "sts:AssumeRole", TARGET_ROLE, {"sts:ExternalId": "case-0042"})
        decision = evaluate(right, [], trust, TRUST)
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.deciding, "TrustOperator")

    def test_trust_naming_the_account_needs_an_identity_allow(self):
        trust = self.trust({"AWS": f"arn:aws:iam::{ACCT}:root"})
        request = Request(USER, "sts:AssumeRole", TARGET_ROLE)
        self.assertFalse(evaluate(request, [], trust, TRUST).allowed)
        identity = [("p", policy(allow("sts:AssumeRole", TARGET_ROLE)))]
        self.assertTrue(evaluate(request, identity, trust, TRUST).allowed)

    def test_identity_allow_alone_cannot_assume_a_role(self):
        identity = [("p", policy(allow("sts:AssumeRole", "*")))]
        request = Request(USER, "sts:AssumeRole", TARGET_ROLE)
        self.assertFalse(evaluate(request, identity, self.trust({"AWS": ROLE}), TRUST).allowed)
        self.assertFalse(evaluate(request, identity, None, TRUST).allowed)

    def test_cross_account_assume_role_needs_the_callers_identity_allow(self):
        request = Request(OTHER_SESSION, "sts:AssumeRole", TARGET_ROLE, resource_account=ACCT)
        trust = self.trust({"AWS": f"arn:aws:iam::{OTHER}:role/Auditor"})
        self.assertFalse(evaluate(request, [], trust, TRUST).allowed)
        identity = [("p", policy(allow("sts:AssumeRole", TARGET_ROLE)))]
        self.assertTrue(evaluate(request, identity, trust, TRUST).allowed)

    def test_set_source_identity_is_its_own_action(self):
        trust = self.trust({"AWS": USER})
        request = Request(USER, "sts:SetSourceIdentity", TARGET_ROLE)
        self.assertFalse(evaluate(request, [], trust, TRUST).allowed)
        both = ("t", policy({"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                             "Principal": {"AWS": USER}}))
        self.assertTrue(evaluate(request, [], both, TRUST).allowed)


class NotPrincipal(unittest.TestCase):
    def test_deny_with_not_principal_checks_account_role_and_session(self):
        """The NotPrincipal page: AWS "might verify the account first, then the role, and then the
        assumed-role user", so every level must be listed for the caller to escape the Deny."""
        def bucket(*names):
            return ("b", policy(allow("s3:*", "*", Principal="*"),
                                {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                                 "NotPrincipal": {"AWS": list(names)}}))
        request = Request(SESSION, "s3:GetObject", BUCKET_OBJ)
        self.assertFalse(evaluate(request, [], bucket(ROLE)).allowed)
        self.assertTrue(evaluate(request, [], bucket(ROLE, f"arn:aws:iam::{ACCT}:root")).allowed)
        user = Request(USER, "s3:GetObject", BUCKET_OBJ)
        self.assertFalse(evaluate(user, [], bucket(ROLE, f"arn:aws:iam::{ACCT}:root")).allowed)

    def test_not_principal_with_allow_is_refused(self):
        document = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                           "NotPrincipal": {"AWS": USER}})
        with self.assertRaises(PolicyError):
            evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), [], ("b", document))


class Errors(unittest.TestCase):
    def test_unknown_operator_names_operator_and_statement(self):
        identity = [("ops", policy(allow("s3:*", "*", {"StringMatches": {"k:k": "v"}},
                                         sid="Weird")))]
        with self.assertRaises(PolicyError) as raised:
            evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), identity, None)
        self.assertIn("StringMatches", str(raised.exception))
        self.assertIn("Weird", str(raised.exception))

    def test_unknown_operator_raises_even_in_a_statement_that_would_not_apply(self):
        identity = [("ops", policy(allow("s3:GetObject", "*"),
                                   deny("ec2:*", "*", {"ForSomeValues:StringEquals": {"k": "v"}})))]
        with self.assertRaises(PolicyError) as raised:
            evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ), identity, None)
        self.assertIn("ForSomeValues:StringEquals", str(raised.exception))
        self.assertIn("statement 2", str(raised.exception))

    def test_null_if_exists_and_policy_variables_are_refused(self):
        for condition in ({"NullIfExists": {"k:k": "true"}},
                          {"StringEquals": {"aws:username": "${aws:username}"}}):
            with self.subTest(condition=condition), self.assertRaises(PolicyError):
                decide(condition, {})
        with self.assertRaises(PolicyError):
            evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ),
                     [("p", policy(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*")))], None)

    def test_principal_in_an_identity_policy_is_refused(self):
        with self.assertRaises(PolicyError):
            evaluate(Request(USER, "s3:GetObject", BUCKET_OBJ),
                     [("p", policy(allow("s3:*", "*", Principal="*")))], None)


if __name__ == "__main__":
    unittest.main()
