//! The plugin's input: the environment (`CNI_COMMAND`, `CNI_CONTAINERID`, …) and the network
//! configuration on stdin, validated before anything is touched, so a bad request fails with
//! the spec's code and leaves nothing behind.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "skiff", "type": "skiff-cni",
//!  "bridge": "cni0", "mtu": 1450, "subnet": "10.244.1.0/24",
//!  "dataDir": "/var/lib/cni/networks"}
//! ```
//! `gateway` defaults to the subnet's first address, `routes` to a default route via it,
//! `hairpinMode` to true (a pod reaching itself through a Service comes back through its own
//! bridge port).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnetwork::Ipv4Network;
use serde::Deserialize;
use serde_json::Value;

use super::error::{CniError, Code};

/// The versions this plugin speaks (VERSION answers with them).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => {
                return Err(CniError::new(
                    Code::InvalidEnvironment,
                    format!("unknown CNI_COMMAND: {other:?}"),
                ))
            }
        })
    }
}

/// What the runtime says in the environment.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
}

impl Env {
    /// Reads and checks the variables `command` needs (the spec lists which).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let command = Command::parse(&get("CNI_COMMAND").unwrap_or_default())?;
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let mut missing = Vec::new();
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        let netns = get("CNI_NETNS")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if needs_attachment {
            if container_id.is_empty() {
                missing.push("CNI_CONTAINERID");
            }
            if ifname.is_empty() {
                missing.push("CNI_IFNAME");
            }
            // DEL may come after the namespace is gone.
            if netns.is_none() && command != Command::Del {
                missing.push("CNI_NETNS");
            }
        }
        if !missing.is_empty() {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        if needs_attachment {
            validate_container_id(&container_id)?;
            validate_ifname(&ifname)?;
        }
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
        })
    }
}

/// The spec: "alphanumeric, plus `_`, `.` and `-`", starting with an alphanumeric.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("invalid characters in CNI_CONTAINERID {id:?}"),
        ))
    }
}

/// The kernel's rules for interface names (at most 15 bytes, no `/`, `:` or whitespace).
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("invalid CNI_IFNAME {name:?}"),
        ))
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub dst: Ipv4Network,
    #[serde(default)]
    pub gw: Option<Ipv4Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    hairpin_mode: Option<bool>,
    #[serde(default)]
    prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

/// One attachment the runtime still uses (GC's `cni.dev/valid-attachments`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// A validated network configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub bridge: String,
    pub mtu: u32,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub hairpin: bool,
    pub prev_result: Option<Value>,
    pub valid_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(Code::Decode, "decoding the network configuration").with_details(e)
        })?;
        let invalid = |msg: String| CniError::new(Code::InvalidConfig, msg);
        let cni_version = raw.cni_version.unwrap_or_else(|| "0.4.0".into());
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!("incompatible CNI versions: config is {cni_version:?}, plugin supports {SUPPORTED_VERSIONS:?}"),
            ));
        }
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("network configuration has no \"name\"".into()))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(invalid(format!("invalid network name {name:?}")));
        }
        let subnet_text = raw
            .subnet
            .ok_or_else(|| invalid("network configuration has no \"subnet\"".into()))?;
        let subnet: Ipv4Network = subnet_text
            .parse()
            .map_err(|e| invalid(format!("invalid \"subnet\" {subnet_text:?}: {e}")))?;
        if subnet.prefix() > 30 {
            return Err(invalid(format!(
                "\"subnet\" {subnet} is too small for a gateway and a pod"
            )));
        }
        // Normalise 10.244.1.7/24 to 10.244.1.0/24.
        let subnet = Ipv4Network::new(subnet.network(), subnet.prefix())
            .map_err(|e| invalid(e.to_string()))?;
        let gateway = raw
            .gateway
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(subnet.network()) + 1));
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast()
        {
            return Err(invalid(format!(
                "\"gateway\" {gateway} is not a host address of {subnet}"
            )));
        }
        let mtu = raw.mtu.unwrap_or(1500);
        if !(68..=65535).contains(&mtu) {
            return Err(invalid(format!("\"mtu\" {mtu} is out of range 68-65535")));
        }
        let bridge = raw.bridge.unwrap_or_else(|| "cni0".into());
        validate_ifname(&bridge).map_err(|_| invalid(format!("invalid \"bridge\" {bridge:?}")))?;
        let routes = raw.routes.unwrap_or_else(|| {
            vec![Route {
                dst: Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0).expect("0.0.0.0/0"),
                gw: None,
            }]
        });
        Ok(NetConf {
            cni_version,
            name,
            bridge,
            mtu,
            subnet,
            gateway,
            routes,
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/cni/networks")),
            hairpin: raw.hairpin_mode.unwrap_or(true),
            prev_result: raw.prev_result,
            valid_attachments: raw.valid_attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_environment_is_checked_per_command() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_NETNS] missing"
        );
        // DEL without a namespace is fine (it may be gone).
        let del = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert!(del.netns.is_none());
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
        assert_eq!(
            env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code,
            Code::InvalidEnvironment
        );
        let bad_id = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
        ])
        .unwrap_err();
        assert!(bad_id.msg.contains("CNI_CONTAINERID"), "{}", bad_id.msg);
        let bad_if = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "a-name-far-too-long"),
            ("CNI_NETNS", "/run/netns/x"),
        ])
        .unwrap_err();
        assert!(bad_if.msg.contains("CNI_IFNAME"), "{}", bad_if.msg);
    }

    #[test]
    fn configs_get_defaults_and_bad_ones_the_right_code() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"skiff","type":"skiff-cni","subnet":"10.244.1.9/24","mtu":1450}"#,
        )
        .unwrap();
        assert_eq!(c.subnet.to_string(), "10.244.1.0/24");
        assert_eq!(c.gateway, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(c.bridge, "cni0");
        assert_eq!(c.routes.len(), 1);
        assert!(c.hairpin);
        assert_eq!(NetConf::parse(b"{not json").unwrap_err().code, Code::Decode);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"9.9.9","name":"x","subnet":"10.0.0.0/24"}"#)
                .unwrap_err()
                .code,
            Code::IncompatibleVersion
        );
        for bad in [
            r#"{"cniVersion":"1.0.0","subnet":"10.0.0.0/24"}"#,
            r#"{"cniVersion":"1.0.0","name":"x"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","subnet":"10.0.0.0/33"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","subnet":"10.0.0.0/31"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","subnet":"10.0.0.0/24","gateway":"10.0.1.1"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","subnet":"10.0.0.0/24","mtu":10}"#,
            r#"{"cniVersion":"1.0.0","name":"../x","subnet":"10.0.0.0/24"}"#,
        ] {
            assert_eq!(
                NetConf::parse(bad.as_bytes()).unwrap_err().code,
                Code::InvalidConfig,
                "{bad}"
            );
        }
    }
}
