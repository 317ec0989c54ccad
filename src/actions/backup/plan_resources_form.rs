//! `backup.plan_resources`'s Step Functions form. ASL cannot match a pattern that comes from data (a Choice's
//! `StringMatches` pattern is fixed in the definition), so EC2 evaluates them: each way a selection includes
//! instances (each `Resources` ARN, each `ListOfTags` entry; neither: all instances) is one DescribeInstances whose
//! filters are the instance states that are not terminated, that source (`instance-id` of an instance ARN pattern,
//! `tag:KEY` of a tag) and every `StringEquals` / `StringLike` condition (EC2 ANDs filters; its values take `*`
//! wildcards as Backup's patterns do). `StringNotEquals` / `StringNotLike` conditions and `NotResources` are each a
//! DescribeInstances with the positive filter whose instances the selection then leaves out. A shape EC2's filters
//! would read differently is refused at run time, named (`UnsupportedSelection`): a `?` (a wildcard to EC2, a
//! character to Backup) or `\` in a key, value or pattern; a `*` in a key or in a `StringEquals` value (or a
//! `ListOfTags` one); a key not `aws:ResourceTag/KEY`; a `Resources` ARN that is neither a wildcard for every EC2
//! resource nor an instance ARN pattern with whole (or `*`) partition, region and account fields.
//!
//! Lists of ids are kept as text (JSON lists joined by `,`) and read back as one list (`States.StringToJson`, a
//! `[*][*]` path): ASL has no intrinsic that joins lists. The ids come out without duplicates in the order found,
//! not sorted as `drflow run` gives them.

use crate::actions::sfn::{Arg, Bound, Call, Cond, Form, Op, answer, fmt, input, lit};

/// The instance states DescribeInstances is asked for: every one but `terminated`, as a filter (JSON text).
const LIVE: &str =
    r#"{"Name":"instance-state-name","Values":["pending","running","stopping","stopped","shutting-down"]}"#;

/// The most selections of a plan, conditions of one kind, ARNs or tags of a selection, and instances of a
/// selection with exclusions the form goes through: they bound the execution's history.
const SELECTIONS: usize = 5;
const ENTRIES: usize = 5;
const INSTANCES: usize = 100;

fn not(c: Cond) -> Cond {
    Cond::Not(Box::new(c))
}

fn bound(at_most: usize, what: &'static str) -> Bound {
    Bound {
        at_most,
        error: "TooManyItems",
        cause: what,
    }
}

fn item(id: &'static str, path: &'static str) -> Arg {
    Arg::Item(id, path)
}

/// A text list of JSON lists (`Let` of that id) with one more list (a field), unless it is empty: a `[*][*]` path
/// through lists that are all empty matches nothing, which Step Functions reports as a path not found.
fn add_list(to: &'static str, list: Arg) -> Op {
    Op::If {
        when: not(Cond::Empty(list.clone())),
        then: vec![Op::Let(
            to,
            fmt("{},{}", vec![answer(to, "v"), Arg::JsonText(Box::new(list))]),
        )],
    }
}

/// The ids of a text list of JSON lists (`Let` of id `text`, started as `[]`) as one list, `Let` as `to`.
fn flat(text: &'static str, lists: &'static str, to: &'static str) -> Vec<Op> {
    vec![
        Op::If {
            when: Cond::Is(answer(text, "v"), "[]"),
            then: vec![Op::Let(to, lit(serde_json::json!([])))],
        },
        Op::If {
            when: not(Cond::Is(answer(text, "v"), "[]")),
            then: vec![
                Op::Let(lists, Arg::Json(Box::new(fmt("[{}]", vec![answer(text, "v")])))),
                Op::Let(to, answer(lists, "v[*][*]")),
            ],
        },
    ]
}

/// The step fails, named, when `when` holds for `pattern` of the current selection.
fn unsupported(when: Cond, pattern: Arg, why: &'static str) -> Op {
    Op::Fail {
        when,
        error: lit("UnsupportedSelection"),
        cause: fmt(
            "selection `{}` of Backup plan {}: `{}` {} (EC2 filters would read it otherwise): resolve it with drflow run",
            vec![item("sel", "SelectionName"), input("backup_plan_id"), pattern, lit(why)],
        ),
    }
}

/// A `?`, `\` (or a `*` when `star`) in a pattern fails the step.
fn plain(pattern: Arg, star: bool) -> Op {
    let mut bad = vec![
        Cond::Matches(pattern.clone(), "*?*"),
        Cond::Matches(pattern.clone(), "*\\\\*"),
    ];
    if star {
        bad.push(Cond::Matches(pattern.clone(), "*\\**"));
    }
    unsupported(
        Cond::Any(bad),
        pattern,
        if star {
            "holds a `?`, `\\` or `*`"
        } else {
            "holds a `?` or `\\`"
        },
    )
}

/// DescribeInstances with these filters (a list); the ids of its instances then `Let` as `ID_ids`.
fn describe(id: &'static str, ids: &'static str, filters: Arg) -> Vec<Op> {
    vec![
        Op::Call(Call::new(id, "ec2", "DescribeInstances").with("Filters", filters)),
        Op::Fail {
            when: Cond::Present(answer(id, "NextToken")),
            error: lit("TooManyItems"),
            cause: lit("DescribeInstances answered more than one page: resolve the plan with drflow run"),
        },
        // A `[*]...[*]` path that matches nothing is a path not found: no reservations, no ids (a reservation has
        // at least one instance).
        Op::If {
            when: Cond::Empty(answer(id, "Reservations")),
            then: vec![Op::Let(ids, lit(serde_json::json!([])))],
        },
        Op::If {
            when: not(Cond::Empty(answer(id, "Reservations"))),
            then: vec![Op::Let(ids, answer(id, "Reservations[*].Instances[*].InstanceId"))],
        },
    ]
}

/// The filters of the text `base` (`Let`: JSON objects joined by `,`) and `extra` (a field), as a list.
fn filters(base: &'static str, extra: Option<Arg>) -> Arg {
    Arg::Json(Box::new(match extra {
        None => fmt("[{}]", vec![answer(base, "v")]),
        Some(e) => fmt("[{},{}]", vec![answer(base, "v"), Arg::JsonText(Box::new(e))]),
    }))
}

/// The instances an ARN pattern (`arn`, a field) matches, within the filters `base`: their ids added to the text
/// list `to`.
fn by_arn(arn: Arg, base: &'static str, to: &'static str) -> Vec<Op> {
    let part = |p: &'static str| {
        answer(
            "arn_parts",
            match p {
                "p" => "v.p",
                "r" => "v.r",
                "a" => "v.a",
                _ => "v.t",
            },
        )
    };
    let here = |p: &'static str| -> Arg {
        match p {
            "p" => answer("here", "v.partition"),
            "a" => answer("here", "v.account"),
            _ => Arg::Region,
        }
    };
    let whole = |p: &'static str| Cond::Any(vec![Cond::Is(part(p), "*"), Cond::Same(part(p), here(p))]);
    let partial = |p: &'static str| Cond::All(vec![not(whole(p)), Cond::Matches(part(p), "*\\**")]);
    let star = Cond::Is(arn.clone(), "*");
    let service = Cond::All(vec![
        Cond::Matches(arn.clone(), "arn:*:ec2:\\*"),
        not(Cond::Matches(arn.clone(), "arn:*:*:ec2:*")),
    ]);
    let instance = Cond::All(vec![
        Cond::Matches(arn.clone(), "arn:*:ec2:*:*:instance/*"),
        not(Cond::Matches(arn.clone(), "*:*:*:*:*:*:*")),
    ]);
    let split = |i: usize| Arg::Split(Box::new(arn.clone()), ":", i);
    let all = || {
        let mut t = describe("all", "all_ids", filters(base, None));
        t.push(add_list(to, answer("all_ids", "v")));
        t
    };
    let mut one = vec![Op::Let(
        "arn_filter",
        Arg::Map(vec![
            ("Name", lit("instance-id")),
            ("Values", Arg::List(vec![Arg::AfterLastSlash(Box::new(arn.clone()))])),
        ]),
    )];
    one.extend(describe(
        "arn",
        "arn_ids",
        filters(base, Some(answer("arn_filter", "v"))),
    ));
    one.push(add_list(to, answer("arn_ids", "v")));
    vec![
        plain(arn.clone(), false),
        // `*`: every instance.
        Op::If {
            when: star.clone(),
            then: all(),
        },
        // `arn:PARTITION:ec2:*`: every EC2 resource of that partition.
        Op::If {
            when: Cond::All(vec![not(star.clone()), service.clone()]),
            then: vec![
                Op::Let("arn_parts", Arg::Map(vec![("p", split(1))])),
                unsupported(partial("p"), arn.clone(), "matches part of a partition"),
                Op::If {
                    when: whole("p"),
                    then: all(),
                },
            ],
        },
        // An instance ARN pattern: its id part as an `instance-id` filter, when its partition, region and account
        // are these (or `*`); another region's or account's instances are none of these.
        Op::If {
            when: Cond::All(vec![not(star.clone()), not(service.clone()), instance.clone()]),
            then: vec![
                Op::Let(
                    "arn_parts",
                    Arg::Map(vec![("p", split(1)), ("r", split(3)), ("a", split(4)), ("t", split(5))]),
                ),
                unsupported(
                    Cond::Any(vec![
                        partial("p"),
                        partial("r"),
                        partial("a"),
                        Cond::Matches(part("t"), "instance/*/*"),
                    ]),
                    arn.clone(),
                    "matches part of a partition, region or account, or is not `instance/ID`",
                ),
                Op::If {
                    when: Cond::All(vec![whole("p"), whole("r"), whole("a")]),
                    then: one,
                },
            ],
        },
        unsupported(
            Cond::All(vec![not(star), not(service), not(instance)]),
            arn,
            "is neither a wildcard for every EC2 resource nor an EC2 instance ARN pattern",
        ),
    ]
}

/// A condition's key and value checked, its filter `Let` as `tag` (`{Name: tag:KEY, Values: [VALUE]}`).
fn tag_filter(of: &'static str, exact: bool) -> Vec<Op> {
    let key = item(of, "ConditionKey");
    let value = item(of, "ConditionValue");
    vec![
        unsupported(
            Cond::Any(vec![
                not(Cond::Matches(key.clone(), "aws:ResourceTag/*")),
                Cond::Matches(key.clone(), "aws:ResourceTag/*/*"),
            ]),
            key.clone(),
            "is not a key `aws:ResourceTag/KEY`",
        ),
        plain(key.clone(), true),
        plain(value.clone(), exact),
        Op::Let(
            "tag",
            Arg::Map(vec![
                ("Name", fmt("tag:{}", vec![Arg::Split(Box::new(key), "/", 1)])),
                ("Values", Arg::List(vec![value])),
            ]),
        ),
    ]
}

fn each(id: &'static str, list: Arg, what: &'static str, ops: Vec<Op>) -> Op {
    Op::If {
        when: not(Cond::Empty(list.clone())),
        then: vec![Op::Loop {
            id,
            items: list,
            ops,
            bound: bound(ENTRIES, what),
        }],
    }
}

pub(crate) fn form() -> Form {
    let sel = |p: &'static str| answer("get", p);
    let mut per = vec![
        Op::Call(
            Call::new("get", "backup", "GetBackupSelection")
                .with("BackupPlanId", input("backup_plan_id"))
                .with("SelectionId", item("sel", "SelectionId")),
        ),
        Op::Let("with", lit(LIVE)),
        Op::Let("live", lit(LIVE)),
        Op::Let("inc", lit("[]")),
        Op::Let("exc", lit("[]")),
    ];
    // Conditions: the positive ones added to every include's filters; each negated one an exclusion.
    for (field, id, positive, exact, what) in [
        (
            "BackupSelection.Conditions.StringEquals",
            "eq",
            true,
            true,
            "a selection has more StringEquals conditions than the Step Functions form takes",
        ),
        (
            "BackupSelection.Conditions.StringLike",
            "like",
            true,
            false,
            "a selection has more StringLike conditions than the Step Functions form takes",
        ),
        (
            "BackupSelection.Conditions.StringNotEquals",
            "not_eq",
            false,
            true,
            "a selection has more StringNotEquals conditions than the Step Functions form takes",
        ),
        (
            "BackupSelection.Conditions.StringNotLike",
            "not_like",
            false,
            false,
            "a selection has more StringNotLike conditions than the Step Functions form takes",
        ),
    ] {
        let mut ops = tag_filter(id, exact);
        if positive {
            // `with`: LIVE and the positive conditions' filters, JSON objects joined by `,`.
            ops.push(Op::Let(
                "with",
                fmt(
                    "{},{}",
                    vec![answer("with", "v"), Arg::JsonText(Box::new(answer("tag", "v")))],
                ),
            ));
        } else {
            ops.extend(describe("neg", "neg_ids", filters("live", Some(answer("tag", "v")))));
            ops.push(add_list("exc", answer("neg_ids", "v")));
        }
        per.push(each(id, sel(field), what, ops));
    }
    per.push(each(
        "not_resource",
        sel("BackupSelection.NotResources"),
        "a selection has more NotResources than the Step Functions form takes",
        by_arn(item("not_resource", ""), "live", "exc"),
    ));
    per.push(Op::If {
        when: Cond::All(vec![
            Cond::Empty(sel("BackupSelection.Resources")),
            Cond::Empty(sel("BackupSelection.ListOfTags")),
        ]),
        then: {
            let mut t = describe("all", "all_ids", filters("with", None));
            t.push(add_list("inc", answer("all_ids", "v")));
            t
        },
    });
    per.push(each(
        "resource",
        sel("BackupSelection.Resources"),
        "a selection has more Resources than the Step Functions form takes",
        by_arn(item("resource", ""), "with", "inc"),
    ));
    let mut by_tag = tag_filter("tag_of", true);
    by_tag.extend(describe("by_tag", "tag_ids", filters("with", Some(answer("tag", "v")))));
    by_tag.push(add_list("inc", answer("tag_ids", "v")));
    per.push(each(
        "tag_of",
        sel("BackupSelection.ListOfTags"),
        "a selection has more ListOfTags entries than the Step Functions form takes",
        by_tag,
    ));
    // The selection's instances less its exclusions, added to the plan's.
    per.extend(flat("inc", "inc_lists", "inc_ids"));
    per.extend(flat("exc", "exc_lists", "exc_ids"));
    per.extend([
        Op::Let("inc_set", Arg::Unique(Box::new(answer("inc_ids", "v")))),
        Op::If {
            when: Cond::Empty(answer("exc_ids", "v")),
            then: vec![add_list("acc", answer("inc_set", "v"))],
        },
        Op::If {
            when: not(Cond::Empty(answer("exc_ids", "v"))),
            then: vec![
                Op::Collect("kept"),
                Op::If {
                    when: not(Cond::Empty(answer("inc_set", "v"))),
                    then: vec![Op::Loop {
                        id: "keep",
                        items: answer("inc_set", "v"),
                        ops: vec![
                            Op::Let(
                                "excluded",
                                Arg::Contains(Box::new(answer("exc_ids", "v")), Box::new(item("keep", ""))),
                            ),
                            Op::If {
                                when: not(Cond::True(answer("excluded", "v"))),
                                then: vec![Op::Append("kept", item("keep", ""))],
                            },
                        ],
                        bound: bound(
                            INSTANCES,
                            "a selection with exclusions includes more instances than the Step Functions form goes through",
                        ),
                    }],
                },
                Op::Let("kept_ids", Arg::Collected("kept")),
                add_list("acc", answer("kept_ids", "v")),
            ],
        },
    ]);
    Form {
        ops: vec![
            Op::Let(
                "here",
                Arg::Map(vec![("partition", Arg::Partition), ("account", Arg::Account)]),
            ),
            Op::Call(Call::new("list", "backup", "ListBackupSelections").with("BackupPlanId", input("backup_plan_id"))),
            Op::Fail {
                when: Cond::Present(answer("list", "NextToken")),
                error: lit("TooManyItems"),
                cause: lit("the plan's selections take more than one page: resolve the plan with drflow run"),
            },
            Op::Let("acc", lit("[]")),
            Op::If {
                when: not(Cond::Empty(answer("list", "BackupSelectionsList"))),
                then: vec![Op::Loop {
                    id: "sel",
                    items: answer("list", "BackupSelectionsList"),
                    ops: per,
                    bound: bound(
                        SELECTIONS,
                        "the plan has more selections than the Step Functions form goes through",
                    ),
                }],
            },
        ]
        .into_iter()
        .chain(flat("acc", "all_lists", "plan_ids"))
        .chain([Op::Let("ids", Arg::Unique(Box::new(answer("plan_ids", "v"))))])
        .collect(),
        outputs: vec![
            ("instance_ids", answer("ids", "v")),
            ("count", Arg::Length(Box::new(answer("ids", "v")))),
        ],
    }
}
