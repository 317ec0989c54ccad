//! Simulated time: a persisted base plus the time elapsed on tokio's clock since this process loaded the world.
//!
//! `tokio::time::Instant` follows the paused test clock, so simulated jobs progress as fast as the caller sleeps.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// World time when this process loaded (or created) the world.
    base: Duration,
    loaded_at: Instant,
}

impl Clock {
    pub(crate) fn starting_at(base: Duration) -> Clock {
        Clock {
            base,
            loaded_at: Instant::now(),
        }
    }

    /// Time since the world was created.
    pub(crate) fn now(&self) -> Duration {
        self.base + Instant::now().saturating_duration_since(self.loaded_at)
    }
}

/// Unix seconds of a world time, given the Unix second at which the world was created.
pub(crate) fn wall(created_unix: i64, at: Duration) -> i64 {
    created_unix + i64::try_from(at.as_secs()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock_from_its_base() {
        let clock = Clock::starting_at(Duration::from_secs(100));
        assert_eq!(clock.now(), Duration::from_secs(100));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(clock.now(), Duration::from_secs(130));
        assert_eq!(wall(1_000, clock.now()), 1_130);
    }
}
