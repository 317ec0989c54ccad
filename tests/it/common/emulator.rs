//! The local AWS emulator (moto in server mode, extended in tests/emulator/) for end-to-end tests: one process per
//! test binary, started on a free port of 127.0.0.1 the first time a test needs it and polled until it answers.
//! Tests take turns on it (`Emulator::shared`), each starting from a reset emulator with the default settings.
//! `World` is the fixture every over-the-wire test starts from.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

use super::repo;

pub struct Emulator {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// The one emulator of this test binary, lent to one test at a time.
pub struct Lease(MutexGuard<'static, Emulator>);

impl std::ops::Deref for Lease {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.0
    }
}

impl Emulator {
    /// The shared emulator, reset (no AWS resources, faults, calls or tokens) with the default settings, for as long
    /// as the lease lives. A test that panicked while holding it does not stop the others: the next one resets it.
    pub fn shared() -> Lease {
        static SHARED: OnceLock<Mutex<Emulator>> = OnceLock::new();
        let emu = SHARED
            .get_or_init(|| Mutex::new(Emulator::start()))
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        emu.control("POST", "/_drflow/reset", None);
        emu.control(
            "POST",
            "/_drflow/config",
            Some(json!({"pending_describes": 2, "job_describes": 1, "status_describes": 0})),
        );
        Lease(emu)
    }

    fn start() -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new(super::venv_bin("python"))
            .arg(repo("tests/emulator/server.py"))
            .args(["--port", "0", "--exit-with-parent", "--port-file"])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the emulator starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut emu = Emulator {
            child,
            port: 0,
            _dir: dir,
        };
        loop {
            assert!(Instant::now() < deadline, "the emulator did not answer within 60 s");
            if let Some(status) = emu.child.try_wait().unwrap() {
                panic!("the emulator exited early: {status}");
            }
            if let Ok(p) = std::fs::read_to_string(&port_file)
                && let Ok(port) = p.trim().parse()
            {
                emu.port = port;
                if emu
                    .request("GET", "/_drflow/health", None)
                    .map(|(s, _)| s == 200)
                    .unwrap_or(false)
                {
                    return emu;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// A JSON-protocol AWS call made by hand (for services drflow has no SDK crate for, e.g. SQS): the emulator
    /// reads the service and region from the credential scope and does not check the signature.
    pub fn aws_json(&self, service: &str, region: &str, target: &str, body: Value) -> Value {
        self.aws_json_as(service, region, "test", target, body)
    }

    /// `aws_json` acting as another account (an access key id of 12 digits selects it).
    pub fn aws_json_as(&self, service: &str, region: &str, key: &str, target: &str, body: Value) -> Value {
        let headers = format!("Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}");
        let (status, text) = self.aws_call(service, region, key, &headers, &body.to_string());
        assert!((200..300).contains(&status), "{target}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A query-protocol AWS call made by hand (IAM, for which drflow has no SDK crate), as `key`'s account; returns
    /// the XML answer.
    pub fn aws_query_as(&self, service: &str, region: &str, key: &str, params: &[(&str, &str)]) -> String {
        let enc = |t: &str| {
            t.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        let headers = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
        let (status, text) = self.aws_call(service, region, key, headers, &body.join("&"));
        assert!((200..300).contains(&status), "{params:?}: {status} {text}");
        text
    }

    fn aws_call(&self, service: &str, region: &str, key: &str, headers: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={key}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let status: u16 = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let text = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, text)
    }

    /// A control call (`/_drflow/...`); panics unless it answers 2xx.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.request(method, path, body.as_ref()).expect("control call");
        assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    pub fn fault(&self, spec: Value) {
        self.control("POST", "/_drflow/faults", Some(spec));
    }

    /// Calls received so far of one operation.
    pub fn calls(&self, operation: &str) -> Vec<Value> {
        match self.control("GET", &format!("/_drflow/calls?operation={operation}"), None) {
            Value::Array(a) => a,
            other => panic!("calls: {other}"),
        }
    }

    pub fn config(&self, pending_describes: u32, job_describes: u32) {
        self.control(
            "POST",
            "/_drflow/config",
            Some(json!({"pending_describes": pending_describes, "job_describes": job_describes})),
        );
    }

    /// SDK configuration for checks made by the test itself (independent of drflow's backend).
    pub fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        self.sdk_as(region, "test")
    }

    /// SDK configuration acting as another account: an access key id of 12 digits selects that account.
    pub fn sdk_as(&self, region: &str, access_key: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(Credentials::new(
                access_key,
                "test",
                None,
                None,
                "drflow-tests",
            )))
            .build()
    }

    /// Runs the real binary against the emulator.
    pub fn drflow(&self, state: &Path, args: &[&str]) -> Output {
        self.drflow_cmd(state, args).output().expect("drflow runs")
    }

    pub fn drflow_cmd(&self, state: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drflow"));
        c.arg("--state-dir")
            .arg(state)
            .args(args)
            .current_dir(repo(""))
            .env("AWS_ENDPOINT_URL", self.url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("NO_COLOR", "1");
        c
    }
}

/// The fixture of the over-the-wire tests: the shared emulator (reset), a running instance in `us-east-1`, a
/// `Default` vault in each of the vault regions, the shipped workflows copied with fast polling, and a state folder.
pub struct World {
    pub emu: Lease,
    pub instance: String,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl World {
    /// The instance's DR AMI published in `dr` as the failover runbook expects it: an image of the instance in
    /// us-east-1 copied to `dr` and named by `/drflow/INSTANCE/ami` there (an `aws:ec2:image` parameter), made just now
    /// or dated `age_seconds` ago. Its id.
    pub fn publish_dr_ami(&self, dr: &str, age_seconds: Option<u64>) -> String {
        let ami = self.rt.block_on(async {
            let source = aws_sdk_ec2::Client::new(&self.emu.sdk("us-east-1"))
                .create_image()
                .instance_id(&self.instance)
                .name("web-backup")
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string();
            let copy = aws_sdk_ec2::Client::new(&self.emu.sdk(dr))
                .copy_image()
                .source_image_id(source)
                .source_region("us-east-1")
                .name("web-dr")
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string();
            aws_sdk_ssm::Client::new(&self.emu.sdk(dr))
                .put_parameter()
                .name(format!("/drflow/{}/ami", self.instance))
                .value(&copy)
                .data_type("aws:ec2:image")
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .unwrap();
            copy
        });
        if let Some(age) = age_seconds {
            self.emu.control(
                "POST",
                "/_drflow/image-age",
                Some(serde_json::json!({"region": dr, "image_id": ami, "age_seconds": age})),
            );
        }
        ami
    }

    pub fn new(vault_regions: &[&str], workflows: &[&str]) -> World {
        let emu = Emulator::shared();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let instance = rt.block_on(seed(&emu, vault_regions));
        let dir = tempfile::tempdir().unwrap();
        fast_workflows(dir.path(), workflows);
        World { emu, instance, rt, dir }
    }

    /// Launches an instance of the region's first image with these tags; returns its id.
    pub async fn launch(&self, region: &str, tags: &[(&str, &str)]) -> String {
        use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
        let ec2 = aws_sdk_ec2::Client::new(&self.emu.sdk(region));
        let images = ec2.describe_images().send().await.expect("images");
        let ami = images.images()[0].image_id().unwrap().to_string();
        let mut run = ec2
            .run_instances()
            .image_id(&ami)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            run = run.tag_specifications(spec.build());
        }
        let out = run.send().await.expect("instance");
        out.instances()[0].instance_id().unwrap().to_string()
    }

    /// Creates an AWS Backup plan with one rule into the region's `Default` vault (on `schedule`, if given); returns
    /// its id.
    pub async fn backup_plan(&self, region: &str, name: &str, rule: &str, schedule: Option<&str>) -> String {
        use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput};
        let rule = BackupRuleInput::builder()
            .rule_name(rule)
            .target_backup_vault_name("Default")
            .set_schedule_expression(schedule.map(str::to_string))
            .build()
            .unwrap();
        let plan = BackupPlanInput::builder()
            .backup_plan_name(name)
            .rules(rule)
            .build()
            .unwrap();
        aws_sdk_backup::Client::new(&self.emu.sdk(region))
            .create_backup_plan()
            .backup_plan(plan)
            .send()
            .await
            .expect("plan")
            .backup_plan_id()
            .unwrap()
            .to_string()
    }

    /// A copied workflow's path.
    pub fn workflow_named(&self, name: &str) -> String {
        self.dir.path().join("workflows").join(name).display().to_string()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seeds an emulator: a `Default` backup vault in each of `vault_regions`, and a running instance in `us-east-1`
/// (from an AMI moto has there). Returns the instance id.
pub async fn seed(emu: &Emulator, vault_regions: &[&str]) -> String {
    for region in vault_regions {
        aws_sdk_backup::Client::new(&emu.sdk(region))
            .create_backup_vault()
            .backup_vault_name("Default")
            .send()
            .await
            .expect("vault");
    }
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk("us-east-1"));
    let images = ec2.describe_images().send().await.expect("images");
    let ami = images.images()[0].image_id().unwrap().to_string();
    let run = ec2
        .run_instances()
        .image_id(ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("instance");
    run.instances()[0].instance_id().unwrap().to_string()
}

/// Copies shipped workflows into `dir/workflows/` with polling and retry delays in seconds instead of minutes (the
/// emulator's jobs advance per describe call, not with time), and the shipped stacks into `dir/stacks/`, so that
/// the workflows' relative template paths still work.
pub fn fast_workflows(dir: &Path, workflows: &[&str]) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::create_dir_all(dir.join("stacks")).unwrap();
    for name in workflows {
        let text = std::fs::read_to_string(repo("workflows").join(name))
            .unwrap()
            .replace("interval: 30s", "interval: 1s")
            .replace("interval: 15s", "interval: 1s")
            .replace("max_interval: 2m", "max_interval: 2s")
            .replace("max_interval: 1m", "max_interval: 2s")
            .replace("interval: 2s", "interval: 1s")
            .replace("max_delay: 1m", "max_delay: 2s");
        std::fs::write(dir.join("workflows").join(name), text).unwrap();
    }
    for entry in std::fs::read_dir(repo("stacks")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("stacks").join(path.file_name().unwrap())).unwrap();
    }
}
