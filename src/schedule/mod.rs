//! `drflow schedule`: run workflows on cron schedules, in the foreground (for systemd, a container, or a host
//! without cron). `file` reads and checks the schedule file, `cron` computes fire times in a time zone, `runner`
//! is the loop (with an injectable clock and launcher), `signal` turns SIGTERM/SIGINT into stop requests. The
//! command itself, which launches real runs, is `cli::schedule`.

pub mod cron;
pub mod file;
pub mod runner;
pub mod signal;

pub use cron::CronSchedule;
pub use file::{Backend, Entry, Invalid, Notify, Overlap, ScheduleFile};
pub use runner::{Clock, EndStatus, Event, Launcher, RunEnd, RunFuture, Scheduler, Stop, SystemClock, TokioClock};
