"""AWS Backup across accounts: global settings, vault access policies, and what a cross-account copy needs.

- DescribeGlobalSettings / UpdateGlobalSettings (`GET` / `PUT /global-settings`), per account:
  `isCrossAccountBackupEnabled` (default "false"), `isMpaEnabled`, `isDelegatedAdministratorEnabled` ("true" /
  "false" strings; another key or value -> InvalidParameterValueException, emulator wording).
- PutBackupVaultAccessPolicy / GetBackupVaultAccessPolicy / DeleteBackupVaultAccessPolicy
  (`/backup-vaults/NAME/access-policy`), kept on moto's vault (deleted with it): a missing vault ->
  ResourceNotFoundException; Get on a vault without a policy -> ResourceNotFoundException; a Policy that is not
  a JSON object -> InvalidParameterValueException.
- copy_refusal(): why a copy job from one account into another account's vault ends FAILED (AWS checks these
  asynchronously: StartCopyJob answers a CopyJobId, the job then fails with a StatusMessage).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from moto.backup.models import backup_backends
from moto.kms.models import kms_backends

import emu_accounts
from emu_common import ApiError, Reply, account

SETTINGS = ("isCrossAccountBackupEnabled", "isMpaEnabled", "isDelegatedAdministratorEnabled")
GLOBAL: dict[str, dict[str, Any]] = {}  # account -> {"settings": {...}, "updated": epoch seconds}

# StatusMessages of a failed cross-account copy (AWS's where reported; see tests/emulator/README.md)
DISABLED = ("Access denied: Copy job failed. Cross-account backup is not enabled for this account "
            "(isCrossAccountBackupEnabled is false in DescribeGlobalSettings).")
ACCESS_DENIED = "Access Denied trying to call AWS Backup service"
NO_VAULT = "Access Denied trying to call AWS Backup service (backup vault {} does not exist in account {}, {})"
AWS_MANAGED_VAULT_KEY = ("Copy job failed. The destination backup vault {} is encrypted with an AWS managed key: "
                         "cross-account copies of EC2 backups need a vault encrypted with a customer managed key.")
SOURCE_KEY = ("AMI snapshot copy failed with error: Given key ID is not accessible. You must have DescribeKey "
              "permissions on the default CMK")


def reset() -> None:
    GLOBAL.clear()


def settings_of(owner: str) -> dict[str, str]:
    return GLOBAL.get(owner, {}).get("settings") or {k: "false" for k in SETTINGS}


def describe_global_settings() -> dict[str, Any]:
    out: dict[str, Any] = {"GlobalSettings": settings_of(account())}
    if account() in GLOBAL:
        out["LastUpdateTime"] = GLOBAL[account()]["updated"]
    return out


def update_global_settings(body: dict[str, Any]) -> dict[str, Any]:
    wanted = body.get("GlobalSettings")
    if not isinstance(wanted, dict) or not wanted:
        raise ApiError("InvalidParameterValueException", "GlobalSettings must name at least one setting.")
    settings = dict(settings_of(account()))
    for key, value in wanted.items():
        if key not in SETTINGS:
            raise ApiError("InvalidParameterValueException",
                           f"Invalid global setting {key}. Valid settings: {', '.join(SETTINGS)}.")
        if value not in ("true", "false"):
            raise ApiError("InvalidParameterValueException",
                           f"Invalid value {value} for global setting {key}. Valid values: true, false.")
        settings[key] = value
    GLOBAL[account()] = {"settings": settings, "updated": time.time()}
    return {}


def _vault(region: str, name: str) -> Any:
    vault = backup_backends[account()][region].vaults.get(name)
    if vault is None:
        raise ApiError("ResourceNotFoundException", f"Backup vault {name} does not exist in {region}.")
    return vault


def put_access_policy(region: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    vault = _vault(region, name)
    policy = body.get("Policy")
    try:
        parsed = json.loads(policy) if isinstance(policy, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ApiError("InvalidParameterValueException", "Policy must be a JSON policy document.")
    vault.drflow_access_policy = policy
    return {}


def get_access_policy(region: str, name: str) -> dict[str, Any]:
    vault = _vault(region, name)
    policy = getattr(vault, "drflow_access_policy", None)
    if policy is None:
        raise ApiError("ResourceNotFoundException", f"Backup vault {name} has no access policy.")
    return {"BackupVaultName": name, "BackupVaultArn": vault.backup_vault_arn, "Policy": policy}


def delete_access_policy(region: str, name: str) -> dict[str, Any]:
    _vault(region, name).drflow_access_policy = None
    return {}


HANDLED = {"DescribeGlobalSettings", "UpdateGlobalSettings", "PutBackupVaultAccessPolicy",
           "GetBackupVaultAccessPolicy", "DeleteBackupVaultAccessPolicy"}


def handle(call: Any) -> Reply:
    op, region = call.operation, call.region
    name = call.path_params.get("backupVaultName", "")
    if op == "DescribeGlobalSettings":
        out = describe_global_settings()
    elif op == "UpdateGlobalSettings":
        out = update_global_settings(call.json())
    elif op == "PutBackupVaultAccessPolicy":
        out = put_access_policy(region, name, call.json())
    elif op == "GetBackupVaultAccessPolicy":
        out = get_access_policy(region, name)
    else:
        out = delete_access_policy(region, name)
    reply = Reply.json(200, out)
    reply.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return reply


# ---------------------------------------------------------------- cross-account copies


def find_key(key_id: str, owner: str, region: str) -> Any:
    """A KMS key by id, ARN, alias name or alias ARN: in the ARN's account and region when an ARN names them,
    else in `owner`'s `region`. None when there is none."""
    if key_id.startswith("arn:aws:kms:"):
        parts = key_id.split(":")
        region, owner = parts[3], parts[4]
    backends = dict.get(kms_backends, owner)
    backend = dict.get(backends, region) if backends is not None else None
    if backend is None:
        return None
    try:
        return backend.describe_key(key_id)
    except Exception:  # noqa: BLE001 - moto raises KeyError / its NotFoundException for unknown ids
        return None


def aws_managed(key: Any) -> bool:
    """An AWS managed key (aws/ebs, aws/backup, ...): it cannot be shared with other accounts."""
    return key.key_manager == "AWS" or any(alias.startswith("alias/aws/") for alias in key.aliases)


def key_usable_by(key: Any, user: str) -> bool:
    """Another account may use a customer managed key when its key policy allows it (kms:Decrypt /
    kms:CreateGrant / kms:*); the key's own account always may."""
    if key.account_id == user:
        return True
    if aws_managed(key):
        return False
    arn = f"arn:aws:iam::{user}:root"
    return any(emu_accounts.allows(key.policy, action, user, arn) for action in ("kms:Decrypt", "kms:CreateGrant"))


def copy_refusal(source: str, dest: str, dest_region: str, dest_vault: str, snapshot: Any) -> tuple[str | None, Any]:
    """(StatusMessage, None) when a copy from account `source` into `dest`'s vault must fail, else (None, the
    destination vault's encryption key). Checked in this order: the source account's isCrossAccountBackupEnabled,
    the destination vault exists, its access policy allows backup:CopyIntoBackupVault for the source account,
    it is encrypted with a customer managed key of the destination account, and an encrypted source snapshot's
    key may be used by the destination account (an AWS managed key never)."""
    if settings_of(source)["isCrossAccountBackupEnabled"] != "true":
        return DISABLED, None
    vault = backup_backends[dest][dest_region].vaults.get(dest_vault)
    if vault is None:
        return NO_VAULT.format(dest_vault, dest, dest_region), None
    policy = getattr(vault, "drflow_access_policy", None)
    if policy is None or not emu_accounts.allows(policy, "backup:CopyIntoBackupVault", source,
                                                 f"arn:aws:iam::{source}:root"):
        return ACCESS_DENIED, None
    key = find_key(vault.encryption_key_arn, dest, dest_region) if vault.encryption_key_arn else None
    if key is None or aws_managed(key):
        return AWS_MANAGED_VAULT_KEY.format(vault.backup_vault_arn), None
    if snapshot is not None and snapshot.encrypted:
        source_key = find_key(snapshot.kms_key_id or "", source, snapshot.ec2_backend.region_name)
        if source_key is None or not key_usable_by(source_key, dest):
            return SOURCE_KEY, None
    return None, key
