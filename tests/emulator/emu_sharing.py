"""EC2 AMIs across accounts, and EBS encryption of copies.

- DescribeImages in account B also answers the AMIs of other accounts in the region that were shared with B
  (launch permission `UserId` B or `Group` all), by ImageIds and in listings (Owners / ExecutableUsers / Filters
  apply); moto alone answers InvalidAMIID.NotFound.
- CopyImage by B of an AMI owned by A (in SourceRegion): an AMI not shared with B -> InvalidAMIID.NotFound (B
  cannot see it); shared but its snapshot not (createVolumePermission for B or all) -> InvalidRequest "You do not
  have permission to access the storage of this ami". The copy belongs to B, in B's (destination) region.
- Encryption: `Encrypted=true` (with `KmsKeyId`: key id, key ARN, alias name or alias ARN; without: the account's
  default EBS key `alias/aws/ebs`, made on first use as AWS does) encrypts the copy's snapshot; an encrypted source
  is always copied encrypted (with KmsKeyId, else the destination's default EBS key). A KmsKeyId without
  Encrypted=true -> InvalidParameterDependency. A key that does not exist in the destination region, is not
  Enabled, or is another account's key whose policy does not let B use it, and an encrypted source whose key B may
  not use (an AWS managed key never): the call succeeds and the copy ends `failed` with a StateReason, as AWS
  answers (an invalid key is only found while copying).
- Sharing refused: ModifyImageAttribute adding a launch permission to an AMI whose snapshot is encrypted with an
  AWS managed key -> InvalidParameter; ModifySnapshotAttribute adding createVolumePermission to such a snapshot ->
  OperationNotPermitted (AWS's messages as reported).
"""

from __future__ import annotations

import re
from typing import Any

from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.utils import generic_filter, random_ami_id
from moto.kms.models import KmsBackend

import emu_vaults
from emu_common import ApiError, account

COPY_FAILED = {"Code": "Server.InternalError", "Message": "Copy image failed with an internal error"}
AMI_NOT_SHAREABLE = "Snapshots encrypted with the AWS Managed CMK can’t be shared. Specify another snapshot."
SNAPSHOT_NOT_SHAREABLE = "Encrypted snapshots with EBS default key cannot be shared"


def shared_with(ami: Ami, user: str) -> bool:
    return {"UserId": user} in ami.launch_permissions or {"Group": "all"} in ami.launch_permissions


def find_image(ami_id: str, region: str) -> tuple[str, Ami] | tuple[None, None]:
    """(owner account, AMI) of an AMI id in a region: the caller's own first, then any account's."""
    own = ec2_backends[account()][region].amis.get(ami_id)
    if own is not None:
        return account(), own
    for owner, backends in dict.items(ec2_backends):
        backend = dict.get(backends, region)
        ami = backend.amis.get(ami_id) if backend is not None else None
        if ami is not None and ami.owner_id == owner:
            return owner, ami
    return None, None


def _shared_images(user: str, region: str) -> list[Ami]:
    """AMIs that other accounts own in the region and shared with `user`."""
    out = []
    for owner, backends in dict.items(ec2_backends):
        backend = dict.get(backends, region)
        if owner == user or backend is None:
            continue
        out += [a for a in backend.amis.values() if a.owner_id == owner and shared_with(a, user)]
    return out


def default_ebs_key(owner: str, region: str) -> str:
    """ARN of the account's default EBS key (alias/aws/ebs, an AWS managed key), made on first use."""
    arn = ec2_backends[owner][region]._create_default_encryption_key()
    key = emu_vaults.find_key(arn, owner, region)
    if key is not None:
        key.key_manager = "AWS"
    return arn


def encrypt(ami: Ami, key_arn: str) -> None:
    ami.ebs_snapshot.encrypted = True
    ami.ebs_snapshot.kms_key_id = key_arn


def install_sharing_patches() -> None:
    """CopyImage finds a source AMI of another account; DescribeImages adds the AMIs shared with the caller;
    DescribeImages' block device mappings tell the snapshot's encryption; KMS's own default keys (alias/aws/...)
    are AWS managed. Installed before emu_hooks' patches (which wrap copy_image)."""
    describe = AmiBackend.describe_images
    generate_default = KmsBackend._generate_default_keys

    def copy_image(self: Any, source_image_id: str, source_region: str, name: str | None = None,
                   description: str | None = None) -> Ami:
        owner, source = find_image(source_image_id, source_region)
        if source is None:
            raise InvalidAMIIdError(source_image_id)
        ami = Ami(self, random_ami_id(), source_ami=source, name=name, description=description)
        self.amis[ami.id] = ami
        return ami

    def describe_images(self: Any, ami_ids: list[str] | None = None, filters: Any = None,
                        exec_users: list[str] | None = None, owners: list[str] | None = None) -> list[Ami]:
        shared = _shared_images(self.account_id, self.region_name)
        if ami_ids:
            shared = [a for a in shared if a.id in ami_ids]
            try:
                own = describe(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)
            except InvalidAMIIdError:
                if not shared:
                    raise
                own = []
            return own + [a for a in shared if a not in own]
        own = describe(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)
        if owners:
            shared = [a for a in shared if a.owner_id in owners]
        if exec_users:
            users = {self.account_id if u == "self" else u for u in exec_users}
            shared = [a for a in shared if any(shared_with(a, u) for u in users)]
        if filters:
            shared = generic_filter(filters, shared)
        return own + [a for a in shared if a not in own]

    def block_device_mappings(self: Ami) -> list[dict[str, Any]]:
        ebs = {"SnapshotId": self.ebs_snapshot.id, "VolumeSize": 15, "DeleteOnTermination": False,
               "VolumeType": "standard", "Encrypted": bool(self.ebs_snapshot.encrypted)}
        if self.ebs_snapshot.encrypted and self.ebs_snapshot.kms_key_id:
            ebs["KmsKeyId"] = self.ebs_snapshot.kms_key_id
        return [{"DeviceName": self.root_device_name, "Ebs": ebs}]

    def generate_default_keys(self: Any, alias_name: str) -> Any:
        key_id = generate_default(self, alias_name)
        if key_id is not None and key_id in self.keys:
            self.keys[key_id].key_manager = "AWS"
        return key_id

    AmiBackend.copy_image = copy_image  # type: ignore[method-assign]
    AmiBackend.describe_images = describe_images  # type: ignore[method-assign]
    Ami.block_device_mappings = property(block_device_mappings)  # type: ignore[method-assign, assignment]
    KmsBackend._generate_default_keys = generate_default_keys  # type: ignore[method-assign]


# ---------------------------------------------------------------- CopyImage across accounts and with encryption


def before_copy_image_access(call: Any) -> None:
    """Who may copy the source AMI, and with which key the copy is encrypted (see the module doc)."""
    fields = dict(call.form())
    if fields.get("DryRun", "").lower() == "true":
        return
    source_id, source_region = fields.get("SourceImageId", ""), fields.get("SourceRegion", "")
    owner, source = find_image(source_id, source_region)
    if source is None:
        return  # moto's InvalidAMIID errors
    caller = account()
    if owner != caller:
        if not shared_with(source, caller):
            raise ApiError("InvalidAMIID.NotFound", f"The image id '[{source_id}]' does not exist")
        snapshot = source.ebs_snapshot
        if caller not in snapshot.create_volume_permission_userids and \
                "all" not in snapshot.create_volume_permission_groups:
            raise ApiError("InvalidRequest", "You do not have permission to access the storage of this ami")
    encrypted = fields.get("Encrypted", "").lower() == "true"
    key_id = fields.get("KmsKeyId")
    if key_id and not encrypted:
        raise ApiError("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
    source_encrypted = bool(source.ebs_snapshot.encrypted)
    key_arn, failed = None, False
    if encrypted or source_encrypted:
        if key_id:
            key = emu_vaults.find_key(key_id, caller, call.region)
            failed = key is None or key.region != call.region or key.key_state != "Enabled" or \
                not emu_vaults.key_usable_by(key, caller)
            key_arn = None if failed else key.arn
        else:
            key_arn = default_ebs_key(caller, call.region)
    if source_encrypted and owner != caller:
        source_key = emu_vaults.find_key(source.ebs_snapshot.kms_key_id or "", owner, source_region)
        failed = failed or source_key is None or not emu_vaults.key_usable_by(source_key, caller)
    call.copy_encryption = (key_arn, failed)


def after_copy_image_encryption(call: Any, status: int) -> None:
    pending = getattr(call, "copy_encryption", None)
    reply = getattr(call, "response", None)
    if status != 200 or pending is None or reply is None:
        return
    found = re.search(rb"<imageId>(ami-[0-9a-f]+)</imageId>", reply.body)
    ami = ec2_backends[account()][call.region].amis.get(found.group(1).decode()) if found else None
    if ami is None:
        return
    key_arn, failed = pending
    if failed:
        ami.drflow_final_state = "failed"  # pending first (as any copy), then failed instead of available
        ami.state_reason = dict(COPY_FAILED)
        if ami.state != "pending":
            ami.state = "failed"
    elif key_arn:
        encrypt(ami, key_arn)


# ---------------------------------------------------------------- sharing refused for AWS managed keys


def _aws_managed_snapshot(snapshot: Any, region: str) -> bool:
    if snapshot is None or not snapshot.encrypted:
        return False
    key = emu_vaults.find_key(snapshot.kms_key_id or "", account(), region)
    return key is not None and emu_vaults.aws_managed(key)


def _adds(fields: dict[str, str], prefix: str) -> bool:
    """The request adds a permission: `PREFIX.Add.N.*` or `OperationType=add`."""
    return fields.get("OperationType", "").lower() == "add" or any(k.startswith(f"{prefix}.Add.") for k in fields)


def before_modify_image_attribute(call: Any) -> None:
    fields = dict(call.form())
    if not _adds(fields, "LaunchPermission"):
        return
    ami = ec2_backends[account()][call.region].amis.get(fields.get("ImageId", ""))
    if ami is not None and _aws_managed_snapshot(ami.ebs_snapshot, call.region):
        raise ApiError("InvalidParameter", AMI_NOT_SHAREABLE)


def before_modify_snapshot_attribute(call: Any) -> None:
    fields = dict(call.form())
    if not _adds(fields, "CreateVolumePermission"):
        return
    snapshot = ec2_backends[account()][call.region].snapshots.get(fields.get("SnapshotId", ""))
    if _aws_managed_snapshot(snapshot, call.region):
        raise ApiError("OperationNotPermitted", SNAPSHOT_NOT_SHAREABLE)
