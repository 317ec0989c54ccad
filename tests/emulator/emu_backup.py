"""AWS Backup jobs for EC2 instances, which moto 5.2.5 lacks, on top of moto's backends.

A backup job of `arn:aws:ec2:REGION:ACCOUNT:instance/i-...` creates an AMI of the instance
with moto's EC2 backend; a copy job copies that AMI into the destination vault's region.
Jobs advance one state per STATE.job_describes Describe*Job calls:
CREATED -> RUNNING -> COMPLETED (or FAILED when armed through /_drflow/fail-next-job).
Vaults are moto's own (CreateBackupVault, DescribeBackupVault, ... keep working). Recovery points are
the jobs' outputs (ListRecoveryPointsByBackupVault, DescribeRecoveryPoint), with the Lifecycle the job
was started with and its CalculatedLifecycle; StartBackupJob's BackupOptions come back in DescribeBackupJob.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.backup.models import backup_backends
from moto.ec2.models import ec2_backends

from emu_common import STATE, ApiError, Reply, account
import emu_sharing
import emu_vaults
from emu_hooks import mark_available

INSTANCE_ARN = re.compile(r"arn:aws:ec2:([a-z0-9-]+):(\d{12}):instance/(i-[0-9a-f]+)")
IMAGE_ARN = re.compile(r"arn:aws:ec2:([a-z0-9-]+):(\d{12})?:image/(ami-[0-9a-f]+)")
VAULT_ARN = re.compile(r"arn:aws:backup:([a-z0-9-]+):(\d{12}):backup-vault:(.+)")


@dataclass
class Job:
    kind: str  # "backup" | "copy"
    id: str
    account: str  # of the caller that started it (a copy job: the source account)
    region: str  # where the job was started
    vault_name: str  # backup: target vault; copy: source vault
    resource_arn: str
    iam_role_arn: str
    recovery_point_arn: str | None  # backup: the new AMI; copy: the source AMI
    fail_message: str | None = None
    dest_vault_arn: str | None = None  # copy only
    dest_recovery_point_arn: str | None = None  # copy only
    lifecycle: dict[str, Any] | None = None  # of the recovery point it makes (copy: the destination one)
    backup_options: dict[str, str] | None = None  # backup only
    source_created: float | None = None  # copy only: CreationDate of the source recovery point
    created: float = field(default_factory=time.time)
    completed: float | None = None
    state: str = "CREATED"
    describes: int = 0
    complete_at: float | None = None  # a seeded job that ends with time (as AWS's do), not per Describe call

    def advance(self) -> None:
        """Called on each Describe*Job: move along CREATED -> RUNNING -> final."""
        self.describes += 1
        step = STATE.job_describes
        if self.complete_at is not None or self.state in ("COMPLETED", "FAILED") or self.describes <= step:
            return
        if self.describes <= 2 * step:
            self.state = "RUNNING"
            return
        self.finish()

    def settle(self, now: float) -> None:
        """A job that ends with time: final once its time has come."""
        if self.complete_at is not None and self.state == "RUNNING" and now >= self.complete_at:
            self.finish()

    def finish(self) -> None:
        self.completed = time.time()
        if self.fail_message is not None:
            self.state = "FAILED"
            return
        self.state = "COMPLETED"
        if self.kind == "backup":
            produced, vault_name, owner = self.recovery_point_arn, self.vault_name, self.account
        else:
            produced, vault_name = self.dest_recovery_point_arn, self.dest_vault_arn.split(":")[-1]  # type: ignore[union-attr]
            owner = self.dest_vault_arn.split(":")[4]  # type: ignore[union-attr]
        region, _, ami_id = IMAGE_ARN.fullmatch(produced).groups()  # type: ignore[arg-type, union-attr]
        mark_available(region, ami_id, owner)  # a completed job's AMI is available, as on AWS
        vault = vaults(region, owner).get(vault_name)
        if vault is not None:
            vault.num_of_recovery_points += 1


JOBS: dict[str, Job] = {}
TOKENS: dict[tuple[str, str, str, str], str] = {}  # (account, region, kind, IdempotencyToken) -> job id


def reset() -> None:
    JOBS.clear()
    TOKENS.clear()


def settle() -> None:
    """Ends the jobs whose time has come (seeded ones), before any call sees the account."""
    now = time.time()
    for job in JOBS.values():
        job.settle(now)


def vaults(region: str, owner: str | None = None) -> dict[str, Any]:
    """The vaults of an account (default: the caller's) in a region."""
    return backup_backends[owner or account()][region].vaults


def _vault(region: str, name: str) -> Any:
    vault = vaults(region).get(name)
    if vault is None:
        raise ApiError("ResourceNotFoundException", f"Backup vault {name} does not exist in {region}.")
    return vault


def _require(doc: dict[str, Any], *names: str) -> None:
    for name in names:
        if not doc.get(name):
            raise ApiError("MissingParameterValueException", f"{name} is required.")


MAX_DAYS = 36500  # "This parameter has a maximum value of 100 years (36,500 days)." (StartBackupJob Lifecycle)
LIFECYCLE_DAYS = ("MoveToColdStorageAfterDays", "DeleteAfterDays")
LIFECYCLE_FIELDS = (*LIFECYCLE_DAYS, "OptInToArchiveForSupportedResources")
BACKUP_OPTIONS = {"WindowsVSS": ("enabled", "disabled")}  # the only option AWS documents, EC2 only


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterValueException", message)


def _lifecycle(value: Any) -> dict[str, Any] | None:
    """A StartBackupJob / StartCopyJob `Lifecycle`, checked as AWS documents (API_Lifecycle): days from 1 to
    36500, or -1 for never ("specify -1 for MoveToColdStorageAfterDays and DeleteAfterDays" to keep a recovery
    point indefinitely); DeleteAfterDays at least 90 days after MoveToColdStorageAfterDays; DeleteAfterEvent is
    "Not valid as an input". The messages are AWS's as reported for backup plans. Unknown members are ignored,
    as AWS's JSON reader does; the known ones are kept as sent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("Invalid lifecycle. Lifecycle must be an object.")
    if "DeleteAfterEvent" in value:
        raise _invalid("Invalid lifecycle. DeleteAfterEvent is not valid as an input.")
    for name in LIFECYCLE_DAYS:
        days = value.get(name)
        if days is None:
            continue
        if isinstance(days, bool) or not isinstance(days, int):
            raise _invalid(f"Invalid lifecycle. {name} must be a whole number of days.")
        if days != -1 and not 1 <= days <= MAX_DAYS:
            raise _invalid(f"Invalid lifecycle. {name} cannot be less than 1 or more than {MAX_DAYS} days")
    opt_in = value.get("OptInToArchiveForSupportedResources")
    if opt_in is not None and not isinstance(opt_in, bool):
        raise _invalid("Invalid lifecycle. OptInToArchiveForSupportedResources must be true or false.")
    cold, delete = value.get("MoveToColdStorageAfterDays"), value.get("DeleteAfterDays")
    if cold is not None and delete is not None and cold > 0 and delete > 0 and delete < cold + 90:
        raise _invalid("Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from "
                       "MoveToColdStorageAfterDays")
    kept = {k: value[k] for k in LIFECYCLE_FIELDS if value.get(k) is not None}
    return kept or None


def _backup_options(value: Any) -> dict[str, str] | None:
    """StartBackupJob `BackupOptions`: {"WindowsVSS": "enabled" | "disabled"}; "If you specify an invalid
    option, you get an InvalidParameterValueException exception." (the messages are the emulator's)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("BackupOptions must be a map of option names to values.")
    for key, option in value.items():
        if key not in BACKUP_OPTIONS:
            raise _invalid(f"Invalid backup option {key}. Valid options: {', '.join(BACKUP_OPTIONS)}.")
        if option not in BACKUP_OPTIONS[key]:
            raise _invalid(f"Invalid value {option} for backup option {key}. "
                           f"Valid values: {', '.join(BACKUP_OPTIONS[key])}.")
    return dict(value) or None


def _calculated(lifecycle: dict[str, Any] | None, created: float) -> dict[str, float] | None:
    """CalculatedLifecycle of an EC2 recovery point: DeleteAt = CreationDate + DeleteAfterDays. No
    MoveToColdStorageAt: EC2 backups do not move to cold storage, and AWS "ignores this expression for other
    resource types" than those in its feature table (the field is accepted, checked and kept as sent)."""
    days = (lifecycle or {}).get("DeleteAfterDays")
    return {"DeleteAt": created + days * 86400} if days and days > 0 else None


def _remembered(region: str, kind: str, token: str | None) -> Job | None:
    job_id = TOKENS.get((account(), region, kind, token)) if token else None
    return JOBS.get(job_id) if job_id else None


def _new_job(region: str, kind: str, token: str | None, **fields: Any) -> Job:
    job = Job(kind=kind, id=str(uuid.uuid4()).upper(), account=account(), region=region, **fields)
    JOBS[job.id] = job
    if token:
        TOKENS[(account(), region, kind, token)] = job.id
    return job


def _job(region: str, kind: str, job_id: str) -> Job:
    job = JOBS.get(job_id)
    if job is None or job.kind != kind or job.region != region or job.account != account():
        name = "Backup" if kind == "backup" else "Copy"
        raise ApiError("ResourceNotFoundException", f"{name} job {job_id} not found.")
    return job


# ---------------------------------------------------------------- operations


def start_backup_job(region: str, doc: dict[str, Any]) -> dict[str, Any]:
    _require(doc, "BackupVaultName", "ResourceArn", "IamRoleArn")
    token = doc.get("IdempotencyToken")
    if (job := _remembered(region, "backup", token)) is not None:
        return {"BackupJobId": job.id, "CreationDate": job.created, "IsParent": False}
    lifecycle, options = _lifecycle(doc.get("Lifecycle")), _backup_options(doc.get("BackupOptions"))
    _vault(region, doc["BackupVaultName"])
    window = doc.get("StartWindowMinutes")
    if window is not None and window < 60:
        raise ApiError("InvalidParameterValueException", "StartWindowMinutes must be at least 60 minutes.")
    match = INSTANCE_ARN.fullmatch(doc["ResourceArn"])
    if match is None:
        raise ApiError("InvalidParameterValueException",
                       f"Invalid or unsupported resource ARN: {doc['ResourceArn']} (this emulator backs up EC2 instances).")
    arn_region, arn_account, instance_id = match.groups()
    if arn_region != region or arn_account != account():
        raise ApiError("InvalidParameterValueException",
                       f"Resource {doc['ResourceArn']} is not in account {account()}, region {region}.")
    ec2 = ec2_backends[account()][region]
    instance = next((i for i in ec2.all_instances() if i.id == instance_id), None)
    if instance is None or instance.state == "terminated":
        raise ApiError("ResourceNotFoundException", f"Resource {doc['ResourceArn']} not found.")

    fail = STATE.fail_next.pop("backup", None)
    rp_arn = None
    if fail is None:
        tags = [{"Key": k, "Value": v} for k, v in (doc.get("RecoveryPointTags") or {}).items()]
        ami = ec2.create_image(instance_id, f"AwsBackup_{instance_id}_{uuid.uuid4()}",
                               "This image is created by the AWS Backup service.",
                               [{"ResourceType": "image", "Tags": tags}] if tags else [])
        rp_arn = f"arn:aws:ec2:{region}::image/{ami.id}"
    job = _new_job(region, "backup", token, vault_name=doc["BackupVaultName"],
                   resource_arn=doc["ResourceArn"], iam_role_arn=doc["IamRoleArn"],
                   recovery_point_arn=rp_arn, fail_message=fail, lifecycle=lifecycle, backup_options=options)
    return {"BackupJobId": job.id, "CreationDate": job.created, "IsParent": False}


def describe_backup_job(region: str, job_id: str) -> dict[str, Any]:
    job = _job(region, "backup", job_id)
    job.advance()
    vault = vaults(region).get(job.vault_name)
    out: dict[str, Any] = {
        "AccountId": job.account, "BackupJobId": job.id, "BackupVaultName": job.vault_name,
        "BackupVaultArn": vault.backup_vault_arn if vault else None,
        "ResourceArn": job.resource_arn, "ResourceType": "EC2", "IamRoleArn": job.iam_role_arn,
        "CreationDate": job.created, "InitiationDate": job.created, "State": job.state,
        "PercentDone": {"CREATED": "0.0", "RUNNING": "50.0"}.get(job.state, "100.0"),
        "BackupType": "", "IsParent": False, "IsEncrypted": False, "VaultType": "BACKUP_VAULT",
    }
    if job.state in ("RUNNING", "COMPLETED") and job.recovery_point_arn:
        out["RecoveryPointArn"] = job.recovery_point_arn
    if job.state == "COMPLETED":
        out.update(CompletionDate=job.completed, BackupSizeInBytes=8 * 2**30)
    if job.state == "FAILED":
        out.update(CompletionDate=job.completed, StatusMessage=job.fail_message)
    if job.lifecycle:
        out["RecoveryPointLifecycle"] = job.lifecycle
    if job.backup_options:
        out["BackupOptions"] = job.backup_options
    return {k: v for k, v in out.items() if v is not None}


def _recovery_points(region: str, vault_name: str) -> list[dict[str, Any]]:
    """Recovery points held by a vault: outputs of backup and copy jobs from RUNNING on."""
    vault_arn = vaults(region)[vault_name].backup_vault_arn
    points = []
    for job in JOBS.values():
        if job.state not in ("RUNNING", "COMPLETED"):
            continue
        if job.kind == "backup" and job.account == account() and job.region == region and job.vault_name == vault_name:
            arn, source_vault = job.recovery_point_arn, None
        elif job.kind == "copy" and job.dest_vault_arn == vault_arn:
            source = vaults(job.region, job.account).get(job.vault_name)
            arn, source_vault = job.dest_recovery_point_arn, source.backup_vault_arn if source else None
        else:
            continue
        # a copy keeps the source's CreationDate (its age is the source backup's age)
        created = job.created if job.kind == "backup" else (job.source_created or job.created)
        point = {
            "RecoveryPointArn": arn, "BackupVaultName": vault_name, "BackupVaultArn": vault_arn,
            "SourceBackupVaultArn": source_vault, "ResourceArn": job.resource_arn, "ResourceType": "EC2",
            "IamRoleArn": job.iam_role_arn, "CreationDate": created,
            "InitiationDate": job.created if job.kind == "backup" else None, "CompletionDate": job.completed,
            "Status": "COMPLETED" if job.state == "COMPLETED" else "CREATING",
            **_encryption(arn, job.account if job.kind == "backup" else job.dest_vault_arn.split(":")[4]),  # type: ignore[union-attr]
            "IsParent": False, "VaultType": "BACKUP_VAULT", "Lifecycle": job.lifecycle,
            "CalculatedLifecycle": _calculated(job.lifecycle, created),
        }
        points.append({k: v for k, v in point.items() if v is not None})
    return points


def _encryption(rp_arn: str | None, owner: str) -> dict[str, Any]:
    """IsEncrypted / EncryptionKeyArn of an EC2 recovery point: its AMI's snapshot's (EC2 backups are not fully
    managed by AWS Backup: they keep the EBS encryption)."""
    match = IMAGE_ARN.fullmatch(rp_arn or "")
    ami = ec2_backends[owner][match.group(1)].amis.get(match.group(3)) if match else None
    snapshot = getattr(ami, "ebs_snapshot", None)
    if snapshot is None or not snapshot.encrypted:
        return {"IsEncrypted": False}
    return {"IsEncrypted": True, "EncryptionKeyArn": snapshot.kms_key_id}


def _page(points: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
    """A page of maxResults (1 to 1000) from nextToken, in no particular order (by ARN: AWS documents none)."""
    points = sorted(points, key=lambda p: p.get("RecoveryPointArn") or p.get("CopyJobId") or "")
    start = int(query.get("nextToken", "0") or 0)
    size = int(query.get("maxResults", "1000") or 1000)
    if not 1 <= size <= 1000:
        raise _invalid(f"maxResults must be between 1 and 1000, not {size}")
    out: dict[str, Any] = {key: points[start:start + size]}
    if start + size < len(points):
        out["NextToken"] = str(start + size)
    return out


def _created_between(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    if "createdAfter" in query:
        items = [p for p in items if p["CreationDate"] >= _instant(query["createdAfter"])]
    if "createdBefore" in query:
        items = [p for p in items if p["CreationDate"] <= _instant(query["createdBefore"])]
    return items


def list_recovery_points(region: str, vault_name: str, query: dict[str, str]) -> dict[str, Any]:
    """ListRecoveryPointsByBackupVault: ByResourceArn, ByResourceType, ByCreatedAfter/Before; pages."""
    _vault(region, vault_name)
    points = _recovery_points(region, vault_name)
    if "resourceArn" in query:
        points = [p for p in points if p["ResourceArn"] == query["resourceArn"]]
    if "resourceType" in query:
        points = [p for p in points if p["ResourceType"] == query["resourceType"]]
    return _page(_created_between(points, query), query, "RecoveryPoints")


def list_recovery_points_by_resource(region: str, resource_arn: str, query: dict[str, str]) -> dict[str, Any]:
    """ListRecoveryPointsByResource: the resource's points in every vault of the region (all made by AWS Backup
    here), with AWS's shorter fields (RecoveryPointByResource); pages."""
    fields = ("RecoveryPointArn", "CreationDate", "Status", "StatusMessage", "EncryptionKeyArn", "BackupSizeBytes",
              "BackupVaultName", "IsParent", "ParentRecoveryPointArn", "ResourceName", "VaultType")
    points = []
    for name in vaults(region):
        for p in _recovery_points(region, name):
            if p["ResourceArn"] == resource_arn:
                points.append({k: v for k, v in p.items() if k in fields})
    return _page(points, query, "RecoveryPoints")


def list_copy_jobs(region: str, query: dict[str, str]) -> dict[str, Any]:
    """ListCopyJobs (in the source region): BySourceRecoveryPointArn, ByResourceArn, ByDestinationVaultArn, ByState,
    ByCreatedAfter/Before; pages. Listing a job observes it as DescribeCopyJob does (jobs advance per observation
    here, as in ListBackupJobs; seeded jobs end with time), and each comes as DescribeCopyJob describes it."""
    found = [j for j in JOBS.values() if j.kind == "copy" and j.region == region and j.account == account()]
    for key, member in (("sourceRecoveryPointArn", "SourceRecoveryPointArn"), ("resourceArn", "ResourceArn"),
                        ("destinationVaultArn", "DestinationBackupVaultArn")):
        if key in query:
            found = [j for j in found if _copy_job(j).get(member) == query[key]]
    jobs = _created_between([_copy_job(j) for j in found], query)
    listed = {j["CopyJobId"] for j in jobs}
    for job in found:
        if job.id in listed:
            job.advance()
    jobs = [_copy_job(j) for j in found if j.id in listed]
    if "state" in query:
        jobs = [j for j in jobs if j["State"] == query["state"]]
    return _page(jobs, query, "CopyJobs")


def describe_recovery_point(region: str, vault_name: str, rp_arn: str) -> dict[str, Any]:
    _vault(region, vault_name)
    point = next((p for p in _recovery_points(region, vault_name) if p["RecoveryPointArn"] == rp_arn), None)
    if point is None:
        raise ApiError("ResourceNotFoundException", f"Recovery point {rp_arn} not found in backup vault {vault_name}.")
    size = {"BackupSizeInBytes": 8 * 2**30} if point["Status"] == "COMPLETED" else {}
    return {**point, **size, "StorageClass": "WARM"}


def start_copy_job(region: str, doc: dict[str, Any]) -> dict[str, Any]:
    _require(doc, "RecoveryPointArn", "SourceBackupVaultName", "DestinationBackupVaultArn", "IamRoleArn")
    token = doc.get("IdempotencyToken")
    if (job := _remembered(region, "copy", token)) is not None:
        return {"CopyJobId": job.id, "CreationDate": job.created, "IsParent": False}
    lifecycle = _lifecycle(doc.get("Lifecycle"))
    _vault(region, doc["SourceBackupVaultName"])
    dest = VAULT_ARN.fullmatch(doc["DestinationBackupVaultArn"])
    if dest is None:
        raise ApiError("InvalidParameterValueException",
                       f"Invalid destination backup vault ARN: {doc['DestinationBackupVaultArn']}")
    dest_region, dest_account, dest_vault = dest.groups()
    cross_account = dest_account != account()
    if not cross_account:
        _vault(dest_region, dest_vault)
    rp_arn = doc["RecoveryPointArn"]
    point = next((p for p in _recovery_points(region, doc["SourceBackupVaultName"])
                  if p["RecoveryPointArn"] == rp_arn), None)
    if point is None:
        raise ApiError("ResourceNotFoundException",
                       f"Recovery point {rp_arn} not found in backup vault {doc['SourceBackupVaultName']}.")
    if point["Status"] != "COMPLETED":
        raise ApiError("InvalidRequestException", f"Recovery point {rp_arn} is not COMPLETED yet.")

    fail = STATE.fail_next.pop("copy", None)
    source_ami = IMAGE_ARN.fullmatch(rp_arn).group(3)  # type: ignore[union-attr]
    key = None
    if fail is None and cross_account:  # AWS checks these after the call: the job fails
        source = ec2_backends[account()][region].amis.get(source_ami)
        fail, key = emu_vaults.copy_refusal(account(), dest_account, dest_region, dest_vault,
                                            getattr(source, "ebs_snapshot", None))
    dest_rp = None
    if fail is None:
        ami = ec2_backends[dest_account][dest_region].copy_image(source_ami, region)
        if key is not None:  # "AWS Backup re-encrypts your copy using the customer managed key of your destination vault"
            emu_sharing.encrypt(ami, key.arn)
        dest_rp = f"arn:aws:ec2:{dest_region}::image/{ami.id}"
    job = _new_job(region, "copy", token, vault_name=doc["SourceBackupVaultName"],
                   resource_arn=point["ResourceArn"], iam_role_arn=doc["IamRoleArn"],
                   recovery_point_arn=rp_arn, fail_message=fail,
                   dest_vault_arn=doc["DestinationBackupVaultArn"], dest_recovery_point_arn=dest_rp,
                   # without a Lifecycle the copy keeps the source's (as AWS documents for copy actions)
                   lifecycle=lifecycle if lifecycle is not None else point.get("Lifecycle"),
                   source_created=point["CreationDate"])
    return {"CopyJobId": job.id, "CreationDate": job.created, "IsParent": False}


def describe_copy_job(region: str, job_id: str) -> dict[str, Any]:
    job = _job(region, "copy", job_id)
    job.advance()
    return {"CopyJob": _copy_job(job)}


def _copy_job(job: Job) -> dict[str, Any]:
    region = job.region
    source_vault = vaults(region, job.account).get(job.vault_name)
    out: dict[str, Any] = {
        "AccountId": job.account, "CopyJobId": job.id,
        "SourceBackupVaultArn": source_vault.backup_vault_arn if source_vault else None,
        "SourceRecoveryPointArn": job.recovery_point_arn,
        "DestinationBackupVaultArn": job.dest_vault_arn, "DestinationVaultType": "BACKUP_VAULT",
        "ResourceArn": job.resource_arn, "ResourceType": "EC2", "IamRoleArn": job.iam_role_arn,
        "CreationDate": job.created, "State": job.state, "IsParent": False,
        "DestinationRecoveryPointLifecycle": job.lifecycle,
    }
    if job.state in ("RUNNING", "COMPLETED"):
        out["DestinationRecoveryPointArn"] = job.dest_recovery_point_arn
    if job.state == "COMPLETED":
        out.update(CompletionDate=job.completed, BackupSizeInBytes=8 * 2**30)
    if job.state == "FAILED":
        out.update(CompletionDate=job.completed, StatusMessage=job.fail_message)
    return {k: v for k, v in out.items() if v is not None}


def _instant(text: str) -> float:
    """A query-string timestamp: ISO 8601 (what the SDKs send) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def list_backup_jobs(region: str, query: dict[str, str]) -> dict[str, Any]:
    """ListBackupJobs: the region's backup jobs, oldest first, filtered by createdAfter/createdBefore and state,
    a page of maxResults (at most 1000) from nextToken. Listing a job observes it as DescribeBackupJob does (jobs
    advance per observation here), and each comes as DescribeBackupJob describes it."""
    jobs = sorted((j for j in JOBS.values() if j.kind == "backup" and j.region == region and j.account == account()),
                  key=lambda j: j.created)
    if "createdAfter" in query:
        jobs = [j for j in jobs if j.created >= _instant(query["createdAfter"])]
    if "createdBefore" in query:
        jobs = [j for j in jobs if j.created <= _instant(query["createdBefore"])]
    start = int(query.get("nextToken", "0") or 0)
    size = int(query.get("maxResults", "1000") or 1000)
    if not 1 <= size <= 1000:
        raise _invalid(f"maxResults must be between 1 and 1000, not {size}")
    page = [describe_backup_job(region, j.id) for j in jobs[start:start + size]]
    if "state" in query:
        page = [j for j in page if j["State"] == query["state"]]
    out: dict[str, Any] = {"BackupJobs": page}
    if start + size < len(jobs):
        out["NextToken"] = str(start + size)
    return out


HANDLED = {"StartBackupJob", "DescribeBackupJob", "ListBackupJobs", "StartCopyJob", "DescribeCopyJob",
           "ListRecoveryPointsByBackupVault", "DescribeRecoveryPoint", "ListRecoveryPointsByResource", "ListCopyJobs"}


def handle(call: Any) -> Reply:
    """Serve one of HANDLED; call.path_params come from the botocore route."""
    op, region, params = call.operation, call.region, call.path_params
    if op == "StartBackupJob":
        out = start_backup_job(region, call.json())
    elif op == "DescribeBackupJob":
        out = describe_backup_job(region, params["backupJobId"])
    elif op == "ListBackupJobs":
        out = list_backup_jobs(region, dict(call.query()))
    elif op == "StartCopyJob":
        out = start_copy_job(region, call.json())
    elif op == "DescribeCopyJob":
        out = describe_copy_job(region, params["copyJobId"])
    elif op == "DescribeRecoveryPoint":
        out = describe_recovery_point(region, params["backupVaultName"], params["recoveryPointArn"])
    elif op == "ListRecoveryPointsByResource":
        out = list_recovery_points_by_resource(region, params["resourceArn"], dict(call.query()))
    elif op == "ListCopyJobs":
        out = list_copy_jobs(region, dict(call.query()))
    else:
        out = list_recovery_points(region, params["backupVaultName"], dict(call.query()))
    reply = Reply.json(200, out)
    reply.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return reply


# ---------------------------------------------------------------- seeded plan history (test-only)

COPY_TOOK = 20 * 60  # a seeded copy's DR AMI is this much younger than its source


def _past(ami: Any, when: float) -> None:
    """Dates an AMI back (moto keeps a naive UTC datetime)."""
    ami.creation_date = datetime.fromtimestamp(when, tz=timezone.utc).replace(tzinfo=None)


def seed_history(body: dict[str, Any]) -> dict[str, Any]:
    """What an AWS Backup plan with a copy rule made before now, for one instance: `points` (any order) of
    {"age_seconds", "copy": "completed" | "failed" | "running" | "none", "message", "completes_after_seconds"}. Each
    point is a COMPLETED backup job of `instance_id` into `vault` created `age_seconds` ago, with a real AMI (moto's
    CreateImage, dated back); its copy job (started in `region`, into `dr_vault` in `dr_region`) is COMPLETED (a real
    copied AMI, available), FAILED with `message` (no DR point), RUNNING until `completes_after_seconds` from now
    (default 60; its DR AMI `pending` until then: it then completes by itself, as AWS's do), or absent. Returns
    the points, oldest first, with their ARNs, AMIs and copy jobs."""
    region, dr_region = body["region"], body["dr_region"]
    vault, dr_vault = body.get("vault", "Default"), body.get("dr_vault", "Default")
    instance_id = body["instance_id"]
    _vault(region, vault)
    _vault(dr_region, dr_vault)
    ec2 = ec2_backends[account()][region]
    if not any(i.id == instance_id for i in ec2.all_instances()):
        raise ApiError("ResourceNotFoundException", f"no instance {instance_id} in {region}")
    resource_arn = f"arn:aws:ec2:{region}:{account()}:instance/{instance_id}"
    dest_vault_arn = vaults(dr_region)[dr_vault].backup_vault_arn
    role = f"arn:aws:iam::{account()}:role/service-role/AWSBackupDefaultServiceRole"
    now, out = time.time(), []
    for spec in sorted(body["points"], key=lambda p: -p["age_seconds"]):
        copy = spec.get("copy", "completed")
        if copy not in ("completed", "failed", "running", "none"):
            raise ValueError(f"copy must be completed, failed, running or none, not {copy!r}")
        created = now - float(spec["age_seconds"])
        ami = ec2.create_image(instance_id, f"AwsBackup_{instance_id}_{uuid.uuid4()}",
                               "This image is created by the AWS Backup service.", [])
        mark_available(region, ami.id)
        _past(ami, created)
        rp_arn = f"arn:aws:ec2:{region}::image/{ami.id}"
        backup = _new_job(region, "backup", None, vault_name=vault, resource_arn=resource_arn, iam_role_arn=role,
                          recovery_point_arn=rp_arn, created=created, completed=created + 300, state="COMPLETED")
        vaults(region)[vault].num_of_recovery_points += 1
        point: dict[str, Any] = {"recovery_point_arn": rp_arn, "image_id": ami.id, "creation_date": created,
                                 "backup_job_id": backup.id, "copy": copy}
        if copy != "none":
            fields: dict[str, Any] = {}
            dest_rp = None
            if copy == "failed":
                fields.update(fail_message=spec.get("message") or "Copy job failed.", state="FAILED",
                              completed=created + COPY_TOOK)
            else:
                dr_ami = ec2_backends[account()][dr_region].copy_image(ami.id, region)
                dest_rp = f"arn:aws:ec2:{dr_region}::image/{dr_ami.id}"
                point.update(dr_recovery_point_arn=dest_rp, dr_image_id=dr_ami.id)
                if copy == "completed":
                    mark_available(dr_region, dr_ami.id)
                    _past(dr_ami, created + COPY_TOOK)
                    fields.update(state="COMPLETED", completed=created + COPY_TOOK)
                    vaults(dr_region)[dr_vault].num_of_recovery_points += 1
                else:  # pending until the job completes (not per DescribeImages call)
                    STATE.pending_images.pop((account(), dr_region, dr_ami.id), None)
                    dr_ami.state = "pending"
                    fields.update(state="RUNNING", complete_at=now + float(spec.get("completes_after_seconds", 60)))
            job = _new_job(region, "copy", None, vault_name=vault, resource_arn=resource_arn, iam_role_arn=role,
                           recovery_point_arn=rp_arn, dest_vault_arn=dest_vault_arn, dest_recovery_point_arn=dest_rp,
                           source_created=created, created=created + 360, **fields)
            point["copy_job_id"] = job.id
        out.append(point)
    return {"points": out}
