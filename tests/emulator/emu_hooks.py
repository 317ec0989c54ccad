"""Extensions around moto's own EC2, SSM and CloudFormation handlers.

- EC2: AMIs made by CreateImage/CopyImage (and by Backup jobs, which call the same
  backend methods) stay `pending` for STATE.pending_describes DescribeImages calls.
- SSM: PutParameter with DataType aws:ec2:image checks the value's format and, like
  AWS's asynchronous validation, answers 200 but keeps no new version when the AMI
  is not available in the parameter's region.
- CloudFormation: {{resolve:ssm:NAME[:VERSION]}} in TemplateBody is resolved on
  CreateStack, UpdateStack and CreateChangeSet (UsePreviousTemplate re-resolves).
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.cloudformation.models import cloudformation_backends
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.instances import Instance
from moto.ssm.models import ssm_backends

from emu_common import ACCOUNT_ID, STATE, ApiError

# ---------------------------------------------------------------- EC2 images


def _mark_pending(region: str, ami: Ami) -> None:
    if STATE.pending_describes > 0:
        ami.state = "pending"
        STATE.pending_images[(region, ami.id)] = STATE.pending_describes


def mark_available(region: str, ami_id: str) -> None:
    STATE.pending_images.pop((region, ami_id), None)
    ami = ec2_backends[ACCOUNT_ID][region].amis.get(ami_id)
    if ami is not None and ami.state == "pending":
        ami.state = "available"


def install_ec2_patches() -> None:
    """Wrap moto's AMI backend so every new image starts pending."""
    create_image, copy_image = AmiBackend.create_image, AmiBackend.copy_image

    def patched_create_image(self: Any, *args: Any, **kwargs: Any) -> Ami:
        ami = create_image(self, *args, **kwargs)
        _mark_pending(self.region_name, ami)
        return ami

    def patched_copy_image(self: Any, *args: Any, **kwargs: Any) -> Ami:
        ami = copy_image(self, *args, **kwargs)
        _mark_pending(self.region_name, ami)
        return ami

    AmiBackend.create_image = patched_create_image  # type: ignore[method-assign]
    AmiBackend.copy_image = patched_copy_image  # type: ignore[method-assign]


def before_describe_images(call: Any) -> None:
    """A DescribeImages call that names the image (or lists all) counts down its pending time."""
    wanted = {v for k, v in call.form() if k.startswith("ImageId.")}
    for (region, ami_id), left in list(STATE.pending_images.items()):
        if region != call.region or (wanted and ami_id not in wanted):
            continue
        if left <= 0:
            mark_available(region, ami_id)
        else:
            STATE.pending_images[(region, ami_id)] = left - 1


def ami_available(region: str, ami_id: str) -> bool:
    ami = ec2_backends[ACCOUNT_ID][region].amis.get(ami_id)
    return ami is not None and ami.state == "available"


# ---------------------------------------------------------------- SSM

AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")


def before_put_parameter(call: Any) -> None:
    doc = call.json()
    name, value, data_type = doc.get("Name"), doc.get("Value"), doc.get("DataType")
    params = ssm_backends[ACCOUNT_ID][call.region]._parameters
    if data_type is None and name in params and params[name]:
        data_type = params[name][-1].data_type  # a data type never changes: moto would reset it to text
        call.set_json({**doc, "DataType": data_type})
    if data_type != "aws:ec2:image" or not isinstance(value, str):
        return
    if not AMI_ID.fullmatch(value):
        raise ApiError("ValidationException",
                       f"Parameter value, {value}, is not a valid aws:ec2:image value: "
                       "it must be an AMI ID such as ami-12345abcdeEXAMPLE.")
    if not ami_available(call.region, value):
        call.ssm_discard = name


def after_put_parameter(call: Any, status: int) -> None:
    """Drop the version moto just stored when the asynchronous AMI check would fail."""
    name = getattr(call, "ssm_discard", None)
    if status != 200 or name is None:
        return
    params = ssm_backends[ACCOUNT_ID][call.region]._parameters
    versions = params.get(name)
    if versions:
        versions.pop()
        if not versions:
            del params[name]


# ---------------------------------------------------------------- CloudFormation

SSM_REF = re.compile(r"\{\{resolve:ssm:([A-Za-z0-9_./-]+)(?::([0-9]+))?\}\}")


def _stack_name(value: str) -> str:
    # arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID
    return value.split("/")[1] if value.startswith("arn:") and "/" in value else value


def resolve_ssm_refs(region: str, template: str) -> str:
    backend = ssm_backends[ACCOUNT_ID][region]
    is_json = template.lstrip().startswith("{")

    def lookup(m: re.Match[str]) -> str:
        name, version = m.group(1), m.group(2)
        try:
            param = backend.get_parameter(f"{name}:{version}" if version else name)
        except Exception:
            param = None
        if param is None:
            raise ApiError("ValidationError",
                           f"Unable to fetch parameters [{name}] from parameter store for this account.")
        return json.dumps(param.value)[1:-1] if is_json else param.value

    return SSM_REF.sub(lookup, template)


def install_cfn_patches() -> None:
    """moto cannot update an AWS::EC2::Instance (the stack loses the resource): replace it,
    as AWS does when ImageId changes, keeping the aws:cloudformation:* tags."""

    def update_from_cloudformation_json(cls: Any, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        for tag in original_resource.get_tags():
            if tag["key"].startswith("aws:cloudformation:"):
                new.add_tag(tag["key"], tag["value"])
        original_resource.delete(account_id, region_name)
        return new

    Instance.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore


def before_stack_change(call: Any) -> None:
    """CreateStack / UpdateStack / CreateChangeSet: substitute SSM dynamic references."""
    pairs = call.form()
    fields = dict(pairs)
    if "StackName" not in fields:
        return
    key = (call.region, _stack_name(fields["StackName"]))
    template = fields.get("TemplateBody")
    if template is None:
        if fields.get("UsePreviousTemplate", "").lower() != "true" or key not in STATE.stack_templates:
            return
        template = STATE.stack_templates[key]
        pairs = [(k, v) for k, v in pairs if k != "UsePreviousTemplate"] + [("TemplateBody", template)]
    if call.operation != "CreateChangeSet" or fields.get("ChangeSetType") == "CREATE":
        STATE.stack_templates[key] = template
    resolved = resolve_ssm_refs(call.region, template) if "{{resolve:ssm:" in template else template
    if call.operation == "UpdateStack" and not any(k.startswith("Parameters.") for k in fields):
        # moto only notices an update without changes when parameters are passed
        try:
            stack = cloudformation_backends[ACCOUNT_ID][call.region].get_stack(fields["StackName"])
        except Exception:
            stack = None
        if stack is not None and stack.template == resolved:
            raise ApiError("ValidationError", "No updates are to be performed.")
    call.set_form([(k, resolved if k == "TemplateBody" else v) for k, v in pairs])
