//! `backup.latest_recovery_point`: the newest COMPLETED recovery point of a resource in a vault (read-only): what a
//! Backup plan made last, for workflows that follow a plan instead of starting jobs.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::sfn::{Arg, Call, Cond, Form, Newest, Op, answer, fmt, if_given, input, lit};
use crate::actions::values::{str_in, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::cloud::{image_id_from_arn, newest_completed};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight};

pub(crate) struct LatestRecoveryPoint;

/// The Step Functions form's listing: points a page, and pages at most (its scan's history grows with them).
const PAGE: u64 = 100;
const PAGES: usize = 10;

static SPEC: ActionSpec = ActionSpec {
    name: "backup.latest_recovery_point",
    summary: "Find the newest COMPLETED recovery point of a resource in a vault (ListRecoveryPointsByBackupVault, \
              sorted by CreationDate); read-only.",
    inputs: &[
        req(
            "resource_arn",
            Str,
            "The resource, e.g. arn:aws:ec2:REGION:ACCOUNT:instance/i-0123.",
        ),
        req("vault", Str, "The vault, in the step's region."),
        opt(
            "created_after",
            Str,
            "Only points created at or after this instant: Unix seconds or RFC 3339 (2026-11-28T12:00:00Z).",
        ),
    ],
    outputs: &[
        out("recovery_point_arn", "The newest COMPLETED recovery point."),
        out("image_id", "Its AMI."),
        out("creation_date", "Its CreationDate, Unix seconds."),
        out("age_seconds", "How old it is, in seconds (by this machine's clock)."),
        out(
            "count",
            "How many recovery points of the resource the vault lists (any status).",
        ),
    ],
    calls: &["backup:ListRecoveryPointsByBackupVault"],
    preflight: &[Preflight::Vault {
        input: "vault",
        region_input: None,
    }],
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for LatestRecoveryPoint {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// ListRecoveryPointsByBackupVault paged (100 a page, at most 10 pages: `TooManyItems` past 1,000 points, the
    /// scan's history bounded), the newest COMPLETED point kept by a scan (ASL cannot sort); none fails the step with
    /// `NoRecoveryPoint`, as here. `creation_date` is AWS's timestamp as Step Functions hands it on
    /// (`2026-11-28T10:00:00.000Z`: no date arithmetic in ASL), and `age_seconds` is not given.
    fn sfn(&self) -> Result<Form, &'static str> {
        let list = Call::new("list", "backup", "ListRecoveryPointsByBackupVault")
            .with("BackupVaultName", input("vault"))
            .with("ByResourceArn", input("resource_arn"))
            .with("ByCreatedAfter", if_given("created_after", input("created_after")))
            .with("MaxResults", lit(PAGE));
        let newest = |path: &'static str| answer("newest", path);
        let arn = || newest("v.RecoveryPointArn");
        Ok(Form {
            ops: vec![
                Op::Newest(Box::new(Newest {
                    id: "newest",
                    call: list,
                    items: "RecoveryPoints",
                    keep: Cond::Is(newest("scan.item.Status"), "COMPLETED"),
                    by: "CreationDate",
                    pages: PAGES,
                })),
                Op::Fail {
                    when: Cond::Not(Box::new(Cond::Present(newest("v")))),
                    error: lit("NoRecoveryPoint"),
                    cause: fmt(
                        "no COMPLETED recovery point of {} in vault {} ({}): {} listed",
                        vec![input("resource_arn"), input("vault"), Arg::Region, newest("scan.count")],
                    ),
                },
                Op::Fail {
                    when: Cond::Not(Box::new(Cond::Matches(arn(), "arn:*:ec2:*:image/*"))),
                    error: lit("UnexpectedRecoveryPoint"),
                    cause: fmt("recovery point `{}` is not an EC2 image", vec![arn()]),
                },
            ],
            outputs: vec![
                ("recovery_point_arn", arn()),
                ("image_id", Arg::AfterLastSlash(Box::new(arn()))),
                ("creation_date", newest("v.CreationDate")),
                ("count", newest("scan.count")),
            ],
        })
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let resource = str_in(inputs, "resource_arn")?;
        let vault = str_in(inputs, "vault")?;
        let after = instant(inputs, "created_after")?;
        let points = ctx
            .cloud
            .backup
            .list_recovery_points(ctx.region, vault, resource, after)
            .await?;
        let Some(newest) = newest_completed(&points) else {
            let since = after.map(|a| format!(" created at or after {a}")).unwrap_or_default();
            let seen = if points.is_empty() {
                "none listed".to_string()
            } else {
                let statuses: Vec<&str> = points.iter().map(|p| p.status.as_str()).collect();
                format!("{} listed, none COMPLETED ({})", points.len(), statuses.join(", "))
            };
            return Err(ActionError::failed(
                "NoRecoveryPoint",
                format!(
                    "no COMPLETED recovery point of {resource}{since} in vault {vault} ({}): {seen}",
                    ctx.region
                ),
            ));
        };
        let image = image_id_from_arn(&newest.arn).ok_or_else(|| {
            ActionError::failed(
                "UnexpectedRecoveryPoint",
                format!("recovery point `{}` is not an EC2 image", newest.arn),
            )
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(values([
            ("recovery_point_arn", Value::String(newest.arn.clone())),
            ("image_id", Value::String(image.to_string())),
            ("creation_date", Value::from(newest.creation_date)),
            ("age_seconds", Value::from((now - newest.creation_date).max(0))),
            ("count", Value::from(points.len())),
        ]))
    }
}

/// An optional instant input: Unix seconds (a number or digits) or RFC 3339.
fn instant(inputs: &Values, name: &str) -> Result<Option<i64>, ActionError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ActionError::Input(format!("input `{name}` must be whole Unix seconds, got {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Ok(secs) = s.parse::<i64>() {
                return Ok(Some(secs));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.timestamp()))
                .map_err(|e| {
                    ActionError::Input(format!(
                        "input `{name}` must be Unix seconds or an RFC 3339 instant (2026-11-28T12:00:00Z), got `{s}`: {e}"
                    ))
                })
        }
        Some(other) => Err(ActionError::Input(format!(
            "input `{name}` must be Unix seconds or an RFC 3339 instant, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::RecoveryPoint;

    fn point(arn: &str, status: &str, created: i64) -> RecoveryPoint {
        RecoveryPoint {
            arn: arn.into(),
            resource_arn: "arn:aws:ec2:us-east-1:123456789012:instance/i-0a".into(),
            status: status.into(),
            creation_date: created,
            source_vault_arn: None,
            vault_name: "Default".into(),
        }
    }

    #[test]
    fn newest_completed_ignores_order_and_unfinished_points() {
        let points = [
            point("arn:aws:ec2:us-east-1::image/ami-02", "COMPLETED", 200),
            point("arn:aws:ec2:us-east-1::image/ami-04", "CREATING", 400),
            point("arn:aws:ec2:us-east-1::image/ami-03", "COMPLETED", 300),
            point("arn:aws:ec2:us-east-1::image/ami-01", "COMPLETED", 100),
            point("arn:aws:ec2:us-east-1::image/ami-05", "PARTIAL", 500),
            point("arn:aws:ec2:us-east-1::image/ami-06", "EXPIRED", 600),
        ];
        assert_eq!(newest_completed(&points).unwrap().arn, points[2].arn);
        assert!(newest_completed(&points[1..2]).is_none());
        assert!(newest_completed(&[]).is_none());
    }

    #[test]
    fn created_after_takes_unix_seconds_or_rfc3339() {
        let v = |x: Value| values([("created_after", x)]);
        assert_eq!(
            instant(&v(Value::from(1700000000)), "created_after").unwrap(),
            Some(1700000000)
        );
        assert_eq!(
            instant(&v("1700000000".into()), "created_after").unwrap(),
            Some(1700000000)
        );
        assert_eq!(
            instant(&v("2026-11-28T12:00:00Z".into()), "created_after").unwrap(),
            Some(1795867200)
        );
        assert_eq!(instant(&v("".into()), "created_after").unwrap(), None);
        assert_eq!(instant(&Values::new(), "created_after").unwrap(), None);
        let e = instant(&v("yesterday".into()), "created_after").unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }
}
