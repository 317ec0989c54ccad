"""IAM identity policies, enforced for role sessions only, and iam:SimulatePrincipalPolicy.

A request signed with credentials from AssumeRole is allowed only when the role's identity policies (inline and
attached managed ones) allow its action `SERVICE:Operation` (SERVICE = the IAM prefix: the signing name
(ec2, backup, ssm, cloudformation, sts, kms, iam, ...) except monitoring -> cloudwatch, email -> ses; the
emulator's own Backup operations too); an explicit Deny wins; no Allow is an implicit deny. sts:GetCallerIdentity needs no permission (as on AWS). Other credentials (static keys) are not
checked. A refusal is 403 in the service's format with the service's code (EC2 UnauthorizedOperation, Backup /
SSM / KMS AccessDeniedException, STS / IAM / CloudFormation AccessDenied, SNS AuthorizationError) and AWS's
message "User: ARN is not authorized to perform: ACTION [on resource: ARN] because no identity-based policy allows
the ACTION action" (or "... with an explicit deny in an identity-based policy").

Evaluation: Action / NotAction (wildcards, case-insensitive); Resource / NotResource against the call's resource
when the emulator knows it (SimulatePrincipalPolicy's ResourceArns; enforced calls: every statement is taken to
cover the call's resource); Condition with StringEquals / StringNotEquals / StringLike / StringNotLike on
aws:RequestedRegion, aws:PrincipalAccount, aws:PrincipalArn (and SimulatePrincipalPolicy's ContextEntries); a
condition on another key or with another operator is taken to hold. Permissions boundaries, session policies,
SCPs and resource policies are not part of it.
"""

from __future__ import annotations

import fnmatch
from typing import Any
from xml.sax.saxutils import escape

from moto.iam.models import iam_backends

import emu_accounts
from emu_common import ApiError, Reply, account, request_id

DENIED_CODES = {"ec2": ("UnauthorizedOperation", "You are not authorized to perform this operation. "),
                "backup": ("AccessDeniedException", ""), "ssm": ("AccessDeniedException", ""),
                "kms": ("AccessDeniedException", ""), "sns": ("AuthorizationError", ""),
                "sqs": ("AccessDenied", ""), "states": ("AccessDeniedException", "")}
PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}  # signing names whose IAM service prefix differs
ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction"}  # operations whose IAM action has another name
FREE = {"sts:GetCallerIdentity"}  # "No permissions are required to perform this operation."


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str, case: bool = False) -> bool:
    if case:
        return any(fnmatch.fnmatchcase(value, str(p)) for p in _as_list(patterns))
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in _as_list(patterns))


def role_policies(role: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(policy id, SourcePolicyType, document) of a role's inline and attached managed policies."""
    out = [(name, "role", emu_accounts.parse_policy(doc)) for name, doc in role.policies.items()]
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            kind = "aws-managed" if ":aws:policy/" in arn else "user-managed"
            out.append((arn, kind, emu_accounts.parse_policy(version.document)))
    return out


def _condition_holds(conditions: Any, context: dict[str, str]) -> bool:
    if not isinstance(conditions, dict):
        return True
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        check = emu_accounts.CONDITION_OPERATORS.get(operator)
        if check is None or not isinstance(tests, dict):
            continue  # unknown operator: taken to hold
        for key, wanted in tests.items():
            if key.lower() in keys and not check(keys[key.lower()], [str(w) for w in _as_list(wanted)]):
                return False
    return True


def evaluate(policies: list[tuple[str, str, dict[str, Any]]], action: str, resource: str | None,
             context: dict[str, str]) -> tuple[str, list[dict[str, str]]]:
    """(EvalDecision: allowed | explicitDeny | implicitDeny, the matched statements' sources)."""
    allowed, denied = [], []
    for policy_id, kind, doc in policies:
        for statement in _as_list(doc.get("Statement", [])):
            if not isinstance(statement, dict):
                continue
            if "NotAction" in statement:
                if _matches(statement["NotAction"], action):
                    continue
            elif not _matches(statement.get("Action", []), action):
                continue
            if resource is not None:
                if "NotResource" in statement and _matches(statement["NotResource"], resource, case=True):
                    continue
                if "Resource" in statement and not _matches(statement["Resource"], resource, case=True):
                    continue
            if not _condition_holds(statement.get("Condition"), context):
                continue
            source = {"SourcePolicyId": policy_id, "SourcePolicyType": kind}
            (denied if statement.get("Effect") == "Deny" else allowed).append(source)
    if denied:
        return "explicitDeny", denied
    return ("allowed", allowed) if allowed else ("implicitDeny", [])


def _resource_of(call: Any) -> str | None:
    """The resource ARN a refusal message names, for the calls where the emulator knows it."""
    doc = call.request if isinstance(call.request, dict) else {}
    if call.service == "backup" and doc.get("BackupVaultName"):
        return f"arn:aws:backup:{call.region}:{call.account}:backup-vault:{doc['BackupVaultName']}"
    if call.service == "ssm" and isinstance(doc.get("Name"), str):
        return f"arn:aws:ssm:{call.region}:{call.account}:parameter/{doc['Name'].lstrip('/')}"
    if call.service == "ec2" and doc.get("ImageId"):
        return f"arn:aws:ec2:{call.region}::image/{doc['ImageId']}"
    if call.service == "sts" and doc.get("RoleArn"):
        return doc["RoleArn"]
    return None


def enforce(call: Any) -> None:
    """Refuse a role session's call that its role's identity policies do not allow (see the module doc)."""
    session = emu_accounts.assumed_role(call.access_key)
    action = f"{PREFIXES.get(call.service, call.service)}:{call.operation}"
    action = ACTIONS.get(action, action)
    if session is None or action in FREE or not call.operation:
        return
    role = emu_accounts.find_role(session.role_arn)
    policies = role_policies(role) if role is not None else []
    context = {"aws:RequestedRegion": call.region or "", "aws:PrincipalAccount": call.account,
               "aws:PrincipalArn": session.arn}
    decision, _ = evaluate(policies, action, None, context)
    if decision == "allowed":
        return
    code, prefix = DENIED_CODES.get(call.service, ("AccessDenied", ""))
    resource = _resource_of(call)
    on = f" on resource: {resource}" if resource else ""
    why = "with an explicit deny in an identity-based policy" if decision == "explicitDeny" else \
        f"because no identity-based policy allows the {action} action"
    raise ApiError(code, f"{prefix}User: {session.arn} is not authorized to perform: {action}{on} {why}", 403)


# ---------------------------------------------------------------- SimulatePrincipalPolicy


def _members(fields: list[tuple[str, str]], name: str) -> list[str]:
    found = sorted((int(k.split(".")[2]), v) for k, v in fields if k.startswith(f"{name}.member.")
                   and k.count(".") == 2)
    return [v for _, v in found]


def _context_entries(fields: list[tuple[str, str]]) -> dict[str, str]:
    """ContextEntries.member.N.ContextKeyName / .ContextKeyValues.member.1 (the first value)."""
    form = dict(fields)
    out = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in form:
        key = form[f"ContextEntries.member.{n}.ContextKeyName"]
        value = form.get(f"ContextEntries.member.{n}.ContextKeyValues.member.1")
        if value is not None:
            out[key] = value
        n += 1
    return out


def before_simulate_principal_policy(call: Any) -> None:
    """iam:SimulatePrincipalPolicy (moto lacks it) for a role or user of the caller's account: one
    EvaluationResult per action and resource (ResourceArns, default "*"), as `evaluate` decides."""
    fields = call.form()
    form = dict(fields)
    source = form.get("PolicySourceArn", "")
    actions = _members(fields, "ActionNames")
    if not source or not actions:
        raise ApiError("ValidationError", "PolicySourceArn and ActionNames are required.")
    role = emu_accounts.find_role(source)
    if role is not None and role.account_id == account():
        policies = role_policies(role)
    else:
        user = None
        backend = iam_backends[account()]["aws"]
        if source.startswith(f"arn:aws:iam::{account()}:user/"):
            user = next((u for u in backend.users.values() if u.arn == source), None)
        if user is None:
            name = source.rsplit("/", 1)[-1]
            kind = "role" if ":role/" in source else "user"
            raise ApiError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", 404)
        policies = [(n, "user", emu_accounts.parse_policy(d)) for n, d in user.policies.items()]
    context = {"aws:PrincipalAccount": account(), "aws:PrincipalArn": source, **_context_entries(fields)}
    results = ""
    for action in actions:
        for resource in _members(fields, "ResourceArns") or ["*"]:
            decision, matched = evaluate(policies, action, resource, context)
            statements = "".join(f"<member><SourcePolicyId>{escape(m['SourcePolicyId'])}</SourcePolicyId>"
                                 f"<SourcePolicyType>{m['SourcePolicyType']}</SourcePolicyType></member>"
                                 for m in matched)
            results += (f"<member><EvalActionName>{escape(action)}</EvalActionName>"
                        f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                        f"<EvalDecision>{decision}</EvalDecision>"
                        f"<MatchedStatements>{statements}</MatchedStatements>"
                        "<MissingContextValues></MissingContextValues></member>")
    call.reply = Reply(200, '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
                            "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
                            f"<EvaluationResults>{results}</EvaluationResults></SimulatePrincipalPolicyResult>"
                            f"<ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata>"
                            "</SimulatePrincipalPolicyResponse>", {"Content-Type": "text/xml"})
