//! The workflow file as written: serde types with every field optional, so that validation (not serde) reports
//! what is missing, all at once. Unknown keys are collected by `serde_ignored`, not rejected one at a time.
//! Steps are one struct (no tagged or untagged enums), which keeps serde_yaml's error locations.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(title = "drflow workflow", description = "A drflow workflow file (version 1).")]
pub struct RawWorkflow {
    /// Format version; must be 1.
    pub version: Option<Text>,
    /// Name of the workflow; used in run listings and locks.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Typed inputs, given on the command line with `--input NAME=VALUE`.
    #[serde(default)]
    pub inputs: OrderedMap<RawInput>,
    /// Named regions, e.g. `primary: us-east-1`, or with the credentials their calls use (another account):
    /// `dr: {region: us-west-2, role_arn: arn:aws:iam::222222222222:role/drflow-dr}`. Override a code with
    /// `--region NAME=CODE`.
    #[serde(default)]
    pub regions: OrderedMap<RegionEntry>,
    /// Two region names may resolve to the same code (refused by default: a DR region must differ from the region
    /// it protects).
    pub allow_shared_regions: Option<bool>,
    /// Defaults for every step.
    pub defaults: Option<RawDefaults>,
    /// AWS quotas on concurrent jobs, lowered (or raised, where AWS allows) from AWS's defaults, e.g.
    /// `backup_copies: 50`.
    #[serde(default)]
    pub quotas: OrderedMap<u32>,
    /// Runs with the same lock value (e.g. `${{ inputs.instance_id }}`) never run at once.
    pub lock: Option<String>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
    /// Steps that always run after `steps`, whether they succeeded or failed.
    #[serde(default)]
    pub finally: Vec<RawStep>,
}

/// A named region: its code alone (`dr: us-west-2`), or its code and the role its calls assume.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct RawRegion {
    /// The region code, e.g. `us-west-2`.
    pub region: Option<String>,
    /// A role to assume (STS AssumeRole) for every call in this region, e.g. in the DR account:
    /// `arn:aws:iam::222222222222:role/drflow-dr`. The source credentials are the standard chain's (or `--profile`).
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for (`sts:ExternalId`).
    pub external_id: Option<String>,
    /// Prefix of the role session's name (default `drflow`); the run id follows it, so CloudTrail ties each call
    /// to its run.
    pub session_name: Option<String>,
    /// How long one set of role credentials lasts (15m to 12h, default 1h); drflow renews them before they expire.
    pub duration: Option<Text>,
}

impl RawRegion {
    /// The short form's value, or the long form's `region`.
    pub fn code(&self) -> &str {
        self.region.as_deref().unwrap_or("")
    }
}

/// A region as written: a plain code or a mapping (kept in one struct so serde_yaml locates its errors).
pub fn region_from_yaml<'de, D: Deserializer<'de>>(d: D) -> Result<RawRegion, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = RawRegion;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a region code such as us-west-2, or a mapping with `region` and `role_arn`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRegion, E> {
            Ok(RawRegion {
                region: Some(v.to_string()),
                ..RawRegion::default()
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRegion, A::Error> {
            RawRegion::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

/// `regions:` values, either form.
#[derive(Debug, Default, Clone, PartialEq, JsonSchema)]
#[schemars(transparent)]
pub struct RegionEntry(#[schemars(with = "RegionSchema")] pub RawRegion);

impl<'de> Deserialize<'de> for RegionEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        region_from_yaml(d).map(RegionEntry)
    }
}

/// The schema of a region: a code, or the mapping.
struct RegionSchema;

impl JsonSchema for RegionSchema {
    fn schema_name() -> Cow<'static, str> {
        "Region".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> schemars::Schema {
        json_schema!({ "anyOf": [ { "type": "string" }, g.subschema_for::<RawRegion>() ] })
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawInput {
    /// string (default), bool, int or list.
    #[serde(rename = "type")]
    pub ty: Option<String>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<serde_yaml::Value>,
    /// Regular expression a string input (or an int, as written) must match (whole value).
    pub pattern: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawDefaults {
    pub retry: Option<RawRetry>,
    pub timeout: Option<Text>,
    pub poll: Option<RawPoll>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawStep {
    /// Unique id; other steps refer to it as `steps.<id>`.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// The action to run, e.g. `backup.start_backup_job` (see `drflow actions`).
    pub action: Option<String>,
    /// A region name from `regions:`.
    pub region: Option<String>,
    /// The action's inputs; values may use `${{ }}`.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub with: Option<OrderedMap<serde_yaml::Value>>,
    /// Run the step only when this is true, e.g. `${{ inputs.deploy_stack }}`.
    pub when: Option<Text>,
    pub retry: Option<RawRetry>,
    /// Time limit for each attempt, e.g. `30m`.
    pub timeout: Option<Text>,
    /// Polling of wait actions.
    pub poll: Option<RawPoll>,
    /// Branches that run at the same time; the group fails if any branch fails.
    pub parallel: Option<Vec<RawStep>>,
    /// A sequence of steps (useful as a branch of `parallel`; with `for_each`, the steps run for every item).
    pub steps: Option<Vec<RawStep>>,
    /// Runs `steps` once per item of this list (e.g. `${{ inputs.instance_ids }}` or a discovery step's output);
    /// inside, `${{ item }}` is the item, also its key in the journal and in the outputs.
    #[schemars(with = "Option<serde_json::Value>")]
    pub for_each: Option<serde_yaml::Value>,
    /// With `for_each`: how many items run at once. Default 10.
    pub max_concurrency: Option<u32>,
    /// With `for_each`: how many items may fail before the step fails (it fails after the others finish).
    pub tolerated_failures: Option<u32>,
    /// With `for_each`: the share of items (0 to 100) that may fail.
    pub tolerated_failure_percentage: Option<f64>,
    /// With `for_each`: what to do with an item another run is working on (its lock is held): `skip` it (the
    /// default) or `wait` for it.
    pub when_locked: Option<String>,
    /// Where to go when this step fails for good.
    pub on_failure: Option<RawOnFailure>,
    /// A failure of this step does not fail the run.
    pub continue_on_error: Option<bool>,
}

/// Retrier with the semantics of Amazon States Language `Retry`.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
pub struct RawRetry {
    /// Retries after the first attempt (ASL MaxAttempts); 0 disables retrying. Default 3.
    pub max_attempts: Option<u32>,
    /// Delay before the first retry (ASL IntervalSeconds). Default 1s.
    pub interval: Option<Text>,
    /// Multiplier per retry (ASL BackoffRate, ≥ 1). Default 2.0.
    pub backoff_rate: Option<f64>,
    /// Cap on any one delay (ASL MaxDelaySeconds).
    pub max_delay: Option<Text>,
    /// `full` (random between 0 and the delay) or `none`. Default none.
    pub jitter: Option<String>,
    /// Error classes retried: transient (default: throttling, 5xx, timeouts, connection errors), throttling,
    /// timeout (the step's own timeout), all, or AWS error codes.
    pub errors: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
pub struct RawPoll {
    /// First wait between polls. Default 15s.
    pub interval: Option<Text>,
    /// Growth per poll. Default 1.5.
    pub backoff_rate: Option<f64>,
    /// Longest wait between polls. Default 2m.
    pub max_interval: Option<Text>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawOnFailure {
    /// Id of a later step in the same sequence to continue at. The run still ends as failed.
    pub goto: Option<String>,
}

/// Any YAML scalar, kept as its text (durations, conditions, version).
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A mapping that keeps the file's order (serde's maps would sort or lose it) and reports duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<T> {
    pub entries: Vec<(String, T)>,
    pub duplicates: Vec<String>,
}

impl<T> Default for OrderedMap<T> {
    fn default() -> Self {
        OrderedMap {
            entries: Vec::new(),
            duplicates: Vec::new(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = OrderedMap::default();
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value::<T>()?;
                    if out.entries.iter().any(|(e, _)| *e == k) {
                        out.duplicates.push(k);
                    } else {
                        out.entries.push((k, v));
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for OrderedMap<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut SchemaGenerator) -> schemars::Schema {
        json_schema!({ "type": "object", "additionalProperties": g.subschema_for::<T>() })
    }
}

/// Field names of every raw struct, for "did you mean" hints on unknown keys.
pub fn known_keys() -> Vec<&'static str> {
    let mut all = Vec::new();
    for fields in [
        fields_of::<RawWorkflow>(),
        fields_of::<RawInput>(),
        fields_of::<RawRegion>(),
        fields_of::<RawDefaults>(),
        fields_of::<RawStep>(),
        fields_of::<RawRetry>(),
        fields_of::<RawPoll>(),
        fields_of::<RawOnFailure>(),
    ] {
        all.extend_from_slice(fields);
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The field names serde knows for a struct, read from the `deserialize_struct` call it makes.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("fields")
        }
    }
    impl std::error::Error for Fields {}
    impl de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    impl<'de> Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(f)) => f,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_field_names() {
        let keys = known_keys();
        assert!(keys.contains(&"max_attempts") && keys.contains(&"on_failure") && keys.contains(&"type"));
    }

    #[test]
    fn ordered_map_keeps_order_and_flags_duplicates() {
        let m: OrderedMap<u32> = serde_yaml::from_str("b: 1\na: 2\nb: 3\n").unwrap();
        assert_eq!(m.entries, vec![("b".to_string(), 1), ("a".to_string(), 2)]);
        assert_eq!(m.duplicates, vec!["b".to_string()]);
    }
}

#[cfg(test)]
mod region_tests {
    use super::*;

    #[test]
    fn a_region_is_a_code_or_a_mapping() {
        let text = "regions:\n  primary: us-east-1\n  dr:\n    region: us-west-2\n    role_arn: arn:aws:iam::222222222222:role/x\n";
        let raw: RawWorkflow = serde_yaml::from_str(text).unwrap();
        assert_eq!(raw.regions.entries[0].1.0.code(), "us-east-1");
        assert_eq!(
            raw.regions.entries[1].1.0.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/x")
        );
        let mut ignored = Vec::new();
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: RawWorkflow = serde_ignored::deserialize(de, |p| ignored.push(p.to_string())).unwrap();
        assert_eq!(raw.regions.entries[1].1.0.code(), "us-west-2");
    }
}
