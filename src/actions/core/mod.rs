//! Actions that call no AWS API: useful for tests, benchmarks and failure routing.

mod approve;
mod echo;
mod fail;

pub(crate) use approve::Approve;
pub(crate) use echo::Echo;
pub(crate) use fail::Fail;
