//! The exported failover (`workflows/dr-failover.yaml`, single-region, in the DR region) EXECUTED on the emulator's
//! Step Functions engine: its DR AMI checked (the age computed in the state machine), the approval asked on the
//! approvals topic (read back through an SQS subscription) and answered with the task token from the message
//! (SendTaskSuccess / SendTaskFailure), the DR stack launched from the AMI and the instance verified; a rejection
//! ends the execution failed without a stack; a stale AMI fails it before anyone is asked.

use serde_json::{Value, json};

use crate::common::emulator::World;
use crate::common::text;

const DR: &str = "us-west-2";

struct Failover {
    w: World,
    ami: String,
    machine: String,
    queue: String,
}

impl Failover {
    /// The emulator with the instance's DR AMI published in us-west-2 (dated `age_seconds` ago when given), the
    /// approvals topic with a queue subscribed, and the exported failover as a state machine.
    fn new(age_seconds: Option<u64>) -> Failover {
        let w = World::new(&["us-east-1", DR], &["dr-failover.yaml"]);
        w.emu.config(0, 1);
        let ami = w.publish_dr_ami(DR, age_seconds);
        // The shipped workflow (its polls bound the history as on AWS); the engine's Waits and Retry intervals run
        // 100 times faster.
        w.emu.control(
            "POST",
            "/_drflow/sfn",
            Some(json!({"execute": true, "time_scale": 0.01})),
        );
        let instance = format!("instance_id={}", w.instance);
        let out = w.emu.drflow(
            &w.state(),
            &[
                "export",
                "workflows/dr-failover.yaml",
                "--format",
                "asl",
                "--single-region",
                "-i",
                &instance,
            ],
        );
        let (asl, err) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        let topic = w.rt.block_on(async {
            aws_sdk_sns::Client::new(&w.emu.sdk(DR))
                .create_topic()
                .name("drflow-approvals")
                .send()
                .await
                .unwrap()
                .topic_arn()
                .unwrap()
                .to_string()
        });
        let queue = w
            .emu
            .aws_json("sqs", DR, "AmazonSQS.CreateQueue", json!({"QueueName": "approvals"}))["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
        let attrs = w.emu.aws_json(
            "sqs",
            DR,
            "AmazonSQS.GetQueueAttributes",
            json!({"QueueUrl": queue, "AttributeNames": ["QueueArn"]}),
        );
        let queue_arn = attrs["Attributes"]["QueueArn"].as_str().unwrap().to_string();
        w.rt.block_on(async {
            aws_sdk_sns::Client::new(&w.emu.sdk(DR))
                .subscribe()
                .topic_arn(&topic)
                .protocol("sqs")
                .endpoint(queue_arn)
                .send()
                .await
                .unwrap();
        });
        let machine = w.emu.aws_json(
            "states",
            DR,
            "AWSStepFunctions.CreateStateMachine",
            json!({"name": "drflow-dr-failover", "definition": asl, "roleArn": "arn:aws:iam::123456789012:role/drflow"}),
        )["stateMachineArn"]
            .as_str()
            .unwrap()
            .to_string();
        Failover { w, ami, machine, queue }
    }

    fn sfn(&self, target: &str, body: Value) -> Value {
        self.w
            .emu
            .aws_json("states", DR, &format!("AWSStepFunctions.{target}"), body)
    }

    fn start(&self, name: &str, input: Value) -> String {
        self.sfn(
            "StartExecution",
            json!({"stateMachineArn": self.machine, "name": name, "input": input.to_string()}),
        )["executionArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn describe(&self, execution: &str) -> Value {
        self.sfn("DescribeExecution", json!({"executionArn": execution}))
    }

    /// The execution once it is no longer running.
    fn finished(&self, execution: &str) -> Value {
        for _ in 0..600 {
            let d = self.describe(execution);
            if d["status"] != "RUNNING" {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{execution} still runs after a minute");
    }

    /// The approval question the execution published (the SNS notification's message), or None if it ended first.
    fn question(&self, execution: &str) -> Option<Value> {
        for _ in 0..600 {
            let got = self.w.emu.aws_json(
                "sqs",
                DR,
                "AmazonSQS.ReceiveMessage",
                json!({"QueueUrl": self.queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}),
            );
            if let Some(m) = got["Messages"].as_array().and_then(|m| m.first()) {
                let note: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
                assert_eq!(note["Subject"], "drflow: approve dr-failover?", "{note}");
                let mut message: Value = serde_json::from_str(note["Message"].as_str().unwrap()).unwrap();
                message["topic"] = note["TopicArn"].clone();
                return Some(message);
            }
            if self.describe(execution)["status"] != "RUNNING" {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no approval question within a minute");
    }

    fn stacks(&self) -> Vec<String> {
        self.w.rt.block_on(async {
            let out = aws_sdk_cloudformation::Client::new(&self.w.emu.sdk(DR))
                .describe_stacks()
                .send()
                .await
                .unwrap();
            out.stacks()
                .iter()
                .filter(|s| s.stack_status().is_some_and(|st| st.as_str() != "DELETE_COMPLETE"))
                .filter_map(|s| s.stack_name().map(str::to_string))
                .collect()
        })
    }

    fn stack_name(&self) -> String {
        format!("drflow-dr-{}", self.w.instance)
    }

    fn output(d: &Value) -> Value {
        serde_json::from_str(d["output"].as_str().unwrap_or("null")).unwrap()
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        self.w.emu.control(
            "POST",
            "/_drflow/sfn",
            Some(json!({"execute": true, "time_scale": 1.0})),
        );
    }
}

#[test]
fn an_approved_failover_launches_the_dr_stack_and_verifies_it() {
    let f = Failover::new(Some(3 * 3600 + 25 * 60 + 7));
    let ex = f.start("approved", json!({}));
    let q = f.question(&ex).expect("the execution asks for approval");
    // The question: the step's message with the AMI and its age computed in the state machine, the topic in
    // the state machine's account and region, and the commands that answer it with this execution's token.
    let token = q["task_token"].as_str().unwrap().to_string();
    assert_eq!(q["execution"], ex.as_str());
    assert_eq!(q["topic"], "arn:aws:sns:us-west-2:123456789012:drflow-approvals");
    let question = q["question"].as_str().unwrap();
    assert!(question.contains(&f.ami), "{question}");
    assert!(
        question.contains("(3h25m") && question.ends_with(" old)?"),
        "{question}"
    );
    let approve = q["approve"].as_str().unwrap();
    assert!(
        approve.starts_with("aws stepfunctions send-task-success --region us-west-2 --task-token ")
            && approve.contains(&token)
            && approve.ends_with("--task-output '{\"approved\":true,\"approved_by\":\"YOUR NAME\"}'"),
        "{approve}"
    );
    let reject = q["reject"].as_str().unwrap();
    assert!(
        reject.contains(&token) && reject.contains("--error Rejected --cause 'REASON'"),
        "{reject}"
    );
    // Nothing is launched before the answer.
    assert_eq!(f.describe(&ex)["status"], "RUNNING");
    assert!(f.stacks().is_empty());

    f.sfn(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": json!({"approved": true, "approved_by": "sre@example.com"}).to_string()}),
    );
    let d = f.finished(&ex);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let s = &Failover::output(&d)["steps"];
    assert_eq!(s["freshness"]["image_id"], f.ami.as_str());
    assert_eq!(s["freshness"]["fresh"], true);
    assert_eq!(s["freshness"]["version"], 1);
    let age = s["freshness"]["age_seconds"].as_i64().unwrap();
    assert!((12_307..=12_330).contains(&age), "{age}");
    let created = s["freshness"]["created_at"].as_str().unwrap();
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            .unwrap()
            .is_match(created),
        "{created}"
    );
    assert_eq!(s["approve"]["approved"], true);
    assert_eq!(s["approve"]["how"], "task-token");
    assert_eq!(s["approve"]["approved_by"], "sre@example.com");
    assert!(
        s["approve"]["decided_at"].as_str().is_some_and(|t| t.starts_with("20")),
        "{}",
        s["approve"]
    );
    // The stack launched from the published AMI, and its instance verified.
    assert_eq!(s["launch"]["operation"], "create");
    let instance = s["launch"]["outputs"]["InstanceId"].as_str().unwrap();
    assert_eq!(s["verify"]["instance_id"], instance);
    assert_eq!(s["verify"]["image_id"], f.ami.as_str());
    assert_eq!(s["verify"]["state"], "running");
    assert_eq!(s["verify"]["system_status"], "ok");
    assert_eq!(f.stacks(), vec![f.stack_name()]);
    let image = f.w.rt.block_on(async {
        aws_sdk_ec2::Client::new(&f.w.emu.sdk(DR))
            .describe_instances()
            .instance_ids(instance)
            .send()
            .await
            .unwrap()
            .reservations()[0]
            .instances()[0]
            .image_id()
            .map(str::to_string)
    });
    assert_eq!(image.as_deref(), Some(f.ami.as_str()));
    let next = s["next_steps"]["value"].as_str().unwrap();
    assert!(
        next.contains(&format!("as {instance}")) && next.contains("load balancer's target"),
        "{next}"
    );
    assert!(next.contains(").\nStill to do, by a person:\n  1. Point"), "{next}");
}

#[test]
fn a_rejected_failover_fails_without_launching() {
    let f = Failover::new(None);
    let ex = f.start("rejected", json!({}));
    let q = f.question(&ex).expect("the execution asks for approval");
    f.sfn(
        "SendTaskFailure",
        json!({"taskToken": q["task_token"], "error": "Rejected", "cause": "the primary is back"}),
    );
    let d = f.finished(&ex);
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["error"], "Rejected");
    assert_eq!(d["cause"], "the primary is back");
    assert!(f.stacks().is_empty(), "a rejected failover launched {:?}", f.stacks());
    assert!(f.w.emu.calls("CreateStack").is_empty());
}

#[test]
fn a_stale_ami_fails_before_anyone_is_asked_unless_allowed() {
    let f = Failover::new(Some(2 * 86_400 + 60));
    let ex = f.start("stale", json!({}));
    let d = f.finished(&ex);
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["error"], "StaleImage");
    let cause = d["cause"].as_str().unwrap();
    assert!(
        cause.contains(&f.ami) && cause.contains("created 2d1m") && cause.contains("older than the 1d allowed"),
        "{cause}"
    );
    assert!(f.question(&ex).is_none(), "a stale AMI was put to a person");
    assert!(f.w.emu.calls("Publish").is_empty());
    // `allow_stale` (the execution's input) accepts it: the question is asked, with its age.
    let ex = f.start("allowed", json!({"allow_stale": true}));
    let q = f.question(&ex).expect("an allowed stale AMI is put to a person");
    assert!(q["question"].as_str().unwrap().contains("(2d1m"), "{q}");
    f.sfn(
        "SendTaskFailure",
        json!({"taskToken": q["task_token"], "error": "Rejected", "cause": "too old after all"}),
    );
    assert_eq!(f.finished(&ex)["error"], "Rejected");
    // Another max_age than the one exported is refused, naming both.
    let ex = f.start("other", json!({"max_age": "3d"}));
    let d = f.finished(&ex);
    assert_eq!(d["error"], "MaxAgeNotExported", "{d}");
    assert!(
        d["cause"].as_str().unwrap().contains("max_age 3d differs from the 24h"),
        "{d}"
    );
}

#[test]
fn the_exported_failover_nests_at_most_ten_intrinsics_and_asks_on_the_templates_topic() {
    let (code, out, err) = crate::common::golden::stateless(&[
        "export",
        "workflows/dr-failover.yaml",
        "--format",
        "cloudformation",
        "-i",
        "instance_id=i-0123456789abcdef0",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    let machine = &t["Resources"]["StateMachine"]["Properties"];
    let text = machine["DefinitionString"].as_str().unwrap();
    assert_eq!(
        machine["DefinitionSubstitutions"]["ApprovalTopicArn"],
        json!({"Ref": "ApprovalTopic"})
    );
    assert_eq!(t["Resources"]["ApprovalTopic"]["Type"], "AWS::SNS::Topic");
    assert_eq!(
        t["Outputs"]["ApprovalTopicArn"]["Value"],
        json!({"Ref": "ApprovalTopic"})
    );
    let role = t["Resources"]["StateMachineRole"]["Properties"]["Policies"].to_string();
    assert!(role.contains("sns:Publish") && role.contains("ApprovalTopic"), "{role}");
    let def: Value = serde_json::from_str(text).unwrap();
    let task = def["States"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["Resource"] == "arn:aws:states:::sns:publish.waitForTaskToken")
        .expect("the approval's callback task");
    assert_eq!(task["Parameters"]["TopicArn"], "${ApprovalTopicArn}");
    assert_eq!(task["TimeoutSeconds"], 24 * 3600);
    assert_eq!(task["Parameters"]["Message"]["task_token.$"], "$$.Task.Token");
    // Step Functions allows 10 intrinsic functions in one field.
    fn fields(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.values().for_each(|v| fields(v, out)),
            Value::Array(a) => a.iter().for_each(|v| fields(v, out)),
            Value::String(s) if s.starts_with("States.") => out.push(s.clone()),
            _ => {}
        }
    }
    let mut all = Vec::new();
    fields(&def, &mut all);
    assert!(all.len() > 50);
    for f in all {
        assert!(f.matches("States.").count() <= 10, "{f}");
    }
    // `--approval-topic` names another topic: no topic of the template's own.
    let (code, out, err) = crate::common::golden::stateless(&[
        "export",
        "workflows/dr-failover.yaml",
        "--format",
        "cloudformation",
        "-i",
        "instance_id=i-0123456789abcdef0",
        "--approval-topic",
        "arn:aws:sns:us-west-2:111122223333:oncall",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert!(t["Resources"].get("ApprovalTopic").is_none());
    assert!(out.contains("arn:aws:sns:us-west-2:111122223333:oncall"));
}
