//! The batch group: a file per resource.

pub mod cronjobs;
pub mod jobs;
