//! One module per group of runc subcommands. Every function returns the process exit code.
pub mod console;
pub mod create;
pub mod events;
pub mod exec;
pub mod info;
pub mod lifecycle;
pub mod spec;
pub mod update;
pub mod wait;
