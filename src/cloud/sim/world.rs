//! The simulated world: every region's resources, the call log and the counters faults rely on. All of it is
//! serialisable, so a persisted world continues where the last process stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::{DEFAULT_INSTANCE, DEFAULT_VAULT, IdGen, PUBLIC_AMI_PARAMETER, base_image_id};
use super::records::{
    Call, ImageRec, InstanceRec, JobRec, MessageRec, ParamRec, RecoveryPointRec, SnapshotRec, StackRec,
};
use super::rng::Rng;
use super::scenario::{JobKind, Scenario, StatusCheck};
use super::throttle::Bucket;
use super::tracked::Tracked;

/// Bumped whenever the persisted layout changes incompatibly (2: the calls in `calls.jsonl` beside the world).
pub(crate) const FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct World {
    pub format: u32,
    /// The snapshot's generation: the change log (`world.log`) applies to the snapshot of its generation only.
    #[serde(default)]
    pub generation: u64,
    /// Unix second at which the world was created; wall-clock times are this plus simulated time.
    pub created_unix: i64,
    /// Simulated time at the last save.
    pub elapsed: Duration,
    /// Whether regions created on demand get the default vault, AMI and instance.
    pub default_world: bool,
    /// Source of every generated id.
    #[serde(rename = "next_id")]
    pub ids: IdGen,
    pub regions: BTreeMap<String, Region>,
    /// Every call, in order. Persisted apart, one line each (`persist::append_call`): saving the world does not
    /// rewrite them.
    #[serde(skip)]
    pub calls: Vec<Call>,
    /// Calls received per `service:Operation` (and per `service:Operation@region`).
    pub call_counts: BTreeMap<String, u64>,
    /// Jobs started per kind (`backup`, `copy`, `image`), for `fail_jobs`.
    pub started: BTreeMap<String, u64>,
    /// Token buckets per `region|service:Operation`.
    pub buckets: BTreeMap<String, Bucket>,
    /// Draws for faults with a `probability`: seeded from the scenario's `seed` when the world is created, then
    /// saved with it. Absent only in worlds saved before it existed (then seeded on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rng: Option<Rng>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Region {
    pub vaults: BTreeSet<String>,
    pub images: Tracked<ImageRec>,
    pub instances: Tracked<InstanceRec>,
    pub parameters: Tracked<ParamRec>,
    /// Every stack ever created here, oldest first; deleted ones stay (they are no longer found by name).
    pub stacks: Vec<StackRec>,
    pub backup_jobs: Tracked<JobRec>,
    pub copy_jobs: Tracked<JobRec>,
    /// Recovery point ARN → the vault holding it.
    pub recovery_points: Tracked<String>,
    /// Recovery point ARN → what ListRecoveryPointsByBackupVault tells of it (points made before this existed
    /// have none and are not listed).
    #[serde(default)]
    pub recovery_point_info: Tracked<RecoveryPointRec>,
    /// `Operation:token` → the id the first call returned.
    pub tokens: Tracked<String>,
    /// SNS topic ARN → the messages published to it, oldest first.
    #[serde(default)]
    pub topics: Tracked<Vec<MessageRec>>,
    /// Instance → when its last backup job ends: AWS Backup runs one per resource, the next waits (CREATED).
    #[serde(default)]
    pub backup_busy_until: Tracked<Duration>,
    /// When each slot of AWS Backup copy jobs *into* this region frees (at most `quotas.backup_copies` slots).
    #[serde(default)]
    pub copy_slots: Vec<Duration>,
    /// When each EC2 AMI copy in progress into this region ends.
    #[serde(default)]
    pub image_copies: Vec<Duration>,
    /// EBS snapshots of the account's AMIs, by id.
    #[serde(default)]
    pub snapshots: Tracked<SnapshotRec>,
}

impl World {
    /// A fresh world at simulated time zero, populated from the scenario.
    pub(crate) fn build(scenario: &Scenario) -> World {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut world = World {
            format: FORMAT,
            generation: 0,
            created_unix,
            elapsed: Duration::ZERO,
            default_world: scenario.default_world,
            ids: IdGen::default(),
            regions: BTreeMap::new(),
            calls: Vec::new(),
            call_counts: BTreeMap::new(),
            started: BTreeMap::new(),
            buckets: BTreeMap::new(),
            rng: Some(Rng::seeded(scenario.seed)),
        };
        world.populate(scenario, true);
        super::history::seed(&mut world, scenario);
        world
    }

    /// Adds the scenario's regions, vaults, images, instances and parameters. `replace`: a scenario item replaces
    /// one with the same id (building a world); otherwise only missing items are added (loading a saved world,
    /// whose items have a history of their own).
    pub(crate) fn populate(&mut self, scenario: &Scenario, replace: bool) {
        fn put<T>(replace: bool, map: &mut Tracked<T>, key: &str, value: T) {
            if replace || !map.contains_key(key) {
                map.insert(key.to_string(), value);
            }
        }
        for r in &scenario.regions {
            self.region_mut(r);
        }
        for v in &scenario.vaults {
            self.region_mut(&v.region).vaults.insert(v.name.clone());
        }
        for t in &scenario.topics {
            let arn = super::ids::topic_arn(&t.region, &t.name);
            self.region_mut(&t.region).topics.entry(arn).or_default();
        }
        for img in &scenario.images {
            let rec = match img.available_after {
                Some(at) => {
                    let mut rec = ImageRec::pending(&img.id, "", Duration::ZERO, at, None);
                    rec.name = img.name.clone();
                    rec
                }
                None => ImageRec::fixed(&img.id, img.name.clone(), img.state.as_deref().unwrap_or("available")),
            };
            // An image made `age` before the world (a stale DR AMI).
            let mut rec = ImageRec {
                created_rel: img.age.map(|a| -(a.as_secs() as i64)),
                ..rec
            };
            let region = self.region_mut(&img.region);
            if replace || !region.images.contains_key(&img.id) {
                let snapshot = super::ids::snapshot_id_of(&img.id);
                let snap = SnapshotRec {
                    image_id: img.id.clone(),
                    tags: img.tags.clone(),
                };
                region.snapshots.insert(snapshot.clone(), snap);
                rec.snapshots = vec![snapshot];
                rec.tags = img.tags.clone();
            }
            put(replace, &mut region.images, &img.id, rec);
        }
        for inst in &scenario.instances {
            let image_id = match &inst.image_id {
                Some(id) => id.clone(),
                None => {
                    let base = base_image_id(&inst.region);
                    let region = self.region_mut(&inst.region);
                    region
                        .images
                        .entry(base.clone())
                        .or_insert_with(|| ImageRec::base(&base));
                    base
                }
            };
            let mut rec = InstanceRec::running(&inst.id, &image_id, Duration::ZERO);
            rec.fixed = inst.state.clone().filter(|s| s != "running");
            rec.tags = inst.tags.clone();
            rec.size_gib = inst.size_gib.unwrap_or(super::records::DEFAULT_SIZE_GIB);
            put(replace, &mut self.region_mut(&inst.region).instances, &inst.id, rec);
        }
        for p in &scenario.parameters {
            let mut rec = ParamRec::new(&p.data_type, &p.value, Duration::ZERO);
            rec.versions[0].labels = p.labels.clone();
            for version in 2..=p.versions.unwrap_or(1) {
                let mut v = rec.versions[0].clone();
                v.version = version;
                v.labels.clear();
                rec.versions.push(v);
            }
            put(replace, &mut self.region_mut(&p.region).parameters, &p.name, rec);
        }
    }

    /// The region, created (with the default resources when the world has them) on first use.
    pub(crate) fn region_mut(&mut self, name: &str) -> &mut Region {
        let default_world = self.default_world;
        self.regions.entry(name.to_string()).or_insert_with(|| {
            let mut region = Region::default();
            if default_world {
                let base = base_image_id(name);
                region.vaults.insert(DEFAULT_VAULT.to_string());
                region.images.insert(base.clone(), ImageRec::base(&base));
                region.parameters.insert(
                    PUBLIC_AMI_PARAMETER.to_string(),
                    ParamRec::new("aws:ec2:image", &base, Duration::ZERO),
                );
                region.instances.insert(
                    DEFAULT_INSTANCE.to_string(),
                    InstanceRec::protected(DEFAULT_INSTANCE, &base),
                );
            }
            region
        })
    }

    /// Counts one more call of `key` and returns the new count (1-based).
    pub(crate) fn count_call(&mut self, key: String) -> u64 {
        let n = self.call_counts.entry(key).or_insert(0);
        *n += 1;
        *n
    }

    /// Counts one more job of `kind` and returns its number (1-based).
    fn count_job(&mut self, kind: JobKind) -> u64 {
        let n = self.started.entry(kind.as_str().to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// Counts one more job of `kind`; the failure message if the scenario's `fail_jobs` fails this one.
    pub(crate) fn job_failure(&mut self, scenario: &Scenario, kind: JobKind, default: &str) -> Option<String> {
        let n = self.count_job(kind);
        scenario
            .fail_jobs
            .iter()
            .find(|f| f.kind == kind && f.nth == n)
            .map(|f| f.message.clone().unwrap_or_else(|| default.to_string()))
    }

    /// Counts one more instance launched by a stack; the status check (`instance` or `system`) that the scenario's
    /// `impair_instances` makes end `impaired` for this one, if any.
    pub(crate) fn launch_impairment(&mut self, scenario: &Scenario) -> Option<String> {
        let n = self.started.entry("launch".to_string()).or_insert(0);
        *n += 1;
        let n = *n;
        let x = scenario.impair_instances.iter().find(|x| x.nth == n)?;
        Some(
            match x.check {
                StatusCheck::Instance => "instance",
                StatusCheck::System => "system",
            }
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sim::scenario::{ImageSpec, InstanceSpec, ParameterSpec, VaultSpec};

    #[test]
    fn default_regions_have_a_vault_an_ami_and_an_instance() {
        let mut w = World::build(&Scenario::default());
        let base = base_image_id("eu-west-1");
        let r = w.region_mut("eu-west-1");
        assert!(r.vaults.contains("Default"));
        assert_eq!(r.instances[DEFAULT_INSTANCE].image_id, base);
        assert_eq!(r.images[&base].state(Duration::ZERO), "available");
        assert!(base.len() == 21 && base.starts_with("ami-"));
        assert_eq!(r.parameters[PUBLIC_AMI_PARAMETER].latest().value, base);
    }

    #[test]
    fn scenario_items_and_an_empty_world() {
        let scenario = Scenario {
            default_world: false,
            instances: vec![InstanceSpec {
                id: "i-0aaaaaaaaaaaaaaaa".into(),
                region: "us-west-2".into(),
                image_id: None,
                state: Some("stopped".into()),
                tags: Default::default(),
                size_gib: None,
            }],
            vaults: vec![VaultSpec {
                name: "Dr".into(),
                region: "us-west-2".into(),
            }],
            parameters: vec![ParameterSpec {
                name: "/a".into(),
                region: "us-west-2".into(),
                value: "x".into(),
                data_type: "text".into(),
                versions: Some(3),
                labels: vec!["golden".into()],
            }],
            images: vec![
                ImageSpec {
                    id: "ami-0b".into(),
                    region: "us-east-1".into(),
                    state: Some("pending".into()),
                    available_after: None,
                    name: None,
                    age: None,
                    tags: BTreeMap::from([("drflow:instance".into(), "i-0a".into())]),
                },
                ImageSpec {
                    id: "ami-0c".into(),
                    region: "us-east-1".into(),
                    state: None,
                    available_after: Some(Duration::from_secs(60)),
                    name: Some("later".into()),
                    age: None,
                    tags: BTreeMap::new(),
                },
            ],
            ..Scenario::default()
        };
        let mut w = World::build(&scenario);
        let r = w.region_mut("us-west-2");
        assert!(!r.vaults.contains("Default") && r.vaults.contains("Dr"));
        assert_eq!(r.instances["i-0aaaaaaaaaaaaaaaa"].state(Duration::ZERO), "stopped");
        assert!(r.images.contains_key(&base_image_id("us-west-2")));
        assert_eq!(r.parameters["/a"].latest().value, "x");
        let versions: Vec<(i64, &[String])> = r.parameters["/a"]
            .versions
            .iter()
            .map(|v| (v.version, v.labels.as_slice()))
            .collect();
        assert_eq!(versions, [(1, &["golden".to_string()][..]), (2, &[][..]), (3, &[][..])]);
        let east = w.region_mut("us-east-1");
        let tagged = &east.images["ami-0b"];
        assert_eq!(tagged.tags["drflow:instance"], "i-0a");
        assert_eq!(east.snapshots[&tagged.snapshots[0]].image_id, "ami-0b");
        assert_eq!(east.images["ami-0b"].state(Duration::from_secs(1_000_000)), "pending");
        assert_eq!(east.images["ami-0c"].state(Duration::from_secs(59)), "pending");
        assert_eq!(east.images["ami-0c"].state(Duration::from_secs(60)), "available");
        assert!(w.region_mut("ap-south-1").instances.is_empty());
    }
}
