//! Reading a resource policy (a KMS key policy, a Backup vault access policy) well enough to tell, before a run,
//! whether it lets a principal make a call: Allow and Deny statements, `Principal` as `*`, an account id, an account
//! root or an exact ARN, and `Action` with `*` wildcards. Conditions are not evaluated: a statement with a condition
//! counts as it reads without one (the answer is then "allowed, if its conditions hold").

use serde_json::Value;

/// What a policy says of one principal and one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Explicitly denied by a statement.
    Denied,
    /// No statement allows it (an implicit deny).
    NotAllowed,
}

/// Whether `policy` (JSON) lets `principal` call `action` (`kms:Decrypt`): `principal` is an IAM ARN of `account`
/// (a role's, with or without its path, or the account root when only the account is known). A policy that is not
/// JSON allows nothing.
pub fn verdict(policy: &str, account: &str, principal: &str, action: &str) -> Verdict {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return Verdict::NotAllowed;
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut allowed = false;
    for st in statements {
        if !names_principal(st.get("Principal"), account, principal) || !names_action(st.get("Action"), action) {
            continue;
        }
        match st.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return Verdict::Denied,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    if allowed { Verdict::Allowed } else { Verdict::NotAllowed }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn names_principal(p: Option<&Value>, account: &str, principal: &str) -> bool {
    let names = match p {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Object(m)) => strings(m.get("AWS")),
        _ => Vec::new(),
    };
    let root = format!(":iam::{account}:root");
    // A role is named by its ARN with its path; an assumed role's identity tells only its name.
    let role_name = principal
        .split_once(":role/")
        .map(|(_, r)| r.rsplit('/').next().unwrap_or(r));
    let same_role = |n: &str| {
        role_name.is_some_and(|name| {
            n.starts_with(&format!("arn:aws:iam::{account}:role/")) && n.rsplit('/').next() == Some(name)
        })
    };
    names
        .iter()
        .any(|n| *n == "*" || *n == account || n.ends_with(&root) || *n == principal || same_role(n))
}

fn names_action(a: Option<&Value>, action: &str) -> bool {
    strings(a)
        .iter()
        .any(|pattern| glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase()))
}

/// IAM's action wildcards: `*` for any run of characters, `?` for one.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.len() == text.len() && pattern.chars().zip(text.chars()).all(|(p, t)| p == '?' || p == t),
        Some((head, rest)) => {
            text.len() >= head.len()
                && glob(head, &text[..head.len()])
                && (0..=text.len() - head.len()).any(|i| glob(rest, &text[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::222222222222:role/drflow-dr";

    #[test]
    fn the_default_key_policy_delegates_to_the_account() {
        let p = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:*","Resource":"*"}]}"#;
        assert_eq!(verdict(p, "222222222222", ROLE, "kms:CreateGrant"), Verdict::Allowed);
        assert_eq!(
            verdict(p, "111111111111", "arn:aws:iam::111111111111:role/x", "kms:CreateGrant"),
            Verdict::NotAllowed
        );
    }

    #[test]
    fn actions_match_with_wildcards_and_deny_wins() {
        let p = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:role/drflow-dr"]},"Action":["kms:ReEncrypt*","kms:Describe?ey"]},
            {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt"}]}"#;
        assert_eq!(verdict(p, "222222222222", ROLE, "kms:ReEncryptFrom"), Verdict::Allowed);
        assert_eq!(verdict(p, "222222222222", ROLE, "kms:DescribeKey"), Verdict::Allowed);
        assert_eq!(verdict(p, "222222222222", ROLE, "kms:CreateGrant"), Verdict::NotAllowed);
        assert_eq!(verdict(p, "222222222222", ROLE, "kms:Decrypt"), Verdict::Denied);
        let with_path = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/dr/drflow-dr"},"Action":"kms:*"}]}"#;
        assert_eq!(
            verdict(with_path, "222222222222", ROLE, "kms:Decrypt"),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(
                with_path,
                "222222222222",
                "arn:aws:iam::222222222222:root",
                "kms:Decrypt"
            ),
            Verdict::NotAllowed
        );
        assert_eq!(verdict("not json", "2", ROLE, "kms:Decrypt"), Verdict::NotAllowed);
    }

    #[test]
    fn a_vault_policy_names_the_source_account() {
        let p = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}"#;
        assert_eq!(
            verdict(
                p,
                "111111111111",
                "arn:aws:iam::111111111111:role/r",
                "backup:CopyIntoBackupVault"
            ),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(
                p,
                "333333333333",
                "arn:aws:iam::333333333333:role/r",
                "backup:CopyIntoBackupVault"
            ),
            Verdict::NotAllowed
        );
    }
}
