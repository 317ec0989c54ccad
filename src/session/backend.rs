//! Where a run's AWS calls go: the built-in simulator or AWS itself. Decided once, here: the runtime each needs
//! (the simulator runs on tokio's paused clock, so simulated hours pass in milliseconds) and how its client is built.

use std::path::{Path, PathBuf};

use super::SessionError;
use crate::cloud::Cloud;
use crate::cloud::sim::{Scenario, Sim};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The built-in simulated AWS, its world kept in `STATE_DIR/sim/world.json` (so that a simulated run can be
    /// killed and resumed like a real one), shaped by an optional scenario file.
    Simulate { scenario: Option<PathBuf> },
    /// AWS through the SDK, with the standard credential chain and an optional profile.
    Aws { profile: Option<String> },
}

impl Backend {
    pub fn is_simulated(&self) -> bool {
        matches!(self, Backend::Simulate { .. })
    }

    /// The name journaled with a run (`run_started.backend`), as the cloud client reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Simulate { .. } => "sim",
            Backend::Aws { .. } => "aws",
        }
    }

    /// The runtime a run on this backend needs: a paused clock for the simulator, threads for AWS.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, SessionError> {
        let mut b = if self.is_simulated() {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        b.enable_all().start_paused(self.is_simulated());
        b.build()
            .map_err(|e| SessionError::Environment(format!("cannot start the async runtime: {e}")))
    }

    /// The client. `regions` are the run's region codes (the simulator creates them up front).
    pub async fn connect(&self, state_dir: &Path, regions: &[String]) -> Result<Cloud, SessionError> {
        match self {
            Backend::Simulate { scenario } => {
                let scenario = match scenario {
                    Some(path) => Scenario::from_yaml_file(path).map_err(|e| SessionError::Usage(e.to_string()))?,
                    None => Scenario::default(),
                };
                // One simulated account per state directory, persisted so that `resume` finds its jobs again.
                let sim = Sim::persistent(&state_dir.join("sim").join("world.json"), scenario)
                    .map_err(|e| SessionError::Environment(e.to_string()))?;
                sim.ensure_regions(regions);
                Ok(sim.cloud())
            }
            Backend::Aws { profile } => crate::cloud::aws::connect(profile.as_deref())
                .await
                .map_err(|e| SessionError::Environment(e.to_string())),
        }
    }

    /// Words for logs: `the simulator` or `AWS`.
    pub fn describe(&self) -> &'static str {
        if self.is_simulated() { "the simulator" } else { "AWS" }
    }

    /// The options that select this backend again on a command line (for the command that resumes a run).
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Simulate { scenario: Some(s) } => vec!["--scenario".into(), s.display().to_string()],
            Backend::Simulate { scenario: None } => vec!["--simulate".into()],
            Backend::Aws { profile: Some(p) } => vec!["--profile".into(), p.clone()],
            Backend::Aws { profile: None } => Vec::new(),
        }
    }
}
