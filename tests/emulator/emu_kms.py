"""KMS keys of another account: DescribeKey and ListGrants by key ARN (or alias ARN) across accounts.

moto keeps each account's keys apart, so a call naming another account's key by ARN would find nothing. AWS
allows these two read calls across accounts ("Cross-account use: Yes. To perform this operation with a KMS key in a
different AWS account, specify the key ARN or alias ARN in the value of the KeyId parameter", API_DescribeKey,
API_ListGrants) when the key policy allows the caller: here an Allow statement for the action whose Principal AWS
is the caller's account, its root, its ARN or "*" (emu_accounts.allows). GetKeyPolicy is not cross-account on AWS
("Cross-account use: No"): it stays moto's (NotFoundException for another account's key).
"""

from __future__ import annotations

import json
from typing import Any

import emu_accounts
import emu_vaults
from emu_common import ApiError, Reply


def _foreign_key(call: Any, action: str) -> Any:
    """The other account's key the call names by ARN, checked against its key policy; None for the caller's own
    keys (moto answers those)."""
    key_id = str(call.json().get("KeyId") or "")
    parts = key_id.split(":")
    if not key_id.startswith("arn:aws:kms:") or len(parts) < 6 or parts[4] == call.account:
        return None
    key = emu_vaults.find_key(key_id, call.account, call.region)
    if key is None:
        raise ApiError("NotFoundException", f"Key '{key_id}' does not exist")
    caller = emu_accounts.caller_arn(call.access_key, call.account)
    if not emu_accounts.allows(key.policy, action, call.account, caller):
        raise ApiError("AccessDeniedException", f"User: {caller} is not authorized to perform: {action} on resource: "
                       f"{key.arn} because no resource-based policy allows the {action} action")
    return key


def _answer(doc: dict[str, Any]) -> Reply:
    return Reply(200, json.dumps(doc), {"Content-Type": "application/x-amz-json-1.1"})


def before_describe_key(call: Any) -> None:
    key = _foreign_key(call, "kms:DescribeKey")
    if key is not None:
        call.reply = _answer(key.to_dict())


def before_list_grants(call: Any) -> None:
    key = _foreign_key(call, "kms:ListGrants")
    if key is not None:
        grants = [g.to_json() for g in key.grants.values()] if hasattr(key, "grants") else []
        call.reply = _answer({"Grants": grants, "Truncated": False})
