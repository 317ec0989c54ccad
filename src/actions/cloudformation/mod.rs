//! CloudFormation: create or update a stack and wait for it; delete a stack and wait until it is gone.

mod delete_stack;
mod deploy_stack;

pub(crate) use delete_stack::DeleteStack;
pub(crate) use deploy_stack::DeployStack;

/// How an instance launched by a stack is described, so that the stack's deletion can name it.
fn in_stack(output: &str, stack: &str) -> String {
    format!("{output} of stack {stack}")
}
