//! SNS: publish a notification, check a topic.

use async_trait::async_trait;
use aws_sdk_sns::Client;

use super::Regional;
use super::errors::from_sdk;
use crate::cloud::{CloudError, ErrorKind, Publish, Sns};

pub(crate) struct AwsSns {
    clients: Regional<Client>,
}

impl AwsSns {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsSns { clients }
    }
}

#[async_trait]
impl Sns for AwsSns {
    async fn publish(&self, region: &str, req: &Publish) -> Result<String, CloudError> {
        let out = self
            .clients
            .get(region)
            .publish()
            .topic_arn(&req.topic_arn)
            .set_subject(req.subject.clone())
            .message(&req.message)
            .send()
            .await
            .map_err(|e| from_sdk("sns", "Publish", region, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn topic_exists(&self, region: &str, topic_arn: &str) -> Result<bool, CloudError> {
        let result = self
            .clients
            .get(region)
            .get_topic_attributes()
            .topic_arn(topic_arn)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = from_sdk("sns", "GetTopicAttributes", region, e);
                if e.kind == ErrorKind::NotFound || e.code == "NotFound" {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }
}
