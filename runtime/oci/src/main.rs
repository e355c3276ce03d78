//! skiff-runtime: a runc-compatible OCI runtime on youki's libcontainer.
//! Single-threaded on purpose: libcontainer clones without exec, so no other threads may
//! hold locks when build() runs (no tokio here).

mod bench;
mod cgroup_warmup;
mod cgroups;
mod cli;
mod commands;
mod containers;
mod delete;
mod early;
mod init;
mod launch;
mod limits;
mod records;
mod rootfs;
mod seal;

use clap::Parser;
use cli::{Cli, Command};
use std::io::Write;

fn main() {
    // The sealed re-exec decided before clap: parsing runc's whole command line costs a
    // noticeable part of a start, and the re-executed process parses it again anyway.
    if let Some(root) = early::reexec_target() {
        if !seal::running_sealed() {
            if early::is_exec() {
                cgroup_warmup::start_migration_grace_period();
            }
            // Returns only on failure; the check after parsing tries again and reports it
            // (to --log too).
            let _ = seal::reexec_sealed(&root);
        }
    }
    let cli = Cli::parse();
    // CVE-2019-5736: only the commands that put our process into a container's namespaces
    // re-exec from a write-protected binary (seal.rs); state/kill/delete/start never enter
    // a container and skip it. There is deliberately no switch to turn this off.
    let enters_container = matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    );
    if enters_container && !seal::running_sealed() {
        // Warm-up first, so the grace period also runs while we re-exec (the helper outlives
        // exec); the re-executed process is sealed and skips both. Only for exec: create/run
        // go through skiff's launcher, which never takes the migration lock, and the helper
        // would hold cgroup_mutex through its grace period, stalling the launcher's mkdirs.
        if matches!(cli.command, Command::Exec(_)) {
            cgroup_warmup::start_migration_grace_period();
        }
        let err = seal::reexec_sealed(&cli.root);
        report_error(
            &cli,
            &err.context("failed to re-exec from a protected binary"),
        );
        std::process::exit(1);
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(err) => {
            report_error(&cli, &err);
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let root = cli.root.as_path();
    let systemd = cli.systemd_cgroup;
    match &cli.command {
        Command::Create(args) => commands::create::create(root, args, systemd),
        Command::Run(args) => commands::create::run(root, args, systemd),
        Command::Start(args) => commands::lifecycle::start(root, &args.container_id),
        Command::State(args) => commands::info::state(root, &args.container_id),
        Command::List(args) => commands::info::list(root, args),
        Command::Kill(args) => commands::lifecycle::kill(root, args),
        Command::Delete(args) => commands::lifecycle::delete(root, args),
        Command::Exec(args) => commands::exec::exec(root, args),
        Command::Ps(args) => commands::info::ps(root, args),
        Command::Pause(args) => commands::lifecycle::pause(root, &args.container_id),
        Command::Resume(args) => commands::lifecycle::resume(root, &args.container_id),
        Command::Events(args) => commands::events::events(root, args),
        Command::Update(args) => commands::update::update(root, args),
        Command::Spec(args) => commands::spec::spec(args),
        Command::Bench(args) => bench::bench(args),
    }
}

/// Errors go to stderr and, with --log, to the log file (runc's JSON shape with
/// --log-format json, which containerd parses).
fn report_error(cli: &Cli, err: &anyhow::Error) {
    let message = format!("{err:#}");
    eprintln!("skiff-runtime: {message}");
    let Some(path) = &cli.log else { return };
    let line = if cli.log_format == "json" {
        serde_json::json!({"level": "error", "msg": message, "time": chrono::Utc::now().to_rfc3339()})
            .to_string()
    } else {
        format!("{} error: {message}", chrono::Utc::now().to_rfc3339())
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}
