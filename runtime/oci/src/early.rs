//! The command-line facts needed before clap runs: whether this call enters a container (and
//! must re-exec from the protected binary, seal.rs) and the state root it was given.

use std::ffi::OsString;
use std::path::PathBuf;

/// Global options that take a value (`--root DIR`, `--log FILE`, `--log-format FMT`).
const VALUED: [&str; 3] = ["--root", "--log", "--log-format"];
/// Global options without one.
const FLAGS: [&str; 2] = ["--debug", "--systemd-cgroup"];

/// The subcommand and `--root` (default /run/skiff-runtime) of a command line whose global
/// options all precede the subcommand; `None` when it has anything else there (clap then
/// decides, and main re-execs after parsing).
fn split(args: &[OsString]) -> Option<(String, PathBuf)> {
    let mut root = PathBuf::from("/run/skiff-runtime");
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let arg = arg.to_str()?;
        if let Some((name, value)) = arg.split_once('=') {
            if !VALUED.contains(&name) {
                return None;
            }
            if name == "--root" {
                root = PathBuf::from(value);
            }
        } else if VALUED.contains(&arg) {
            let value = rest.next()?;
            if arg == "--root" {
                root = PathBuf::from(value);
            }
        } else if FLAGS.contains(&arg) {
        } else if arg.starts_with('-') {
            return None;
        } else {
            return Some((arg.to_string(), root));
        }
    }
    None
}

/// The state root, when this call is `create`, `run` or `exec` (the commands that put a
/// process of ours into a container's namespaces).
pub fn reexec_target() -> Option<PathBuf> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match split(&args)? {
        (command, root) if matches!(command.as_str(), "create" | "run" | "exec") => Some(root),
        _ => None,
    }
}

pub fn is_exec() -> bool {
    let args: Vec<OsString> = std::env::args_os().collect();
    split(&args).is_some_and(|(command, _)| command == "exec")
}

#[cfg(test)]
mod tests {
    use super::split;
    use std::path::PathBuf;

    fn parse(line: &str) -> Option<(String, PathBuf)> {
        let args: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
        split(&args)
    }

    #[test]
    fn subcommand_and_root_after_global_options() {
        assert_eq!(
            parse("skiff-runtime run -b x c1"),
            Some(("run".into(), PathBuf::from("/run/skiff-runtime")))
        );
        assert_eq!(
            parse("skiff-runtime --root /tmp/r --log-format=json --debug create c1"),
            Some(("create".into(), PathBuf::from("/tmp/r")))
        );
        assert_eq!(
            parse("skiff-runtime --root=/a --log /l exec c1 ls"),
            Some(("exec".into(), PathBuf::from("/a")))
        );
    }

    #[test]
    fn anything_unexpected_is_left_to_clap() {
        assert_eq!(parse("skiff-runtime --unknown run c1"), None);
        assert_eq!(parse("skiff-runtime --root"), None);
        assert_eq!(parse("skiff-runtime"), None);
    }
}
