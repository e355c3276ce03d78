//! A `skiff up` cluster for end-to-end tests, removed with `skiff down` when dropped (also
//! when the test fails), and the offline web image the tests run on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::skiff_bin;

pub struct Cluster {
    pub name: String,
    pub kubeconfig: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(skiff_bin())
            .args(["down", "--name", &self.name])
            .output();
    }
}

impl Cluster {
    /// `skiff up --name <name> --nodes <nodes> --node-cidr <cidr> --load <archive>`; panics
    /// with its output if it fails. Returns the cluster and what `up` printed.
    pub fn up(
        name: &str,
        nodes: usize,
        node_cidr: &str,
        archive: &Path,
        kubeconfig: &Path,
    ) -> (Cluster, String) {
        Cluster::up_with(name, nodes, node_cidr, archive, kubeconfig, &[])
    }

    /// `up` with more flags (e.g. `--publish 8080:30080`).
    pub fn up_with(
        name: &str,
        nodes: usize,
        node_cidr: &str,
        archive: &Path,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> (Cluster, String) {
        let cluster = Cluster {
            name: name.to_string(),
            kubeconfig: kubeconfig.display().to_string(),
        };
        let out = Command::new(skiff_bin())
            .args([
                "up",
                "--name",
                name,
                "--nodes",
                &nodes.to_string(),
                "--node-cidr",
                node_cidr,
                "--load",
            ])
            .arg(archive)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "skiff up failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cluster, text)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f` of `yaml`, written to `dir/<name>.yaml`.
    pub fn apply(&self, dir: &Path, name: &str, yaml: &str) {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        self.ok(&["apply", "-f", file.to_str().unwrap()]);
    }

    /// kubectl `args` with `-o jsonpath=<path>`.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut all: Vec<&str> = args.to_vec();
        let output = format!("jsonpath={path}");
        all.extend_from_slice(&["-o", &output]);
        String::from_utf8_lossy(&self.kubectl(&all).stdout).into_owned()
    }
}

/// `skiff.local/web:1` as an archive in `dir`: busybox-static and `/bin/web`, which writes
/// `index` (a shell expression, e.g. `$(hostname)`) to its index page, logs a line and serves
/// it with httpd on :8080.
pub fn web_image(dir: &Path, index: &str) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::create_dir_all(ctx.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", ctx.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "httpd", "hostname", "mkdir", "cat", "sleep", "nslookup", "nc",
    ] {
        std::os::unix::fs::symlink("busybox", ctx.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        ctx.join("bin/web"),
        format!("#!/bin/sh\nmkdir -p /tmp/www\necho \"{index}\" > /tmp/www/index.html\necho serving on :8080\nexec httpd -f -p 8080 -h /tmp/www\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        ctx.join("bin/web"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let store = dir.join("store");
    let run = |args: &[&str]| {
        let out = Command::new(skiff_bin())
            .args(["image", "--root"])
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skiff image {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "build",
        "skiff.local/web:1",
        "--from",
        ctx.to_str().unwrap(),
        "--cmd",
        "/bin/web",
    ]);
    let archive = dir.join("web.tar");
    run(&[
        "export",
        "-o",
        archive.to_str().unwrap(),
        "skiff.local/web:1",
    ]);
    archive
}
