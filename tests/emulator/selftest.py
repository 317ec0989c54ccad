#!/usr/bin/env python3
"""Self-test of the drflow emulator: starts server.py on a free port and exercises every extension.

    PY=$(bash scripts/emulator-venv | tail -n1); $PY tests/emulator/selftest.py

Prints one line per check and `N passed, M failed` at the end; exits non-zero on any failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

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
    assert control("GET", "/_drflow/config") == {"pending_describes": 2, "job_describes": 1}


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
    e = error_of(lambda: cfn.create_stack(StackName="drflow-literal", TemplateBody=literal))
    assert code(e).startswith("InvalidAMIID"), e.response


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
    assert [c["operation"] for c in control("GET", "/_drflow/calls?service=backup")] == ["ListRecoveryPointsByBackupVault"]
    control("DELETE", "/_drflow/faults")
    control("DELETE", "/_drflow/calls")
    assert control("GET", "/_drflow/calls") == []


@check
def reset_clears_everything(ctx: dict[str, Any]) -> None:
    control("POST", "/_drflow/faults", {"service": "ssm", "code": "Boom"})
    control("POST", "/_drflow/reset")
    assert control("GET", "/_drflow/faults") == [] and control("GET", "/_drflow/calls") == []
    e = error_of(lambda: client("backup").describe_backup_vault(BackupVaultName="drflow-primary"))
    assert code(e) == "ResourceNotFoundException", code(e)
    assert code(error_of(lambda: describe_job("backup", ctx["backup_job"]))) == "ResourceNotFoundException"
    assert client("ec2").describe_instances()["Reservations"] == []


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
