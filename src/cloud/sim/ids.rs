//! Ids: the simulated account, the ids of the default resources, generated ids and the shape checks for ids and
//! region codes. Imports nothing from the simulator: every other module may use it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) const ACCOUNT: &str = "123456789012";

/// The ARN of a simulated SNS topic.
pub(crate) fn topic_arn(region: &str, name: &str) -> String {
    format!("arn:aws:sns:{region}:{ACCOUNT}:{name}")
}
pub(crate) const DEFAULT_VAULT: &str = "Default";
pub(crate) const DEFAULT_INSTANCE: &str = "i-0123456789abcdef0";
/// The public parameter AWS keeps pointing at the latest Amazon Linux AMI; in the simulator, the base AMI.
pub(crate) const PUBLIC_AMI_PARAMETER: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

/// The source of every generated id: a counter, hashed. Deterministic: the same calls make the same ids. Persisted
/// with the world (as the number `next_id`), so a resumed world never repeats an id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct IdGen {
    next: u64,
}

impl IdGen {
    fn next_digest(&mut self, kind: &str) -> String {
        self.next += 1;
        digest_hex(&format!("{kind}:{}", self.next))
    }

    /// `ami-` + 17 hex digits, like AWS.
    pub(crate) fn new_image_id(&mut self) -> String {
        format!("ami-0{}", &self.next_digest("ami")[..16])
    }

    pub(crate) fn new_instance_id(&mut self) -> String {
        format!("i-0{}", &self.next_digest("instance")[..16])
    }

    /// A UUID-shaped id (backup and copy job ids, stack ids).
    pub(crate) fn new_uuid(&mut self) -> String {
        let h = self.next_digest("uuid");
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }

    /// A short suffix for physical ids of resources the simulator does not model.
    pub(crate) fn new_suffix(&mut self) -> String {
        self.next_digest("suffix")[..12].to_ascii_uppercase()
    }
}

fn digest_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The base AMI every default region has: the same id for the same region, in every world.
pub(crate) fn base_image_id(region: &str) -> String {
    format!("ami-0{}", &digest_hex(&format!("base:{region}"))[..16])
}

/// The EBS snapshot of a simulated AMI: derived from the AMI's id (so no other generated id changes).
pub(crate) fn snapshot_id_of(image_id: &str) -> String {
    format!("snap-0{}", &digest_hex(&format!("snapshot:{image_id}"))[..16])
}

/// `ami-` followed by hex digits.
pub(crate) fn is_ami_id(id: &str) -> bool {
    id.strip_prefix("ami-")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `i-` followed by hex digits.
pub(crate) fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `us-east-1`, `ap-northeast-3`, `us-gov-west-1`, `eu-central-2`...
pub(crate) fn looks_like_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let (mut a, mut b) = (IdGen::default(), IdGen::default());
        let (x, y) = (a.new_image_id(), a.new_image_id());
        assert_ne!(x, y);
        assert_eq!(x, b.new_image_id());
        assert!(is_ami_id(&x) && x.len() == 21);
        assert_eq!(a.new_uuid().len(), 36);
        let instance = a.new_instance_id();
        assert!(is_instance_id(&instance) && instance.len() == 19);
        assert_eq!(a.new_suffix().len(), 12);
        // Persisted as a bare number (the world's `next_id`).
        assert_eq!(serde_json::to_string(&a).unwrap(), "5");
        let base = base_image_id("eu-west-1");
        assert!(is_ami_id(&base) && base.len() == 21 && base == base_image_id("eu-west-1"));
        assert_ne!(base, base_image_id("eu-west-2"));
    }

    #[test]
    fn id_shapes() {
        assert!(is_ami_id("ami-0abc") && !is_ami_id("ami-") && !is_ami_id("ami-xyz") && !is_ami_id("i-0abc"));
        assert!(is_instance_id("i-0abc") && !is_instance_id("i-") && !is_instance_id("ami-0abc"));
    }

    #[test]
    fn region_codes() {
        assert!(looks_like_region("us-east-1") && looks_like_region("us-gov-west-1"));
        assert!(!looks_like_region("useast1") && !looks_like_region("us-east-") && !looks_like_region("US-EAST-1"));
    }
}
