//! An action's AWS Step Functions form (`drflow export`): what a step of it does, as a short program of AWS calls,
//! checks and polls over its inputs and the calls' answers. Each action declares its own next to its other parts
//! (`Action::sfn`); `export` turns it into Amazon States Language states. Nothing here runs.
//!
//! Calls are named by the API (`backup` / `StartBackupJob`); error codes are AWS's bare codes
//! (`ParameterNotFound`): the exporter spells them as the integration that makes the call reports them.

use serde_json::Value;

/// A value in a form.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// The step's input of that name, as evaluated when the step starts.
    Input(&'static str),
    /// The step's idempotency token: the same for every attempt of the step in one execution, and on a redrive.
    Token,
    /// The step's region code.
    Region,
    /// A literal.
    Lit(Value),
    /// `'{}'` placeholders filled with the arguments, in order (a string).
    Format(&'static str, Vec<Arg>),
    /// The account field of the ARN an input holds (`arn:aws:iam::ACCOUNT:role/...`).
    AccountOf(&'static str),
    /// A field of an earlier call's answer (or `Let`), by call id and a dotted path (`BackupJobId`, `State`).
    Answer(&'static str, &'static str),
    /// What follows the last `/` of a string (the AMI id of a recovery point ARN).
    AfterLastSlash(Box<Arg>),
    /// The `n`th (from 0) piece of a string split at `delimiter` (an ARN's region: `Split(arn, ":", 3)`).
    Split(Box<Arg>, &'static str, usize),
    /// The number of items of a list.
    Length(Box<Arg>),
    /// The first item of a list.
    First(Box<Arg>),
    List(Vec<Arg>),
    /// A map input written as a map in the workflow, as AWS's list of pairs (`[{Key, Value}]` for tags,
    /// `[{ParameterKey, ParameterValue}]` for stack parameters), each value a string.
    Pairs(&'static str, &'static str, &'static str),
    /// The text of the file an input names (relative to the workflow file), read at export time.
    File(&'static str),
    /// A field of the error a call with `absent` codes was caught with (`Error`, `Cause`).
    Caught(&'static str, &'static str),
    /// An object; an entry whose value is `IfGiven` of an input the step leaves out is left out, and an object whose
    /// every entry was left out is left out itself.
    Map(Vec<(&'static str, Arg)>),
    /// The first when the step gives that input, else the second.
    Choose(&'static str, Box<Arg>, Box<Arg>),
    /// Only when the step gives that input (in a `Map`); otherwise the entry is left out.
    IfGiven(&'static str, Box<Arg>),
    /// A field of the run: `id` (the execution's name), `workflow`, `status` (`running`, `failed`), `error`.
    Run(&'static str),
    /// A list of pairs (a stack's `Outputs`: `[{OutputKey, OutputValue}]`) as a map by the key field, holding the
    /// keys the workflow's references read (known at export), each picked out of the list by a JSONPath filter.
    Keyed(Box<Arg>, &'static str, &'static str),
    /// A field of the current item of the `Each` or `Loop` of that id, by a dotted path (`""`: the item itself).
    Item(&'static str, &'static str),
    /// Whether a list holds a value.
    Contains(Box<Arg>, Box<Arg>),
    /// How many distinct values a list holds.
    Distinct(Box<Arg>),
    /// The list of strings the `Append`s to that id gave, in order (`Collect` started it).
    Collected(&'static str),
    /// A field of the execution's context object: `Execution.Id` (its ARN), `State.EnteredTime` (when the state
    /// computing it was entered: now), `Task.Token` (in a `Callback` call only: the token that answers it).
    Context(&'static str),
    /// The sum of two integers (32-bit, as Step Functions adds them).
    Sum(Box<Arg>, Box<Arg>),
    /// The JSON value a string holds (`States.StringToJson`; a number: `"107"` → 107; `"07"` is no JSON number:
    /// prefix it first).
    Json(Box<Arg>),
    /// The item of a list at an index computed at run time (a literal list of numbers is a lookup table).
    At(Box<Arg>, Box<Arg>),
    /// The integers from the first to at most the second, by the third (at most 1,000 of them).
    Range(Box<Arg>, Box<Arg>, Box<Arg>),
    /// A duration input (`24h`, `1d12h`) in whole seconds, its value known at export (a literal, or an input
    /// given at export or defaulted).
    Seconds(&'static str),
    /// An input's value as the export knows it (a literal, or an input given at export or defaulted), as text.
    Exported(&'static str),
    /// A duration input as drflow writes durations (`24h` → `1d`), its value known at export as for `Seconds`.
    DurationText(&'static str),
    /// The ARN of the SNS topic approvals are asked on (`drflow export --approval-topic`; the template's own topic).
    ApprovalTopic,
    /// A value as JSON text (`States.JsonToString`).
    JsonText(Box<Arg>),
    /// A list without its repeated values (`States.ArrayUnique`).
    Unique(Box<Arg>),
    /// The account the state machine runs in.
    Account,
    /// The partition the state machine runs in (`aws`, `aws-cn`).
    Partition,
}

/// A condition over inputs and answers (an ASL Choice rule).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// A string field equals this text.
    Is(Arg, &'static str),
    /// A string field is one of these.
    OneOf(Arg, &'static [&'static str]),
    /// The field exists.
    Present(Arg),
    /// The call of that id failed with one of its `absent` codes (its answer is the error).
    Absent(&'static str),
    /// Two string fields are equal.
    Same(Arg, Arg),
    /// The first string field sorts after the second (ISO-8601 times of one format compare as text).
    After(Arg, Arg),
    /// The first numeric field is greater than the second (a number or a field).
    Above(Arg, Arg),
    /// A boolean field is true.
    True(Arg),
    /// A string field matches a pattern with `*` wildcards.
    Matches(Arg, &'static str),
    /// The step gives that input (in its `with:`), whatever its value: decided at export time.
    Given(&'static str),
    /// The list field has no items.
    Empty(Arg),
    /// A numeric field is at least the second (a number, or a numeric field).
    AtLeast(Arg, Arg),
    Not(Box<Cond>),
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// The call of that id was caught with this one of its `absent` codes (only after `Absent`: its answer is the
    /// error): by the code where the integration names errors by it (the cross-region function, or a code the
    /// service's model declares), else by AWS's message for it, a `*` pattern (EC2's SDK integration reports every
    /// EC2 error as `Ec2.Ec2Exception`).
    Failed(&'static str, &'static str, &'static str),
}

/// One AWS call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Names its answer for later `Arg::Answer`s.
    pub id: &'static str,
    /// The service as the SDKs name it: `backup`, `ec2`, `ssm`, `cloudformation`, `sns`.
    pub service: &'static str,
    /// The API action: `StartBackupJob`.
    pub action: &'static str,
    pub parameters: Vec<(&'static str, Arg)>,
    /// AWS error codes that mean "not there" rather than failure: the answer is then the error.
    pub absent: &'static [&'static str],
}

impl Call {
    pub fn new(id: &'static str, service: &'static str, action: &'static str) -> Call {
        Call {
            id,
            service,
            action,
            parameters: Vec::new(),
            absent: &[],
        }
    }

    pub fn with(mut self, name: &'static str, arg: Arg) -> Call {
        self.parameters.push((name, arg));
        self
    }

    pub fn absent(mut self, codes: &'static [&'static str]) -> Call {
        self.absent = codes;
        self
    }
}

/// One operation of a form, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Call(Call),
    /// A value kept as an answer (`Arg::Answer(id, "v")`), e.g. the first image of a DescribeImages answer.
    Let(&'static str, Arg),
    /// Ends the step with this error when the condition holds.
    Fail {
        when: Cond,
        error: Arg,
        cause: Arg,
    },
    /// Ends the step successfully with these outputs when the condition holds (the rest is skipped).
    Finish {
        when: Cond,
        outputs: Vec<(&'static str, Arg)>,
    },
    /// A wait: `call` (then `then`) repeated on the step's poll policy until `done`, within the step's timeout;
    /// `Fail`s among `then` end it at once (a terminal failure state, with AWS's message).
    Poll {
        call: Call,
        then: Vec<Op>,
        done: Cond,
    },
    /// Ops that run only when the condition holds.
    If {
        when: Cond,
        then: Vec<Op>,
    },
    /// `ops` for each item of a list, the items side by side (a Map): each item works on its own copy of the
    /// step's answers (what it sets is not seen by the others, nor after), and gives `yields` (or an earlier
    /// `Yield`'s value); the list of what the items gave, in the items' order, is `Answer(id, "v")`.
    Each {
        id: &'static str,
        items: Arg,
        ops: Vec<Op>,
        yields: Arg,
        bound: Bound,
    },
    /// Ends the current item of the innermost `Each` with this value when the condition holds.
    Yield {
        when: Cond,
        value: Arg,
    },
    /// `ops` for each item of a list, one after another on the step's own answers (so `Append`s add up).
    Loop {
        id: &'static str,
        items: Arg,
        ops: Vec<Op>,
        bound: Bound,
    },
    /// Starts an empty list of strings (`Arg::Collected`).
    Collect(&'static str),
    /// Adds a string to a list `Collect` started. The string is an AWS id or name: no `"` or `\`.
    Append(&'static str, Arg),
    /// The newest item of a listing, without sorting: `call` made, then again with its answer's `NextToken` while it
    /// gives one (at most `pages` calls: more fails the step with `TooManyItems`), each page's `items` scanned in
    /// order, the item for which `keep` holds with the greatest `by` (an ISO-8601 timestamp field) kept. Read as a
    /// `Let` of id `id`: `Answer(id, "v.FIELD")` the item (absent when none qualifies), `Answer(id, "count")` how
    /// many items were listed; `keep` reads the item being scanned as `Answer(id, "item.FIELD")`.
    Newest(Box<Newest>),
    /// A call that waits for a callback (`.waitForTaskToken`: Step Functions' optimized integration of the service,
    /// in the state machine's own region): its parameters hold `Arg::Context("Task.Token")`, and its answer is what
    /// `SendTaskSuccess` gives as output; `SendTaskFailure` fails the step with the error it names. It waits at
    /// most the step's timeout (then `States.Timeout`).
    Callback(Call),
}

/// The most items an `Each` or `Loop` takes: more end the step with this error (so that its history, which grows
/// with the items, stays within Step Functions' 25,000 events; the exporter counts it at this bound).
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub at_most: usize,
    pub error: &'static str,
    pub cause: &'static str,
}

/// See `Op::Newest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Newest {
    pub id: &'static str,
    pub call: Call,
    pub items: &'static str,
    pub keep: Cond,
    pub by: &'static str,
    pub pages: usize,
}

/// What a step of an action does on Step Functions, and its outputs (from its inputs and the answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub ops: Vec<Op>,
    pub outputs: Vec<(&'static str, Arg)>,
}

/// Shorthands for the declarations.
pub fn input(name: &'static str) -> Arg {
    Arg::Input(name)
}

pub fn answer(id: &'static str, path: &'static str) -> Arg {
    Arg::Answer(id, path)
}

pub fn lit(v: impl Into<Value>) -> Arg {
    Arg::Lit(v.into())
}

pub fn fmt(text: &'static str, args: Vec<Arg>) -> Arg {
    Arg::Format(text, args)
}

/// A tag map input as AWS's `[{Key, Value}]`.
pub fn tags(name: &'static str) -> Arg {
    Arg::Pairs(name, "Key", "Value")
}

pub fn if_given(name: &'static str, arg: Arg) -> Arg {
    Arg::IfGiven(name, Box::new(arg))
}

/// The lifecycle of a recovery point from the `delete_after_days` / `move_to_cold_storage_after_days` inputs
/// (AWS Backup's `Lifecycle`).
pub fn lifecycle() -> (&'static str, Arg) {
    (
        "Lifecycle",
        Arg::Map(vec![
            (
                "DeleteAfterDays",
                if_given("delete_after_days", input("delete_after_days")),
            ),
            (
                "MoveToColdStorageAfterDays",
                if_given(
                    "move_to_cold_storage_after_days",
                    input("move_to_cold_storage_after_days"),
                ),
            ),
        ]),
    )
}
