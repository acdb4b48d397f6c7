"""The least-privilege check reads the templates' grants and a suite's decisions."""

import json
import os
import tempfile
import unittest

from . import least_privilege as lp


def _decision(role: str, action: str, allowed: bool = True) -> dict:
    account = "123456789012" if role == lp.COLLECTOR_ROLE else "111111111111"
    return {"principal": f"arn:aws:sts::{account}:assumed-role/{role}/s", "action": action,
            "resource": "*", "allowed": allowed, "reason": "test"}


class LeastPrivilegeTest(unittest.TestCase):
    def all_used(self) -> list[dict]:
        return [_decision(role, action) for role, grants in lp.granted().items()
                for _, action in grants]

    def test_the_templates_grant_no_wildcard_action(self):
        for role, grants in lp.granted().items():
            for sid, action in grants:
                self.assertNotIn("*", action, f"{role} {sid}")

    def test_every_grant_used_passes_and_a_refusal_is_only_reported(self):
        decisions = self.all_used() + [_decision(lp.COLLECTOR_ROLE, "s3:DeleteObjectVersion", False)]
        problems, refusals = lp.check(decisions)
        self.assertEqual(problems, [])
        self.assertEqual(len(refusals), 1)

    def test_an_unused_grant_is_named_with_its_statement(self):
        decisions = [d for d in self.all_used() if d["action"] != "kms:Sign"]
        problems, _ = lp.check(decisions)
        self.assertEqual(len(problems), 1)
        self.assertIn("SignCheckpoints: kms:Sign is granted but no request of the suite needed it",
                      problems[0])

    def test_main_reads_every_world_log_and_fails_on_an_empty_folder(self):
        with tempfile.TemporaryDirectory() as folder:
            self.assertEqual(lp.main([folder]), 1)
            with open(os.path.join(folder, "1.jsonl"), "w") as handle:
                for d in self.all_used():
                    handle.write(json.dumps(d) + "\n")
            self.assertEqual(lp.main([folder]), 0)


if __name__ == "__main__":
    unittest.main()
