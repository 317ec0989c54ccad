"""Accounts: who a request acts as, and STS AssumeRole as AWS documents it.

moto keys its state by account id. Each signed request acts as one account (set as moto's `x-moto-account-id`
header, so moto's own handlers and the extensions see the same account):
- an access key id of exactly 12 digits acts as that account (a test's way to be any account with static keys);
- an access key that moto's AssumeRole handed out acts as the role's account (moto keeps those keys in the role
  account's IAM);
- any other key (`test`, `AKID...`) acts as the default account 123456789012.

AssumeRole (checked here, then moto's): RoleSessionName 2-64 characters of [\\w+=,.@-], DurationSeconds 900-43200
(ValidationError, AWS's "1 validation error detected: Value ... at 'roleSessionName' failed to satisfy
constraint: ..." shape); the role must exist in its account's IAM and its trust policy must allow the caller (an
Allow statement for sts:AssumeRole whose Principal AWS is "*", the caller's account id, `arn:aws:iam::ACCT:root`,
the caller's ARN or, for a role session, its role's ARN; its StringEquals / StringLike / StringNotEquals /
StringNotLike conditions on sts:ExternalId, sts:RoleSessionName, aws:PrincipalAccount, aws:PrincipalArn must hold;
any matching Deny wins), else 403 AccessDenied "User: CALLER is not authorized to perform: sts:AssumeRole on
resource: ROLE_ARN"; a DurationSeconds above the role's MaxSessionDuration -> ValidationError "The requested
DurationSeconds exceeds the MaxSessionDuration set for this role."; above 3600 for a role session (role chaining)
-> ValidationError "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role
chaining.".
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any
from urllib.parse import unquote

from moto.iam.models import get_account_id_from, iam_backends
from moto.sts.models import sts_backends

from emu_common import ACCOUNT_ID, ApiError

ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
ACCOUNT = re.compile(r"\d{12}")
SESSION_NAME = re.compile(r"[\w+=,.@-]*")
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)")
SESSION_ARN = re.compile(r"arn:aws:sts::(\d{12}):assumed-role/([^/]+)/(.+)")


def access_key_of(authorization: str) -> str | None:
    found = ACCESS_KEY.search(authorization or "")
    return found.group(1) if found else None


def assumed_role(access_key: str | None) -> Any:
    """moto's AssumedRole for a key its AssumeRole handed out, else None."""
    if not access_key:
        return None
    for account_backends in dict.values(sts_backends):
        for backend in dict.values(account_backends):
            for role in backend.assumed_roles:
                if role.access_key_id == access_key:
                    return role
    return None


def caller_account(access_key: str | None) -> str:
    """The account a request signed with this access key id acts as (see the module doc)."""
    if not access_key:
        return ACCOUNT_ID
    if ACCOUNT.fullmatch(access_key):
        return access_key
    return get_account_id_from(access_key)


def caller_arn(access_key: str | None, account: str) -> str:
    """The caller's ARN as GetCallerIdentity answers it: a role session's `arn:aws:sts::ACCT:assumed-role/ROLE/
    SESSION`, else moto's user `arn:aws:sts::ACCT:user/moto`."""
    session = assumed_role(access_key)
    return session.arn if session is not None else f"arn:aws:sts::{account}:user/moto"


# ---------------------------------------------------------------- policies


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parse_policy(text: Any) -> dict[str, Any]:
    """A policy document (JSON text, maybe URL-encoded as IAM returns it) as a dict; {} when unreadable."""
    if isinstance(text, dict):
        return text
    for candidate in (text, unquote(text or "")):
        try:
            doc = json.loads(candidate)
            return doc if isinstance(doc, dict) else {}
        except (TypeError, ValueError):
            continue
    return {}


def principal_names(account: str, arn: str) -> set[str]:
    """What a policy's Principal AWS may name to mean this caller: "*", its account id, the account's root, its
    ARN (a user also as `arn:aws:iam::ACCT:user/NAME`), and a role session's role ARN."""
    names = {"*", account, f"arn:aws:iam::{account}:root", arn}
    user = re.fullmatch(r"arn:aws:sts::(\d{12}):user/(.+)", arn)
    if user:
        names.add(f"arn:aws:iam::{user.group(1)}:user/{user.group(2)}")
    session = SESSION_ARN.fullmatch(arn)
    if session:
        names.add(f"arn:aws:iam::{session.group(1)}:role/{session.group(2)}")
    return names


def _principal_matches(principal: Any, names: set[str]) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    wanted = set(names)
    for name in list(wanted):  # a role ARN with a path matches its name without the path and back
        role = ROLE_ARN.fullmatch(name)
        if role:
            wanted.add(f"arn:aws:iam::{role.group(1)}:role/{role.group(2)}")
    for value in _as_list(principal.get("AWS", [])):
        role = ROLE_ARN.fullmatch(str(value))
        if str(value) in wanted or (role and f"arn:aws:iam::{role.group(1)}:role/{role.group(2)}" in wanted):
            return True
    return False


def _action_matches(actions: Any, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in _as_list(actions))


CONDITION_OPERATORS = {
    "StringEquals": lambda have, want: have is not None and have in want,
    "StringNotEquals": lambda have, want: have is None or have not in want,
    "StringLike": lambda have, want: have is not None and any(fnmatch.fnmatchcase(have, w) for w in want),
    "StringNotLike": lambda have, want: have is None or not any(fnmatch.fnmatchcase(have, w) for w in want),
}


def _conditions_hold(conditions: Any, context: dict[str, str]) -> bool:
    """Every operator and key must hold; an operator this emulator does not know never holds (the statement
    does not apply)."""
    if not conditions:
        return True
    if not isinstance(conditions, dict):
        return False
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        check = CONDITION_OPERATORS.get(operator)
        if check is None or not isinstance(tests, dict):
            return False
        for key, wanted in tests.items():
            if not check(keys.get(key.lower()), [str(w) for w in _as_list(wanted)]):
                return False
    return True


def allows(policy: Any, action: str, account: str, arn: str, context: dict[str, str] | None = None) -> bool:
    """A resource policy (trust, vault access, key policy) allows `action` for the caller: an Allow statement
    matches (Principal, Action, Condition) and no Deny statement does. Statements with NotPrincipal / NotAction
    never match (not supported)."""
    doc = parse_policy(policy)
    names = principal_names(account, arn)
    context = {"aws:PrincipalAccount": account, "aws:PrincipalArn": arn, **(context or {})}
    allowed = False
    for statement in _as_list(doc.get("Statement", [])):
        if not isinstance(statement, dict) or "NotPrincipal" in statement or "NotAction" in statement:
            continue
        if not _principal_matches(statement.get("Principal"), names):
            continue
        if not _action_matches(statement.get("Action", []), action):
            continue
        if not _conditions_hold(statement.get("Condition"), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


# ---------------------------------------------------------------- AssumeRole


def _validation(errors: list[str]) -> ApiError:
    n = len(errors)
    return ApiError("ValidationError", f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(errors))


def find_role(arn: str) -> Any:
    """The IAM role with exactly this ARN (path included) in the ARN's account, or None."""
    match = ROLE_ARN.fullmatch(arn or "")
    if match is None:
        return None
    return next((r for r in iam_backends[match.group(1)]["aws"].roles.values() if r.arn == arn), None)


def before_assume_role(call: Any) -> None:
    """AssumeRole as AWS checks it (see the module doc); what passes goes on to moto."""
    fields = dict(call.form())
    role_arn, session = fields.get("RoleArn", ""), fields.get("RoleSessionName", "")
    errors = []
    if not 2 <= len(session) <= 64:
        bound = "greater than or equal to 2" if len(session) < 2 else "less than or equal to 64"
        errors.append(f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: "
                      f"Member must have length {bound}")
    if not SESSION_NAME.fullmatch(session):
        errors.append(f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: [\\w+=,.@-]*")
    duration_text = fields.get("DurationSeconds")
    duration = int(duration_text) if duration_text and re.fullmatch(r"-?\d+", duration_text) else None
    if duration is not None and duration < 900:
        errors.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                      "Member must have value greater than or equal to 900")
    if duration is not None and duration > 43200:
        errors.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                      "Member must have value less than or equal to 43200")
    if len(role_arn) < 20:
        errors.append(f"Value '{role_arn}' at 'roleArn' failed to satisfy constraint: "
                      "Member must have length greater than or equal to 20")
    if errors:
        raise _validation(errors)
    caller = caller_arn(call.access_key, call.account)
    role = find_role(role_arn)
    context = {"sts:RoleSessionName": session}
    if "ExternalId" in fields:
        context["sts:ExternalId"] = fields["ExternalId"]
    if role is None or not allows(role.assume_role_policy_document, "sts:AssumeRole", call.account, caller, context):
        raise ApiError("AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: "
                       f"{role_arn}", 403)
    if duration is not None and duration > int(role.max_session_duration or 3600):
        raise ApiError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for "
                       "this role.")
    if duration is not None and duration > 3600 and SESSION_ARN.fullmatch(caller):
        raise ApiError("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for "
                       "roles assumed by role chaining.")
