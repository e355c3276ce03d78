//! `skiff-cni`: the CNI plugin (spec 1.0, plus 1.1's STATUS and GC). The runtime runs it with
//! `CNI_*` variables and the network configuration on stdin; it prints a result or an error
//! object on stdout. One file per verb.

pub mod add;
pub mod check;
pub mod config;
pub mod del;
pub mod error;
pub mod gc;
pub mod ipam;

use std::io::{Read, Write};

use serde_json::{json, Value};

use config::{Command, Env, NetConf, SUPPORTED_VERSIONS};
use error::{CniError, Code};

/// The name the runtime calls the plugin by (`"type"` in the configuration).
pub const PLUGIN_TYPE: &str = "skiff-cni";

/// Runs one CNI command from the process environment and stdin; returns the exit status.
pub fn main() -> i32 {
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let (status, output) = run(|k| std::env::var(k).ok(), &input);
    if let Some(output) = output {
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut stdout, &output);
        let _ = stdout.write_all(b"\n");
    }
    status
}

/// One invocation: the exit status and what goes to stdout.
pub fn run(get: impl Fn(&str) -> Option<String>, input: &[u8]) -> (i32, Option<Value>) {
    // Errors are reported in the configuration's version when it can be read.
    let version = config_version(input).unwrap_or_else(|| "1.0.0".into());
    match dispatch(get, input) {
        Ok(output) => (0, output),
        Err(e) => (1, Some(e.to_json(&version))),
    }
}

/// The `cniVersion` of a configuration, if it parses that far.
fn config_version(input: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(input).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_string)
}

fn dispatch(get: impl Fn(&str) -> Option<String>, input: &[u8]) -> Result<Option<Value>, CniError> {
    let env = Env::from_vars(get)?;
    if env.command == Command::Version {
        let version = config_version(input).unwrap_or_else(|| "1.1.0".into());
        return Ok(Some(
            json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}),
        ));
    }
    let conf = NetConf::parse(input)?;
    if matches!(env.command, Command::Status | Command::Gc) && conf.cni_version.as_str() < "1.1.0" {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "{:?} needs cniVersion 1.1.0, the configuration says {}",
                env.command, conf.cni_version
            ),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Code::Io, "starting the runtime").with_details(e))?;
    runtime.block_on(async {
        match env.command {
            Command::Add => add::add(&env, &conf).await.map(Some),
            Command::Del => del::del(&env, &conf).await.map(|()| None),
            Command::Check => check::check(&env, &conf).await.map(|()| None),
            Command::Status => gc::status(&conf).map(|()| None),
            Command::Gc => gc::gc(&conf).await.map(|()| None),
            Command::Version => unreachable!("answered above"),
        }
    })
}
