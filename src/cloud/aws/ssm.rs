//! SSM Parameter Store: read and write one parameter, read its history.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterType, Tag};

use super::errors::from_sdk;
use super::{Regional, unix};
use crate::cloud::{CloudError, Parameter, ParameterVersion, PutParameter, Ssm};

pub(crate) struct AwsSsm {
    clients: Regional<Client>,
}

impl AwsSsm {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsSsm { clients }
    }
}

#[async_trait]
impl Ssm for AwsSsm {
    async fn get_parameter(&self, region: &str, name: &str) -> Result<Option<Parameter>, CloudError> {
        let result = self.clients.get(region).get_parameter().name(name).send().await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let e = from_sdk("ssm", "GetParameter", region, e);
                return if e.code == "ParameterNotFound" {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        Ok(out.parameter().map(|p| Parameter {
            name: p.name().unwrap_or(name).to_string(),
            value: p.value().unwrap_or_default().to_string(),
            version: p.version(),
            data_type: p.data_type().unwrap_or("text").to_string(),
            last_modified: p.last_modified_date().map(unix),
        }))
    }

    async fn put_parameter(&self, region: &str, req: &PutParameter) -> Result<i64, CloudError> {
        let mut call = self
            .clients
            .get(region)
            .put_parameter()
            .name(&req.name)
            .value(&req.value)
            .r#type(ParameterType::String)
            .data_type(&req.data_type)
            .overwrite(req.overwrite);
        if let Some(d) = &req.description {
            call = call.description(d);
        }
        // AWS rejects Tags together with Overwrite: tags are only set when the parameter is created.
        if !req.overwrite {
            for (k, v) in &req.tags {
                let tag = Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| CloudError::new("ssm", "PutParameter", region, "InvalidRequest", e.to_string()))?;
                call = call.tags(tag);
            }
        }
        let out = call
            .send()
            .await
            .map_err(|e| from_sdk("ssm", "PutParameter", region, e))?;
        Ok(out.version())
    }

    async fn parameter_history(&self, region: &str, name: &str) -> Result<Vec<ParameterVersion>, CloudError> {
        let mut versions = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let result = self
                .clients
                .get(region)
                .get_parameter_history()
                .name(name)
                .max_results(50)
                .set_next_token(next.take())
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    let e = from_sdk("ssm", "GetParameterHistory", region, e);
                    return if e.code == "ParameterNotFound" {
                        Ok(Vec::new())
                    } else {
                        Err(e)
                    };
                }
            };
            versions.extend(out.parameters().iter().map(|p| ParameterVersion {
                version: p.version(),
                labels: p.labels().to_vec(),
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }
}
