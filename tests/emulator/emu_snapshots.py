"""AMIs that share an EBS snapshot, for `ec2.prune_images` (an AMI registered from another AMI's snapshot).

moto 5.2.5 gives every AMI a snapshot of its own (RegisterImage ignores BlockDeviceMappings), checks a snapshot's
use by the one AMI it was made for, and has no DescribeImages filter `block-device-mapping.snapshot-id`. Here:
- `POST /_drflow/share-snapshot` `{"region", "image_id", "snapshot_of"}`: the AMI `image_id` now uses the snapshot
  of the AMI `snapshot_of` (as if registered from it; its own snapshot is deleted), so `DescribeImages` lists that
  snapshot in both AMIs' `BlockDeviceMappings`;
- `DeleteSnapshot` of a snapshot any AMI of the region uses -> `InvalidSnapshot.InUse` ("The snapshot S is
  currently in use by AMI", moto's wording, as AWS's); of one that does not exist -> `InvalidSnapshot.NotFound` with
  AWS's message "The snapshot 'S' does not exist." (moto's is empty);
- `DescribeImages` filter `block-device-mapping.snapshot-id` (AWS's: "The ID of the snapshot used for the Amazon
  EBS volume"): the AMIs whose block device mappings name the snapshot.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotInUse
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.models.elastic_block_store import EBSBackend

from emu_common import account


def _snapshot_of(ami: Any) -> str | None:
    snap = getattr(ami, "ebs_snapshot", None)
    return snap.id if snap is not None else None


def share(region: str, image_id: str, snapshot_of: str) -> dict[str, Any] | None:
    """The AMI `image_id` uses the snapshot of `snapshot_of`; None when either is unknown in the region."""
    backend = ec2_backends[account()][region]
    ami, source = backend.amis.get(image_id), backend.amis.get(snapshot_of)
    if ami is None or source is None or _snapshot_of(source) is None:
        return None
    own = _snapshot_of(ami)
    ami.ebs_snapshot = source.ebs_snapshot
    if own is not None and own != _snapshot_of(source):
        backend.snapshots.pop(own, None)
    return {"image_id": image_id, "snapshot_id": _snapshot_of(source)}


def install() -> None:
    delete_snapshot = EBSBackend.delete_snapshot
    get_filter_value = Ami.get_filter_value

    def patched_delete_snapshot(self: Any, snapshot_id: str) -> Any:
        for ami in getattr(self, "amis", {}).values():
            if _snapshot_of(ami) == snapshot_id:
                raise InvalidSnapshotInUse(snapshot_id, ami.id)
        if snapshot_id not in self.snapshots:
            raise EC2ClientError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
        return delete_snapshot(self, snapshot_id)

    def patched_get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "block-device-mapping.snapshot-id":
            return [m["Ebs"]["SnapshotId"] for m in self.block_device_mappings if "Ebs" in m]
        return get_filter_value(self, filter_name, method_name)

    EBSBackend.delete_snapshot = patched_delete_snapshot  # type: ignore[method-assign]
    Ami.get_filter_value = patched_get_filter_value  # type: ignore[method-assign]
