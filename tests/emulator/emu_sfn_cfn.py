"""AWS::StepFunctions::StateMachine in CloudFormation as AWS documents it, for state machines that execute.

moto's resource (moto/stepfunctions/models.py StateMachine.create_from_cloudformation_json) ignores
`DefinitionSubstitutions`, `Definition` (an object), `StateMachineType` and `LoggingConfiguration`, and always
creates the state machine in the backend that does not execute (the API's state machines live in the executing
one while `/_drflow/sfn` `execute` is on, so a stack's state machine could neither be listed nor started). Here:
- the definition is `DefinitionString`, or `Definition` as JSON text;
- each `${key}` of it with a key in `DefinitionSubstitutions` becomes that value (CloudFormation has already
  resolved the values' Ref / Fn::GetAtt); a placeholder without a key is left as written ("Substitutions must
  follow the syntax: ${key_name}", AWS::StepFunctions::StateMachine DefinitionSubstitutions);
- an integer ToleratedFailurePercentage is written as moto's grammar wants it (emu_sfn.before_state_machine_definition);
- the state machine is created, updated and deleted in the backend the Step Functions API uses (moto's own choice,
  moto/stepfunctions/responses.py get_backend), with its type and its logging configuration (kept and described,
  under the API's member names; nothing is logged).
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.stepfunctions.responses import get_backend
from moto.stepfunctions.utils import cfn_to_api_tags

import emu_sfn

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def definition_of(properties: dict[str, Any]) -> str:
    """The definition a stack's properties give, its substitutions made."""
    if "Definition" in properties and "DefinitionString" not in properties:
        text = json.dumps(properties["Definition"])
    else:
        text = str(properties.get("DefinitionString", ""))
    subs = properties.get("DefinitionSubstitutions") or {}
    values = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in subs.items()}
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    return emu_sfn._PERCENTAGE.sub(r"\1\2.0", text)


def api_case(value: Any) -> Any:
    """CloudFormation's property names as the API's members (LoggingConfiguration: `Level` -> `level`,
    `Destinations[].CloudWatchLogsLogGroup.LogGroupArn` -> `destinations[].cloudWatchLogsLogGroup.logGroupArn`)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: api_case(v) for k, v in value.items()}
    if isinstance(value, list):
        return [api_case(v) for v in value]
    return value


def install() -> None:
    from moto.stepfunctions.models import StateMachine

    def create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
               **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        return get_backend(account_id, region_name).create_state_machine(
            properties.get("StateMachineName", resource_name), definition_of(properties),
            properties.get("RoleArn", ""), tags=cfn_to_api_tags(properties.get("Tags", [])),
            loggingConfiguration=api_case(properties.get("LoggingConfiguration")),
            sm_type=properties.get("StateMachineType", "STANDARD"))

    def delete(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> None:
        get_backend(account_id, region_name).delete_state_machine(resource_name)

    def update(cls: Any, original: Any, new_resource_name: str, cloudformation_json: Any, account_id: str,
               region_name: str) -> Any:
        properties = cloudformation_json.get("Properties", {})
        if properties.get("StateMachineName", original.name) != original.name:  # replacement
            new = create(cls, new_resource_name, cloudformation_json, account_id, region_name)
            delete(cls, original.arn, cloudformation_json, account_id, region_name)
            return new
        return get_backend(account_id, region_name).update_state_machine(
            original.arn, definition=definition_of(properties), role_arn=properties.get("RoleArn"),
            logging_configuration=api_case(properties.get("LoggingConfiguration")))

    StateMachine.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign]
    StateMachine.delete_from_cloudformation_json = classmethod(delete)  # type: ignore[method-assign]
    StateMachine.update_from_cloudformation_json = classmethod(update)  # type: ignore[method-assign]
