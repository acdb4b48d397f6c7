"""Least privilege, checked both ways over a whole test suite.

Every world started while ``FORENSNAP_AUTHZ_LOG_DIR`` is set appends its authorisation decisions
to that folder (``authorize._persist``). After the suite, this module reads them all and compares
them with the permission policies of the two roles the templates make:

* **needed -> granted**: no decision made as either role was refused, except the refusals the
  suite provokes on purpose (the must-deny tests, the wrong-ExternalId and wrong-key tests): those
  are listed by principal, action and the statement that refused them, for the reader;
* **granted -> needed**: every action an Allow statement grants was used by some allowed decision
  of that role (matched by action, as IAM matches actions, across every world of the suite), and
  no granted action is a wildcard (AWS names a narrower action for everything forensnap does).

The third role of ``forensic-account.yaml``, the collector service's task execution role, makes
no request of the suite (ECS pulls the image and ships the log with it; the world runs no
containers): ``test_templates.ResolveRealTemplatesTest.test_collector_service_values`` pins its
whole policy instead (one login action, two pull actions on the stack's repository, two log
actions on the collector log group).

Usage: ``python -m forensnap_world.policy.least_privilege DIR`` (``scripts/test`` runs it after a
whole run of the suite); exit status 1 with the unused grants named when the check fails.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from .evaluate import _action_matches
from .templates import FORENSIC_TEMPLATE, MEMBER_TEMPLATE, load_template

COLLECTOR_ROLE = "forensnap-collector"
"""forensic-account.yaml's default CollectorRoleName."""
MEMBER_ROLE = "ForensnapCollector"
"""member-role.yaml's default RoleName."""


def _statements(document: dict) -> list[dict]:
    """The statements as written; one under ``Fn::If`` (a grant only some deployments make, such
    as the member role's trail bucket) counts with both of its branches."""
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else list(statements)
    out = []
    for statement in statements:
        if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            out += [branch for branch in statement["Fn::If"][1:]
                    if isinstance(branch, dict) and "Effect" in branch]
        else:
            out.append(statement)
    return out


def _actions(statement: dict) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def granted() -> dict[str, list[tuple[str, str]]]:
    """Role name -> (statement Sid, action) of every Allow in its permission policies, read from
    the templates as written (actions carry no intrinsic functions)."""
    forensic = load_template(FORENSIC_TEMPLATE)["Resources"]
    member = load_template(MEMBER_TEMPLATE)["Resources"]
    grants: dict[str, list[tuple[str, str]]] = {COLLECTOR_ROLE: [], MEMBER_ROLE: []}
    documents = [(COLLECTOR_ROLE, forensic["CollectorPolicy"]["Properties"]["PolicyDocument"])]
    documents += [
        (MEMBER_ROLE, policy["PolicyDocument"])
        for policy in member["CollectorRole"]["Properties"].get("Policies", [])
    ]
    for role, document in documents:
        for n, statement in enumerate(_statements(document), 1):
            if statement.get("Effect") != "Allow":
                continue
            sid = statement.get("Sid") or f"statement {n}"
            grants[role] += [(sid, action) for action in _actions(statement)]
    return grants


def load(folder: str) -> list[dict]:
    decisions = []
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        with open(path) as handle:
            decisions += [json.loads(line) for line in handle if line.strip()]
    return decisions


def _role_of(principal: str) -> str | None:
    parts = principal.split(":assumed-role/")
    return parts[1].split("/")[0] if len(parts) == 2 else None


def check(decisions: list[dict]) -> tuple[list[str], list[str]]:
    """(problems, refusals): unused or wildcard grants; refused requests of the two roles."""
    used: dict[str, set[str]] = {COLLECTOR_ROLE: set(), MEMBER_ROLE: set()}
    refusals = set()
    for d in decisions:
        role = _role_of(d["principal"])
        if role not in used:
            continue
        if d["allowed"]:
            used[role].add(d["action"])
        else:
            refusals.add(f"{role}: {d['action']} ({d['reason'][:120]})")
    problems = []
    for role, grants in granted().items():
        for sid, action in grants:
            if "*" in action or "?" in action:
                problems.append(f"{role} {sid}: {action} is a wildcard; name the actions")
            elif not any(_action_matches(action, a) for a in used[role]):
                problems.append(f"{role} {sid}: {action} is granted but no request of the suite needed it")
    return problems, sorted(refusals)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m forensnap_world.policy.least_privilege DIR", file=sys.stderr)
        return 2
    decisions = load(argv[0])
    if not decisions:
        print(f"least-privilege: no decisions in {argv[0]}: did the suite run with policies?",
              file=sys.stderr)
        return 1
    problems, refusals = check(decisions)
    roles = {_role_of(d["principal"]) for d in decisions} & {COLLECTOR_ROLE, MEMBER_ROLE}
    print(f"least-privilege: {len(decisions)} decisions from the suite, roles {sorted(roles)}")
    for refusal in refusals:
        print(f"   refused on purpose by a test: {refusal}")
    if problems:
        for problem in problems:
            print(f"least-privilege: {problem}", file=sys.stderr)
        print("least-privilege: remove the grant from forensic-vpc/ (or name the narrower "
              "action), or add the test that needs it", file=sys.stderr)
        return 1
    total = sum(len(g) for g in granted().values())
    print(f"least-privilege: all {total} granted actions of the two roles were needed; none is a wildcard")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
