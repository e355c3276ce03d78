//! Levels, versions and the namespace labels that choose them (upstream
//! `pod-security-admission/api`: `Level`, `Version`, `LevelVersion`, `Policy`,
//! `PolicyToEvaluate`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use crate::error::FieldError;

pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
pub const ENFORCE_LEVEL_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LEVEL_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LEVEL_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// The newest policy version any check has (upstream's registry `maxVersion`): `latest` and
/// every newer `v1.X` evaluate as this one.
pub const MAX_MINOR: u32 = 37;

/// A Pod Security Standards level, from the least to the most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// Upstream `ParseLevel`: an invalid value is an error, and reads as `restricted` (enforce
    /// fails closed).
    pub fn parse(value: &str) -> Result<Level, (Level, String)> {
        match value {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err((
                Level::Restricted,
                "must be one of privileged, baseline, restricted".to_string(),
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy version: `latest` or `v1.X`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Latest,
    V1(u32),
}

impl Version {
    /// Upstream `ParseVersion`: `latest` or `v1.X` (no leading zeros); anything else is an error
    /// and reads as `latest`.
    pub fn parse(value: &str) -> Result<Version, (Version, String)> {
        if value == "latest" {
            return Ok(Version::Latest);
        }
        let err = || (Version::Latest, r#"must be "latest" or "v1.x""#.to_string());
        let Some(minor) = value.strip_prefix("v1.") else {
            return Err(err());
        };
        let digits_ok = !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
            && (minor == "0" || !minor.starts_with('0'));
        if !digits_ok {
            return Err(err());
        }
        minor.parse().map(Version::V1).map_err(|_| err())
    }

    /// The minor version the checks are evaluated at: `latest` and versions past the newest
    /// check are the newest.
    pub fn effective_minor(self) -> u32 {
        match self {
            Version::Latest => MAX_MINOR,
            Version::V1(minor) => minor.min(MAX_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version, as messages print it: `restricted:latest`, `baseline:v1.29`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl LevelVersion {
    pub const PRIVILEGED_LATEST: LevelVersion = LevelVersion {
        level: Level::Privileged,
        version: Version::Latest,
    };

    /// Upstream `Equivalent`: every privileged level is the same.
    pub fn equivalent(&self, other: &LevelVersion) -> bool {
        (self.level == Level::Privileged && other.level == Level::Privileged) || self == other
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

/// A namespace's three modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// The API server's default (an AdmissionConfiguration may change it): privileged:latest.
    fn default() -> Policy {
        Policy {
            enforce: LevelVersion::PRIVILEGED_LATEST,
            audit: LevelVersion::PRIVILEGED_LATEST,
            warn: LevelVersion::PRIVILEGED_LATEST,
        }
    }
}

impl Policy {
    pub fn fully_privileged(&self) -> bool {
        self.enforce.level == Level::Privileged
            && self.audit.level == Level::Privileged
            && self.warn.level == Level::Privileged
    }

    pub fn equivalent(&self, other: &Policy) -> bool {
        self.enforce.equivalent(&other.enforce)
            && self.audit.equivalent(&other.audit)
            && self.warn.equivalent(&other.warn)
    }
}

/// The labels of an object (`metadata.labels`) as a map; non-string values read as "".
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn label_error(label: &str, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(format!("metadata.labels[{label}]"), &json!(value), detail)
}

/// Upstream `PolicyToEvaluate`: the namespace's labels over `defaults`, with an error for each
/// invalid label. An invalid enforce level reads as restricted (fail closed), an invalid audit or
/// warn level as privileged (fail open), an invalid version as latest. A warn level not given
/// follows an enforce level set more restrictive than it.
pub fn policy_to_evaluate(
    labels: &BTreeMap<String, String>,
    defaults: Policy,
) -> (Policy, Vec<FieldError>) {
    let mut p = defaults;
    let mut errors = Vec::new();
    if labels.is_empty() {
        return (p, errors);
    }
    let mut has_enforce_level = false;
    if let Some(value) = labels.get(ENFORCE_LEVEL_LABEL) {
        match Level::parse(value) {
            Ok(level) => {
                p.enforce.level = level;
                has_enforce_level = true;
            }
            Err((level, detail)) => {
                p.enforce.level = level;
                errors.push(label_error(ENFORCE_LEVEL_LABEL, value, &detail));
            }
        }
    }
    if let Some(value) = labels.get(ENFORCE_VERSION_LABEL) {
        p.enforce.version = Version::parse(value).unwrap_or_else(|(version, detail)| {
            errors.push(label_error(ENFORCE_VERSION_LABEL, value, &detail));
            version
        });
    }
    if let Some(value) = labels.get(AUDIT_LEVEL_LABEL) {
        p.audit.level = Level::parse(value).unwrap_or_else(|(_, detail)| {
            errors.push(label_error(AUDIT_LEVEL_LABEL, value, &detail));
            Level::Privileged
        });
    }
    if let Some(value) = labels.get(AUDIT_VERSION_LABEL) {
        p.audit.version = Version::parse(value).unwrap_or_else(|(version, detail)| {
            errors.push(label_error(AUDIT_VERSION_LABEL, value, &detail));
            version
        });
    }
    let has_warn_level = labels.contains_key(WARN_LEVEL_LABEL);
    if let Some(value) = labels.get(WARN_LEVEL_LABEL) {
        p.warn.level = Level::parse(value).unwrap_or_else(|(_, detail)| {
            errors.push(label_error(WARN_LEVEL_LABEL, value, &detail));
            Level::Privileged
        });
    }
    let has_warn_version = labels.contains_key(WARN_VERSION_LABEL);
    if let Some(value) = labels.get(WARN_VERSION_LABEL) {
        p.warn.version = Version::parse(value).unwrap_or_else(|(version, detail)| {
            errors.push(label_error(WARN_VERSION_LABEL, value, &detail));
            version
        });
    }
    if !has_warn_level && has_enforce_level && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn_version {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lv(level: Level, version: Version) -> LevelVersion {
        LevelVersion { level, version }
    }

    #[test]
    fn versions_parse_as_upstream() {
        assert_eq!(Version::parse("latest"), Ok(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
        assert_eq!(Version::parse("v1.29"), Ok(Version::V1(29)));
        for bad in [
            "v1.", "v1.01", "1.29", "v2.1", "v1.x", "", "Latest", "v1.-1",
        ] {
            assert_eq!(
                Version::parse(bad),
                Err((Version::Latest, r#"must be "latest" or "v1.x""#.into())),
                "{bad}"
            );
        }
        assert_eq!(Version::V1(99).effective_minor(), MAX_MINOR);
        assert_eq!(Version::V1(22).effective_minor(), 22);
        assert_eq!(
            lv(Level::Restricted, Version::V1(24)).to_string(),
            "restricted:v1.24"
        );
        assert_eq!(
            lv(Level::Baseline, Version::Latest).to_string(),
            "baseline:latest"
        );
    }

    #[test]
    fn no_labels_is_the_default() {
        let (p, errs) = policy_to_evaluate(&labels(&[]), Policy::default());
        assert!(p.fully_privileged() && errs.is_empty());
        let (p, errs) = policy_to_evaluate(&labels(&[("app", "x")]), Policy::default());
        assert!(p.fully_privileged() && errs.is_empty());
    }

    #[test]
    fn warn_follows_a_stricter_enforce_level() {
        let (p, errs) = policy_to_evaluate(
            &labels(&[
                (ENFORCE_LEVEL_LABEL, "restricted"),
                (ENFORCE_VERSION_LABEL, "v1.25"),
            ]),
            Policy::default(),
        );
        assert!(errs.is_empty());
        assert_eq!(p.enforce, lv(Level::Restricted, Version::V1(25)));
        assert_eq!(p.warn, lv(Level::Restricted, Version::V1(25)));
        assert_eq!(p.audit, LevelVersion::PRIVILEGED_LATEST);
        // An explicit warn level wins, even a more permissive one.
        let (p, _) = policy_to_evaluate(
            &labels(&[
                (ENFORCE_LEVEL_LABEL, "restricted"),
                (WARN_LEVEL_LABEL, "privileged"),
            ]),
            Policy::default(),
        );
        assert_eq!(p.warn.level, Level::Privileged);
        // An explicit warn version stays.
        let (p, _) = policy_to_evaluate(
            &labels(&[
                (ENFORCE_LEVEL_LABEL, "baseline"),
                (WARN_VERSION_LABEL, "v1.30"),
            ]),
            Policy::default(),
        );
        assert_eq!(p.warn, lv(Level::Baseline, Version::V1(30)));
    }

    #[test]
    fn invalid_values_default_as_upstream() {
        let (p, errs) = policy_to_evaluate(
            &labels(&[
                (ENFORCE_LEVEL_LABEL, "strict"),
                (ENFORCE_VERSION_LABEL, "1.29"),
                (AUDIT_LEVEL_LABEL, "nope"),
                (WARN_LEVEL_LABEL, "nope"),
            ]),
            Policy::default(),
        );
        // enforce fails closed, audit and warn open; the warn level does not follow an invalid
        // enforce level.
        assert_eq!(p.enforce, lv(Level::Restricted, Version::Latest));
        assert_eq!(p.audit.level, Level::Privileged);
        assert_eq!(p.warn.level, Level::Privileged);
        let messages: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert_eq!(
            messages,
            [
                r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#,
                r#"metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.29": must be "latest" or "v1.x""#,
                r#"metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": must be one of privileged, baseline, restricted"#,
                r#"metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "nope": must be one of privileged, baseline, restricted"#,
            ]
        );
    }
}
