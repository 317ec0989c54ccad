//! SSM Parameter Store: parameters with their full version history.

use async_trait::async_trait;

use super::ids::is_ami_id;
use super::records::{ParamRec, VersionRec, split_selector};
use super::{Ctx, Sim};
use crate::cloud::{CloudError, Parameter, ParameterVersion, PutParameter, Ssm};

/// Versions SSM keeps of one parameter.
const VERSION_LIMIT: usize = 100;

fn check_name(ctx: &Ctx<'_>, name: &str) -> Result<(), CloudError> {
    let lower = name.trim_start_matches('/').to_ascii_lowercase();
    let problem = if name.is_empty() || name.len() > 2048 {
        Some("Parameter name must be 1 to 2048 characters long.")
    } else if lower.starts_with("aws") || lower.starts_with("ssm") {
        Some("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        Some("Parameter name may contain only letters, numbers and the symbols . - _ /")
    } else if name.contains('/') && !name.starts_with('/') {
        Some("Parameter name must be a fully qualified name.")
    } else if (name.len() > 1 && name.ends_with('/')) || name.contains("//") {
        Some("Parameter name has an empty path segment.")
    } else {
        None
    };
    match problem {
        Some(message) => Err(ctx.err("ValidationException", message)),
        None => Ok(()),
    }
}

fn get_parameter(ctx: &mut Ctx<'_>, name: &str) -> Result<Option<Parameter>, CloudError> {
    let (base, version) = split_selector(name);
    let created_unix = ctx.world.created_unix;
    let Some(rec) = ctx.here().parameters.get(base) else {
        return Ok(None);
    };
    let Some(v) = rec.version(version) else {
        let message = format!(
            "Systems Manager could not find version {} of {base}.",
            version.unwrap_or_default()
        );
        return Err(ctx.err("ParameterVersionNotFound", message));
    };
    Ok(Some(Parameter {
        name: base.to_string(),
        value: v.value.clone(),
        version: v.version,
        data_type: rec.data_type.clone(),
        last_modified: Some(super::clock::wall(created_unix, v.modified_at)),
    }))
}

fn put_parameter(ctx: &mut Ctx<'_>, req: &PutParameter) -> Result<i64, CloudError> {
    check_name(ctx, &req.name)?;
    let data_type = if req.data_type.is_empty() {
        "text"
    } else {
        req.data_type.as_str()
    };
    if !matches!(data_type, "text" | "aws:ec2:image" | "aws:ssm:integration") {
        let message =
            format!("The following data type is not supported: {data_type} (Data type names are all lowercase.)");
        return Err(ctx.err("ValidationException", message));
    }
    if req.value.is_empty() || req.value.len() > 4096 {
        return Err(ctx.err(
            "ValidationException",
            "Parameter value must be 1 to 4096 characters long (Standard tier).",
        ));
    }
    if req.overwrite && !req.tags.is_empty() {
        return Err(ctx.err(
            "ValidationException",
            "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please \
             remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource API.",
        ));
    }
    let now = ctx.now;
    let existing = ctx.here().parameters.get(&req.name).cloned();
    if let Some(rec) = &existing {
        if !req.overwrite {
            return Err(ctx.err(
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite option in the request to \
                 true.",
            ));
        }
        if rec.data_type != data_type {
            let message = format!(
                "The data type of parameter {} is {} and can't be changed to {data_type}.",
                req.name, rec.data_type
            );
            return Err(ctx.err("ValidationException", message));
        }
    }
    // SSM keeps the last 100 versions: a write drops the oldest, unless a label holds it.
    if let Some(rec) = &existing
        && rec.versions.len() >= VERSION_LIMIT
        && !rec.versions[0].labels.is_empty()
    {
        let message = format!(
            "You attempted to create a new version of {} by calling the PutParameter API with the overwrite flag. \
             Version {}, the oldest version, can't be deleted because it has a label associated with it. Move the \
             label to another version of the parameter, and try again.",
            req.name, rec.versions[0].version
        );
        return Err(ctx.err("ParameterMaxVersionLimitExceeded", message));
    }
    let version = existing.as_ref().map_or(1, |rec| rec.latest().version + 1);
    // aws:ec2:image is validated asynchronously: the call succeeds, but a value naming no available AMI in this
    // region is never stored.
    if data_type == "aws:ec2:image" {
        let ok = is_ami_id(&req.value) && ctx.here().images.get(&req.value).is_some_and(|i| i.is_available(now));
        if !ok {
            return Ok(version);
        }
    }
    let entry = VersionRec {
        version,
        value: req.value.clone(),
        modified_at: now,
        labels: Vec::new(),
    };
    let region = ctx.here();
    match region.parameters.get_mut(&req.name) {
        Some(rec) => {
            if rec.versions.len() >= VERSION_LIMIT {
                rec.versions.remove(0);
            }
            rec.versions.push(entry);
            if req.description.is_some() {
                rec.description = req.description.clone();
            }
        }
        None => {
            let rec = ParamRec {
                data_type: data_type.to_string(),
                description: req.description.clone(),
                tags: req.tags.clone(),
                versions: vec![entry],
            };
            region.parameters.insert(req.name.clone(), rec);
        }
    }
    Ok(version)
}

#[async_trait]
impl Ssm for Sim {
    async fn get_parameter(&self, region: &str, name: &str) -> Result<Option<Parameter>, CloudError> {
        self.call("ssm", "GetParameter", region, |ctx| get_parameter(ctx, name))
            .await
    }

    async fn put_parameter(&self, region: &str, req: &PutParameter) -> Result<i64, CloudError> {
        self.call("ssm", "PutParameter", region, |ctx| put_parameter(ctx, req))
            .await
    }

    async fn parameter_history(&self, region: &str, name: &str) -> Result<Vec<ParameterVersion>, CloudError> {
        self.call("ssm", "GetParameterHistory", region, |ctx| {
            Ok(ctx
                .here()
                .parameters
                .get(name)
                .map(|rec| {
                    rec.versions
                        .iter()
                        .map(|v| ParameterVersion {
                            version: v.version,
                            labels: v.labels.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CreateImage;
    use crate::cloud::sim::ids::{DEFAULT_INSTANCE, base_image_id};
    use crate::cloud::sim::testutil::*;
    use std::collections::BTreeMap;

    fn put(name: &str, value: &str, data_type: &str, overwrite: bool) -> PutParameter {
        PutParameter {
            name: name.into(),
            value: value.into(),
            data_type: data_type.into(),
            description: Some("DR AMI".into()),
            overwrite,
            tags: BTreeMap::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn overwrite_bumps_the_version_even_for_the_same_value() {
        let ssm = sim().cloud().ssm;
        assert_eq!(ssm.get_parameter(EAST, "/app/name").await.unwrap(), None);
        assert_eq!(
            ssm.put_parameter(EAST, &put("/app/name", "a", "text", false))
                .await
                .unwrap(),
            1
        );
        let e = ssm
            .put_parameter(EAST, &put("/app/name", "b", "text", false))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ParameterAlreadyExists");
        sleep(3).await;
        assert_eq!(
            ssm.put_parameter(EAST, &put("/app/name", "a", "text", true))
                .await
                .unwrap(),
            2
        );
        let p = ssm.get_parameter(EAST, "/app/name").await.unwrap().unwrap();
        assert_eq!((p.value.as_str(), p.version, p.data_type.as_str()), ("a", 2, "text"));
        // History is kept and readable with a selector.
        assert_eq!(
            ssm.get_parameter(EAST, "/app/name:1").await.unwrap().unwrap().version,
            1
        );
        assert_eq!(
            ssm.get_parameter(EAST, "/app/name:9").await.unwrap_err().code,
            "ParameterVersionNotFound"
        );
        // Parameters are regional.
        assert_eq!(ssm.get_parameter(WEST, "/app/name").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn data_type_cannot_change() {
        let ssm = sim().cloud().ssm;
        ssm.put_parameter(EAST, &put("/app/ami", "hello", "text", false))
            .await
            .unwrap();
        let base = base_image_id(EAST);
        let e = ssm
            .put_parameter(EAST, &put("/app/ami", &base, "aws:ec2:image", true))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("can't be changed"), "{}", e.message);
    }

    #[tokio::test(start_paused = true)]
    async fn image_parameters_are_stored_only_for_available_amis() {
        let cloud = sim().cloud();
        let ssm = &cloud.ssm;
        // Missing AMI: success, version 1 reported, nothing stored.
        let v = ssm
            .put_parameter(EAST, &put("/dr/ami", "ami-0ffffffffffffffff", "aws:ec2:image", true))
            .await;
        assert_eq!(v.unwrap(), 1);
        assert_eq!(ssm.get_parameter(EAST, "/dr/ami").await.unwrap(), None);
        // Available AMI: stored.
        let base = base_image_id(EAST);
        assert_eq!(
            ssm.put_parameter(EAST, &put("/dr/ami", &base, "aws:ec2:image", true))
                .await
                .unwrap(),
            1
        );
        let p = ssm.get_parameter(EAST, "/dr/ami").await.unwrap().unwrap();
        assert_eq!(
            (p.value.as_str(), p.version, p.data_type.as_str()),
            (base.as_str(), 1, "aws:ec2:image")
        );
        // Pending AMI: success (version 2 reported) but the parameter still holds version 1.
        let req = CreateImage {
            instance_id: DEFAULT_INSTANCE.into(),
            name: "new".into(),
            no_reboot: true,
            tags: BTreeMap::new(),
        };
        let pending = cloud.ec2.create_image(EAST, &req).await.unwrap();
        assert_eq!(
            ssm.put_parameter(EAST, &put("/dr/ami", &pending, "aws:ec2:image", true))
                .await
                .unwrap(),
            2
        );
        let p = ssm.get_parameter(EAST, "/dr/ami").await.unwrap().unwrap();
        assert_eq!((p.value.as_str(), p.version), (base.as_str(), 1));
        // The AMI of another region does not count.
        let west = base_image_id(WEST);
        ssm.put_parameter(EAST, &put("/dr/ami", &west, "aws:ec2:image", true))
            .await
            .unwrap();
        assert_eq!(ssm.get_parameter(EAST, "/dr/ami").await.unwrap().unwrap().version, 1);
        // Once available, it is stored.
        sleep(5 * 60).await;
        assert_eq!(
            ssm.put_parameter(EAST, &put("/dr/ami", &pending, "aws:ec2:image", true))
                .await
                .unwrap(),
            2
        );
        let p = ssm.get_parameter(EAST, "/dr/ami").await.unwrap().unwrap();
        assert_eq!((p.value, p.version), (pending, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_the_last_100_versions_unless_a_label_holds_the_oldest() {
        let sim = sim();
        let ssm = sim.cloud().ssm;
        for i in 1..=130 {
            sleep(1).await; // within PutParameter's request rate
            let v = ssm
                .put_parameter(EAST, &put("/app/v", &format!("v{i}"), "text", i > 1))
                .await
                .unwrap();
            assert_eq!(v, i);
        }
        let p = ssm.get_parameter(EAST, "/app/v").await.unwrap().unwrap();
        assert_eq!((p.value.as_str(), p.version), ("v130", 130));
        assert_eq!(
            ssm.get_parameter(EAST, "/app/v:30").await.unwrap_err().code,
            "ParameterVersionNotFound",
            "the oldest were dropped"
        );
        assert_eq!(
            ssm.get_parameter(EAST, "/app/v:31").await.unwrap().unwrap().value,
            "v31"
        );
        // A label on the oldest version: the write fails, nothing changes.
        sim.lock()
            .world
            .region_mut(EAST)
            .parameters
            .get_mut("/app/v")
            .unwrap()
            .versions[0]
            .labels
            .push("golden".into());
        let e = ssm
            .put_parameter(EAST, &put("/app/v", "v131", "text", true))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ParameterMaxVersionLimitExceeded");
        assert!(!e.kind.is_transient());
        assert!(e.message.contains("Version 31, the oldest version"), "{}", e.message);
        let p = ssm.get_parameter(EAST, "/app/v").await.unwrap().unwrap();
        assert_eq!((p.value.as_str(), p.version), ("v130", 130));
        assert_eq!(sim.lock().world.regions[EAST].parameters["/app/v"].versions.len(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn validates_names_types_and_tags() {
        let ssm = sim().cloud().ssm;
        for name in ["app/ami", "/aws/x", "ssm-thing", "/a b", ""] {
            let e = ssm
                .put_parameter(EAST, &put(name, "v", "text", false))
                .await
                .unwrap_err();
            assert_eq!(e.code, "ValidationException", "{name}");
        }
        let e = ssm
            .put_parameter(EAST, &put("/a", "v", "String", false))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        let mut req = put("/a", "v", "text", true);
        req.tags.insert("team".into(), "dr".into());
        assert_eq!(
            ssm.put_parameter(EAST, &req).await.unwrap_err().code,
            "ValidationException"
        );
        req.overwrite = false;
        assert_eq!(ssm.put_parameter(EAST, &req).await.unwrap(), 1);
    }
}
