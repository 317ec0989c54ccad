//! Where `check` looks for the newest AMI of an instance in a region, to tell whether the parameter follows it.

use std::collections::HashMap;

use super::Newest;
use crate::cloud::Cloud;

/// The source of "newest".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewestSource {
    /// Nothing is compared: the maximum age decides.
    None,
}

impl NewestSource {
    pub fn name(&self) -> &'static str {
        match self {
            NewestSource::None => "none",
        }
    }

    pub(super) fn needs_resource_arns(&self) -> bool {
        false
    }
}

/// The newest AMI of each instance in `region` (`role`: primary or dr), or why it could not be found. An instance
/// left out has nothing to compare with.
pub(super) async fn lookup(
    source: &NewestSource,
    _cloud: &Cloud,
    _region: &str,
    _role: &str,
    _instances: &[String],
    _resource_arns: Option<&HashMap<String, String>>,
) -> HashMap<String, Result<Option<Newest>, String>> {
    match source {
        NewestSource::None => HashMap::new(),
    }
}
