//! SSM Parameter Store: publish an AMI id, read a parameter.

mod get_parameter;
mod put_parameter;

pub(crate) use get_parameter::GetParameter;
pub(crate) use put_parameter::{PutParameter, version_limit_way_out};
