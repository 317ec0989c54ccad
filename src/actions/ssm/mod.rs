//! SSM Parameter Store: publish an AMI id, read a parameter, check the AMI it publishes.

mod get_parameter;
mod image_freshness;
mod put_parameter;
mod sfn_time;

pub(crate) use get_parameter::GetParameter;
pub(crate) use image_freshness::ImageFreshness;
pub(crate) use put_parameter::{PutParameter, version_limit_way_out};
