//! runc-compatible command line. Hand-written clap structs instead of liboci-cli because
//! liboci-cli 0.7 makes `kill`'s signal mandatory and has no `--log-format json`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "skiff-runtime",
    version,
    about = "OCI runtime (runc-compatible CLI)"
)]
pub struct Cli {
    /// Directory for container state (must be on tmpfs for correct cleanup on reboot).
    #[arg(long, global = true, default_value = "/run/skiff-runtime")]
    pub root: PathBuf,
    /// Append error messages to this file as well as stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of --log lines: text or json.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Accepted for runc compatibility; debug output is not implemented.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups. Off by default: the target hosts have no systemd.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Create(CreateArgs),
    Start(IdArg),
    Run(CreateArgs),
    State(IdArg),
    List(ListArgs),
    Kill(KillArgs),
    Delete(DeleteArgs),
    Exec(ExecArgs),
    Ps(PsArgs),
    Pause(IdArg),
    Resume(IdArg),
    Events(EventsArgs),
    Update(UpdateArgs),
    Spec(SpecArgs),
    /// Compare latency against runc (not part of runc's CLI).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub no_pivot: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Only for `run`: do not wait for the container to exit.
    #[arg(short, long)]
    pub detach: bool,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(short, long)]
    pub all: bool,
    pub container_id: String,
    /// Signal name or number; runc defaults to SIGTERM.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[arg(short, long)]
    pub force: bool,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long)]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Path to a process.json (OCI `process` object); replaces the command.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long = "cap", short = 'c')]
    pub cap: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    pub container_id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    pub container_id: String,
    /// Options for ps(1) in table format (default `-ef`), as runc passes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[arg(long)]
    pub stats: bool,
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// JSON file with an OCI LinuxResources object ("-" for stdin).
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(short, long)]
    pub bundle: PathBuf,
    #[arg(short = 'n', long, default_value_t = 100)]
    pub iterations: usize,
    #[arg(long, default_value = "runc")]
    pub runc: String,
}
