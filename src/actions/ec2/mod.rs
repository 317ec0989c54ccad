//! EC2: wait for an AMI, create one from an instance, copy one across regions, verify a launched instance, prune
//! old AMIs.

mod copy_image;
mod create_image;
mod find_instances;
mod prune_images;
mod verify_instance;
mod wait_image;

pub(crate) use copy_image::CopyImage;
pub(crate) use create_image::CreateImage;
pub(crate) use find_instances::FindInstances;
pub(crate) use prune_images::PruneImages;
pub(crate) use verify_instance::VerifyInstance;
pub(crate) use wait_image::WaitImage;

use super::effects::{Effects, ResourceKind, StepFacts};

/// The AMI a create or copy step made (known once journaled, even if the step later failed).
fn image_effects(step: &StepFacts<'_>) -> Effects {
    let mut e = Effects::default();
    if let Some(id) = step.out_text("image_id") {
        e.created.push(step.resource(ResourceKind::Ami, id, None, None));
    }
    e
}
