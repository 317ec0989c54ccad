//! SNS: topics from the scenario keep every message published to them.

use async_trait::async_trait;

use super::Sim;
use super::records::MessageRec;
use crate::cloud::{CloudError, Publish, Sns};

#[async_trait]
impl Sns for Sim {
    async fn publish(&self, region: &str, req: &Publish) -> Result<String, CloudError> {
        self.call("sns", "Publish", region, |ctx| {
            if req
                .subject
                .as_ref()
                .is_some_and(|s| s.chars().count() > 100 || s.contains('\n'))
            {
                return Err(ctx.err(
                    "InvalidParameter",
                    "Invalid parameter: Subject (at most 100 characters, on one line)",
                ));
            }
            let id = ctx.world.ids.new_uuid();
            let at = ctx.now;
            let Some(messages) = ctx.here().topics.get_mut(&req.topic_arn) else {
                return Err(ctx.err("NotFound", "Topic does not exist"));
            };
            messages.push(MessageRec {
                id: id.clone(),
                subject: req.subject.clone(),
                message: req.message.clone(),
                at,
            });
            Ok(id)
        })
        .await
    }

    async fn topic_exists(&self, region: &str, topic_arn: &str) -> Result<bool, CloudError> {
        self.call("sns", "GetTopicAttributes", region, |ctx| {
            Ok(ctx.here().topics.contains_key(topic_arn))
        })
        .await
    }
}
