#!/usr/bin/env python3
"""Self-test of the drflow emulator: starts server.py on a free port and exercises every extension.

    PY=$(bash scripts/emulator-venv | tail -n1); $PY tests/emulator/selftest.py

Prints one line per check and `N passed, M failed` at the end; exits non-zero on any failure.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

import selftest_lambda
import selftest_sfn

HERE = os.path.dirname(os.path.abspath(__file__))
DR_STACK_TEMPLATE = os.path.join(HERE, "..", "..", "stacks", "dr-ec2.yaml")  # the project's own DR stack
NO_UPDATES = ("ValidationError", "No updates are to be performed.")
PRIMARY, DR = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/drflow-backup"
AMI_ARN = re.compile(r"arn:aws:ec2:([a-z0-9-]+)::image/(ami-[0-9a-f]+)")

URL = ""
CHECKS: list[tuple[str, Callable[[dict[str, Any]], None]]] = []


def check(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    CHECKS.append((fn.__name__, fn))
    return fn


def control(method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    return text if path.endswith("/health") else json.loads(text)


def client(service: str, region: str = PRIMARY) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=URL,
                        aws_access_key_id="AKIDDRFLOWTEST", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def error_of(fn: Callable[[], Any]) -> ClientError:
    try:
        fn()
    except ClientError as e:
        return e
    raise AssertionError("expected a ClientError")


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def image_state(region: str, ami: str) -> str:
    return client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]["State"]


def describe_job(kind: str, job_id: str, region: str = PRIMARY) -> dict[str, Any]:
    b = client("backup", region)
    if kind == "backup":
        return b.describe_backup_job(BackupJobId=job_id)
    return b.describe_copy_job(CopyJobId=job_id)["CopyJob"]


def job_states(kind: str, job_id: str, n: int = 3) -> list[dict[str, Any]]:
    return [describe_job(kind, job_id) for _ in range(n)]


def start_backup(ctx: dict[str, Any], **extra: Any) -> str:
    return client("backup").start_backup_job(
        BackupVaultName="drflow-primary", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE, **extra)["BackupJobId"]


def start_copy(ctx: dict[str, Any], rp_arn: str, **extra: Any) -> str:
    return client("backup").start_copy_job(
        RecoveryPointArn=rp_arn, SourceBackupVaultName="drflow-primary",
        DestinationBackupVaultArn=ctx["dr_vault_arn"], IamRoleArn=ROLE, **extra)["CopyJobId"]


# ---------------------------------------------------------------- checks


@check
def health_and_config(ctx: dict[str, Any]) -> None:
    assert control("GET", "/_drflow/health") == "ok"
    assert control("GET", "/_drflow/config") == {"pending_describes": 2, "job_describes": 1, "status_describes": 0}


@check
def setup_instance_and_vaults(ctx: dict[str, Any]) -> None:
    ec2 = client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bad = error_of(lambda: ec2.run_instances(ImageId="ami-00000000000000000", MinCount=1, MaxCount=1))
    assert code(bad).startswith("InvalidAMIID"), code(bad)  # MOTO_ENABLE_AMI_VALIDATION is on
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    ctx["base_ami"], ctx["instance_id"] = base, inst["InstanceId"]
    ctx["instance_arn"] = f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/{inst['InstanceId']}"
    client("backup").create_backup_vault(BackupVaultName="drflow-primary")
    ctx["dr_vault_arn"] = client("backup", DR).create_backup_vault(BackupVaultName="drflow-dr")["BackupVaultArn"]
    assert ctx["dr_vault_arn"] == f"arn:aws:backup:{DR}:{ACCOUNT}:backup-vault:drflow-dr"


@check
def backup_job_creates_available_ami(ctx: dict[str, Any]) -> None:
    job_id = start_backup(ctx, IdempotencyToken="tok-backup-1", RecoveryPointTags={"drflow:run": "r1"})
    created, running, completed = job_states("backup", job_id)
    assert created["State"] == "CREATED" and "RecoveryPointArn" not in created, created
    assert running["State"] == "RUNNING", running
    assert completed["State"] == "COMPLETED" and "CompletionDate" in completed, completed
    assert running["RecoveryPointArn"] == completed["RecoveryPointArn"]
    region, ami = AMI_ARN.fullmatch(completed["RecoveryPointArn"]).groups()  # type: ignore[union-attr]
    assert region == PRIMARY
    image = client("ec2").describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available", image["State"]
    assert {"Key": "drflow:run", "Value": "r1"} in image.get("Tags", []), image.get("Tags")
    points = client("backup").list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [completed["RecoveryPointArn"]], points
    assert points[0]["Status"] == "COMPLETED" and points[0]["ResourceArn"] == ctx["instance_arn"]
    ctx.update(backup_job=job_id, rp_arn=completed["RecoveryPointArn"], primary_ami=ami)


@check
def backup_idempotency_token(ctx: dict[str, Any]) -> None:
    before = len(client("ec2").describe_images(Owners=["self"])["Images"])
    again = start_backup(ctx, IdempotencyToken="tok-backup-1")
    assert again == ctx["backup_job"], (again, ctx["backup_job"])
    assert len(client("ec2").describe_images(Owners=["self"])["Images"]) == before
    assert describe_job("backup", again)["State"] == "COMPLETED"
    # A retry answers exactly what the first call answered (job id, creation date, ...), also when the
    # retry's other parameters differ (AWS documents no mismatch error: the first answer, nothing done).
    b = client("backup")

    def start(**extra: Any) -> dict[str, Any]:
        out = b.start_backup_job(BackupVaultName="drflow-primary", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE,
                                 IdempotencyToken="tok-backup-first", **extra)
        out.pop("ResponseMetadata")
        return out

    first = start()
    assert set(first) == {"BackupJobId", "CreationDate", "IsParent"}, first
    assert start() == first and start(RecoveryPointTags={"other": "tags"}) == first
    assert b.start_backup_job(BackupVaultName="drflow-missing", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE,
                              IdempotencyToken="tok-backup-first")["BackupJobId"] == first["BackupJobId"]
    assert len(client("ec2").describe_images(Owners=["self"])["Images"]) == before + 1
    assert job_states("backup", first["BackupJobId"])[-1]["State"] == "COMPLETED"
    # tokens are per region and kind
    e = error_of(lambda: client("backup", DR).start_backup_job(
        BackupVaultName="drflow-primary", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE,
        IdempotencyToken="tok-backup-first"))
    assert code(e) == "ResourceNotFoundException", e.response  # a new request in DR: no such vault there


@check
def backup_errors(ctx: dict[str, Any]) -> None:
    b = client("backup")
    e = error_of(lambda: b.start_backup_job(BackupVaultName="nope", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE))
    assert code(e) == "ResourceNotFoundException", code(e)
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ResourceNotFoundException"
    missing = f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/i-0123456789abcdef0"
    e = error_of(lambda: b.start_backup_job(BackupVaultName="drflow-primary", ResourceArn=missing, IamRoleArn=ROLE))
    assert code(e) == "ResourceNotFoundException", code(e)
    e = error_of(lambda: b.start_backup_job(BackupVaultName="drflow-primary", ResourceArn="arn:aws:s3:::bucket",
                                            IamRoleArn=ROLE))
    assert code(e) == "InvalidParameterValueException", code(e)
    e = error_of(lambda: b.describe_backup_job(BackupJobId="00000000-0000-0000-0000-000000000000"))
    assert code(e) == "ResourceNotFoundException", code(e)
    e = error_of(lambda: client("backup", DR).describe_backup_job(BackupJobId=ctx["backup_job"]))
    assert code(e) == "ResourceNotFoundException", "jobs are regional"


@check
def copy_job_copies_ami_to_dr(ctx: dict[str, Any]) -> None:
    job_id = start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-copy-1")
    assert start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-copy-1") == job_id  # idempotent
    created, running, completed = job_states("copy", job_id)
    assert created["State"] == "CREATED" and "DestinationRecoveryPointArn" not in created, created
    assert running["State"] == "RUNNING" and completed["State"] == "COMPLETED", (running, completed)
    assert completed["SourceRecoveryPointArn"] == ctx["rp_arn"]
    assert completed["DestinationBackupVaultArn"] == ctx["dr_vault_arn"]
    region, ami = AMI_ARN.fullmatch(completed["DestinationRecoveryPointArn"]).groups()  # type: ignore[union-attr]
    assert region == DR and ami != ctx["primary_ami"]
    assert image_state(DR, ami) == "available"
    error_of(lambda: client("ec2").describe_images(ImageIds=[ami]))  # not in the primary region
    points = client("backup", DR).list_recovery_points_by_backup_vault(BackupVaultName="drflow-dr")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [completed["DestinationRecoveryPointArn"]], points
    assert points[0]["SourceBackupVaultArn"].endswith(":backup-vault:drflow-primary")
    ctx["dr_ami"] = ami


@check
def copy_errors(ctx: dict[str, Any]) -> None:
    e = error_of(lambda: start_copy(ctx, f"arn:aws:ec2:{PRIMARY}::image/ami-0123456789abcdef0"))
    assert code(e) == "ResourceNotFoundException", code(e)
    e = error_of(lambda: client("backup").start_copy_job(
        RecoveryPointArn=ctx["rp_arn"], SourceBackupVaultName="drflow-primary", IamRoleArn=ROLE,
        DestinationBackupVaultArn=f"arn:aws:backup:{DR}:{ACCOUNT}:backup-vault:missing"))
    assert code(e) == "ResourceNotFoundException", code(e)


def error_text(e: ClientError) -> tuple[str, int, str]:
    return code(e), e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Message"]


def close_to(a: Any, b: Any) -> bool:
    return abs((a - b).total_seconds()) < 0.01


LC_RANGE = "Invalid lifecycle. {} cannot be less than 1 or more than 36500 days"
LC_APART = "Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays"


@check
def backup_lifecycle_is_checked(ctx: dict[str, Any]) -> None:
    """StartBackupJob / StartCopyJob Lifecycle: checked as API_Lifecycle documents; a refused call makes nothing."""
    b, before = client("backup"), self_images(PRIMARY)
    bad = [({"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 119}, LC_APART),
           ({"MoveToColdStorageAfterDays": 100, "DeleteAfterDays": 50}, LC_APART),
           ({"DeleteAfterDays": 0}, LC_RANGE.format("DeleteAfterDays")),
           ({"DeleteAfterDays": -2}, LC_RANGE.format("DeleteAfterDays")),
           ({"DeleteAfterDays": 36501}, LC_RANGE.format("DeleteAfterDays")),
           ({"MoveToColdStorageAfterDays": 0, "DeleteAfterDays": 100}, LC_RANGE.format("MoveToColdStorageAfterDays"))]
    for lifecycle, message in bad:
        e = error_of(lambda: start_backup(ctx, Lifecycle=lifecycle))
        assert error_text(e) == ("InvalidParameterValueException", 400, message), (lifecycle, e.response)
        e = error_of(lambda: start_copy(ctx, ctx["rp_arn"], Lifecycle=lifecycle))
        assert error_text(e) == ("InvalidParameterValueException", 400, message), (lifecycle, e.response)
    for options in ({"WindowsVSS": "on"}, {"WindowsVSS": "Enabled"}, {"Other": "enabled"}):
        e = error_of(lambda: start_backup(ctx, BackupOptions=options))
        assert code(e) == "InvalidParameterValueException", (options, e.response)
    assert self_images(PRIMARY) == before
    # accepted: exactly 90 days apart, -1 (never), one field alone, the most days
    for lifecycle in ({"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 120},
                      {"MoveToColdStorageAfterDays": -1, "DeleteAfterDays": -1}, {"DeleteAfterDays": 1},
                      {"MoveToColdStorageAfterDays": 36500, "OptInToArchiveForSupportedResources": True}):
        job = describe_job("backup", start_backup(ctx, Lifecycle=lifecycle))
        assert job["RecoveryPointLifecycle"] == lifecycle, (lifecycle, job)


@check
def backup_lifecycle_reaches_the_recovery_points(ctx: dict[str, Any]) -> None:
    """Lifecycle and BackupOptions are kept: DescribeBackupJob (RecoveryPointLifecycle, BackupOptions),
    DescribeRecoveryPoint and ListRecoveryPointsByBackupVault (Lifecycle, CalculatedLifecycle); a copy gets
    its own Lifecycle or else the source's, and keeps the source's CreationDate."""
    b, b_dr = client("backup"), client("backup", DR)
    lifecycle, options = {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 120}, {"WindowsVSS": "enabled"}
    control("DELETE", "/_drflow/calls")
    job_id = start_backup(ctx, Lifecycle=lifecycle, BackupOptions=options, IdempotencyToken="tok-lifecycle")
    job = job_states("backup", job_id)[-1]
    assert job["State"] == "COMPLETED" and job["RecoveryPointLifecycle"] == lifecycle, job
    assert job["BackupOptions"] == options, job
    assert "BackupOptions" not in describe_job("backup", ctx["backup_job"])  # none sent, none answered
    rp_arn = job["RecoveryPointArn"]
    point = b.describe_recovery_point(BackupVaultName="drflow-primary", RecoveryPointArn=rp_arn)
    assert point["RecoveryPointArn"] == rp_arn and point["Status"] == "COMPLETED", point
    assert point["ResourceArn"] == ctx["instance_arn"] and point["ResourceType"] == "EC2", point
    assert point["Lifecycle"] == lifecycle and point["StorageClass"] == "WARM", point
    calculated = point["CalculatedLifecycle"]
    assert close_to(calculated["DeleteAt"] - point["CreationDate"], timedelta(days=120)), point
    assert "MoveToColdStorageAt" not in calculated, point  # EC2 backups do not move to cold storage
    listed = {p["RecoveryPointArn"]: p for p in
              b.list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary")["RecoveryPoints"]}
    assert listed[rp_arn]["Lifecycle"] == lifecycle and listed[rp_arn]["CalculatedLifecycle"] == calculated
    assert "CalculatedLifecycle" not in listed[ctx["rp_arn"]], listed[ctx["rp_arn"]]  # no lifecycle given
    # a copy with its own lifecycle
    copy = job_states("copy", start_copy(ctx, rp_arn, Lifecycle={"DeleteAfterDays": 365}))[-1]
    assert copy["DestinationRecoveryPointLifecycle"] == {"DeleteAfterDays": 365}, copy
    dr_point = b_dr.describe_recovery_point(BackupVaultName="drflow-dr",
                                            RecoveryPointArn=copy["DestinationRecoveryPointArn"])
    assert dr_point["Lifecycle"] == {"DeleteAfterDays": 365}, dr_point
    assert dr_point["CreationDate"] == point["CreationDate"], (dr_point, point)  # the source's
    assert close_to(dr_point["CalculatedLifecycle"]["DeleteAt"] - point["CreationDate"], timedelta(days=365))
    assert dr_point["SourceBackupVaultArn"].endswith(":backup-vault:drflow-primary"), dr_point
    # a copy without one keeps the source's
    copy = job_states("copy", start_copy(ctx, rp_arn))[-1]
    dr_point = b_dr.describe_recovery_point(BackupVaultName="drflow-dr",
                                            RecoveryPointArn=copy["DestinationRecoveryPointArn"])
    assert dr_point["Lifecycle"] == lifecycle and dr_point["CalculatedLifecycle"] == calculated, dr_point
    # not in that vault / no such point
    e = error_of(lambda: b.describe_recovery_point(BackupVaultName="drflow-primary",
                                                   RecoveryPointArn=copy["DestinationRecoveryPointArn"]))
    assert code(e) == "ResourceNotFoundException", e.response
    unknown = f"arn:aws:ec2:{PRIMARY}::image/ami-0123456789abcdef0"
    e = error_of(lambda: b.describe_recovery_point(BackupVaultName="drflow-primary", RecoveryPointArn=unknown))
    assert code(e) == "ResourceNotFoundException", e.response
    e = error_of(lambda: b.describe_recovery_point(BackupVaultName="drflow-nope", RecoveryPointArn=rp_arn))
    assert code(e) == "ResourceNotFoundException", e.response
    # the calls log holds what each call sent (REST-JSON: body plus path / query members)
    start = control("GET", "/_drflow/calls?operation=StartBackupJob")[0]["request"]
    assert start == {"BackupVaultName": "drflow-primary", "ResourceArn": ctx["instance_arn"], "IamRoleArn": ROLE,
                     "Lifecycle": lifecycle, "BackupOptions": options, "IdempotencyToken": "tok-lifecycle"}, start
    described = control("GET", "/_drflow/calls?operation=DescribeRecoveryPoint")[0]["request"]
    assert described == {"BackupVaultName": "drflow-primary", "RecoveryPointArn": rp_arn}, described
    assert control("GET", "/_drflow/calls?operation=DescribeBackupJob")[0]["request"] == {"BackupJobId": job_id}


@check
def list_backup_jobs(ctx: dict[str, Any]) -> None:
    """ListBackupJobs by creation time answers each job as DescribeBackupJob would, in pages."""
    b = client("backup")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    ids = [start_backup(ctx) for _ in range(3)]
    listed = b.list_backup_jobs(ByCreatedAfter=since)["BackupJobs"]
    assert [j["BackupJobId"] for j in listed][-3:] == ids, listed
    mine = {j["BackupJobId"]: j for j in listed}
    assert all(mine[i]["State"] in ("CREATED", "RUNNING") and mine[i]["ResourceArn"] == ctx["instance_arn"]
               for i in ids), listed
    paged, token = [], None
    while True:
        page = b.list_backup_jobs(ByCreatedAfter=since, MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["BackupJobs"]) <= 2, page
        paged += [j["BackupJobId"] for j in page["BackupJobs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert paged == [j["BackupJobId"] for j in listed], (paged, listed)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert b.list_backup_jobs(ByCreatedAfter=later)["BackupJobs"] == []
    sent = control("GET", "/_drflow/calls?operation=ListBackupJobs")[0]["request"]
    assert "ByCreatedAfter" in sent, sent


@check
def list_copy_jobs_by_creation_time(ctx: dict[str, Any]) -> None:
    """ListCopyJobs ByCreatedAfter (what batched copy polls read) answers each job as DescribeCopyJob would, and
    observes it as a describe does: CREATED, then RUNNING, then COMPLETED with its DR recovery point."""
    b = client("backup")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    job_id = start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-list-copies")

    def listed() -> dict[str, Any]:
        jobs = {j["CopyJobId"]: j for j in b.list_copy_jobs(ByCreatedAfter=since)["CopyJobs"]}
        return jobs[job_id]

    states = [listed()["State"] for _ in range(3)]
    assert states == ["CREATED", "RUNNING", "COMPLETED"], states
    done = listed()
    assert done["DestinationRecoveryPointArn"] and done["SourceRecoveryPointArn"] == ctx["rp_arn"], done
    assert describe_job("copy", job_id)["State"] == "COMPLETED"
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert b.list_copy_jobs(ByCreatedAfter=later)["CopyJobs"] == []


@check
def fail_next_backup_job(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/fail-next-job", {"kind": "backup", "message": "Snapshot quota exceeded"})
    job_id = start_backup(ctx)
    final = job_states("backup", job_id)[-1]
    assert final["State"] == "FAILED" and final["StatusMessage"] == "Snapshot quota exceeded", final
    assert "RecoveryPointArn" not in final
    assert job_states("backup", start_backup(ctx))[-1]["State"] == "COMPLETED"  # only the next job fails


@check
def fail_next_copy_job(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/fail-next-job", {"kind": "copy", "message": "Copy failed: KMS"})
    final = job_states("copy", start_copy(ctx, ctx["rp_arn"]))[-1]
    assert final["State"] == "FAILED" and final["StatusMessage"] == "Copy failed: KMS", final
    assert "DestinationRecoveryPointArn" not in final


@check
def job_describes_config(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/config", {"job_describes": 2})
    try:
        states = [s["State"] for s in job_states("backup", start_backup(ctx), 5)]
    finally:
        control("POST", "/_drflow/config", {"job_describes": 1})
    assert states == ["CREATED", "CREATED", "RUNNING", "RUNNING", "COMPLETED"], states


@check
def images_stay_pending(ctx: dict[str, Any]) -> None:
    ec2, ec2_dr = client("ec2"), client("ec2", DR)
    ami = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-manual")["ImageId"]
    assert [image_state(PRIMARY, ami) for _ in range(3)] == ["pending", "pending", "available"]
    copy = ec2_dr.copy_image(SourceImageId=ami, SourceRegion=PRIMARY, Name="drflow-copy")["ImageId"]
    assert [image_state(DR, copy) for _ in range(3)] == ["pending", "pending", "available"]
    job_id = start_backup(ctx)
    rp = job_states("backup", job_id, 2)[-1]["RecoveryPointArn"]  # RUNNING
    backup_ami = rp.rsplit("/", 1)[-1]
    assert image_state(PRIMARY, backup_ami) == "pending"
    assert describe_job("backup", job_id)["State"] == "COMPLETED"
    assert image_state(PRIMARY, backup_ami) == "available"
    control("POST", "/_drflow/config", {"pending_describes": 0})
    try:
        quick = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-quick")["ImageId"]
        assert image_state(PRIMARY, quick) == "available"
    finally:
        control("POST", "/_drflow/config", {"pending_describes": 2})
    ctx["pending_ami"] = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-pending")["ImageId"]


@check
def image_age_dates_an_image_in_the_past(ctx: dict[str, Any]) -> None:
    ec2_dr = client("ec2", DR)
    ami = ec2_dr.copy_image(SourceImageId=ctx["pending_ami"], SourceRegion=PRIMARY, Name="drflow-old")["ImageId"]
    answer = control("POST", "/_drflow/image-age", {"region": DR, "image_id": ami, "age_seconds": 3 * 86400})
    assert answer["image_id"] == ami, answer
    created = ec2_dr.describe_images(ImageIds=[ami])["Images"][0]["CreationDate"]
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    assert 3 * 86400 - 120 < age < 3 * 86400 + 120, (created, age)
    control("POST", "/_drflow/image-age", {"region": DR, "image_id": ami, "creation_date": "2026-01-02T03:04:05.678Z"})
    created = ec2_dr.describe_images(ImageIds=[ami])["Images"][0]["CreationDate"]
    assert created == "2026-01-02T03:04:05.000Z", created  # to the second, as moto (and AWS) render it
    for body, status in [({"region": PRIMARY, "image_id": ami, "age_seconds": 1}, 404),  # not in that region
                         ({"region": DR, "image_id": ami, "creation_date": "yesterday"}, 400),
                         ({"region": DR, "image_id": ami}, 400), ({"region": DR, "image_id": ami, "age_seconds": -1}, 400)]:
        try:
            control("POST", "/_drflow/image-age", body)
            raise AssertionError(f"{body} was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == status, (body, e.code)


@check
def shared_snapshots_are_in_use_and_found_by_their_id(ctx: dict[str, Any]) -> None:
    ec2 = client("ec2")
    owner = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-shared-owner")["ImageId"]
    user = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-shared-user")["ImageId"]

    def snapshot(ami: str) -> str:
        return ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]

    own = snapshot(user)
    answer = control("POST", "/_drflow/share-snapshot", {"region": PRIMARY, "image_id": user, "snapshot_of": owner})
    snap = snapshot(owner)
    assert answer == {"image_id": user, "snapshot_id": snap} and snapshot(user) == snap, answer
    assert own not in {x["SnapshotId"] for x in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    found = ec2.describe_images(Owners=["self"], Filters=[{"Name": "block-device-mapping.snapshot-id", "Values": [snap]}])
    assert sorted(i["ImageId"] for i in found["Images"]) == sorted([owner, user]), found["Images"]
    # In use while either AMI is there; deletable once both are gone.
    ec2.deregister_image(ImageId=owner)
    try:
        ec2.delete_snapshot(SnapshotId=snap)
        raise AssertionError("a snapshot another AMI uses was deleted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidSnapshot.InUse" and user in e.response["Error"]["Message"], e
    ec2.deregister_image(ImageId=user)
    ec2.delete_snapshot(SnapshotId=snap)
    assert ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "block-device-mapping.snapshot-id", "Values": [snap]}])["Images"] == []
    try:
        control("POST", "/_drflow/share-snapshot", {"region": DR, "image_id": user, "snapshot_of": owner})
        raise AssertionError("an unknown image was shared")
    except urllib.error.HTTPError as e:
        assert e.code == 404, e.code


@check
def ssm_ec2_image_parameters(ctx: dict[str, Any]) -> None:
    ssm = client("ssm")
    name = "/drflow/x/ami"

    def current() -> tuple[str, int]:
        p = ssm.get_parameter(Name=name)["Parameter"]
        return p["Value"], p["Version"]

    assert ssm.put_parameter(Name=name, Value=ctx["primary_ami"], Type="String", DataType="aws:ec2:image")["Version"] == 1
    assert current() == (ctx["primary_ami"], 1)
    # accepted with 200, silently not stored: pending AMI, unknown AMI, AMI of another region
    for ami in (ctx["pending_ami"], "ami-0123456789abcdef0", ctx["dr_ami"]):
        ssm.put_parameter(Name=name, Value=ami, Type="String", DataType="aws:ec2:image", Overwrite=True)
        assert current() == (ctx["primary_ami"], 1), (ami, current())
    ssm.put_parameter(Name=name, Value=ctx["dr_ami"], Overwrite=True)  # an overwrite keeps the data type
    assert current() == (ctx["primary_ami"], 1), current()
    assert ssm.get_parameter(Name=name)["Parameter"]["DataType"] == "aws:ec2:image"
    assert len(ssm.get_parameter_history(Name=name)["Parameters"]) == 1
    e = error_of(lambda: ssm.put_parameter(Name=name, Value="not-an-ami", Type="String", DataType="aws:ec2:image",
                                           Overwrite=True))
    assert code(e) == "ValidationException", code(e)
    ssm.put_parameter(Name="/drflow/x/new", Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image")
    assert code(error_of(lambda: ssm.get_parameter(Name="/drflow/x/new"))) == "ParameterNotFound"
    ssm_dr = client("ssm", DR)
    ssm_dr.put_parameter(Name=name, Value=ctx["dr_ami"], Type="String", DataType="aws:ec2:image")
    assert ssm_dr.get_parameter(Name=name)["Parameter"]["Value"] == ctx["dr_ami"]
    ssm.put_parameter(Name="/drflow/x/plain", Value="anything", Type="String")  # text is untouched
    assert ssm.get_parameter(Name="/drflow/x/plain")["Parameter"]["Value"] == "anything"


@check
def create_image_snapshot_tags(ctx: dict[str, Any]) -> None:
    """TagSpecifications for `image` tag the AMI, for `snapshot` its snapshot (moto alone raises)."""
    ec2 = client("ec2")
    ami = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-tagged", TagSpecifications=[
        {"ResourceType": "image", "Tags": [{"Key": "drflow:run", "Value": "r9"}, {"Key": "kind", "Value": "image"}]},
        {"ResourceType": "snapshot", "Tags": [{"Key": "drflow:run", "Value": "r9"}, {"Key": "kind", "Value": "snap"}]},
    ])["ImageId"]
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert tags_of(image) == {"drflow:run": "r9", "kind": "image"}, image.get("Tags")
    snapshot_ids = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    assert snapshot_ids, image["BlockDeviceMappings"]
    for snapshot in ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]:
        assert tags_of(snapshot) == {"drflow:run": "r9", "kind": "snap"}, snapshot.get("Tags")
    only_snapshot = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-tagged-snap", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "snap"}]}])["ImageId"]
    image = ec2.describe_images(ImageIds=[only_snapshot])["Images"][0]
    assert tags_of(image) == {}, image.get("Tags")
    e = error_of(lambda: ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-tagged-bad", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}]))
    assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidParameterValue", 400), e.response


@check
def deregister_image_deletes_associated_snapshots(ctx: dict[str, Any]) -> None:
    """DeregisterImage DeleteAssociatedSnapshots (moto alone ignores it): the AMI's snapshot is deleted and listed
    `success` in deleteSnapshotResultSet; without it the snapshot stays; a second call -> InvalidAMIID.Unavailable."""
    ec2 = client("ec2")

    def snapshot_of(ami: str) -> str:
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        return [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m][0]

    ami = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-prune-a")["ImageId"]
    snap = snapshot_of(ami)
    out = ec2.deregister_image(ImageId=ami, DeleteAssociatedSnapshots=True)
    assert out.get("DeleteSnapshotResults") == [{"SnapshotId": snap, "ReturnCode": "success"}], out
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["drflow-prune-a"]}])["Images"] == []
    e = error_of(lambda: ec2.describe_snapshots(SnapshotIds=[snap]))
    assert code(e) == "InvalidSnapshot.NotFound", e.response
    e = error_of(lambda: ec2.deregister_image(ImageId=ami, DeleteAssociatedSnapshots=True))
    assert code(e) == "InvalidAMIID.Unavailable", e.response
    e = error_of(lambda: ec2.deregister_image(ImageId="ami-0fffffffffffffff0"))
    assert code(e) == "InvalidAMIID.NotFound", e.response
    kept = ec2.create_image(InstanceId=ctx["instance_id"], Name="drflow-prune-b")["ImageId"]
    snap = snapshot_of(kept)
    out = ec2.deregister_image(ImageId=kept)
    assert "DeleteSnapshotResults" not in out or out["DeleteSnapshotResults"] == [], out
    assert ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["SnapshotId"] == snap
    ec2.delete_snapshot(SnapshotId=snap)
    e = error_of(lambda: ec2.delete_snapshot(SnapshotId=snap))
    assert code(e) == "InvalidSnapshot.NotFound", e.response


@check
def copy_image_tag_specifications(ctx: dict[str, Any]) -> None:
    """CopyImage TagSpecifications (moto alone ignores them): image tags on the copy, snapshot tags on its snapshot."""
    ec2_dr = client("ec2", DR)
    copy = ec2_dr.copy_image(SourceRegion=PRIMARY, SourceImageId=ctx["primary_ami"], Name="drflow-tagged-copy",
                             ClientToken="tagged-copy", TagSpecifications=[
                                 {"ResourceType": "image", "Tags": [{"Key": "drflow:instance", "Value": "i-1"}]},
                                 {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "snap"}]}])["ImageId"]
    image = ec2_dr.describe_images(ImageIds=[copy])["Images"][0]
    assert tags_of(image) == {"drflow:instance": "i-1"}, image.get("Tags")
    snaps = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    assert tags_of(ec2_dr.describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]) == {"kind": "snap"}
    found = ec2_dr.describe_images(Owners=["self"], Filters=[{"Name": "tag:drflow:instance", "Values": ["i-1"]}])
    assert [i["ImageId"] for i in found["Images"]] == [copy], found
    e = error_of(lambda: ec2_dr.copy_image(SourceRegion=PRIMARY, SourceImageId=ctx["primary_ami"], Name="bad",
                                           TagSpecifications=[{"ResourceType": "volume",
                                                               "Tags": [{"Key": "k", "Value": "v"}]}]))
    assert code(e) == "InvalidParameterValue", e.response


@check
def ssm_keeps_100_versions_unless_the_oldest_is_labelled(ctx: dict[str, Any]) -> None:
    """moto 5.2.5's own: 100+ overwrites drop the oldest version; a label on the oldest makes PutParameter fail with
    ParameterMaxVersionLimitExceeded (AWS's message) and store nothing."""
    ssm = client("ssm")
    name = "/drflow/x/history"
    for i in range(1, 106):
        out = ssm.put_parameter(Name=name, Value=f"v{i}", Type="String", Overwrite=i > 1)
        assert out["Version"] == i, out
    history = ssm.get_parameter_history(Name=name, MaxResults=50)
    versions = [p["Version"] for p in history["Parameters"]]
    while history.get("NextToken"):
        history = ssm.get_parameter_history(Name=name, MaxResults=50, NextToken=history["NextToken"])
        versions += [p["Version"] for p in history["Parameters"]]
    assert versions == list(range(6, 106)), versions
    ssm.label_parameter_version(Name=name, ParameterVersion=6, Labels=["golden"])
    e = error_of(lambda: ssm.put_parameter(Name=name, Value="v106", Type="String", Overwrite=True))
    assert code(e) == "ParameterMaxVersionLimitExceeded", e.response
    assert "Version 6, the oldest version, can't be deleted because it has a label" in e.response["Error"]["Message"]
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert (p["Value"], p["Version"]) == ("v105", 105), p
    ssm.unlabel_parameter_version(Name=name, ParameterVersion=6, Labels=["golden"])
    assert ssm.put_parameter(Name=name, Value="v106", Type="String", Overwrite=True)["Version"] == 106


@check
def not_implemented_is_a_non_retryable_400(ctx: dict[str, Any]) -> None:
    """NotImplementedError inside moto: 400 EmulatorNotImplemented naming the operation, not a retried 500."""
    control("DELETE", "/_drflow/calls")
    retrying = boto3.client("ec2", region_name=PRIMARY, endpoint_url=URL, aws_access_key_id="AKIDDRFLOWTEST",
                            aws_secret_access_key="secret",
                            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    # moto 5.2.5: ResetImageAttribute raises NotImplementedError
    e = error_of(lambda: retrying.reset_image_attribute(ImageId=ctx["primary_ami"], Attribute="launchPermission"))
    assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("EmulatorNotImplemented", 400), e.response
    assert "ResetImageAttribute" in e.response["Error"]["Message"], e.response
    calls = control("GET", "/_drflow/calls?operation=ResetImageAttribute")
    assert [c["status"] for c in calls] == [400], calls  # not retried
    client("ec2").describe_images(ImageIds=[ctx["primary_ami"]])  # the emulator goes on


@check
def copy_image_client_token(ctx: dict[str, Any]) -> None:
    """Same ClientToken in the destination region: the same ImageId, nothing copied (as AWS)."""
    ec2_dr = client("ec2", DR)

    def copy(token: str | None = None, region: str = DR, name: str = "drflow-token-copy") -> str:
        extra = {"ClientToken": token} if token else {}
        return client("ec2", region).copy_image(SourceImageId=ctx["primary_ami"], SourceRegion=PRIMARY, Name=name,
                                                **extra)["ImageId"]

    def dr_images() -> int:
        return len(ec2_dr.describe_images(Owners=["self"])["Images"])

    first = copy("tok-copy-image-1")
    count = dr_images()
    assert copy("tok-copy-image-1") == first and copy("tok-copy-image-1") == first
    assert dr_images() == count, "a repeated ClientToken copied again"
    e = error_of(lambda: copy("tok-copy-image-1", name="drflow-token-other"))
    assert code(e) == "IdempotentParameterMismatch", e.response
    assert copy("tok-copy-image-2") != first  # another token, another copy
    other_region = copy("tok-copy-image-1", region="eu-west-1")  # tokens are per (destination) region
    assert other_region != first
    assert copy() != copy()  # no token: every call copies
    assert dr_images() == count + 3


@check
def sts_caller_identity(ctx: dict[str, Any]) -> None:
    for region in (PRIMARY, DR):
        who = client("sts", region).get_caller_identity()
        assert who["Account"] == ACCOUNT and who["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:"), who
        assert who["UserId"], who


def instance_checks(instance_id: str, region: str = PRIMARY) -> tuple[str, str, str] | None:
    out = client("ec2", region).describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)
    if not out["InstanceStatuses"]:
        return None
    st = out["InstanceStatuses"][0]
    assert st["InstanceId"] == instance_id, st
    return st["InstanceState"]["Name"], st["SystemStatus"]["Status"], st["InstanceStatus"]["Status"]


@check
def instance_status_checks(ctx: dict[str, Any]) -> None:
    ec2 = client("ec2")

    def launch(ami: str) -> str:
        return ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]

    instance = launch(ctx["base_ami"])
    assert instance_checks(instance) == ("running", "ok", "ok"), instance_checks(instance)
    st = ec2.describe_instance_status(InstanceIds=[instance])["InstanceStatuses"][0]  # IncludeAllInstances=false
    assert st["InstanceStatus"]["Details"] == [{"Name": "reachability", "Status": "passed"}], st
    # initializing for the first `status_describes` describes of each instance
    control("POST", "/_drflow/config", {"status_describes": 2})
    try:
        fresh = launch(ctx["base_ami"])
        assert [instance_checks(fresh) for _ in range(3)] == [
            ("running", "initializing", "initializing"), ("running", "initializing", "initializing"),
            ("running", "ok", "ok")]
        # listing all instances counts a describe of each
        later = launch(ctx["base_ami"])
        ec2.describe_instance_status()
        assert instance_checks(later)[1] == "initializing" and instance_checks(later)[1] == "ok"
    finally:
        control("POST", "/_drflow/config", {"status_describes": 0})
    # a stopped instance: only with IncludeAllInstances, not-applicable
    ec2.stop_instances(InstanceIds=[fresh])
    assert instance_checks(fresh) == ("stopped", "not-applicable", "not-applicable"), instance_checks(fresh)
    assert ec2.describe_instance_status(InstanceIds=[fresh])["InstanceStatuses"] == []
    # impaired: one instance ...
    impaired = control("POST", "/_drflow/impair-instance", {"instance_id": instance})
    assert impaired["instances"] == {instance: ["instance", "system"]}, impaired
    assert instance_checks(instance) == ("running", "impaired", "impaired"), instance_checks(instance)
    st = ec2.describe_instance_status(InstanceIds=[instance])["InstanceStatuses"][0]
    details = st["InstanceStatus"]["Details"][0]
    assert (details["Status"], "ImpairedSince" in details) == ("failed", True), st
    assert instance_checks(later) == ("running", "ok", "ok")  # not the others
    # ... or every instance launched from an AMI, also the ones launched later (and only one check if asked)
    before = launch(ctx["primary_ami"])
    control("POST", "/_drflow/impair-instance", {"image_id": ctx["primary_ami"], "check": "system"})
    after = launch(ctx["primary_ami"])
    assert instance_checks(before) == ("running", "impaired", "ok"), instance_checks(before)
    assert instance_checks(after) == ("running", "impaired", "ok"), instance_checks(after)
    assert instance_checks(later) == ("running", "ok", "ok")
    # a DR instance from a copy of that AMI is another AMI: not impaired
    dr_instance = client("ec2", DR).run_instances(ImageId=ctx["dr_ami"], MinCount=1, MaxCount=1)["Instances"][0]
    assert instance_checks(dr_instance["InstanceId"], DR) == ("running", "ok", "ok")
    # bad requests; DELETE clears every impairment
    for body, status in (({"instance_id": "i-0123456789abcdef0"}, 404), ({}, 400),
                         ({"instance_id": instance, "image_id": ctx["primary_ami"]}, 400),
                         ({"image_id": "nope"}, 400), ({"instance_id": instance, "check": "disk"}, 400)):
        try:
            control("POST", "/_drflow/impair-instance", body)
            raise AssertionError(f"accepted {body}")
        except urllib.error.HTTPError as err:
            assert err.code == status, (body, err.code)
    assert control("DELETE", "/_drflow/impair-instance") == {"instances": {}, "images": {}}
    assert instance_checks(instance) == ("running", "ok", "ok") and instance_checks(after) == ("running", "ok", "ok")
    for region, ids in ((PRIMARY, [instance, fresh, later, before, after]), (DR, [dr_instance["InstanceId"]])):
        client("ec2", region).terminate_instances(InstanceIds=ids)


TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Revision:
    Type: String
    Default: '0'
Resources:
  App:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: '{{resolve:ssm:%s}}'
      InstanceType: t3.micro
      Tags:
        - Key: revision
          Value: !Ref Revision
"""


def stack_instance(region: str, stack: str) -> dict[str, Any]:
    res = client("cloudformation", region).describe_stack_resources(StackName=stack)["StackResources"]
    instance_id = next(r["PhysicalResourceId"] for r in res if r["LogicalResourceId"] == "App")
    return client("ec2", region).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def stack_instance_image(region: str, stack: str) -> str:
    return stack_instance(region, stack)["ImageId"]


def stack_status(region: str, stack: str) -> str:
    return client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]


def output_instance(region: str, stack: str) -> dict[str, Any]:
    """The instance named by the stack's InstanceId output."""
    desc = client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"][0]
    instance_id = next(o["OutputValue"] for o in desc.get("Outputs", []) if o["OutputKey"] == "InstanceId")
    return describe_instance(region, instance_id)


def describe_instance(region: str, instance_id: str) -> dict[str, Any]:
    return client("ec2", region).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def assert_no_updates(fn: Callable[[], Any]) -> None:
    e = error_of(fn)
    assert (code(e), e.response["Error"]["Message"]) == NO_UPDATES, e.response


def new_available_ami(region: str, source: str, name: str) -> str:
    """A copy of a primary-region AMI in `region`, described until available."""
    ami = client("ec2", region).copy_image(SourceImageId=source, SourceRegion=PRIMARY, Name=name)["ImageId"]
    for _ in range(5):
        if image_state(region, ami) == "available":
            return ami
    raise AssertionError(f"{ami} never became available")


@check
def cloudformation_resolves_ssm(ctx: dict[str, Any]) -> None:
    cfn_dr = client("cloudformation", DR)
    cfn_dr.create_stack(StackName="drflow-app", TemplateBody=TEMPLATE % "/drflow/x/ami")
    assert cfn_dr.describe_stacks(StackName="drflow-app")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert stack_instance_image(DR, "drflow-app") == ctx["dr_ami"]
    cfn = client("cloudformation")
    cfn.create_stack(StackName="drflow-v1", TemplateBody=TEMPLATE % "/drflow/x/ami:1")
    assert stack_instance_image(PRIMARY, "drflow-v1") == ctx["primary_ami"]
    e = error_of(lambda: cfn.create_stack(StackName="drflow-bad", TemplateBody=TEMPLATE % "/drflow/x/missing"))
    assert code(e) == "ValidationError", code(e)
    # UsePreviousTemplate re-resolves the reference against the parameter's newest value
    ssm = client("ssm")
    ssm.put_parameter(Name="/drflow/x/upd", Value=ctx["base_ami"], Type="String")
    cfn.create_stack(StackName="drflow-upd", TemplateBody=TEMPLATE % "/drflow/x/upd")
    old = stack_instance(PRIMARY, "drflow-upd")
    assert old["ImageId"] == ctx["base_ami"]
    ssm.put_parameter(Name="/drflow/x/upd", Value=ctx["primary_ami"], Overwrite=True)
    # A new value behind the reference alone is no update: CloudFormation compares the template as written.
    assert_no_updates(lambda: cfn.update_stack(StackName="drflow-upd", UsePreviousTemplate=True))
    assert stack_instance(PRIMARY, "drflow-upd")["InstanceId"] == old["InstanceId"]
    revision = [{"ParameterKey": "Revision", "ParameterValue": "1"}]
    cfn.update_stack(StackName="drflow-upd", UsePreviousTemplate=True, Parameters=revision)
    new = stack_instance(PRIMARY, "drflow-upd")  # replaced, as AWS does for a new ImageId
    assert new["ImageId"] == ctx["primary_ami"] and new["InstanceId"] != old["InstanceId"], new
    assert tags_of(new)["revision"] == "1", tags_of(new)
    assert describe_instance(PRIMARY, old["InstanceId"])["State"]["Name"] == "terminated"
    keep = [{"ParameterKey": "Revision", "UsePreviousValue": True}]
    assert_no_updates(lambda: cfn.update_stack(StackName="drflow-upd", UsePreviousTemplate=True, Parameters=keep))
    assert_no_updates(lambda: cfn.update_stack(StackName="drflow-upd", TemplateBody=TEMPLATE % "/drflow/x/upd",
                                               Parameters=revision))
    assert stack_status(PRIMARY, "drflow-upd") == "UPDATE_COMPLETE"


@check
def cloudformation_dr_stack_follows_the_ami_parameter(ctx: dict[str, Any]) -> None:
    """stacks/dr-ec2.yaml: ImageId is !Sub "{{resolve:ssm:${AmiParameterName}}}", AmiVersion forces updates."""
    body = open(DR_STACK_TEMPLATE).read()
    assert "{{resolve:ssm:${AmiParameterName}}}" in body
    cfn, ssm = client("cloudformation", DR), client("ssm", DR)
    name, stack, tags = "/drflow/i-x/ami", "drflow-dr-i-x", [{"Key": "drflow:instance", "Value": "i-x"}]

    def params(version: int) -> list[dict[str, Any]]:
        return [{"ParameterKey": "AmiParameterName", "ParameterValue": name},
                {"ParameterKey": "AmiVersion", "ParameterValue": str(version)}]

    def update(version: int) -> Any:
        return cfn.update_stack(StackName=stack, TemplateBody=body, Parameters=params(version), Tags=tags)

    assert ssm.put_parameter(Name=name, Value=ctx["dr_ami"], Type="String", DataType="aws:ec2:image")["Version"] == 1
    cfn.create_stack(StackName=stack, TemplateBody=body, Parameters=params(1), Tags=tags)
    assert stack_status(DR, stack) == "CREATE_COMPLETE"
    first = output_instance(DR, stack)
    assert first["ImageId"] == ctx["dr_ami"], first["ImageId"]
    assert tags_of(first)["drflow:ami-version"] == "1" and tags_of(first)["drflow:instance"] == "i-x", tags_of(first)
    assert_no_updates(lambda: update(1))
    # A new AMI in the parameter with the same parameters is still no update (the reference is compared as written).
    next_ami = new_available_ami(DR, ctx["primary_ami"], "drflow-dr-next")
    assert ssm.put_parameter(Name=name, Value=next_ami, Overwrite=True)["Version"] == 2
    assert_no_updates(lambda: update(1))
    assert output_instance(DR, stack)["InstanceId"] == first["InstanceId"]
    # The new version is: the reference is re-resolved and the instance replaced (ImageId changed).
    update(2)
    assert stack_status(DR, stack) == "UPDATE_COMPLETE"
    second = output_instance(DR, stack)
    assert second["InstanceId"] != first["InstanceId"] and second["ImageId"] == next_ami, second
    assert second["State"]["Name"] == "running" and second["InstanceType"] == "t3.micro"
    assert describe_instance(DR, first["InstanceId"])["State"]["Name"] == "terminated"
    t = tags_of(second)
    assert (t["drflow:ami-version"], t["drflow:instance"], t["aws:cloudformation:stack-name"]) == ("2", "i-x", stack), t
    assert_no_updates(lambda: update(2))
    keep = [{"ParameterKey": "AmiParameterName", "UsePreviousValue": True},
            {"ParameterKey": "AmiVersion", "UsePreviousValue": True}]
    assert_no_updates(lambda: cfn.update_stack(StackName=stack, UsePreviousTemplate=True, Parameters=keep))
    # A new version holding the same AMI only changes a tag: updated in place, as AWS does.
    assert ssm.put_parameter(Name=name, Value=next_ami, Overwrite=True)["Version"] == 3
    cfn.update_stack(StackName=stack, UsePreviousTemplate=True,
                     Parameters=[keep[0], {"ParameterKey": "AmiVersion", "ParameterValue": "3"}])
    third = output_instance(DR, stack)
    assert third["InstanceId"] == second["InstanceId"] and third["State"]["Name"] == "running", third
    assert tags_of(third)["drflow:ami-version"] == "3" and tags_of(third)["drflow:instance"] == "i-x", tags_of(third)
    # Parameters without a default must be given again (or kept with UsePreviousValue).
    e = error_of(lambda: cfn.update_stack(StackName=stack, UsePreviousTemplate=True))
    assert (code(e), e.response["Error"]["Message"]) == (
        "ValidationError", "Parameters: [AmiParameterName] must have values"), e.response
    e = error_of(lambda: cfn.update_stack(StackName=stack, UsePreviousTemplate=True,
                                          Parameters=keep + [{"ParameterKey": "Nope", "ParameterValue": "x"}]))
    assert (code(e), e.response["Error"]["Message"]) == (
        "ValidationError", "Parameters: [Nope] do not exist in the template"), e.response
    ctx["dr_next_ami"] = next_ami


@check
def cloudformation_change_sets(ctx: dict[str, Any]) -> None:
    body = open(DR_STACK_TEMPLATE).read()
    cfn, ssm = client("cloudformation", DR), client("ssm", DR)
    name, stack = "/drflow/i-x/ami", "drflow-dr-i-x"
    keep = [{"ParameterKey": "AmiParameterName", "UsePreviousValue": True},
            {"ParameterKey": "AmiVersion", "UsePreviousValue": True}]
    cfn.create_change_set(StackName=stack, ChangeSetName="same", ChangeSetType="UPDATE", UsePreviousTemplate=True,
                          Parameters=keep)
    cs = cfn.describe_change_set(StackName=stack, ChangeSetName="same")
    assert (cs["Status"], cs["ExecutionStatus"]) == ("FAILED", "UNAVAILABLE"), cs
    assert "didn't contain changes" in cs["StatusReason"], cs
    e = error_of(lambda: cfn.execute_change_set(StackName=stack, ChangeSetName="same"))
    assert code(e) == "InvalidChangeSetStatus", e.response
    before = output_instance(DR, stack)
    newest = new_available_ami(DR, ctx["primary_ami"], "drflow-dr-newest")
    version = ssm.put_parameter(Name=name, Value=newest, Overwrite=True)["Version"]
    cfn.create_change_set(StackName=stack, ChangeSetName="next", ChangeSetType="UPDATE", TemplateBody=body,
                          Parameters=[{"ParameterKey": "AmiParameterName", "ParameterValue": name},
                                      {"ParameterKey": "AmiVersion", "ParameterValue": str(version)}])
    cs = cfn.describe_change_set(StackName=stack, ChangeSetName="next")
    assert (cs["Status"], cs["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE"), cs
    cfn.execute_change_set(StackName=stack, ChangeSetName="next")
    after = output_instance(DR, stack)
    assert after["InstanceId"] != before["InstanceId"] and after["ImageId"] == newest, after
    assert tags_of(after)["drflow:ami-version"] == str(version), tags_of(after)
    # The executed change set is what the stack holds now.
    assert_no_updates(lambda: cfn.update_stack(StackName=stack, UsePreviousTemplate=True, Parameters=keep))


SUB_TEMPLATE = {
    "Parameters": {"Leaf": {"Type": "String", "Default": "ami"}, "Version": {"Type": "String"}},
    "Resources": {"App": {"Type": "AWS::EC2::Instance", "Properties": {
        "ImageId": {"Fn::Sub": ["{{resolve:ssm:/drflow/${AWS::Region}/${Name}:${Version}}}", {"Name": {"Ref": "Leaf"}}]},
        "InstanceType": "t3.micro"}}},
}


@check
def cloudformation_sub_forms(ctx: dict[str, Any]) -> None:
    cfn, ssm = client("cloudformation", DR), client("ssm", DR)
    ssm.put_parameter(Name=f"/drflow/{DR}/ami", Value=ctx["dr_ami"], Type="String", DataType="aws:ec2:image")
    ssm.put_parameter(Name=f"/drflow/{DR}/ami", Value=ctx["dr_next_ami"], Overwrite=True)
    # JSON template, pseudo parameter, variable map with a Ref, version from a parameter
    body = json.dumps(SUB_TEMPLATE)
    cfn.create_stack(StackName="drflow-sub", TemplateBody=body, Parameters=[{"ParameterKey": "Version", "ParameterValue": "1"}])
    assert stack_instance_image(DR, "drflow-sub") == ctx["dr_ami"]
    e = error_of(lambda: cfn.create_stack(StackName="drflow-sub-missing", TemplateBody=body, Parameters=[
        {"ParameterKey": "Leaf", "ParameterValue": "nothing"}, {"ParameterKey": "Version", "ParameterValue": "1"}]))
    assert (code(e), e.response["Error"]["Message"]) == (
        "ValidationError", f"Unable to fetch parameters [/drflow/{DR}/nothing] from parameter store for this account."), e.response
    # ${...} outside Fn::Sub is no substitution: the string reaches EC2 as written
    literal = TEMPLATE.replace("'{{resolve:ssm:%s}}'", "'{{resolve:ssm:/drflow/${AWS::Region}/ami}}'")
    cfn.create_stack(StackName="drflow-literal", TemplateBody=literal)  # fails in the stack, as on AWS
    assert stack_status(DR, "drflow-literal") == "ROLLBACK_COMPLETE"
    failed = [e for e in cfn.describe_stack_events(StackName="drflow-literal")["StackEvents"]
              if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [e["LogicalResourceId"] for e in failed] == ["App"], failed
    assert "Error Code: InvalidAMIID" in failed[0]["ResourceStatusReason"], failed
    cfn.delete_stack(StackName="drflow-literal")


ROLLBACK_TEMPLATE = {
    "Resources": {
        "Good": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": "%(good)s", "InstanceType": "t3.micro"}},
        "Bad": {"Type": "AWS::EC2::Instance", "DependsOn": "Good",
                "Properties": {"ImageId": "ami-0123456789abcdef0", "InstanceType": "t3.micro"}},
    },
    "Outputs": {"BadId": {"Value": {"Ref": "Bad"}}, "GoodId": {"Value": {"Ref": "Good"}, "Export": {"Name": "drflow-good"}}},
}


@check
def cloudformation_failed_create_rolls_back(ctx: dict[str, Any]) -> None:
    """A create that fails inside moto ends as on AWS: the call succeeds, the stack is ROLLBACK_COMPLETE."""
    cfn, ssm = client("cloudformation", DR), client("ssm", DR)
    # the DR stack, its SSM parameter naming an AMI that does not exist in the region (a plain String parameter:
    # aws:ec2:image ones are validated)
    name, stack = "/drflow/i-gone/ami", "drflow-dr-i-gone"
    ssm.put_parameter(Name=name, Value="ami-0123456789abcdef0", Type="String")
    stack_id = cfn.create_stack(StackName=stack, TemplateBody=open(DR_STACK_TEMPLATE).read(),
                                Parameters=[{"ParameterKey": "AmiParameterName", "ParameterValue": name}])["StackId"]
    for _ in range(2):  # describing it again works (moto would retry the failed create)
        desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        assert desc["StackStatus"] == "ROLLBACK_COMPLETE" and "Outputs" not in desc, desc
        assert desc["StackStatusReason"] == ("The following resource(s) failed to create: [DrInstance]. "
                                             "Rollback requested by user."), desc
    summaries = {s["StackName"]: s for s in cfn.list_stacks()["StackSummaries"] if s["StackId"] == stack_id}
    assert summaries[stack]["StackStatus"] == "ROLLBACK_COMPLETE", summaries
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"][::-1]  # oldest first
    seen = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in events]
    assert seen == [(stack, "CREATE_IN_PROGRESS"), ("DrInstance", "CREATE_IN_PROGRESS"), ("DrInstance", "CREATE_FAILED"),
                    (stack, "ROLLBACK_IN_PROGRESS"), ("DrInstance", "DELETE_COMPLETE"), (stack, "ROLLBACK_COMPLETE")], seen
    failed = events[2]
    assert failed["ResourceType"] == "AWS::EC2::Instance", failed
    assert failed["ResourceStatusReason"].startswith("The image id '[ami-0123456789abcdef0]' does not exist"), failed
    assert "Error Code: InvalidAMIID.NotFound" in failed["ResourceStatusReason"], failed
    assert events[3]["ResourceStatusReason"] == desc["StackStatusReason"], events[3]
    e = error_of(lambda: cfn.update_stack(StackName=stack, UsePreviousTemplate=True,
                                          Parameters=[{"ParameterKey": "AmiParameterName", "UsePreviousValue": True}]))
    assert code(e) == "ValidationError" and "ROLLBACK_COMPLETE state and can not be updated" in e.response["Error"]["Message"]
    assert code(error_of(lambda: cfn.create_stack(StackName=stack, TemplateBody=open(DR_STACK_TEMPLATE).read(),
                                                  Parameters=[{"ParameterKey": "AmiParameterName",
                                                               "ParameterValue": name}]))) == "AlreadyExistsException"
    cfn.delete_stack(StackName=stack)
    assert code(error_of(lambda: cfn.describe_stacks(StackName=stack))) == "ValidationError"
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    # the same name again, now with an AMI that exists
    ssm.put_parameter(Name=name, Value=ctx["dr_ami"], Overwrite=True)
    cfn.create_stack(StackName=stack, TemplateBody=open(DR_STACK_TEMPLATE).read(),
                     Parameters=[{"ParameterKey": "AmiParameterName", "ParameterValue": name}])
    assert stack_status(DR, stack) == "CREATE_COMPLETE" and output_instance(DR, stack)["ImageId"] == ctx["dr_ami"]
    cfn.delete_stack(StackName=stack)
    # resources created before the failure are deleted by the rollback (newest first), outputs and exports dropped
    body = json.dumps(ROLLBACK_TEMPLATE) % {"good": ctx["dr_ami"]}
    cfn.create_stack(StackName="drflow-rollback", TemplateBody=body)
    assert stack_status(DR, "drflow-rollback") == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="drflow-rollback")["StackEvents"][::-1]
    seen = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in events]
    assert seen == [("drflow-rollback", "CREATE_IN_PROGRESS"), ("Good", "CREATE_IN_PROGRESS"), ("Good", "CREATE_COMPLETE"),
                    ("Bad", "CREATE_IN_PROGRESS"), ("Bad", "CREATE_FAILED"), ("drflow-rollback", "ROLLBACK_IN_PROGRESS"),
                    ("Good", "DELETE_IN_PROGRESS"), ("Good", "DELETE_COMPLETE"), ("Bad", "DELETE_COMPLETE"),
                    ("drflow-rollback", "ROLLBACK_COMPLETE")], seen
    good = events[2]["PhysicalResourceId"]
    assert describe_instance(DR, good)["State"]["Name"] == "terminated"
    assert "Outputs" not in cfn.describe_stacks(StackName="drflow-rollback")["Stacks"][0]
    assert cfn.list_exports()["Exports"] == [] and cfn.describe_stack_resources(StackName="drflow-rollback")["StackResources"] == []
    cfn.delete_stack(StackName="drflow-rollback")
    assert cfn.describe_stacks(StackName=events[0]["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


TOKEN_STACK = "drflow-token"
TOKEN_TEMPLATE = json.dumps({
    "Parameters": {"Value": {"Type": "String"}},
    "Resources": {"Param": {"Type": "AWS::SSM::Parameter", "Properties": {
        "Name": "/drflow/token-stack", "Type": "String", "Value": {"Ref": "Value"}}}},
})


def token_stack(operation: str, token: str, value: str = "a") -> str:
    cfn = client("cloudformation")
    if operation == "delete":
        cfn.delete_stack(StackName=TOKEN_STACK, ClientRequestToken=token)
        return ""
    call = cfn.create_stack if operation == "create" else cfn.update_stack
    return call(StackName=TOKEN_STACK, TemplateBody=TOKEN_TEMPLATE, ClientRequestToken=token,
                Parameters=[{"ParameterKey": "Value", "ParameterValue": value}])["StackId"]


@check
def cloudformation_client_request_token(ctx: dict[str, Any]) -> None:
    """CreateStack / UpdateStack / DeleteStack retried with the same ClientRequestToken do nothing more."""
    cfn, ssm = client("cloudformation"), client("ssm")

    def live() -> list[str]:
        return [s["StackId"] for s in cfn.list_stacks()["StackSummaries"]
                if s["StackName"] == TOKEN_STACK and s["StackStatus"] != "DELETE_COMPLETE"]

    def events(stack: str = TOKEN_STACK) -> list[dict[str, Any]]:
        return cfn.describe_stack_events(StackName=stack)["StackEvents"]  # newest first

    def value() -> tuple[str, int]:
        p = ssm.get_parameter(Name="/drflow/token-stack")["Parameter"]
        return p["Value"], p["Version"]

    # a CreateStack whose answer was lost: the stack exists; the retry answers its StackId and creates nothing
    control("POST", "/_drflow/faults", {"service": "cloudformation", "operation": "CreateStack", "lose_response": True})
    e = error_of(lambda: token_stack("create", "tok-create-1"))
    assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalFailure", 500), e.response
    [stack_id] = live()
    assert token_stack("create", "tok-create-1") == stack_id and token_stack("create", "tok-create-1") == stack_id
    assert live() == [stack_id] and value() == ("a", 1)
    created = events()
    assert created and {ev.get("ClientRequestToken") for ev in created} == {"tok-create-1"}, created
    # another token (or none) is another request: the name is taken
    assert code(error_of(lambda: token_stack("create", "tok-create-2"))) == "AlreadyExistsException"
    assert code(error_of(lambda: cfn.create_stack(StackName=TOKEN_STACK, TemplateBody=TOKEN_TEMPLATE, Parameters=[
        {"ParameterKey": "Value", "ParameterValue": "a"}]))) == "AlreadyExistsException"
    # an UpdateStack whose answer was lost: updated once; the retry answers the StackId, no second update and
    # no "No updates are to be performed."
    control("POST", "/_drflow/faults", {"service": "cloudformation", "operation": "UpdateStack", "lose_response": True})
    assert code(error_of(lambda: token_stack("update", "tok-update-1", "b"))) == "InternalFailure"
    assert stack_status(PRIMARY, TOKEN_STACK) == "UPDATE_COMPLETE" and value()[0] == "b"
    updated, version = events(), value()
    assert token_stack("update", "tok-update-1", "b") == stack_id
    assert token_stack("update", "tok-update-1", "c") == stack_id  # the first answer, nothing done
    assert len(events()) == len(updated) and value() == version
    assert {ev.get("ClientRequestToken") for ev in updated[:len(updated) - len(created)]} == {"tok-update-1"}
    assert_no_updates(lambda: token_stack("update", "tok-update-2", "b"))  # a new token is a new request
    # the token of another operation on the stack
    e = error_of(lambda: token_stack("update", "tok-create-1", "c"))
    assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("TokenAlreadyExistsException", 400)
    assert "tok-create-1" in e.response["Error"]["Message"] and value() == version
    # a DeleteStack whose connection was dropped: deleted; the retry is a no-op success
    control("POST", "/_drflow/faults", {"service": "cloudformation", "operation": "DeleteStack", "drop": True})
    try:
        token_stack("delete", "tok-delete-1")
        raise AssertionError("the connection was not dropped")
    except ConnectionClosedError:
        pass
    assert live() == []
    token_stack("delete", "tok-delete-1")
    deleted = events(stack_id)
    assert deleted[0]["ResourceStatus"] == "DELETE_COMPLETE" and deleted[0]["ClientRequestToken"] == "tok-delete-1"
    # the create's token again on the (deleted) stack's name: refused, as AWS does
    assert code(error_of(lambda: token_stack("create", "tok-create-1"))) == "TokenAlreadyExistsException"
    again = token_stack("create", "tok-create-3", "d")
    assert again != stack_id and stack_status(PRIMARY, TOKEN_STACK) == "CREATE_COMPLETE"
    token_stack("delete", "tok-delete-1")  # a retry of the first delete: the new stack stays
    assert live() == [again]
    token_stack("delete", "tok-delete-2")
    assert live() == []
    lost = control("GET", "/_drflow/calls?service=cloudformation&lost=true")
    assert [(c["operation"], c["status"], c["real_status"]) for c in lost] == [
        ("CreateStack", 500, 200), ("UpdateStack", 500, 200), ("DeleteStack", None, 200)], lost
    assert control("GET", "/_drflow/faults")[-1]["hit"] == 1
    control("DELETE", "/_drflow/faults")


@check
def fault_throttling_per_protocol(ctx: dict[str, Any]) -> None:
    job = ctx["backup_job"]
    control("POST", "/_drflow/faults", {"service": "backup", "operation": "DescribeBackupJob", "nth": 2,
                                        "code": "ThrottlingException", "message": "Rate exceeded", "status": 400})
    describe_job("backup", job)
    e = error_of(lambda: describe_job("backup", job))
    assert code(e) == "ThrottlingException" and e.response["Error"]["Message"] == "Rate exceeded", e.response
    describe_job("backup", job)  # count defaults to 1
    cases = [
        ("ec2", "DescribeImages", "RequestLimitExceeded", 503,
         lambda: client("ec2").describe_images(ImageIds=[ctx["primary_ami"]])),
        ("ssm", "GetParameter", "ThrottlingException", 400, lambda: client("ssm").get_parameter(Name="/drflow/x/ami")),
        ("cloudformation", "DescribeStacks", "Throttling", 400,
         lambda: client("cloudformation").describe_stacks(StackName="drflow-v1")),
        ("backup", "StartBackupJob", "AccessDeniedException", 403, lambda: start_backup(ctx)),
    ]
    for service, operation, err, status, call in cases:
        control("POST", "/_drflow/faults", {"service": service, "operation": operation, "code": err,
                                            "message": f"{err} injected", "status": status, "count": 2})
        for _ in range(2):
            e = error_of(call)
            assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == (err, status), (service, e.response)
            assert e.response["Error"]["Message"] == f"{err} injected", e.response
        call()  # the window is over
    assert len(control("GET", "/_drflow/faults")) == 5
    control("DELETE", "/_drflow/faults")
    assert control("GET", "/_drflow/faults") == []


@check
def fault_latency(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/faults", {"service": "ssm", "operation": "GetParameter", "latency_ms": 500})
    started = time.monotonic()
    client("ssm").get_parameter(Name="/drflow/x/ami")
    slow = time.monotonic() - started
    started = time.monotonic()
    client("ssm").get_parameter(Name="/drflow/x/ami")
    fast = time.monotonic() - started
    assert slow >= 0.5 and fast < 0.5, (slow, fast)
    # the delay is slept outside the emulator's lock: other calls are served meanwhile
    control("POST", "/_drflow/faults", {"service": "ssm", "operation": "GetParameter", "latency_ms": 1500})
    slow_call = threading.Thread(target=lambda: client("ssm").get_parameter(Name="/drflow/x/ami"))
    slow_call.start()
    time.sleep(0.2)
    started = time.monotonic()
    client("ec2").describe_images(ImageIds=[ctx["primary_ami"]])
    assert time.monotonic() - started < 1.0 and slow_call.is_alive()
    slow_call.join()
    control("DELETE", "/_drflow/faults")


@check
def calls_log(ctx: dict[str, Any]) -> None:
    control("DELETE", "/_drflow/calls")
    control("POST", "/_drflow/faults", {"service": "ec2", "operation": "DescribeInstances", "code": "Boom"})
    client("ssm", DR).get_parameter(Name="/drflow/x/ami")
    error_of(lambda: client("ec2").describe_instances())
    client("backup").list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary")
    client("cloudformation").describe_stacks(StackName="drflow-v1")
    calls = control("GET", "/_drflow/calls")
    got = [(c["service"], c["operation"], c["region"], c["status"]) for c in calls]
    assert got == [("ssm", "GetParameter", DR, 200), ("ec2", "DescribeInstances", PRIMARY, 400),
                   ("backup", "ListRecoveryPointsByBackupVault", PRIMARY, 200),
                   ("cloudformation", "DescribeStacks", PRIMARY, 200)], got
    assert all(a["time"] <= b["time"] for a, b in zip(calls, calls[1:]))
    # "request": what the call sent (JSON body; query / EC2 form parameters; REST-JSON body + path + query members)
    assert [c["request"] for c in calls] == [
        {"Name": "/drflow/x/ami"}, {"Action": "DescribeInstances", "Version": "2016-11-15"},
        {"BackupVaultName": "drflow-primary"},
        {"Action": "DescribeStacks", "Version": "2010-05-15", "StackName": "drflow-v1"}], calls
    assert [c["operation"] for c in control("GET", "/_drflow/calls?service=backup")] == ["ListRecoveryPointsByBackupVault"]
    control("DELETE", "/_drflow/faults")
    control("DELETE", "/_drflow/calls")
    assert control("GET", "/_drflow/calls") == []


SQS_QUEUE_ARN = f"arn:aws:sqs:{PRIMARY}:{ACCOUNT}:drflow-alerts-test"
# what a plain HTTP client sends: moto does not check signatures, the emulator reads service and region
# from the credential scope
DUMMY_AUTH = f"AWS4-HMAC-SHA256 Credential=test/20250101/{PRIMARY}/sqs/aws4_request, SignedHeaders=host, Signature=0"


def plain_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, str]:
    """(status, content type, body) of an unsigned HTTP POST (with DUMMY_AUTH)."""
    req = urllib.request.Request(url, data=body, method="POST", headers={"Authorization": DUMMY_AUTH, **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


@check
def sns_publish_reaches_sqs(ctx: dict[str, Any]) -> None:
    """moto delivers an SNS Publish to a subscribed SQS queue (in-process); SNS is query protocol, SQS takes
    JSON (X-Amz-Target, what boto3 and the Rust SDK send) and query (Action=...) requests alike."""
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name="drflow-alerts-test")["TopicArn"]
    assert topic == f"arn:aws:sns:{PRIMARY}:{ACCOUNT}:drflow-alerts-test", topic
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["TopicArn"] == topic and attributes["Owner"] == ACCOUNT, attributes
    queue = sqs.create_queue(QueueName="drflow-alerts-test")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert queue_arn == SQS_QUEUE_ARN, queue_arn
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=SQS_QUEUE_ARN)
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert (attributes["SubscriptionsConfirmed"], attributes["SubscriptionsPending"]) == ("1", "0"), attributes
    control("DELETE", "/_drflow/calls")
    message_id = sns.publish(TopicArn=topic, Subject="drflow: failover done", Message="run r1 COMPLETED")["MessageId"]
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert len(got) == 1, got
    envelope = json.loads(got[0]["Body"])  # the SNS envelope (no RawMessageDelivery)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == topic, envelope
    assert envelope["Subject"] == "drflow: failover done" and envelope["Message"] == "run r1 COMPLETED", envelope
    assert envelope["MessageId"] == message_id, envelope
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"])
    publish = control("GET", "/_drflow/calls?operation=Publish")[0]["request"]
    assert publish == {"Action": "Publish", "Version": "2010-03-31", "TopicArn": topic,
                       "Subject": "drflow: failover done", "Message": "run r1 COMPLETED"}, publish
    receive = control("GET", "/_drflow/calls?operation=ReceiveMessage")[0]
    assert receive["service"] == "sqs" and receive["request"]["QueueUrl"] == queue, receive
    # plain HTTP, JSON protocol (X-Amz-Target) and query protocol (form, to the queue URL)
    sns.publish(TopicArn=topic, Subject="s1", Message="m1")
    status, kind, body = plain_post(URL + "/", json.dumps({"QueueUrl": queue, "MaxNumberOfMessages": 10}).encode(),
                                    {"X-Amz-Target": "AmazonSQS.ReceiveMessage",
                                     "Content-Type": "application/x-amz-json-1.0"})
    assert status == 200 and kind.startswith("application/x-amz-json-1.0"), (status, kind, body)
    message = json.loads(body)["Messages"][0]
    assert json.loads(message["Body"])["Message"] == "m1", message
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    sns.publish(TopicArn=topic, Subject="s2", Message="m2")
    form = urllib.parse.urlencode({"Action": "ReceiveMessage", "QueueUrl": queue, "Version": "2012-11-05"}).encode()
    status, kind, body = plain_post(queue, form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "<ReceiveMessageResponse" in body and "m2" in body, (status, kind, body)
    calls = control("GET", "/_drflow/calls?service=sqs&operation=ReceiveMessage")
    assert [c["request"].get("Action") for c in calls[-2:]] == [None, "ReceiveMessage"], calls
    # a fault answers in the protocol the request came in
    control("POST", "/_drflow/faults", {"service": "sqs", "operation": "ReceiveMessage",
                                         "code": "ThrottlingException", "count": 2})
    status, kind, body = plain_post(queue, form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "<Code>ThrottlingException</Code>" in body, (status, kind, body)
    e = error_of(lambda: sqs.receive_message(QueueUrl=queue))
    assert code(e) == "ThrottlingException", e.response
    control("DELETE", "/_drflow/faults")
    # TopicArn errors as AWS answers them
    e = error_of(lambda: sns.get_topic_attributes(TopicArn="drflow-alerts-test"))
    assert error_text(e) == ("InvalidParameter", 400, "Invalid parameter: TopicArn Reason: An ARN must have at "
                                                      "least 6 elements, not 1"), e.response
    e = error_of(lambda: client("sns", DR).get_topic_attributes(TopicArn=topic))  # a topic of another region
    assert error_text(e) == ("InvalidParameter", 400, "Invalid parameter: TopicArn"), e.response
    e = error_of(lambda: client("sns", DR).publish(TopicArn=topic, Message="x"))
    assert code(e) == "InvalidParameter", e.response
    e = error_of(lambda: sns.get_topic_attributes(TopicArn=f"arn:aws:sns:{PRIMARY}:{ACCOUNT}:nope"))
    assert error_text(e)[:2] == ("NotFound", 404), e.response


def control_error(method: str, path: str, body: Any) -> tuple[int, str]:
    """A control call expected to be refused: (HTTP status, error text)."""
    try:
        control(method, path, body)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())["error"]
    raise AssertionError(f"accepted {body}")


def outcomes(fn: Callable[[], Any], n: int, expected: str = "ThrottlingException") -> list[bool]:
    """n calls of fn: True where the call got the injected error."""
    hits = []
    for _ in range(n):
        try:
            fn()
            hits.append(False)
        except ClientError as e:
            assert code(e) == expected, e.response
            hits.append(True)
    return hits


@check
def fault_probability_with_seed(ctx: dict[str, Any]) -> None:
    ssm = client("ssm")
    get = lambda: ssm.get_parameter(Name="/drflow/x/ami")  # noqa: E731
    spec = {"service": "ssm", "operation": "GetParameter", "code": "ThrottlingException", "probability": 0.3,
            "seed": 7, "count": 0}
    added = control("POST", "/_drflow/faults", spec)
    assert (added["probability"], added["seed"], added["seen"], added["hit"]) == (0.3, 7, 0, 0), added
    first = outcomes(get, 200)
    [fault] = control("GET", "/_drflow/faults")
    assert (fault["seen"], fault["hit"]) == (200, sum(first)), fault
    assert 40 <= sum(first) <= 80, sum(first)  # about 30 % of 200 (60, standard deviation 6.5)
    control("DELETE", "/_drflow/faults")
    control("POST", "/_drflow/faults", spec)  # the same seed: the same pattern
    assert outcomes(get, 200) == first
    control("DELETE", "/_drflow/faults")
    control("POST", "/_drflow/faults", {**spec, "seed": 8})
    assert outcomes(get, 200) != first
    control("DELETE", "/_drflow/faults")
    # nothing before the nth matching call; count limits the hits, then the fault has run out
    control("POST", "/_drflow/faults", {**spec, "probability": 0.5, "nth": 11, "count": 5})
    pattern = outcomes(get, 60)
    assert not any(pattern[:10]) and sum(pattern) == 5, pattern
    [fault] = control("GET", "/_drflow/faults")
    assert (fault["seen"], fault["hit"]) == (60, 5), fault
    control("DELETE", "/_drflow/faults")
    # no seed: one is chosen and reported, so a run can be replayed
    seeded = control("POST", "/_drflow/faults", {k: v for k, v in spec.items() if k != "seed"})
    assert isinstance(seeded["seed"], int), seeded
    replay = outcomes(get, 50)
    control("DELETE", "/_drflow/faults")
    control("POST", "/_drflow/faults", {**spec, "seed": seeded["seed"]})
    assert outcomes(get, 50) == replay
    control("DELETE", "/_drflow/faults")
    # probability 1 (the default) hits every call of the window, as before
    control("POST", "/_drflow/faults", {**spec, "probability": 1, "count": 3, "nth": 2})
    assert outcomes(get, 6) == [False, True, True, True, False, False]
    control("DELETE", "/_drflow/faults")
    for bad in ({**spec, "probability": 1.5}, {**spec, "probability": "0.3"}, {**spec, "seed": "7"},
                {**spec, "probabilty": 0.3}, {"service": "ssm", "probability": 0.3}, {**spec, "count": -1}):
        status, error = control_error("POST", "/_drflow/faults", bad)
        assert status == 400 and error, (bad, status, error)
    assert control("GET", "/_drflow/faults") == []


@check
def fault_operation_globs_and_lists(ctx: dict[str, Any]) -> None:
    """`operation` may be a glob, `operations` a list (of names or globs), `service` may be left out."""
    ec2, ssm, sts, cfn = client("ec2"), client("ssm"), client("sts"), client("cloudformation")
    calls: dict[tuple[str, str], Callable[[], Any]] = {
        ("ec2", "DescribeImages"): lambda: ec2.describe_images(ImageIds=[ctx["primary_ami"]]),
        ("ec2", "DescribeInstanceStatus"): lambda: ec2.describe_instance_status(),
        ("ssm", "GetParameter"): lambda: ssm.get_parameter(Name="/drflow/x/ami"),
        ("ssm", "DescribeParameters"): lambda: ssm.describe_parameters(),
        ("sts", "GetCallerIdentity"): lambda: sts.get_caller_identity(),
        ("cloudformation", "DescribeStacks"): lambda: cfn.describe_stacks(StackName="drflow-v1"),
        ("backup", "DescribeBackupJob"): lambda: describe_job("backup", ctx["backup_job"]),
        # the same tokens as before: these start nothing new
        ("backup", "StartBackupJob"): lambda: start_backup(ctx, IdempotencyToken="tok-backup-1"),
        ("backup", "StartCopyJob"): lambda: start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-copy-1"),
    }

    def hit_by(spec: dict[str, Any]) -> set[tuple[str, str]]:
        control("POST", "/_drflow/faults", {**spec, "code": "Injected", "count": 0})
        try:
            hit = set()
            for key, call in calls.items():
                try:
                    call()
                except ClientError as e:
                    assert code(e) == "Injected", (key, e.response)
                    hit.add(key)
            return hit
        finally:
            control("DELETE", "/_drflow/faults")

    every = set(calls)
    describes = {k for k in every if k[1].startswith("Describe")}
    starts = {("backup", "StartBackupJob"), ("backup", "StartCopyJob")}
    assert hit_by({}) == every  # no service, no operation: every call
    assert hit_by({"service": "ec2"}) == {k for k in every if k[0] == "ec2"}
    assert hit_by({"operation": "Describe*"}) == describes
    assert hit_by({"service": "ec2", "operation": "Describe*"}) == {k for k in describes if k[0] == "ec2"}
    assert hit_by({"operation": "Get*"}) == {("ssm", "GetParameter"), ("sts", "GetCallerIdentity")}
    assert hit_by({"operation": "Start*"}) == starts
    assert hit_by({"operations": ["StartBackupJob", "StartCopyJob"]}) == starts
    assert hit_by({"service": "backup", "operations": ["Describe*Job", "StartCopyJob"]}) == {
        ("backup", "DescribeBackupJob"), ("backup", "StartCopyJob")}
    assert hit_by({"operation": "DescribeImages"}) == {("ec2", "DescribeImages")}  # the single-name form
    assert hit_by({"operation": "Describe?mages"}) == {("ec2", "DescribeImages")}
    assert hit_by({"operation": "describeimages"}) == set()  # case-sensitive
    assert hit_by({"operation": "Start"}) == set()  # a name is matched whole
    assert hit_by({"region": DR}) == set()
    for bad in ({"operation": "Start*", "operations": ["StartCopyJob"]}, {"operations": "StartCopyJob"},
                {"operations": []}, {"service": ""}):
        status, error = control_error("POST", "/_drflow/faults", {**bad, "code": "Injected"})
        assert status == 400 and error, (bad, status, error)
    # the brief's two examples
    throttling = control("POST", "/_drflow/faults", {"code": "ThrottlingException", "probability": 0.3, "seed": 1,
                                                     "count": 0})
    lost = control("POST", "/_drflow/faults", {"operation": "Start*", "lose_response": True, "probability": 0.3,
                                               "seed": 2, "count": 0})
    assert (throttling["service"], throttling["operation"], throttling["status"]) == (None, None, 400), throttling
    assert (lost["code"], lost["status"], lost["lose_response"]) == ("InternalFailure", 500, True), lost
    control("DELETE", "/_drflow/faults")


def self_images(region: str) -> set[str]:
    return {i["ImageId"] for i in client("ec2", region).describe_images(Owners=["self"])["Images"]}


def calls_of(operation: str) -> list[tuple[Any, bool, Any]]:
    """(status the client got, lost, status of the work done) of each logged call of an operation."""
    calls = control("GET", f"/_drflow/calls?operation={operation}")
    return [(c["status"], c["lost"], c.get("real_status")) for c in calls]


@check
def lost_responses_are_carried_out(ctx: dict[str, Any]) -> None:
    """lose_response / drop: the call is carried out, the client gets an error / no answer; a retry with
    the same token finds what the first call made."""
    control("DELETE", "/_drflow/calls")
    b = client("backup")

    def start(token: str) -> dict[str, Any]:
        out = b.start_backup_job(BackupVaultName="drflow-primary", ResourceArn=ctx["instance_arn"], IamRoleArn=ROLE,
                                 IdempotencyToken=token)
        out.pop("ResponseMetadata")
        return out

    # StartBackupJob answered 500 InternalFailure after the job was started
    fault = control("POST", "/_drflow/faults", {"service": "backup", "operation": "StartBackupJob",
                                                "lose_response": True})
    assert (fault["code"], fault["status"]) == ("InternalFailure", 500), fault
    before = self_images(PRIMARY)
    e = error_of(lambda: start("tok-lost-backup"))
    assert (code(e), e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalFailure", 500), e.response
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "InternalFailure"
    made = self_images(PRIMARY) - before
    assert len(made) == 1, made  # the job ran: its AMI exists
    first = start("tok-lost-backup")
    assert start("tok-lost-backup") == first and self_images(PRIMARY) - before == made
    final = job_states("backup", first["BackupJobId"])[-1]
    assert final["State"] == "COMPLETED" and final["RecoveryPointArn"].endswith(made.pop()), final
    assert calls_of("StartBackupJob") == [(500, True, 200), (200, False, None), (200, False, None)]
    assert control("GET", "/_drflow/faults")[0]["hit"] == 1
    # StartCopyJob whose connection is dropped: no answer at all, the copy is made once
    control("POST", "/_drflow/faults", {"service": "backup", "operation": "StartCopyJob", "drop": True})
    dr_before = self_images(DR)
    try:
        start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-lost-copy")
        raise AssertionError("the connection was not dropped")
    except ConnectionClosedError:
        pass
    assert control("GET", "/_drflow/health") == "ok"  # the emulator goes on
    copied = self_images(DR) - dr_before
    assert len(copied) == 1, copied
    copy_id = start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-lost-copy")
    assert start_copy(ctx, ctx["rp_arn"], IdempotencyToken="tok-lost-copy") == copy_id
    assert self_images(DR) - dr_before == copied
    final = job_states("copy", copy_id)[-1]
    assert final["State"] == "COMPLETED" and final["DestinationRecoveryPointArn"].endswith(copied.pop()), final
    assert calls_of("StartCopyJob") == [(None, True, 200), (200, False, None), (200, False, None)]
    # EC2 CopyImage with a given code and status; the ClientToken retry answers the copy made
    control("POST", "/_drflow/faults", {"service": "ec2", "operation": "CopyImage", "lose_response": True,
                                        "code": "ServiceUnavailable", "message": "Please retry", "status": 503})
    ec2_dr, dr_before = client("ec2", DR), self_images(DR)

    def copy_image() -> str:
        return ec2_dr.copy_image(SourceImageId=ctx["primary_ami"], SourceRegion=PRIMARY, Name="drflow-lost-copy",
                                 ClientToken="tok-lost-copy-image")["ImageId"]

    e = error_of(copy_image)
    assert (code(e), e.response["Error"]["Message"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ServiceUnavailable", "Please retry", 503), e.response
    copied = self_images(DR) - dr_before
    assert len(copied) == 1 and copy_image() == next(iter(copied)) and self_images(DR) - dr_before == copied
    # a dropped CopyImage, and a dropped call whose work fails: still logged as lost, with the real status
    control("POST", "/_drflow/faults", {"service": "ec2", "operation": "CopyImage", "drop": True})
    try:
        ec2_dr.copy_image(SourceImageId="ami-0123456789abcdef0", SourceRegion=PRIMARY, Name="drflow-lost-bad")
        raise AssertionError("the connection was not dropped")
    except ConnectionClosedError:
        pass
    assert calls_of("CopyImage")[-1] == (None, True, 400), calls_of("CopyImage")
    # an error fault without lose_response still answers instead of doing the work
    control("DELETE", "/_drflow/faults")
    control("POST", "/_drflow/faults", {"service": "backup", "operation": "StartBackupJob", "code": "InternalFailure",
                                        "status": 500})
    before = self_images(PRIMARY)
    assert code(error_of(lambda: start("tok-not-done"))) == "InternalFailure"
    assert self_images(PRIMARY) == before and calls_of("StartBackupJob")[-1] == (500, False, None)
    control("DELETE", "/_drflow/faults")
    for bad in ({"drop": True, "code": "X"}, {"drop": True, "status": 500}, {"lose_response": "yes"}):
        status, error = control_error("POST", "/_drflow/faults", {"service": "ec2", **bad})
        assert status == 400 and error, (bad, status, error)


@check
def backup_plan_selections(ctx: dict[str, Any]) -> None:
    b = client("backup")
    rule = {"RuleName": "daily", "TargetBackupVaultName": "drflow-primary"}
    plan_id = b.create_backup_plan(BackupPlan={"BackupPlanName": "drflow-selftest", "Rules": [rule]})["BackupPlanId"]
    by_arn = {"SelectionName": "by-arn", "IamRoleArn": ROLE, "Resources": ["arn:aws:ec2:*:*:instance/*"],
              "NotResources": [ctx["instance_arn"]]}
    by_tag = {"SelectionName": "by.tag_1", "IamRoleArn": ROLE,
              "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "true"}],
              "Conditions": {"StringNotLike": [{"ConditionKey": "aws:ResourceTag/stage", "ConditionValue": "test*"}]}}
    first = b.create_backup_selection(BackupPlanId=plan_id, BackupSelection=by_arn, CreatorRequestId="req-1")
    assert b.create_backup_selection(BackupPlanId=plan_id, BackupSelection=by_tag,
                                     CreatorRequestId="req-1")["SelectionId"] == first["SelectionId"]  # a retry
    second = b.create_backup_selection(BackupPlanId=plan_id, BackupSelection=by_tag)["SelectionId"]
    listed = b.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    assert [(x["SelectionId"], x["SelectionName"]) for x in listed] == [(first["SelectionId"], "by-arn"),
                                                                         (second, "by.tag_1")], listed
    page = b.list_backup_selections(BackupPlanId=plan_id, MaxResults=1)
    assert len(page["BackupSelectionsList"]) == 1 and page["NextToken"], page
    rest = b.list_backup_selections(BackupPlanId=plan_id, MaxResults=1, NextToken=page["NextToken"])
    assert [x["SelectionId"] for x in rest["BackupSelectionsList"]] == [second] and "NextToken" not in rest, rest
    got = b.get_backup_selection(BackupPlanId=plan_id, SelectionId=second)
    assert got["BackupPlanId"] == plan_id and got["BackupSelection"]["ListOfTags"] == by_tag["ListOfTags"], got
    assert got["BackupSelection"]["Conditions"]["StringNotLike"][0]["ConditionValue"] == "test*", got
    assert b.get_backup_selection(BackupPlanId=plan_id, SelectionId=first["SelectionId"])[
        "BackupSelection"]["NotResources"] == [ctx["instance_arn"]]
    unchecked = boto3.client("backup", region_name=PRIMARY, endpoint_url=URL, aws_access_key_id="AKIDDRFLOWTEST",
                             aws_secret_access_key="secret",
                             config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    for bad, expected in [({**by_arn, "SelectionName": "no spaces"}, "InvalidParameterValueException"),
                          ({"SelectionName": "x", "Resources": ["*"]}, "MissingParameterValueException"),
                          ({**by_tag, "ListOfTags": [{"ConditionType": "STRINGLIKE", "ConditionKey": "k",
                                                      "ConditionValue": "v"}]}, "InvalidParameterValueException")]:
        e = error_of(lambda: unchecked.create_backup_selection(BackupPlanId=plan_id, BackupSelection=bad))
        assert code(e) == expected, (bad, e.response)
    for missing in [lambda: b.list_backup_selections(BackupPlanId="no-such-plan"),
                    lambda: client("backup", DR).list_backup_selections(BackupPlanId=plan_id),  # plans are regional
                    lambda: b.get_backup_selection(BackupPlanId=plan_id, SelectionId="no-such-selection"),
                    lambda: b.create_backup_selection(BackupPlanId="no-such-plan", BackupSelection=by_arn)]:
        assert code(error_of(missing)) == "ResourceNotFoundException"
    b.delete_backup_selection(BackupPlanId=plan_id, SelectionId=second)
    assert len(b.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]) == 1
    ctx["backup_plan_id"] = plan_id


@check
def seeded_plan_history(ctx: dict[str, Any]) -> None:
    """A plan's past (/_drflow/seed-plan-history): points in the past with real AMIs, copies completed, failed,
    running (ending with time, not per call) or absent; listed by vault, by resource and by copy job."""
    b, b_dr = client("backup"), client("backup", DR)
    body = {"instance_id": ctx["instance_id"], "region": PRIMARY, "vault": "drflow-primary", "dr_region": DR,
            "dr_vault": "drflow-dr",
            "points": [{"age_seconds": 3600, "copy": "running", "completes_after_seconds": 2},
                       {"age_seconds": 3 * 3600},
                       {"age_seconds": 2 * 3600, "copy": "failed", "message": "Insufficient privileges."},
                       {"age_seconds": 4 * 3600, "copy": "none"}]}
    status, text = control_error("POST", "/_drflow/seed-plan-history", {**body, "dr_vault": "nope"})
    assert status == 400 and "ResourceNotFoundException" in text, (status, text)
    seeded = control("POST", "/_drflow/seed-plan-history", body)["points"]
    now = time.time()
    assert [round((now - p["creation_date"]) / 3600) for p in seeded] == [4, 3, 2, 1], seeded
    assert [p["copy"] for p in seeded] == ["none", "completed", "failed", "running"]
    listed = b.list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary",
                                                    ByResourceArn=ctx["instance_arn"])["RecoveryPoints"]
    by_arn = {p["RecoveryPointArn"]: p for p in listed}
    for p in seeded:
        got = by_arn[p["recovery_point_arn"]]
        assert got["Status"] == "COMPLETED" and abs(got["CreationDate"].timestamp() - p["creation_date"]) < 1, got
        image = client("ec2").describe_images(ImageIds=[p["image_id"]])["Images"][0]
        assert image["State"] == "available", image
        made = datetime.fromisoformat(image["CreationDate"].replace("Z", "+00:00")).timestamp()
        assert abs(made - p["creation_date"]) < 2, (image["CreationDate"], p["creation_date"])
    after = datetime.fromtimestamp(seeded[2]["creation_date"] - 1, tz=timezone.utc)
    recent = b.list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary",
                                                    ByResourceArn=ctx["instance_arn"], ByCreatedAfter=after)
    recent_arns = {p["RecoveryPointArn"] for p in recent["RecoveryPoints"]}  # (and the earlier checks' points)
    assert [p["recovery_point_arn"] in recent_arns for p in seeded] == [False, False, True, True], recent_arns
    page = b.list_recovery_points_by_backup_vault(BackupVaultName="drflow-primary", MaxResults=2)
    assert len(page["RecoveryPoints"]) == 2 and page["NextToken"], page
    by_resource = b.list_recovery_points_by_resource(ResourceArn=ctx["instance_arn"])["RecoveryPoints"]
    assert {p["recovery_point_arn"] for p in seeded} <= {p["RecoveryPointArn"] for p in by_resource}

    def copy_jobs(point: dict[str, Any]) -> list[dict[str, Any]]:
        return b.list_copy_jobs(BySourceRecoveryPointArn=point["recovery_point_arn"])["CopyJobs"]

    assert copy_jobs(seeded[0]) == []
    [done] = copy_jobs(seeded[1])
    assert done["State"] == "COMPLETED" and done["DestinationBackupVaultArn"] == ctx["dr_vault_arn"], done
    assert done["DestinationRecoveryPointArn"] == seeded[1]["dr_recovery_point_arn"], done
    [failed] = copy_jobs(seeded[2])
    assert (failed["State"], failed["StatusMessage"]) == ("FAILED", "Insufficient privileges."), failed
    assert "DestinationRecoveryPointArn" not in failed, failed
    [running] = copy_jobs(seeded[3])
    assert running["State"] == "RUNNING", running
    assert len(b.list_copy_jobs(ByState="FAILED")["CopyJobs"]) >= 1
    dr_points = b_dr.list_recovery_points_by_backup_vault(BackupVaultName="drflow-dr",
                                                          ByResourceArn=ctx["instance_arn"])["RecoveryPoints"]
    dr = {p["RecoveryPointArn"]: p for p in dr_points}
    copy = dr[seeded[1]["dr_recovery_point_arn"]]  # keeps the source's CreationDate, names the source vault
    assert copy["Status"] == "COMPLETED" and copy["SourceBackupVaultArn"].endswith(":backup-vault:drflow-primary")
    assert abs(copy["CreationDate"].timestamp() - seeded[1]["creation_date"]) < 1, copy
    assert dr[seeded[3]["dr_recovery_point_arn"]]["Status"] == "CREATING"
    assert image_state(DR, seeded[3]["dr_image_id"]) == "pending"
    assert image_state(DR, seeded[3]["dr_image_id"]) == "pending", "pending until the job ends, not per call"
    time.sleep(2.2)  # the running copy completes with time, whoever looks first
    assert image_state(DR, seeded[3]["dr_image_id"]) == "available"
    assert copy_jobs(seeded[3])[0]["State"] == "COMPLETED"


@check
def reset_clears_everything(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/faults", {"service": "ssm", "code": "Boom"})
    control("POST", "/_drflow/impair-instance", {"instance_id": ctx["instance_id"]})
    control("POST", "/_drflow/reset")
    assert control("GET", "/_drflow/faults") == [] and control("GET", "/_drflow/calls") == []
    e = error_of(lambda: client("backup").describe_backup_vault(BackupVaultName="drflow-primary"))
    assert code(e) == "ResourceNotFoundException", code(e)
    assert code(error_of(lambda: describe_job("backup", ctx["backup_job"]))) == "ResourceNotFoundException"
    assert client("ec2").describe_instances()["Reservations"] == []
    assert control("GET", "/_drflow/impair-instance") == {"instances": {}, "images": {}}
    e = error_of(lambda: client("backup").list_backup_selections(BackupPlanId=ctx["backup_plan_id"]))
    assert code(e) == "ResourceNotFoundException", code(e)
    # tokens are forgotten: the same ClientRequestToken / IdempotencyToken start anew
    stack_id = token_stack("create", "tok-create-1")
    assert stack_status(PRIMARY, TOKEN_STACK) == "CREATE_COMPLETE" and stack_id
    client("backup").create_backup_vault(BackupVaultName="drflow-primary")
    e = error_of(lambda: start_backup(ctx, IdempotencyToken="tok-backup-1"))  # the instance is gone
    assert code(e) == "ResourceNotFoundException", e.response


# ---------------------------------------------------------------- accounts, roles, cross-account copies

DR_ACCOUNT = "222222222222"
OTHER_ACCOUNT = "333333333333"


def scm(e: ClientError) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of an error."""
    return e.response["ResponseMetadata"]["HTTPStatusCode"], code(e), e.response["Error"]["Message"]


def as_account(service: str, acct: str, region: str = PRIMARY) -> Any:
    """A client that acts as `acct`: an access key id of exactly 12 digits selects that account."""
    return boto3.client(service, region_name=region, endpoint_url=URL, aws_access_key_id=acct,
                        aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def with_credentials(service: str, creds: dict[str, Any], region: str = PRIMARY) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=URL, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow_assume(principal: Any, **condition: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return statement


def make_role(acct: str, name: str, policy: str, max_session: int = 3600) -> str:
    return as_account("iam", acct).create_role(RoleName=name, AssumeRolePolicyDocument=policy,
                                              MaxSessionDuration=max_session)["Role"]["Arn"]


def allow(acct: str, role: str, actions: list[str], name: str = "drflow") -> None:
    """An inline identity policy on the role: these actions on every resource."""
    as_account("iam", acct).put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))


@check
def accounts_are_selected_by_access_key(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/reset")
    assert client("sts").get_caller_identity()["Account"] == ACCOUNT  # any other key: the default account
    who = as_account("sts", DR_ACCOUNT, DR).get_caller_identity()
    assert who["Account"] == DR_ACCOUNT and who["Arn"] == f"arn:aws:sts::{DR_ACCOUNT}:user/moto", who
    arn = as_account("backup", DR_ACCOUNT, DR).create_backup_vault(BackupVaultName="acct-vault")["BackupVaultArn"]
    assert arn == f"arn:aws:backup:{DR}:{DR_ACCOUNT}:backup-vault:acct-vault", arn
    e = error_of(lambda: client("backup", DR).describe_backup_vault(BackupVaultName="acct-vault"))
    assert code(e) == "ResourceNotFoundException", e.response  # another account's vault
    # the calls log tells each call's account and filters by it
    calls = control("GET", f"/_drflow/calls?account={DR_ACCOUNT}")
    assert calls and all(c["account"] == DR_ACCOUNT for c in calls), calls
    assert {c["operation"] for c in calls} == {"GetCallerIdentity", "CreateBackupVault"}, calls
    assert control("GET", "/_drflow/calls?operation=DescribeBackupVault")[0]["account"] == ACCOUNT
    # a fault may match one account only
    control("POST", "/_drflow/faults", {"service": "sts", "account": DR_ACCOUNT, "code": "Throttling", "count": 0})
    assert client("sts").get_caller_identity()["Account"] == ACCOUNT
    assert code(error_of(lambda: as_account("sts", DR_ACCOUNT).get_caller_identity())) == "Throttling"
    assert control_error("POST", "/_drflow/faults", {"account": "12", "code": "X"})[0] == 400
    control("DELETE", "/_drflow/faults")
    # extensions are per account: a backup job of the DR account is not the primary account's
    ec2 = as_account("ec2", DR_ACCOUNT, DR)
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    backup = as_account("backup", DR_ACCOUNT, DR)
    job = backup.start_backup_job(BackupVaultName="acct-vault", IamRoleArn=ROLE,
                                  ResourceArn=f"arn:aws:ec2:{DR}:{DR_ACCOUNT}:instance/{inst}")["BackupJobId"]
    assert backup.describe_backup_job(BackupJobId=job)["AccountId"] == DR_ACCOUNT
    e = error_of(lambda: client("backup", DR).describe_backup_job(BackupJobId=job))
    assert code(e) == "ResourceNotFoundException", e.response
    e = error_of(lambda: backup.start_backup_job(BackupVaultName="acct-vault", IamRoleArn=ROLE,
                                                 ResourceArn=f"arn:aws:ec2:{DR}:{ACCOUNT}:instance/{inst}"))
    assert code(e) == "InvalidParameterValueException", e.response  # the resource is not the caller's
    # control requests name their account
    ami = ec2.create_image(InstanceId=inst, Name="acct-image")["ImageId"]
    aged = control("POST", "/_drflow/image-age", {"region": DR, "image_id": ami, "age_seconds": 3600,
                                                  "account": DR_ACCOUNT})
    assert aged["image_id"] == ami
    assert control_error("POST", "/_drflow/image-age", {"region": DR, "image_id": ami, "age_seconds": 1})[0] == 404
    as_account("backup", DR_ACCOUNT, "us-east-2").create_backup_vault(BackupVaultName="acct-dr")
    seeded = control("POST", "/_drflow/seed-plan-history", {
        "account": DR_ACCOUNT, "instance_id": inst, "region": DR, "vault": "acct-vault", "dr_region": "us-east-2",
        "dr_vault": "acct-dr", "points": [{"age_seconds": 7200, "copy": "completed"}]})["points"][0]
    points = as_account("backup", DR_ACCOUNT, "us-east-2").list_recovery_points_by_backup_vault(
        BackupVaultName="acct-dr")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [seeded["dr_recovery_point_arn"]], points


@check
def assume_role_checks_trust_policies(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/reset")
    sts = client("sts")
    role = make_role(DR_ACCOUNT, "drflow-dr", trust(allow_assume(ACCOUNT, StringEquals={"sts:ExternalId": "ext-1"})),
                     max_session=7200)
    assert role == f"arn:aws:iam::{DR_ACCOUNT}:role/drflow-dr", role
    allow(DR_ACCOUNT, "drflow-dr", ["backup:CreateBackupVault", "sts:AssumeRole"])
    out = sts.assume_role(RoleArn=role, RoleSessionName="run-20261128-1", ExternalId="ext-1", DurationSeconds=7200)
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{DR_ACCOUNT}:assumed-role/drflow-dr/run-20261128-1", out
    creds = out["Credentials"]
    who = with_credentials("sts", creds).get_caller_identity()
    assert who["Account"] == DR_ACCOUNT and who["Arn"] == out["AssumedRoleUser"]["Arn"], who
    # the session acts as the DR account: what it makes is the DR account's
    with_credentials("backup", creds, DR).create_backup_vault(BackupVaultName="made-by-session")
    as_account("backup", DR_ACCOUNT, DR).describe_backup_vault(BackupVaultName="made-by-session")
    assert control("GET", "/_drflow/calls?operation=CreateBackupVault")[0]["account"] == DR_ACCOUNT

    def denied(role_arn: str, caller: str = f"arn:aws:sts::{ACCOUNT}:user/moto", client_: Any = sts,
               **kwargs: Any) -> None:
        e = error_of(lambda: client_.assume_role(RoleArn=role_arn, RoleSessionName="s1", **kwargs))
        status, err, msg = scm(e)
        assert (err, status) == ("AccessDenied", 403), e.response
        assert msg == f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}", msg

    denied(role, ExternalId="wrong")
    denied(role)  # no ExternalId: the condition does not hold
    denied(f"arn:aws:iam::{DR_ACCOUNT}:role/no-such-role")
    denied(role, caller=f"arn:aws:sts::{OTHER_ACCOUNT}:user/moto", client_=as_account("sts", OTHER_ACCOUNT),
           ExternalId="ext-1")  # the trust policy names another account
    root = make_role(DR_ACCOUNT, "by-root", trust(allow_assume(f"arn:aws:iam::{ACCOUNT}:root")))
    assert sts.assume_role(RoleArn=root, RoleSessionName="s1")["Credentials"]["AccessKeyId"]
    exact = make_role(DR_ACCOUNT, "by-arn", trust(allow_assume([f"arn:aws:sts::{OTHER_ACCOUNT}:user/moto"])))
    assert as_account("sts", OTHER_ACCOUNT).assume_role(RoleArn=exact, RoleSessionName="s1")["Credentials"]
    denied(exact)
    deny = make_role(DR_ACCOUNT, "deny-wins", trust(allow_assume("*"), {"Effect": "Deny", "Principal": {"AWS": ACCOUNT},
                                                                        "Action": "sts:*"}))
    denied(deny)
    assert as_account("sts", OTHER_ACCOUNT).assume_role(RoleArn=deny, RoleSessionName="s1")["Credentials"]

    unchecked = boto3.client("sts", region_name=PRIMARY, endpoint_url=URL, aws_access_key_id="test",
                             aws_secret_access_key="test",  # what the server checks, not botocore
                             config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))

    def invalid(message: str, **kwargs: Any) -> None:
        args = {"RoleArn": root, "RoleSessionName": "s1", **kwargs}
        status, err, msg = scm(error_of(lambda: unchecked.assume_role(**args)))
        assert (err, status, msg) == ("ValidationError", 400, message), (err, status, msg)

    invalid("1 validation error detected: Value 'a b' at 'roleSessionName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*", RoleSessionName="a b")
    invalid("1 validation error detected: Value 'x' at 'roleSessionName' failed to satisfy constraint: "
            "Member must have length greater than or equal to 2", RoleSessionName="x")
    invalid(f"1 validation error detected: Value '{'y' * 65}' at 'roleSessionName' failed to satisfy constraint: "
            "Member must have length less than or equal to 64", RoleSessionName="y" * 65)
    invalid("1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: "
            "Member must have value greater than or equal to 900", DurationSeconds=899)
    invalid("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", DurationSeconds=3601)
    # role chaining: a session assumes another role, for at most an hour
    chained = make_role(OTHER_ACCOUNT, "chained", trust(allow_assume(f"arn:aws:iam::{DR_ACCOUNT}:role/drflow-dr")),
                        max_session=43200)
    session_sts = with_credentials("sts", creds)
    two = session_sts.assume_role(RoleArn=chained, RoleSessionName="hop")
    assert two["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/chained/hop"
    status, err, msg = scm(error_of(lambda: session_sts.assume_role(RoleArn=chained, RoleSessionName="hop",
                                                                          DurationSeconds=7200)))
    assert (err, msg) == ("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for "
                                             "roles assumed by role chaining."), msg
    denied(chained)


def shared_setup(ctx: dict[str, Any]) -> tuple[str, str]:
    """A fresh world: an instance and an AMI in the primary account's primary region (the AMI available)."""
    control("POST", "/_drflow/reset")
    ec2 = client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=inst, Name="shared-source")["ImageId"]
    while image_state(PRIMARY, ami) == "pending":
        pass
    snap = ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    return ami, snap


def copy_as_dr(ami: str, **extra: Any) -> str:
    return as_account("ec2", DR_ACCOUNT, DR).copy_image(SourceImageId=ami, SourceRegion=PRIMARY, Name="dr-copy",
                                                       **extra)["ImageId"]


def settled(ec2: Any, ami: str) -> dict[str, Any]:
    for _ in range(10):
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        if image["State"] != "pending":
            return image
    raise AssertionError(f"{ami} stays pending")


@check
def ec2_copy_across_accounts_needs_sharing(ctx: dict[str, Any]) -> None:
    ami, snap = shared_setup(ctx)
    ec2, dr_primary = client("ec2"), as_account("ec2", DR_ACCOUNT, PRIMARY)
    e = error_of(lambda: dr_primary.describe_images(ImageIds=[ami]))
    assert code(e) == "InvalidAMIID.NotFound", e.response
    e = error_of(lambda: copy_as_dr(ami))
    assert code(e) == "InvalidAMIID.NotFound" and ami in scm(e)[2], e.response
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": DR_ACCOUNT}]})
    shared = dr_primary.describe_images(ImageIds=[ami])["Images"]
    assert [(i["ImageId"], i["OwnerId"]) for i in shared] == [(ami, ACCOUNT)], shared
    assert ami in {i["ImageId"] for i in dr_primary.describe_images(ExecutableUsers=["self"])["Images"]}
    assert ami not in {i["ImageId"] for i in dr_primary.describe_images(Owners=["self"])["Images"]}
    e = error_of(lambda: copy_as_dr(ami))
    assert scm(e) == (400, "InvalidRequest", "You do not have permission to access the storage of this ami"), \
        e.response
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[DR_ACCOUNT])
    copy = copy_as_dr(ami)
    dr = as_account("ec2", DR_ACCOUNT, DR)
    # an aws:ec2:image parameter of the DR account may name the AMI shared with it (SSM checks what it can see)
    ssm = as_account("ssm", DR_ACCOUNT, PRIMARY)
    ssm.put_parameter(Name="/drflow/shared", Value=ami, Type="String", DataType="aws:ec2:image")
    assert ssm.get_parameter(Name="/drflow/shared")["Parameter"]["Value"] == ami
    image = settled(dr, copy)
    assert image["State"] == "available" and image["OwnerId"] == DR_ACCOUNT, image
    assert not image["BlockDeviceMappings"][0]["Ebs"]["Encrypted"], image["BlockDeviceMappings"]
    e = error_of(lambda: client("ec2", DR).describe_images(ImageIds=[copy]))
    assert code(e) == "InvalidAMIID.NotFound", e.response  # the copy is the DR account's, not shared back
    # removing the sharing: the AMI is invisible and uncopyable again
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Remove": [{"UserId": DR_ACCOUNT}]})
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission", OperationType="remove",
                                  UserIds=[DR_ACCOUNT])
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"] == []
    assert ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")[
        "CreateVolumePermissions"] == []
    assert code(error_of(lambda: dr_primary.describe_images(ImageIds=[ami]))) == "InvalidAMIID.NotFound"
    assert code(error_of(lambda: copy_as_dr(ami))) == "InvalidAMIID.NotFound"
    ssm.put_parameter(Name="/drflow/shared", Value=ami, Type="String", Overwrite=True)  # no longer visible: dropped
    assert ssm.get_parameter(Name="/drflow/shared")["Parameter"]["Version"] == 1


def share(ami: str, snap: str, region: str = PRIMARY, user: str = DR_ACCOUNT) -> None:
    ec2 = client("ec2", region)
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": user}]})
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[user])


def ebs_of(ec2: Any, ami: str) -> dict[str, Any]:
    image = settled(ec2, ami)
    ebs = image["BlockDeviceMappings"][0]["Ebs"]
    snapshot = ec2.describe_snapshots(SnapshotIds=[ebs["SnapshotId"]])["Snapshots"][0]
    assert (snapshot["Encrypted"], snapshot.get("KmsKeyId")) == (ebs["Encrypted"], ebs.get("KmsKeyId")), \
        (snapshot, ebs)
    return {"State": image["State"], "Encrypted": ebs["Encrypted"], "KmsKeyId": ebs.get("KmsKeyId"),
            "StateReason": image.get("StateReason")}


@check
def ec2_copy_encrypts_with_the_destination_key(ctx: dict[str, Any]) -> None:
    ami, snap = shared_setup(ctx)
    share(ami, snap)
    kms, dr = as_account("kms", DR_ACCOUNT, DR), as_account("ec2", DR_ACCOUNT, DR)
    key = kms.create_key(Description="drflow DR key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/drflow-dr", TargetKeyId=key["KeyId"])
    for key_id in (key["KeyId"], key["Arn"], "alias/drflow-dr", f"arn:aws:kms:{DR}:{DR_ACCOUNT}:alias/drflow-dr"):
        out = ebs_of(dr, copy_as_dr(ami, Encrypted=True, KmsKeyId=key_id))
        assert out == {"State": "available", "Encrypted": True, "KmsKeyId": key["Arn"], "StateReason": None}, out
    default = ebs_of(dr, copy_as_dr(ami, Encrypted=True))  # the account's default EBS key, made on first use
    ebs_key = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert default["Encrypted"] and default["KmsKeyId"] == ebs_key["Arn"], (default, ebs_key)
    assert ebs_key["KeyManager"] == "AWS" and ebs_key["Arn"].startswith(f"arn:aws:kms:{DR}:{DR_ACCOUNT}:key/")
    e = error_of(lambda: copy_as_dr(ami, KmsKeyId=key["KeyId"]))
    assert code(e) == "InvalidParameterDependency", e.response
    # an unusable key is only found while copying: the copy ends failed
    other_region = as_account("kms", DR_ACCOUNT, PRIMARY).create_key()["KeyMetadata"]
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    foreign = as_account("kms", OTHER_ACCOUNT, DR).create_key()["KeyMetadata"]  # default policy: its own account
    for bad in ("alias/no-such-key", "1234abcd-12ab-34cd-56ef-1234567890ab", other_region["Arn"],
                disabled["KeyId"], foreign["Arn"]):
        out = ebs_of(dr, copy_as_dr(ami, Encrypted=True, KmsKeyId=bad))
        assert out["State"] == "failed" and out["StateReason"] == {
            "Code": "Server.InternalError", "Message": "Copy image failed with an internal error"}, (bad, out)
    # another account's key whose policy lets the DR account use it
    policy = trust({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                    "Action": "kms:*", "Resource": "*"},
                   {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DR_ACCOUNT}:root"},
                    "Action": ["kms:Decrypt", "kms:CreateGrant", "kms:DescribeKey"], "Resource": "*"})
    lent = as_account("kms", OTHER_ACCOUNT, DR).create_key(Policy=policy)["KeyMetadata"]
    out = ebs_of(dr, copy_as_dr(ami, Encrypted=True, KmsKeyId=lent["Arn"]))
    assert out["State"] == "available" and out["KmsKeyId"] == lent["Arn"], out


@check
def ec2_aws_managed_keys_cannot_be_shared(ctx: dict[str, Any]) -> None:
    ami, _ = shared_setup(ctx)
    ec2 = client("ec2")
    encrypted = ec2.copy_image(SourceImageId=ami, SourceRegion=PRIMARY, Name="enc", Encrypted=True)["ImageId"]
    enc = ebs_of(ec2, encrypted)
    assert enc["Encrypted"] and enc["KmsKeyId"] == client("kms").describe_key(KeyId="alias/aws/ebs")[
        "KeyMetadata"]["Arn"], enc
    snap = ec2.describe_images(ImageIds=[encrypted])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    e = error_of(lambda: ec2.modify_image_attribute(ImageId=encrypted,
                                                    LaunchPermission={"Add": [{"UserId": DR_ACCOUNT}]}))
    assert scm(e)[:2] == (400, "InvalidParameter") and "AWS Managed CMK" in scm(e)[2], e.response
    e = error_of(lambda: ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                                       OperationType="add", UserIds=[DR_ACCOUNT]))
    assert scm(e) == (400, "OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared"), \
        e.response
    assert ec2.describe_image_attribute(ImageId=encrypted, Attribute="launchPermission")["LaunchPermissions"] == []
    # a customer managed key: shareable; the DR account's copy works when the key policy lets it use the key
    kms = client("kms")
    for lend, expected in ((True, "available"), (False, "failed")):
        statements = [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
                       "Resource": "*"}]
        if lend:
            statements.append({"Effect": "Allow", "Principal": {"AWS": DR_ACCOUNT}, "Action": "kms:Decrypt",
                               "Resource": "*"})
        key = kms.create_key(Policy=trust(*statements))["KeyMetadata"]
        cmk = ec2.copy_image(SourceImageId=ami, SourceRegion=PRIMARY, Name="cmk", Encrypted=True,
                             KmsKeyId=key["Arn"])["ImageId"]
        assert ebs_of(ec2, cmk)["KmsKeyId"] == key["Arn"]
        share(cmk, ec2.describe_images(ImageIds=[cmk])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"])
        dr_key = as_account("kms", DR_ACCOUNT, DR).create_key()["KeyMetadata"]
        out = ebs_of(as_account("ec2", DR_ACCOUNT, DR), copy_as_dr(cmk, Encrypted=True, KmsKeyId=dr_key["Arn"]))
        assert out["State"] == expected, (lend, out)


def vault_policy(source: str) -> str:
    return trust({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{source}:root"},
                  "Action": "backup:CopyIntoBackupVault", "Resource": "*"})


def backup_world(ctx: dict[str, Any]) -> str:
    """An instance, its completed backup job in the primary account; answers the recovery point ARN."""
    control("POST", "/_drflow/reset")
    ec2 = client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ctx["xa_instance_arn"] = f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/{inst}"
    client("backup").create_backup_vault(BackupVaultName="drflow-primary")
    job = client("backup").start_backup_job(BackupVaultName="drflow-primary", ResourceArn=ctx["xa_instance_arn"],
                                            IamRoleArn=ROLE)["BackupJobId"]
    return job_states("backup", job)[-1]["RecoveryPointArn"]


def copy_into(rp_arn: str, vault_arn: str) -> dict[str, Any]:
    job = client("backup").start_copy_job(RecoveryPointArn=rp_arn, SourceBackupVaultName="drflow-primary",
                                          DestinationBackupVaultArn=vault_arn, IamRoleArn=ROLE)["CopyJobId"]
    return job_states("copy", job)[-1]


@check
def backup_copy_into_another_account(ctx: dict[str, Any]) -> None:
    rp_arn = backup_world(ctx)
    backup, dr_backup = client("backup"), as_account("backup", DR_ACCOUNT, DR)
    vault_arn = f"arn:aws:backup:{DR}:{DR_ACCOUNT}:backup-vault:central"
    settings = backup.describe_global_settings()
    assert settings["GlobalSettings"]["isCrossAccountBackupEnabled"] == "false", settings
    failed = copy_into(rp_arn, vault_arn)
    assert failed["State"] == "FAILED" and "isCrossAccountBackupEnabled" in failed["StatusMessage"], failed
    backup.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    assert backup.describe_global_settings()["GlobalSettings"]["isCrossAccountBackupEnabled"] == "true"
    assert dr_backup.describe_global_settings()["GlobalSettings"]["isCrossAccountBackupEnabled"] == "false"
    e = error_of(lambda: backup.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "yes"}))
    assert code(e) == "InvalidParameterValueException", e.response
    failed = copy_into(rp_arn, vault_arn)  # no such vault
    assert failed["State"] == "FAILED" and failed["StatusMessage"].startswith("Access Denied"), failed
    kms = as_account("kms", DR_ACCOUNT, DR)
    key = kms.create_key(Description="central vault key")["KeyMetadata"]
    dr_backup.create_backup_vault(BackupVaultName="central", EncryptionKeyArn=key["Arn"])
    e = error_of(lambda: dr_backup.get_backup_vault_access_policy(BackupVaultName="central"))
    assert code(e) == "ResourceNotFoundException", e.response
    failed = copy_into(rp_arn, vault_arn)  # no access policy
    assert failed["StatusMessage"] == "Access Denied trying to call AWS Backup service", failed
    dr_backup.put_backup_vault_access_policy(BackupVaultName="central", Policy=vault_policy(OTHER_ACCOUNT))
    assert copy_into(rp_arn, vault_arn)["StatusMessage"] == "Access Denied trying to call AWS Backup service"
    dr_backup.put_backup_vault_access_policy(BackupVaultName="central", Policy=vault_policy(ACCOUNT))
    got = dr_backup.get_backup_vault_access_policy(BackupVaultName="central")
    assert got["Policy"] == vault_policy(ACCOUNT) and got["BackupVaultArn"] == vault_arn, got
    e = error_of(lambda: dr_backup.put_backup_vault_access_policy(BackupVaultName="central", Policy="{not json"))
    assert code(e) == "InvalidParameterValueException", e.response
    e = error_of(lambda: dr_backup.get_backup_vault_access_policy(BackupVaultName="missing"))
    assert code(e) == "ResourceNotFoundException", e.response
    # a vault with the AWS managed key (no EncryptionKeyArn) cannot take EC2 copies from another account
    dr_backup.create_backup_vault(BackupVaultName="plain")
    dr_backup.put_backup_vault_access_policy(BackupVaultName="plain", Policy=vault_policy(ACCOUNT))
    failed = copy_into(rp_arn, f"arn:aws:backup:{DR}:{DR_ACCOUNT}:backup-vault:plain")
    assert failed["State"] == "FAILED" and "customer managed key" in failed["StatusMessage"], failed
    # all set: the copy completes into the DR account, encrypted with the vault's key
    done = copy_into(rp_arn, vault_arn)
    assert done["State"] == "COMPLETED" and done["AccountId"] == ACCOUNT, done
    assert done["DestinationBackupVaultArn"] == vault_arn, done
    region, dr_ami = AMI_ARN.fullmatch(done["DestinationRecoveryPointArn"]).groups()  # type: ignore[union-attr]
    assert region == DR
    dr_ec2 = as_account("ec2", DR_ACCOUNT, DR)
    image = dr_ec2.describe_images(ImageIds=[dr_ami])["Images"][0]
    assert image["State"] == "available" and image["OwnerId"] == DR_ACCOUNT, image
    assert ebs_of(dr_ec2, dr_ami)["KmsKeyId"] == key["Arn"]
    assert code(error_of(lambda: client("ec2", DR).describe_images(ImageIds=[dr_ami]))) == "InvalidAMIID.NotFound"
    points = dr_backup.list_recovery_points_by_backup_vault(BackupVaultName="central")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [done["DestinationRecoveryPointArn"]], points
    assert points[0]["IsEncrypted"] and points[0]["EncryptionKeyArn"] == key["Arn"], points
    assert points[0]["SourceBackupVaultArn"] == f"arn:aws:backup:{PRIMARY}:{ACCOUNT}:backup-vault:drflow-primary"
    assert points[0]["ResourceArn"] == ctx["xa_instance_arn"]
    point = dr_backup.describe_recovery_point(BackupVaultName="central",
                                              RecoveryPointArn=done["DestinationRecoveryPointArn"])
    assert point["Status"] == "COMPLETED", point
    dr_backup.delete_backup_vault_access_policy(BackupVaultName="central")
    e = error_of(lambda: dr_backup.get_backup_vault_access_policy(BackupVaultName="central"))
    assert code(e) == "ResourceNotFoundException", e.response


@check
def kms_read_only_calls_per_account(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/reset")
    kms = as_account("kms", DR_ACCOUNT, DR)
    policy = trust({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DR_ACCOUNT}:root"}, "Action": "kms:*",
                    "Resource": "*"})
    key = kms.create_key(Policy=policy, Description="dr")["KeyMetadata"]
    kms.create_alias(AliasName="alias/dr", TargetKeyId=key["KeyId"])
    role = make_role(DR_ACCOUNT, "reader", trust(allow_assume(ACCOUNT)))
    allow(DR_ACCOUNT, "reader", ["kms:Describe*", "kms:Get*", "kms:List*"])
    creds = client("sts").assume_role(RoleArn=role, RoleSessionName="preflight")["Credentials"]
    for reader in (kms, with_credentials("kms", creds, DR)):
        for key_id in (key["KeyId"], key["Arn"], "alias/dr", f"arn:aws:kms:{DR}:{DR_ACCOUNT}:alias/dr"):
            meta = reader.describe_key(KeyId=key_id)["KeyMetadata"]
            assert (meta["Arn"], meta["KeyState"], meta["KeyManager"]) == (key["Arn"], "Enabled", "CUSTOMER"), meta
        assert json.loads(reader.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == \
            json.loads(policy)
        assert reader.list_grants(KeyId=key["KeyId"])["Grants"] == []
        e = error_of(lambda: reader.describe_key(KeyId="alias/missing"))
        assert scm(e)[:2] == (400, "NotFoundException"), e.response
    for stranger in (client("kms", DR), as_account("kms", DR_ACCOUNT, PRIMARY)):  # another account, another region
        assert code(error_of(lambda: stranger.describe_key(KeyId=key["KeyId"]))) == "NotFoundException"
    # another account reads a key by its ARN when the key policy lets it (DescribeKey, ListGrants: cross-account)
    primary = client("kms", DR)
    e = error_of(lambda: primary.describe_key(KeyId=key["Arn"]))
    assert scm(e) == (400, "AccessDeniedException", f"User: arn:aws:sts::{ACCOUNT}:user/moto is not authorized to "
                      f"perform: kms:DescribeKey on resource: {key['Arn']} because no resource-based policy allows "
                      "the kms:DescribeKey action"), e.response
    lent = json.loads(policy)
    lent["Statement"].append({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                              "Action": ["kms:DescribeKey", "kms:ListGrants"], "Resource": "*"})
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(lent))
    for key_id in (key["Arn"], f"arn:aws:kms:{DR}:{DR_ACCOUNT}:alias/dr"):
        assert primary.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"] == key["Arn"]
    assert primary.list_grants(KeyId=key["Arn"])["Grants"] == []
    assert code(error_of(lambda: primary.describe_key(KeyId=f"arn:aws:kms:{DR}:{DR_ACCOUNT}:key/nope"))) == \
        "NotFoundException"
    assert code(error_of(lambda: primary.get_key_policy(KeyId=key["Arn"], PolicyName="default"))) == \
        "NotFoundException"  # GetKeyPolicy is not cross-account


@check
def role_sessions_are_held_to_their_policies(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/reset")
    iam = as_account("iam", DR_ACCOUNT)
    role = make_role(DR_ACCOUNT, "limited", trust(allow_assume(ACCOUNT)))
    creds = client("sts").assume_role(RoleArn=role, RoleSessionName="run-1")["Credentials"]
    session = f"arn:aws:sts::{DR_ACCOUNT}:assumed-role/limited/run-1"
    dr_backup = with_credentials("backup", creds, DR)
    # no policy at all: everything but GetCallerIdentity is refused, in each service's own way
    assert with_credentials("sts", creds).get_caller_identity()["Arn"] == session
    e = error_of(lambda: dr_backup.create_backup_vault(BackupVaultName="v"))
    assert scm(e) == (403, "AccessDeniedException", f"User: {session} is not authorized to perform: "
                      f"backup:CreateBackupVault on resource: arn:aws:backup:{DR}:{DR_ACCOUNT}:backup-vault:v "
                      "because no identity-based policy allows the backup:CreateBackupVault action"), e.response
    e = error_of(lambda: with_credentials("ec2", creds, DR).describe_images(Owners=["self"]))
    assert scm(e)[:2] == (403, "UnauthorizedOperation") and "ec2:DescribeImages" in scm(e)[2], e.response
    e = error_of(lambda: with_credentials("ssm", creds, DR).get_parameter(Name="/drflow/x"))
    assert scm(e)[:2] == (403, "AccessDeniedException") and "parameter/drflow/x" in scm(e)[2], e.response
    # an inline policy and an attached managed one allow; an explicit deny wins; the emulator's own Backup
    # operations are checked too
    allow(DR_ACCOUNT, "limited", ["backup:CreateBackupVault", "backup:DescribeGlobalSettings"])
    managed = iam.create_policy(PolicyName="read-images", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}))
    iam.attach_role_policy(RoleName="limited", PolicyArn=managed["Policy"]["Arn"])
    dr_backup.create_backup_vault(BackupVaultName="v")
    assert dr_backup.describe_global_settings()["GlobalSettings"]
    with_credentials("ec2", creds, DR).describe_images(Owners=["self"])
    e = error_of(lambda: dr_backup.list_recovery_points_by_backup_vault(BackupVaultName="v"))
    assert scm(e)[:2] == (403, "AccessDeniedException") and "ListRecoveryPointsByBackupVault" in scm(e)[2]
    iam.put_role_policy(RoleName="limited", PolicyName="deny", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "backup:Create*", "Resource": "*"}]}))
    e = error_of(lambda: dr_backup.create_backup_vault(BackupVaultName="w"))
    assert scm(e)[2].endswith("with an explicit deny in an identity-based policy"), e.response
    # a condition on the requested region
    iam.put_role_policy(RoleName="limited", PolicyName="regional", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*",
                                                "Condition": {"StringEquals": {"aws:RequestedRegion": DR}}}]}))
    e = error_of(lambda: with_credentials("ssm", creds, DR).get_parameter(Name="/drflow/x"))
    assert code(e) == "ParameterNotFound", e.response  # allowed: moto answers
    e = error_of(lambda: with_credentials("ssm", creds, PRIMARY).get_parameter(Name="/drflow/x"))
    assert code(e) == "AccessDeniedException", e.response
    # static keys are never checked
    as_account("backup", DR_ACCOUNT, DR).create_backup_vault(BackupVaultName="w")
    # SimulatePrincipalPolicy answers from the same evaluation
    out = iam.simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["backup:CreateBackupVault", "ec2:DescribeImages", "ec2:CopyImage",
                                          "backup:DescribeGlobalSettings"])["EvaluationResults"]
    decisions = {r["EvalActionName"]: (r["EvalResourceName"], r["EvalDecision"]) for r in out}
    assert decisions == {"backup:CreateBackupVault": ("*", "explicitDeny"), "ec2:DescribeImages": ("*", "allowed"),
                         "ec2:CopyImage": ("*", "implicitDeny"),
                         "backup:DescribeGlobalSettings": ("*", "allowed")}, decisions
    allowed = next(r for r in out if r["EvalActionName"] == "ec2:DescribeImages")
    assert allowed["MatchedStatements"] == [{"SourcePolicyId": managed["Policy"]["Arn"],
                                             "SourcePolicyType": "user-managed"}], allowed
    iam.put_role_policy(RoleName="limited", PolicyName="one-vault", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "backup:StartCopyJob",
                                                "Resource": f"arn:aws:backup:*:{DR_ACCOUNT}:backup-vault:dr-*"}]}))
    vault = f"arn:aws:backup:{DR}:{DR_ACCOUNT}:backup-vault:"
    out = iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=["backup:StartCopyJob"],
                                        ResourceArns=[vault + "dr-main", vault + "other"])["EvaluationResults"]
    assert [(r["EvalResourceName"], r["EvalDecision"]) for r in out] == [
        (vault + "dr-main", "allowed"), (vault + "other", "implicitDeny")], out
    e = error_of(lambda: iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{DR_ACCOUNT}:role/nope",
                                                       ActionNames=["ec2:CopyImage"]))
    assert scm(e)[:2] == (404, "NoSuchEntity"), e.response


CHECKS.extend(selftest_sfn.checks(sys.modules[__name__]))  # Step Functions executions, the cross-region function
CHECKS.extend(selftest_lambda.checks(sys.modules[__name__]))  # Lambda functions run by the emulator, stacks' machines


# ---------------------------------------------------------------- runner


def main() -> int:
    global URL
    tmp = tempfile.mkdtemp(prefix="drflow-emu-")
    port_file, log_path = os.path.join(tmp, "port"), os.path.join(tmp, "server.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"), "--port", "0",
                             "--port-file", port_file, "--pending-describes", "2"], stdout=log, stderr=log)
    passed = failed = 0
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{open(log_path).read()}")
            time.sleep(0.1)
        URL = f"http://127.0.0.1:{int(open(port_file).read())}"
        while True:
            try:
                if control("GET", "/_drflow/health") == "ok":
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        ctx: dict[str, Any] = {}
        for name, fn in CHECKS:
            started = time.monotonic()
            try:
                fn(ctx)
                passed += 1
                print(f"ok   {name} ({time.monotonic() - started:.2f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    if rc == 0 and not os.path.exists(port_file):
        passed += 1
        print("ok   server_stops_on_sigterm", flush=True)
    else:
        failed += 1
        print(f"FAIL server_stops_on_sigterm (exit {rc})", flush=True)
    if failed:
        print(f"--- server log ({log_path}) ---\n{open(log_path).read()[-4000:]}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
