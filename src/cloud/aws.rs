//! The real AWS backend (the SDK). Placeholder until the SDK backend lands.

use super::Cloud;

pub async fn connect(_profile: Option<&str>) -> Result<Cloud, String> {
    Err("the AWS backend is not available yet: use --simulate".into())
}
