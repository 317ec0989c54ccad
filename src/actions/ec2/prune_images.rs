//! `ec2.prune_images`: keep the newest N AMIs drflow made of an instance in the step's region, deregister the
//! others and delete their snapshots. Never an AMI a listed SSM parameter names, never one AWS Backup manages (tag
//! `aws:backup:source-resource`), never one that is not `available` (a run may be making it).
//!
//! Journaled so that a retried or resumed step never redoes a deletion wrongly: before each DeregisterImage the
//! AMI and its snapshots are recorded (`pruning`), after it what was deleted (`pruned`). A retry (or resume) lists
//! the AMIs again: one recorded but no longer listed was deregistered by the call whose answer was lost, so it is
//! not deregistered again; its recorded snapshots are deleted one by one (one already gone counts as deleted, one
//! another AMI uses stays). One still listed is decided by the new selection, never by the old one. Deleting old
//! AMIs never changes which are the newest N, so the selection is stable across retries.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::values::{int_in, opt_str, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::{CloudError, Image};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct PruneImages;

/// The tag AWS Backup puts on the AMIs it makes: they are its to delete (by the recovery point's lifecycle).
pub(crate) const BACKUP_TAG: &str = "aws:backup:source-resource";
/// The tag drflow's EC2 workflows put on the AMIs they make (`dr-ami-ec2.yaml`): the instance imaged.
const INSTANCE_TAG: &str = "drflow:instance";

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.prune_images",
    summary: "Keep the newest N AMIs drflow made of an instance in the step's region; deregister the others and \
              delete their snapshots (never an AMI a listed parameter names, nor one AWS Backup manages).",
    inputs: &[
        req("instance_id", Str, "The instance whose AMIs to prune."),
        req(
            "keep",
            Int,
            "How many of its newest available AMIs to keep (at least 1).",
        ),
        opt(
            "parameters",
            List,
            "SSM parameters (in the step's region) whose AMI is never pruned, e.g. PREFIX/INSTANCE_ID/ami.",
        ),
        opt(
            "tag_key",
            Str,
            "The tag that names the instance on its AMIs. Default drflow:instance.",
        ),
    ],
    outputs: &[
        out(
            "deregistered",
            "The AMIs deregistered: any an earlier attempt left unanswered first, then oldest first.",
        ),
        out(
            "snapshots_deleted",
            "Their snapshots deleted (gone; those another AMI uses stay).",
        ),
        out("kept", "The instance's AMIs kept, newest first."),
        out("count", "How many AMIs were deregistered."),
    ],
    calls: &[
        "ec2:DescribeImages",
        "ssm:GetParameter",
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
    ],
    default_timeout_secs: 300,
    ..ActionSpec::BASE
};

/// Why an AMI stays, besides being among the newest N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kept {
    Newest,
    /// Named by this parameter.
    Parameter(String),
    Backup,
    /// Not available (pending, failed, ...): left alone.
    State(String),
}

impl Kept {
    fn why(&self) -> String {
        match self {
            Kept::Newest => "among the newest".into(),
            Kept::Parameter(p) => format!("named by {p}"),
            Kept::Backup => "managed by AWS Backup".into(),
            Kept::State(s) => format!("{s}, not available"),
        }
    }
}

/// Which AMIs stay and which go.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Selection {
    /// Newest first.
    pub kept: Vec<(Image, Kept)>,
    /// Oldest first.
    pub go: Vec<Image>,
}

/// Newest first: by creation date, then name and id (names carry the run id, which sorts by time).
fn newest_first(a: &Image, b: &Image) -> std::cmp::Ordering {
    (b.creation_date, &b.name, &b.image_id).cmp(&(a.creation_date, &a.name, &a.image_id))
}

/// The selection rule: the newest `keep` available AMIs stay, and so does every AMI a parameter names (`named`:
/// AMI → parameter), every one AWS Backup manages and every one not available; the other available ones go.
pub(crate) fn select(mut images: Vec<Image>, keep: usize, named: &BTreeMap<String, String>) -> Selection {
    // A deregistered AMI (DescribeImages may still list one for a while) is gone already.
    images.retain(|i| i.state != "deregistered");
    images.sort_by(newest_first);
    let mut sel = Selection::default();
    let mut newest = 0;
    for img in images {
        let why = if img.tags.contains_key(BACKUP_TAG) {
            Some(Kept::Backup)
        } else if img.state != "available" {
            Some(Kept::State(img.state.clone()))
        } else if newest < keep {
            newest += 1;
            Some(Kept::Newest)
        } else {
            named.get(&img.image_id).map(|p| Kept::Parameter(p.clone()))
        };
        match why {
            Some(why) => sel.kept.push((img, why)),
            None => sel.go.push(img),
        }
    }
    sel.go.reverse();
    sel
}

/// What a step is asked to do.
struct Ask<'a> {
    instance: &'a str,
    keep: usize,
    parameters: Vec<String>,
    tag_key: &'a str,
}

fn ask(inputs: &Values) -> Result<Ask<'_>, ActionError> {
    let instance = str_in(inputs, "instance_id")?;
    let keep = int_in(inputs, "keep")?.ok_or_else(|| ActionError::Input("input `keep` is missing".into()))?;
    if keep < 1 {
        return Err(ActionError::Input(format!(
            "input `keep` is {keep}: keep at least 1 AMI (to prune nothing, skip the step with a `when`)"
        )));
    }
    let parameters = match inputs.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(ActionError::Input(format!(
                    "input `parameters` must list parameter names, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ActionError::Input(format!(
                "input `parameters` must be a list, got {other}"
            )));
        }
    };
    Ok(Ask {
        instance,
        keep: usize::try_from(keep).unwrap_or(usize::MAX),
        parameters,
        tag_key: opt_str(inputs, "tag_key").unwrap_or(INSTANCE_TAG),
    })
}

/// Read-only: the instance's AMIs in the region and the AMIs the parameters name, selected.
async fn look(ctx: &Ctx<'_>, ask: &Ask<'_>) -> Result<Selection, ActionError> {
    let mut named = BTreeMap::new();
    for p in &ask.parameters {
        if let Some(param) = ctx.cloud.ssm.get_parameter(ctx.region, p).await? {
            named.insert(param.value, p.clone());
        }
    }
    let tags = BTreeMap::from([(ask.tag_key.to_string(), ask.instance.to_string())]);
    let images = ctx.cloud.ec2.find_images(ctx.region, &tags).await?;
    Ok(select(images, ask.keep, &named))
}

/// `{AMI: [snapshot, ...]}` journaled under `key`.
fn journaled(ctx: &Ctx<'_>, key: &str) -> BTreeMap<String, Vec<String>> {
    ctx.recorder
        .recorded(key)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

async fn journal(ctx: &Ctx<'_>, key: &str, map: &BTreeMap<String, Vec<String>>) {
    ctx.recorder
        .record(key, &serde_json::to_value(map).expect("a map serialises"))
        .await;
}

/// An AMI that is already gone.
fn gone(e: &CloudError) -> bool {
    matches!(e.code.as_str(), "InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable")
}

/// Deletes a snapshot left by an AMI whose deregistration answer was lost (or whose snapshot AWS could not delete
/// with it). Whether it is gone: deleted now, or already (by the lost call); `false` while another AMI uses it.
async fn delete_snapshot(ctx: &Ctx<'_>, snapshot: &str) -> Result<bool, ActionError> {
    match ctx.cloud.ec2.delete_snapshot(ctx.region, snapshot).await {
        Ok(()) => Ok(true),
        Err(e) if e.code == "InvalidSnapshot.NotFound" => Ok(true),
        Err(e) if e.code == "InvalidSnapshot.InUse" => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deregisters one AMI and deletes its snapshots; the snapshots deleted.
async fn prune_one(ctx: &Ctx<'_>, image_id: &str, snapshots: &[String]) -> Result<Vec<String>, ActionError> {
    match ctx.cloud.ec2.deregister_image(ctx.region, image_id, true).await {
        Ok(results) => {
            let mut deleted = Vec::new();
            for (snap, code) in results {
                match code.as_str() {
                    "success" => deleted.push(snap),
                    // Another AMI uses it: it stays with that AMI.
                    "skipped" => {}
                    // missing-permissions, client-error, internal-error: try on its own (an error says why).
                    _ => {
                        if delete_snapshot(ctx, &snap).await? {
                            deleted.push(snap);
                        }
                    }
                }
            }
            Ok(deleted)
        }
        // Gone between the listing and this call (another run pruned it): its snapshots, if still there.
        Err(e) if gone(&e) => {
            let mut deleted = Vec::new();
            for snap in snapshots {
                if delete_snapshot(ctx, snap).await? {
                    deleted.push(snap.clone());
                }
            }
            Ok(deleted)
        }
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Action for PruneImages {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Ok(sfn_form())
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let ask = ask(inputs)?;
        let mut pruning = journaled(ctx, "pruning");
        let mut pruned = journaled(ctx, "pruned");
        let sel = look(ctx, &ask).await?;
        // Deregistrations an earlier attempt started and did not see answered. One whose AMI is gone was done (its
        // answer was lost): finish its journaled snapshots, and deregister nothing. One whose AMI is still there is
        // decided by this selection like any other (nothing is deleted on the strength of an older one).
        let listed = |ami: &str| {
            sel.go
                .iter()
                .chain(sel.kept.iter().map(|(i, _)| i))
                .any(|i| i.image_id == ami)
        };
        let unfinished: Vec<(String, Vec<String>)> = pruning
            .iter()
            .filter(|(ami, _)| !pruned.contains_key(*ami) && !listed(ami))
            .map(|(a, s)| (a.clone(), s.clone()))
            .collect();
        for (ami, snapshots) in unfinished {
            let mut deleted = Vec::new();
            for snap in snapshots {
                if delete_snapshot(ctx, &snap).await? {
                    deleted.push(snap);
                }
            }
            pruned.insert(ami, deleted);
            journal(ctx, "pruned", &pruned).await;
        }
        for img in &sel.go {
            pruning.insert(img.image_id.clone(), img.snapshot_ids.clone());
            journal(ctx, "pruning", &pruning).await;
            let deleted = prune_one(ctx, &img.image_id, &img.snapshot_ids).await?;
            pruned.insert(img.image_id.clone(), deleted);
            journal(ctx, "pruned", &pruned).await;
        }
        // Oldest first, as they went (across attempts: by the order of the journal's map, then this attempt's).
        let mut order: Vec<String> = pruning.keys().filter(|a| pruned.contains_key(*a)).cloned().collect();
        order.sort_by_key(|a| sel.go.iter().position(|g| &g.image_id == a));
        let snapshots: Vec<Value> = order
            .iter()
            .flat_map(|a| pruned[a].iter().cloned().map(Value::String))
            .collect();
        Ok(values([
            ("count", Value::from(order.len())),
            (
                "deregistered",
                Value::Array(order.into_iter().map(Value::String).collect()),
            ),
            ("snapshots_deleted", Value::Array(snapshots)),
            (
                "kept",
                Value::Array(
                    sel.kept
                        .iter()
                        .map(|(i, _)| Value::String(i.image_id.clone()))
                        .collect(),
                ),
            ),
        ]))
    }

    fn previews(&self) -> Option<&'static str> {
        Some("the AMIs it deregisters")
    }

    async fn preview(&self, ctx: &Ctx<'_>, inputs: &Values) -> Option<Result<String, ActionError>> {
        Some(preview(ctx, inputs).await)
    }

    /// The AMIs deregistered (with their snapshots), also by a step that failed halfway.
    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        let mut e = Effects::default();
        let pruned: BTreeMap<String, Vec<String>> = step
            .recorded
            .get("pruned")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        for (ami, snapshots) in pruned {
            let detail =
                (!snapshots.is_empty()).then(|| format!("deregistered; snapshots deleted: {}", snapshots.join(", ")));
            let detail = detail.or_else(|| Some("deregistered".into()));
            e.deleted.push(step.resource(ResourceKind::Ami, ami, None, detail));
        }
        e
    }
}

/// The most AMIs of the instance (in the region) the Step Functions form prunes among, and the most parameters and
/// block devices per AMI it reads: its history grows with the square of the AMIs (see `sfn_form`).
const SFN_MAX_IMAGES: usize = 20;
const SFN_MAX_PARAMETERS: usize = 5;
const SFN_MAX_DEVICES: usize = 4;

/// EC2's codes the Step Functions form expects, with AWS's messages for them (EC2's SDK integration names every EC2
/// error `Ec2.Ec2Exception`: the message tells them apart; the cross-region function names them by code).
const IN_USE: (&str, &str) = ("InvalidSnapshot.InUse", "*is currently in use by*");
const SNAPSHOT_GONE: (&str, &str) = ("InvalidSnapshot.NotFound", "*does not exist*");
const AMI_GONE: (&str, &str) = ("InvalidAMIID.NotFound", "*does not exist*");
const AMI_UNAVAILABLE: (&str, &str) = ("InvalidAMIID.Unavailable", "*is no longer available*");

/// The Step Functions form: the same selection without sorting. An AMI is pruned iff it is available, not AWS
/// Backup's (its tag), not named by a listed parameter, and at least `keep` of the instance's other available,
/// non-Backup AMIs are newer (creation date to the second, then name, then id: the order `select` sorts by). Per
/// AMI, a Map over all of them gives each newer one's id (else `-`); the distinct values less one are how many are
/// newer.
///
/// Calls: `GetParameter` per listed parameter (`ParameterNotFound`: it names none), `DescribeImages` of the
/// instance's AMIs (by its tag, owned by the account) and of those AWS Backup made (`tag-key`), then per AMI pruned
/// `DeregisterImage` and, per EBS snapshot of it, `DescribeImages` of the AMIs still using it
/// (`block-device-mapping.snapshot-id`) and `DeleteSnapshot` when none does. Each call retried as the step says.
/// Expected errors are answers: an AMI already gone (`InvalidAMIID.NotFound` / `Unavailable`: another run pruned
/// it, or an earlier attempt's answer was lost) still has its snapshots deleted; a snapshot gone already
/// (`InvalidSnapshot.NotFound`) counts as deleted; one another AMI took up since the check (`InvalidSnapshot.InUse`)
/// stays. The cross-region function names them by code; EC2's SDK integration names every EC2 error
/// `Ec2.Ec2Exception`, so there AWS's message tells them apart (`Cond::Failed`), and its retrier retries them first
/// as it retries throttling. Any other error fails the step with it.
///
/// Differences from `drflow run`'s: `deregistered` and `snapshots_deleted` come in the listing's order (not oldest
/// first), `kept` too (not newest first); a snapshot is kept when an AMI still uses it by that check (not by
/// `DeregisterImage`'s `DeleteAssociatedSnapshots` answer); more than 20 AMIs of the instance in the region, 5
/// parameters or 4 block devices of an AMI fail the step with `TooManyImages` / `TooManyParameters` /
/// `TooManyDevices` (prune once with `drflow run`). No journal: a retried or redriven step lists the AMIs again and
/// decides anew (deleting old AMIs never changes which are the newest).
///
/// History: for n AMIs about 6n² + 40n events (7 AMIs: about 600 on the emulator; 20: about 3,200), plus about
/// 25 per parameter and 40 per snapshot deleted; the exporter counts each step at the bounds (`export::each`).
pub(crate) fn sfn_form() -> crate::actions::sfn::Form {
    use crate::actions::sfn::{Arg, Bound, Call, Cond, Form, Op, answer, fmt, input, lit};
    let item = |id: &'static str, path: &'static str| Arg::Item(id, path);
    let of_instance = Arg::Map(vec![
        (
            "Name",
            Arg::Choose(
                "tag_key",
                Box::new(fmt("tag:{}", vec![input("tag_key")])),
                Box::new(lit(format!("tag:{INSTANCE_TAG}"))),
            ),
        ),
        ("Values", Arg::List(vec![input("instance_id")])),
    ]);
    let describe = |id: &'static str, filters: Vec<Arg>| {
        Call::new(id, "ec2", "DescribeImages")
            .with("Owners", lit(serde_json::json!(["self"])))
            .with("Filters", Arg::List(filters))
    };
    let images = Bound {
        at_most: SFN_MAX_IMAGES,
        error: "TooManyImages",
        cause: "the instance has more AMIs in the region than the Step Functions form prunes among: prune once with drflow run",
    };
    let available = |id: &'static str| Cond::Is(item(id, "State"), "available");
    let failed = |id: &'static str, (code, message): (&'static str, &'static str)| Cond::Failed(id, code, message);
    let yes = |id: &'static str| Cond::True(answer(id, "v"));
    let not = |c: Cond| Cond::Not(Box::new(c));
    // An AMI's sort key: its creation date to the second (as `drflow run` reads it; `2026-11-28T03:00:00` of
    // `2026-11-28T03:00:00.000Z`), name and id.
    let key = |id: &'static str| {
        Arg::Map(vec![
            ("id", item(id, "ImageId")),
            ("date", Arg::Split(Box::new(item(id, "CreationDate")), ".", 0)),
            ("name", item(id, "Name")),
        ])
    };
    // Another AMI's key (`newer`) sorts after the key of the AMI being decided (`me`).
    let newer = Cond::Any(vec![
        Cond::After(item("newer", "date"), answer("me", "v.date")),
        Cond::All(vec![
            Cond::Same(item("newer", "date"), answer("me", "v.date")),
            Cond::Any(vec![
                Cond::After(item("newer", "name"), answer("me", "v.name")),
                Cond::All(vec![
                    Cond::Same(item("newer", "name"), answer("me", "v.name")),
                    Cond::After(item("newer", "id"), answer("me", "v.id")),
                ]),
            ]),
        ]),
    ]);
    let snapshot = item("device", "Ebs.SnapshotId");
    let delete_snapshots = Op::Loop {
        id: "device",
        items: item("image", "BlockDeviceMappings"),
        bound: Bound {
            at_most: SFN_MAX_DEVICES,
            error: "TooManyDevices",
            cause: "an AMI to prune has more block devices than the Step Functions form deletes the snapshots of: prune it with drflow run",
        },
        ops: vec![Op::If {
            when: Cond::Present(snapshot.clone()),
            then: vec![
                Op::Call(describe(
                    "users",
                    vec![Arg::Map(vec![
                        ("Name", lit("block-device-mapping.snapshot-id")),
                        ("Values", Arg::List(vec![snapshot.clone()])),
                    ])],
                )),
                Op::If {
                    when: Cond::Empty(answer("users", "Images")),
                    then: vec![
                        Op::Let("gone", lit(true)),
                        Op::Call(
                            Call::new("delete", "ec2", "DeleteSnapshot")
                                .with("SnapshotId", snapshot.clone())
                                .absent(&[IN_USE.0, SNAPSHOT_GONE.0]),
                        ),
                        Op::If {
                            when: Cond::Absent("delete"),
                            then: vec![
                                // Another AMI took it up since the check: it stays. Gone already (the answer of
                                // an earlier attempt was lost): deleted. Any other error fails the step.
                                Op::Fail {
                                    when: not(Cond::Any(vec![
                                        failed("delete", IN_USE),
                                        failed("delete", SNAPSHOT_GONE),
                                    ])),
                                    error: Arg::Caught("delete", "Error"),
                                    cause: Arg::Caught("delete", "Cause"),
                                },
                                Op::If {
                                    when: failed("delete", IN_USE),
                                    then: vec![Op::Let("gone", lit(false))],
                                },
                            ],
                        },
                        Op::If {
                            when: yes("gone"),
                            then: vec![Op::Append("snapshots_deleted", snapshot)],
                        },
                    ],
                },
            ],
        }],
    };
    let decide = vec![
        Op::Let("fate", lit("kept")),
        Op::Let(
            "backup_made",
            Arg::Contains(Box::new(answer("backup", "v")), Box::new(item("image", "ImageId"))),
        ),
        Op::Let(
            "named_here",
            Arg::Contains(Box::new(answer("named", "v")), Box::new(item("image", "ImageId"))),
        ),
        Op::If {
            when: Cond::All(vec![
                available("image"),
                not(yes("backup_made")),
                not(yes("named_here")),
            ]),
            then: vec![
                Op::Let("me", key("image")),
                Op::Each {
                    id: "newer",
                    items: answer("keys", "v"),
                    ops: vec![Op::Yield {
                        when: newer,
                        value: item("newer", "id"),
                    }],
                    yields: lit("-"),
                    bound: images.clone(),
                },
                Op::Let(
                    "rank",
                    Arg::Sum(
                        Box::new(Arg::Distinct(Box::new(answer("newer", "v")))),
                        Box::new(lit(-1)),
                    ),
                ),
                Op::If {
                    when: Cond::AtLeast(answer("rank", "v"), input("keep")),
                    then: vec![
                        Op::Call(
                            Call::new("deregister", "ec2", "DeregisterImage")
                                .with("ImageId", item("image", "ImageId"))
                                .absent(&[AMI_GONE.0, AMI_UNAVAILABLE.0]),
                        ),
                        // Gone already (another run pruned it, or an earlier attempt's answer was lost): its
                        // snapshots still go. Any other error fails the step.
                        Op::If {
                            when: Cond::Absent("deregister"),
                            then: vec![Op::Fail {
                                when: not(Cond::Any(vec![
                                    failed("deregister", AMI_GONE),
                                    failed("deregister", AMI_UNAVAILABLE),
                                ])),
                                error: Arg::Caught("deregister", "Error"),
                                cause: Arg::Caught("deregister", "Cause"),
                            }],
                        },
                        Op::Let("fate", lit("deregistered")),
                        Op::Append("deregistered", item("image", "ImageId")),
                        delete_snapshots,
                    ],
                },
            ],
        },
        Op::If {
            when: Cond::Is(answer("fate", "v"), "kept"),
            then: vec![Op::Append("kept", item("image", "ImageId"))],
        },
    ];
    Form {
        ops: vec![
            Op::Fail {
                when: not(Cond::AtLeast(input("keep"), lit(1))),
                error: lit("InvalidInput"),
                cause: lit("input `keep` must be at least 1 (to prune nothing, skip the step with a `when`)"),
            },
            // The AMIs the parameters name (`-` for a parameter that does not exist).
            Op::Let("named", Arg::List(vec![])),
            Op::If {
                when: Cond::Given("parameters"),
                then: vec![Op::Each {
                    id: "named",
                    items: input("parameters"),
                    ops: vec![
                        Op::Call(
                            Call::new("parameter", "ssm", "GetParameter")
                                .with("Name", item("named", ""))
                                .absent(&["ParameterNotFound"]),
                        ),
                        Op::Yield {
                            when: Cond::Absent("parameter"),
                            value: lit("-"),
                        },
                    ],
                    yields: answer("parameter", "Parameter.Value"),
                    bound: Bound {
                        at_most: SFN_MAX_PARAMETERS,
                        error: "TooManyParameters",
                        cause: "more parameters are listed than the Step Functions form reads",
                    },
                }],
            },
            Op::Call(describe("images", vec![of_instance.clone()])),
            Op::Call(describe(
                "backups",
                vec![
                    of_instance,
                    Arg::Map(vec![
                        ("Name", lit("tag-key")),
                        ("Values", lit(serde_json::json!([BACKUP_TAG]))),
                    ]),
                ],
            )),
            Op::Each {
                id: "backup",
                items: answer("backups", "Images"),
                ops: vec![],
                yields: item("backup", "ImageId"),
                bound: images.clone(),
            },
            // Each AMI's sort key; one that is not a candidate (not available, or AWS Backup's) sorts before all.
            Op::Each {
                id: "keys",
                items: answer("images", "Images"),
                ops: vec![
                    Op::Let(
                        "backup_made",
                        Arg::Contains(Box::new(answer("backup", "v")), Box::new(item("keys", "ImageId"))),
                    ),
                    Op::Yield {
                        when: Cond::All(vec![available("keys"), not(yes("backup_made"))]),
                        value: key("keys"),
                    },
                ],
                yields: Arg::Map(vec![
                    ("id", item("keys", "ImageId")),
                    ("date", lit("")),
                    ("name", lit("")),
                ]),
                bound: images.clone(),
            },
            Op::Collect("deregistered"),
            Op::Collect("snapshots_deleted"),
            Op::Collect("kept"),
            Op::Loop {
                id: "image",
                items: answer("images", "Images"),
                bound: images,
                ops: vec![Op::If {
                    when: not(Cond::Is(item("image", "State"), "deregistered")),
                    then: decide,
                }],
            },
        ],
        outputs: vec![
            ("deregistered", Arg::Collected("deregistered")),
            ("snapshots_deleted", Arg::Collected("snapshots_deleted")),
            ("kept", Arg::Collected("kept")),
            ("count", Arg::Length(Box::new(Arg::Collected("deregistered")))),
        ],
    }
}

/// What a step would do now, in one line per fact: for `drflow plan --check`.
async fn preview(ctx: &Ctx<'_>, inputs: &Values) -> Result<String, ActionError> {
    let ask = ask(inputs)?;
    let sel = look(ctx, &ask).await?;
    Ok(describe(&ask, &sel))
}

fn describe(ask: &Ask<'_>, sel: &Selection) -> String {
    let total = sel.kept.len() + sel.go.len();
    let mut text = if sel.go.is_empty() {
        format!(
            "{total} AMI(s) of {} here; none to deregister (keeps the newest {})",
            ask.instance, ask.keep
        )
    } else {
        let list: Vec<String> = sel.go.iter().map(|i| i.image_id.clone()).collect();
        format!(
            "would deregister {} of {total} AMI(s) of {} and their snapshots: {}",
            sel.go.len(),
            ask.instance,
            list.join(", ")
        )
    };
    let others: Vec<String> = sel
        .kept
        .iter()
        .map(|(i, why)| format!("{} ({})", i.image_id, why.why()))
        .collect();
    if !others.is_empty() {
        text.push_str(&format!("; keeps {}", others.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, created: i64, state: &str, tags: &[(&str, &str)]) -> Image {
        Image {
            image_id: id.into(),
            state: state.into(),
            state_reason: None,
            name: Some(format!("drflow-{id}")),
            creation_date: Some(created),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            snapshot_ids: vec![format!("snap-{id}")],
        }
    }

    fn ids(images: &[Image]) -> Vec<&str> {
        images.iter().map(|i| i.image_id.as_str()).collect()
    }

    fn kept(sel: &Selection) -> Vec<(&str, Kept)> {
        sel.kept.iter().map(|(i, k)| (i.image_id.as_str(), k.clone())).collect()
    }

    #[test]
    fn keeps_the_newest_n_and_deregisters_the_rest_oldest_first() {
        let images = vec![
            img("a", 100, "available", &[]),
            img("c", 300, "available", &[]),
            img("b", 200, "available", &[]),
            img("e", 500, "available", &[]),
            img("d", 400, "available", &[]),
        ];
        let sel = select(images, 2, &BTreeMap::new());
        assert_eq!(kept(&sel), [("e", Kept::Newest), ("d", Kept::Newest)]);
        assert_eq!(ids(&sel.go), ["a", "b", "c"]);
        let sel = select(vec![img("a", 1, "available", &[])], 3, &BTreeMap::new());
        assert!(sel.go.is_empty());
    }

    #[test]
    fn never_an_ami_a_parameter_names_one_aws_backup_manages_or_one_not_available() {
        let images = vec![
            img("old-named", 100, "available", &[]),
            img(
                "backup",
                150,
                "available",
                &[(BACKUP_TAG, "arn:aws:ec2:us-east-1:1:instance/i-1")],
            ),
            img("old", 200, "available", &[]),
            img("failed", 250, "failed", &[]),
            img("new", 300, "available", &[]),
            img("pending", 400, "pending", &[]),
        ];
        let named = BTreeMap::from([("old-named".to_string(), "/drflow/i-1/ami".to_string())]);
        let sel = select(images, 1, &named);
        assert_eq!(
            kept(&sel),
            [
                ("pending", Kept::State("pending".into())),
                ("new", Kept::Newest),
                ("failed", Kept::State("failed".into())),
                ("backup", Kept::Backup),
                ("old-named", Kept::Parameter("/drflow/i-1/ami".into())),
            ]
        );
        assert_eq!(ids(&sel.go), ["old"]);
        // Backup-managed and unavailable AMIs do not count among the newest N.
        let sel = select(
            vec![
                img("backup", 900, "available", &[(BACKUP_TAG, "x")]),
                img("p", 800, "pending", &[]),
                img("a", 100, "available", &[]),
            ],
            1,
            &BTreeMap::new(),
        );
        assert!(sel.go.is_empty(), "{sel:?}");
    }

    #[test]
    fn a_deregistered_ami_still_listed_is_gone_already() {
        let sel = select(
            vec![img("new", 9, "available", &[]), img("old", 1, "deregistered", &[])],
            1,
            &BTreeMap::new(),
        );
        assert!(sel.go.is_empty() && sel.kept.len() == 1, "{sel:?}");
    }

    /// A recorder with facts an earlier attempt journaled.
    struct Journal(std::sync::Mutex<Values>);

    #[async_trait::async_trait]
    impl crate::actions::Recorder for Journal {
        async fn record(&self, key: &str, value: &Value) {
            self.0.lock().unwrap().insert(key.to_string(), value.clone());
        }
        fn recorded(&self, key: &str) -> Option<Value> {
            self.0.lock().unwrap().get(key).cloned()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_deregistration_of_an_ami_still_there_is_decided_anew() {
        use crate::cloud::sim::{Scenario, Sim};
        let yaml = "images:\n\
            - {id: ami-0aaaaaaaaaaaaaaa1, region: us-east-1, name: a1, tags: {drflow:instance: i-1}}\n\
            - {id: ami-0aaaaaaaaaaaaaaa2, region: us-east-1, name: a2, tags: {drflow:instance: i-1}}\n\
            - {id: ami-0aaaaaaaaaaaaaaa3, region: us-east-1, name: a3, tags: {drflow:instance: i-1}}\n\
            parameters:\n\
            - {name: /p/ami, region: us-east-1, value: ami-0aaaaaaaaaaaaaaa1, data_type: 'aws:ec2:image'}\n";
        let sim = Sim::new(Scenario::from_yaml_str(yaml, None).unwrap());
        let cloud = sim.cloud();
        // An earlier attempt meant to deregister a1 (its call never reached AWS); since then /p/ami names it.
        let journal = Journal(Default::default());
        let earlier = serde_json::json!({"ami-0aaaaaaaaaaaaaaa1": ["snap-x"]});
        crate::actions::Recorder::record(&journal, "pruning", &earlier).await;
        let run = crate::actions::RunInfo::default();
        let ctx = Ctx {
            cloud: &cloud,
            region: "us-east-1",
            token: "t",
            recorder: &journal,
            base_dir: std::path::Path::new("."),
            run: &run,
            approvals: &crate::actions::approval::NoApprovals,
        };
        let inputs = values([
            ("instance_id", Value::from("i-1")),
            ("keep", Value::from(1)),
            ("parameters", serde_json::json!(["/p/ami"])),
        ]);
        let out = PruneImages.call(&ctx, &inputs).await.unwrap();
        assert_eq!(out["deregistered"], serde_json::json!(["ami-0aaaaaaaaaaaaaaa2"]));
        let tags = BTreeMap::from([(INSTANCE_TAG.to_string(), "i-1".to_string())]);
        let left = cloud.ec2.find_images("us-east-1", &tags).await.unwrap();
        let mut left: Vec<String> = left.into_iter().map(|i| i.image_id).collect();
        left.sort();
        assert_eq!(left, ["ami-0aaaaaaaaaaaaaaa1", "ami-0aaaaaaaaaaaaaaa3"]);
        let calls: Vec<String> = sim
            .calls()
            .into_iter()
            .filter(|c| c.mutating)
            .map(|c| c.operation)
            .collect();
        assert_eq!(calls, ["DeregisterImage"], "no DeleteSnapshot for the AMI still there");
    }

    #[test]
    fn equal_creation_dates_fall_back_to_the_name() {
        let sel = select(
            vec![img("x2", 5, "available", &[]), img("x1", 5, "available", &[])],
            1,
            &BTreeMap::new(),
        );
        assert_eq!(ids(&sel.go), ["x1"]);
    }

    #[test]
    fn keep_must_be_at_least_one_and_parameters_a_list_of_names() {
        let inputs = |keep: Value, params: Value| -> Values {
            values([
                ("instance_id", Value::from("i-1")),
                ("keep", keep),
                ("parameters", params),
            ])
        };
        assert!(
            matches!(ask(&inputs(Value::from(0), Value::Null)), Err(ActionError::Input(m)) if m.contains("at least 1"))
        );
        assert!(ask(&inputs(Value::from(-2), Value::Null)).is_err());
        assert!(ask(&inputs(Value::from(2), Value::from("x"))).is_err());
        let given = inputs(Value::from("3"), serde_json::json!(["/p/a"]));
        let a = ask(&given).unwrap();
        assert_eq!(
            (a.keep, a.parameters.as_slice(), a.tag_key),
            (3, &["/p/a".to_string()][..], INSTANCE_TAG)
        );
    }
}
