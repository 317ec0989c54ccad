"""AWS Backup plan selections, which moto 5.2.5 lacks: CreateBackupSelection, GetBackupSelection,
ListBackupSelections, DeleteBackupSelection, on moto's own backup plans (CreateBackupPlan, GetBackupPlan, ...).

Routes and fields are botocore's `backup` model (AWS API reference: CreateBackupSelection, GetBackupSelection,
ListBackupSelections, DeleteBackupSelection, BackupSelection, Condition, Conditions). Selections are kept per
region and plan. A plan that does not exist, or was deleted, and a selection that does not exist ->
ResourceNotFoundException; a missing SelectionName or IamRoleArn -> MissingParameterValueException; a
SelectionName not matching ^[a-zA-Z0-9\\-\\_\\.]{1,50}$, a ListOfTags ConditionType other than STRINGEQUALS,
a ListOfTags or Conditions entry without its key or value, MaxResults outside 1..1000 ->
InvalidParameterValueException (emulator wording). CreatorRequestId: a second CreateBackupSelection for the
same plan with the same id answers the first one's answer and creates nothing ("allows failed requests to be
retried without the risk of running the operation twice"). ListBackupSelections pages with MaxResults /
NextToken, in creation order. The selections are stored, never applied: no backup job is scheduled.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from moto.backup.models import backup_backends

from emu_common import ApiError, Reply, account

SELECTION_NAME = re.compile(r"[a-zA-Z0-9\-_.]{1,50}")
CONDITION_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")


@dataclass
class Selection:
    id: str
    plan_id: str
    document: dict[str, Any]  # the BackupSelection as sent (its known members)
    creator_request_id: str | None
    created: float


SELECTIONS: dict[tuple[str, str], list[Selection]] = {}  # (region, plan id) -> selections, oldest first


def reset() -> None:
    SELECTIONS.clear()


def _plan(region: str, plan_id: str) -> Any:
    plan = backup_backends[account()][region].plans.get(plan_id)
    if plan is None or plan.deletion_date is not None:
        raise ApiError("ResourceNotFoundException", f"Failed reading Backup plan {plan_id}.")
    return plan


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterValueException", message)


def _condition(entry: Any, where: str) -> dict[str, str]:
    if not isinstance(entry, dict) or not entry.get("ConditionKey") or not isinstance(entry.get("ConditionValue"), str):
        raise _invalid(f"{where}: every condition needs a ConditionKey and a ConditionValue.")
    return {"ConditionKey": entry["ConditionKey"], "ConditionValue": entry["ConditionValue"]}


def _document(doc: Any) -> dict[str, Any]:
    """A BackupSelection, checked; its known members kept as sent."""
    if not isinstance(doc, dict):
        raise ApiError("MissingParameterValueException", "BackupSelection is required.")
    for name in ("SelectionName", "IamRoleArn"):
        if not doc.get(name):
            raise ApiError("MissingParameterValueException", f"{name} is required.")
    if not SELECTION_NAME.fullmatch(doc["SelectionName"]):
        raise _invalid("SelectionName must contain 1 to 50 alphanumeric or '-_.' characters.")
    out: dict[str, Any] = {"SelectionName": doc["SelectionName"], "IamRoleArn": doc["IamRoleArn"]}
    for name in ("Resources", "NotResources"):
        arns = doc.get(name)
        if arns is not None:
            if not isinstance(arns, list) or not all(isinstance(a, str) and a for a in arns):
                raise _invalid(f"{name} must be a list of ARNs.")
            out[name] = list(arns)
    tags = doc.get("ListOfTags")
    if tags is not None:
        checked = []
        for entry in tags if isinstance(tags, list) else [None]:
            kind = entry.get("ConditionType") if isinstance(entry, dict) else None
            if not isinstance(kind, str) or kind.upper() != "STRINGEQUALS":
                raise _invalid(f"ListOfTags: ConditionType {kind} is not supported; the only type is STRINGEQUALS.")
            checked.append({"ConditionType": "STRINGEQUALS", **_condition(entry, "ListOfTags")})
        out["ListOfTags"] = checked
    conditions = doc.get("Conditions")
    if conditions is not None:
        if not isinstance(conditions, dict):
            raise _invalid("Conditions must be an object.")
        out["Conditions"] = {op: [_condition(c, op) for c in (conditions.get(op) or [])]
                             for op in CONDITION_OPERATORS}
    return out


def create_backup_selection(region: str, plan_id: str, body: dict[str, Any]) -> dict[str, Any]:
    _plan(region, plan_id)
    selections = SELECTIONS.setdefault((region, plan_id), [])
    request_id = body.get("CreatorRequestId")
    if request_id:
        first = next((s for s in selections if s.creator_request_id == request_id), None)
        if first is not None:
            return {"SelectionId": first.id, "BackupPlanId": plan_id, "CreationDate": first.created}
    selection = Selection(id=str(uuid.uuid4()), plan_id=plan_id, document=_document(body.get("BackupSelection")),
                          creator_request_id=request_id, created=time.time())
    selections.append(selection)
    return {"SelectionId": selection.id, "BackupPlanId": plan_id, "CreationDate": selection.created}


def _selection(region: str, plan_id: str, selection_id: str) -> Selection:
    _plan(region, plan_id)
    found = next((s for s in SELECTIONS.get((region, plan_id), []) if s.id == selection_id), None)
    if found is None:
        raise ApiError("ResourceNotFoundException", f"Backup selection {selection_id} of plan {plan_id} not found.")
    return found


def get_backup_selection(region: str, plan_id: str, selection_id: str) -> dict[str, Any]:
    s = _selection(region, plan_id, selection_id)
    out = {"BackupSelection": s.document, "SelectionId": s.id, "BackupPlanId": plan_id, "CreationDate": s.created,
           "CreatorRequestId": s.creator_request_id}
    return {k: v for k, v in out.items() if v is not None}


def list_backup_selections(region: str, plan_id: str, query: dict[str, str]) -> dict[str, Any]:
    _plan(region, plan_id)
    try:
        start = int(query.get("nextToken") or 0)
        size = int(query.get("maxResults") or 1000)
    except ValueError:
        raise _invalid("NextToken or MaxResults is not valid.")
    if not 1 <= size <= 1000:
        raise _invalid("MaxResults must be between 1 and 1000.")
    selections = SELECTIONS.get((region, plan_id), [])
    page = [{k: v for k, v in {
        "SelectionId": s.id, "SelectionName": s.document["SelectionName"], "BackupPlanId": plan_id,
        "CreationDate": s.created, "CreatorRequestId": s.creator_request_id,
        "IamRoleArn": s.document["IamRoleArn"]}.items() if v is not None} for s in selections[start:start + size]]
    out: dict[str, Any] = {"BackupSelectionsList": page}
    if start + size < len(selections):
        out["NextToken"] = str(start + size)
    return out


def delete_backup_selection(region: str, plan_id: str, selection_id: str) -> dict[str, Any]:
    s = _selection(region, plan_id, selection_id)
    SELECTIONS[(region, plan_id)].remove(s)
    return {}


HANDLED = {"CreateBackupSelection", "GetBackupSelection", "ListBackupSelections", "DeleteBackupSelection"}


def handle(call: Any) -> Reply:
    """Serve one of HANDLED; call.path_params come from the botocore route."""
    op, region, params = call.operation, call.region, call.path_params
    plan_id = params["backupPlanId"]
    if op == "CreateBackupSelection":
        out = create_backup_selection(region, plan_id, call.json())
    elif op == "GetBackupSelection":
        out = get_backup_selection(region, plan_id, params["selectionId"])
    elif op == "ListBackupSelections":
        out = list_backup_selections(region, plan_id, dict(call.query()))
    else:
        out = delete_backup_selection(region, plan_id, params["selectionId"])
    reply = Reply.json(200, out)
    reply.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return reply
