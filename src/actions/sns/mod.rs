//! SNS: notifications.

mod publish;

pub(crate) use publish::Publish;
