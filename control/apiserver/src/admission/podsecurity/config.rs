//! PodSecurity's configuration from the API server's `--admission-control-config-file` (an
//! `AdmissionConfiguration` whose `PodSecurity` plugin entry holds, inline or by `path`, a
//! `PodSecurityConfiguration`): the defaults of unlabelled namespaces and the exemptions
//! (usernames, runtime classes, namespaces), checked as upstream's
//! `ValidatePodSecurityConfiguration` checks them.

use std::path::Path;

use serde_json::Value;

use super::levels::{Level, LevelVersion, Policy, Version};
use super::{Config, Exemptions};

/// The PodSecurity configuration in an AdmissionConfiguration file's text (YAML or JSON);
/// `dir` resolves a relative `path`. No PodSecurity entry: the default configuration.
pub fn from_admission_configuration(text: &str, dir: &Path) -> Result<Config, String> {
    let file: Value =
        serde_yaml::from_str(text).map_err(|e| format!("admission configuration: {e}"))?;
    let plugins = file["plugins"].as_array().cloned().unwrap_or_default();
    let Some(entry) = plugins.iter().find(|p| p["name"] == "PodSecurity") else {
        return Ok(Config::default());
    };
    let configuration = if !entry["configuration"].is_null() {
        entry["configuration"].clone()
    } else if let Some(path) = entry["path"].as_str() {
        let path = dir.join(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        return Ok(Config::default());
    };
    from_pod_security_configuration(&configuration)
}

/// A `PodSecurityConfiguration` object (pod-security.admission.config.k8s.io/v1 and betas).
pub fn from_pod_security_configuration(object: &Value) -> Result<Config, String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    if kind != "PodSecurityConfiguration" {
        return Err(format!(
            "expected a PodSecurityConfiguration, got kind {kind:?}"
        ));
    }
    let defaults = &object["defaults"];
    let mut errors = Vec::new();
    let mut level = |mode: &str| -> Level {
        let value = defaults[mode].as_str().unwrap_or_default();
        if value.is_empty() {
            return Level::Privileged;
        }
        Level::parse(value).unwrap_or_else(|(level, detail)| {
            errors.push(format!(
                "defaults.{mode}: Invalid value: {value:?}: {detail}"
            ));
            level
        })
    };
    let (enforce, audit, warn) = (level("enforce"), level("audit"), level("warn"));
    let mut version = |mode: &str| -> Version {
        let key = format!("{mode}-version");
        let value = defaults[&key].as_str().unwrap_or_default();
        if value.is_empty() {
            return Version::Latest;
        }
        Version::parse(value).unwrap_or_else(|(version, detail)| {
            errors.push(format!(
                "defaults.{key}: Invalid value: {value:?}: {detail}"
            ));
            version
        })
    };
    let defaults = Policy {
        enforce: LevelVersion {
            level: enforce,
            version: version("enforce"),
        },
        audit: LevelVersion {
            level: audit,
            version: version("audit"),
        },
        warn: LevelVersion {
            level: warn,
            version: version("warn"),
        },
    };
    let mut list = |key: &str| -> Vec<String> {
        let items: Vec<String> = object["exemptions"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            if item.is_empty() {
                errors.push(format!(
                    "exemptions.{key}[{i}]: Invalid value: \"\": must be non-empty"
                ));
            } else if items[..i].contains(item) {
                errors.push(format!("exemptions.{key}[{i}]: Duplicate value: {item:?}"));
            }
        }
        items
    };
    let exemptions = Exemptions {
        namespaces: list("namespaces"),
        runtime_classes: list("runtimeClasses"),
        usernames: list("usernames"),
    };
    if !errors.is_empty() {
        return Err(format!("PodSecurity configuration: {}", errors.join(", ")));
    }
    Ok(Config {
        defaults,
        exemptions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: LimitRanger
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: v1.30
      warn: restricted
    exemptions:
      usernames: [ci-bot]
      runtimeClasses: [kata]
      namespaces: [kube-system]
"#;

    #[test]
    fn reads_defaults_and_exemptions() {
        let config = from_admission_configuration(FILE, Path::new("/")).unwrap();
        assert_eq!(config.defaults.enforce.to_string(), "baseline:v1.30");
        assert_eq!(config.defaults.warn.to_string(), "restricted:latest");
        assert_eq!(config.defaults.audit.to_string(), "privileged:latest");
        assert_eq!(config.exemptions.usernames, ["ci-bot"]);
        assert_eq!(config.exemptions.runtime_classes, ["kata"]);
        assert_eq!(config.exemptions.namespaces, ["kube-system"]);
    }

    #[test]
    fn reads_a_path_and_refuses_invalid_values() {
        let dir = std::env::temp_dir().join(format!("skiff-psa-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("psa.yaml"),
            "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\ndefaults: {enforce: strict, audit-version: \"1.2\"}\nexemptions: {namespaces: [a, a]}\n",
        )
        .unwrap();
        let file =
            "kind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  path: psa.yaml\n";
        assert_eq!(
            from_admission_configuration(file, &dir).unwrap_err(),
            r#"PodSecurity configuration: defaults.enforce: Invalid value: "strict": must be one of privileged, baseline, restricted, defaults.audit-version: Invalid value: "1.2": must be "latest" or "v1.x", exemptions.namespaces[1]: Duplicate value: "a""#
        );
        let none = "kind: AdmissionConfiguration\nplugins: []\n";
        assert!(from_admission_configuration(none, &dir)
            .unwrap()
            .defaults
            .fully_privileged());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
