//! CNI (spec 1.0): the pod network through plugins, as containerd and CRI-O call them.
//!
//! The network is the first `.conflist` (or single-plugin `.conf`/`.json`) in
//! `--cni-conf-dir`, in name order. ADD runs the plugins in order, each getting the previous
//! result as `prevResult`; the final result is saved with the sandbox, because DEL (reverse
//! order) and CHECK need it — without it host-local would leak the pod's address. Debian 12's
//! reference plugins (containernetworking-plugins 1.1.1) speak at most 1.0.0, which is what
//! skiff writes and asks for.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("cni plugin not initialized: no network configuration in {0}")]
    NoConfig(String),
    #[error("network configuration {path}: {message}")]
    BadConfig { path: String, message: String },
    #[error("plugin type={plugin:?} failed ({command}): {message}")]
    Plugin {
        plugin: String,
        command: String,
        message: String,
    },
}

/// A loaded network configuration list.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    pub path: PathBuf,
}

/// What a pod's network attachment is about.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    /// hostPort mappings for the portmap plugin (`runtimeConfig.portMappings`).
    pub port_mappings: Vec<Value>,
}

/// The first usable configuration in `dir`, or why there is none.
pub fn load(dir: &Path) -> Result<Network, CniError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| CniError::NoConfig(dir.display().to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let path = files
        .into_iter()
        .next()
        .ok_or_else(|| CniError::NoConfig(dir.display().to_string()))?;
    parse(&path)
}

fn parse(path: &Path) -> Result<Network, CniError> {
    let bad = |message: String| CniError::BadConfig {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no \"name\"".into()))?
        .to_string();
    let cni_version = value
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("1.0.0")
        .to_string();
    let plugins = match value.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(_) => return Err(bad("\"plugins\" must be a non-empty list".into())),
        // A single-plugin .conf is a list of one.
        None => vec![value.clone()],
    };
    for p in &plugins {
        if p.get("type").and_then(Value::as_str).is_none() {
            return Err(bad("a plugin without \"type\"".into()));
        }
    }
    Ok(Network {
        name,
        cni_version,
        plugins,
        path: path.to_path_buf(),
    })
}

impl Network {
    /// The config one plugin gets on stdin.
    fn plugin_config(
        &self,
        plugin: &Value,
        prev: Option<&Value>,
        attachment: &Attachment,
    ) -> Value {
        let mut config = plugin.clone();
        config["name"] = json!(self.name);
        config["cniVersion"] = json!(self.cni_version);
        if let Some(prev) = prev {
            config["prevResult"] = prev.clone();
        }
        let wants_ports = plugin
            .pointer("/capabilities/portMappings")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if wants_ports && !attachment.port_mappings.is_empty() {
            config["runtimeConfig"] = json!({"portMappings": attachment.port_mappings});
        }
        config
    }

    /// ADD through every plugin; the result to keep.
    pub async fn add(
        &self,
        bin_dirs: &[PathBuf],
        attachment: &Attachment<'_>,
    ) -> Result<Value, CniError> {
        let mut result: Option<Value> = None;
        for plugin in &self.plugins {
            let config = self.plugin_config(plugin, result.as_ref(), attachment);
            let out = invoke(bin_dirs, "ADD", &config, attachment).await?;
            result = Some(out);
        }
        Ok(result.unwrap_or(Value::Null))
    }

    /// DEL through every plugin in reverse order, with the saved result; idempotent.
    pub async fn del(
        &self,
        bin_dirs: &[PathBuf],
        attachment: &Attachment<'_>,
        saved: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in self.plugins.iter().rev() {
            let config = self.plugin_config(plugin, saved, attachment);
            if let Err(e) = invoke(bin_dirs, "DEL", &config, attachment).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn invoke(
    bin_dirs: &[PathBuf],
    command: &str,
    config: &Value,
    attachment: &Attachment<'_>,
) -> Result<Value, CniError> {
    let plugin = config["type"].as_str().unwrap_or_default().to_string();
    let fail = |message: String| CniError::Plugin {
        plugin: plugin.clone(),
        command: command.to_string(),
        message,
    };
    let binary = bin_dirs
        .iter()
        .map(|d| d.join(&plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            fail(format!(
                "failed to find plugin {plugin:?} in path {:?}",
                bin_dirs
            ))
        })?;
    let path = std::env::join_paths(bin_dirs).unwrap_or_default();
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        attachment.namespace, attachment.pod_name, attachment.container_id, attachment.pod_uid
    );
    let mut child = Command::new(&binary)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", attachment.container_id)
        .env("CNI_NETNS", attachment.netns)
        .env("CNI_IFNAME", attachment.ifname)
        .env("CNI_ARGS", args)
        .env("CNI_PATH", path)
        // Plugins call iptables, which needs a PATH.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("running {}: {e}", binary.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = serde_json::to_vec(config).unwrap_or_default();
        stdin
            .write_all(&bytes)
            .await
            .map_err(|e| fail(format!("writing the config: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let stdout: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    if !output.status.success() {
        // The spec's error object: {"code", "msg", "details"}.
        let message = match (stdout.get("msg"), stdout.get("details")) {
            (Some(msg), Some(details)) if details.as_str().is_some_and(|d| !d.is_empty()) => {
                format!(
                    "{}; {}",
                    msg.as_str().unwrap_or_default(),
                    details.as_str().unwrap_or_default()
                )
            }
            (Some(msg), _) => msg.as_str().unwrap_or_default().to_string(),
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                format!("{} {}", output.status, stderr.trim())
            }
        };
        return Err(fail(message));
    }
    Ok(stdout)
}

/// The pod's first IPv4 address (without prefix) on `ifname` in a CNI result.
pub fn pod_ips(result: &Value, ifname: &str) -> Vec<String> {
    let interfaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted: Option<usize> = interfaces.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname) && i.get("sandbox").is_some()
    });
    result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(
            |ip| match (wanted, ip.get("interface").and_then(Value::as_u64)) {
                (Some(w), Some(i)) => i as usize == w,
                _ => true,
            },
        )
        .filter_map(|ip| ip.get("address").and_then(Value::as_str))
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_config_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-other.conflist"),
            r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-skiff.conf"),
            r#"{"cniVersion":"1.0.0","name":"single","type":"bridge","bridge":"cni0"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let net = load(dir.path()).unwrap();
        assert_eq!(net.name, "single");
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.plugins[0]["bridge"], "cni0");
    }

    #[test]
    fn missing_and_broken_configs_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with("cni plugin not initialized"), "{e}");
        std::fs::write(
            dir.path().join("a.conflist"),
            r#"{"name":"x","plugins":[{}]}"#,
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("without \"type\""), "{e}");
    }

    #[test]
    fn plugin_config_chains_results_and_port_mappings() {
        let net = Network {
            name: "k8s-pod-network".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![],
            path: PathBuf::new(),
        };
        let attachment = Attachment {
            container_id: "c",
            netns: Path::new("/run/netns/x"),
            ifname: "eth0",
            namespace: "default",
            pod_name: "p",
            pod_uid: "u",
            port_mappings: vec![json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})],
        };
        let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let prev = json!({"ips": []});
        let config = net.plugin_config(&portmap, Some(&prev), &attachment);
        assert_eq!(config["name"], "k8s-pod-network");
        assert_eq!(config["prevResult"], prev);
        assert_eq!(config["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        let bridge = net.plugin_config(&json!({"type": "bridge"}), None, &attachment);
        assert!(bridge.get("runtimeConfig").is_none());
    }

    #[test]
    fn ips_of_the_pod_interface() {
        let result = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 2}],
        });
        assert_eq!(pod_ips(&result, "eth0"), ["10.244.1.5"]);
    }
}
