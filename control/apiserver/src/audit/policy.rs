//! The audit policy: upstream's `audit.k8s.io/v1` `Policy` (`--audit-policy-file`), loaded and
//! validated as `apiserver/pkg/audit/policy/reader.go` and `apis/audit/validation` do, and
//! evaluated as `policy/checker.go` does: the first rule that matches a request decides its
//! level, the stages to leave out and whether managed fields are dropped from logged bodies; a
//! request no rule matches is not audited.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::FieldError;

use super::request::RequestInfo;

pub const API_VERSION: &str = "audit.k8s.io/v1";

/// How much of a request is recorded (upstream's `audit.Level`), in increasing order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Not audited.
    #[default]
    None,
    /// User, verb, resource, timestamps and the response status; no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata and both bodies.
    RequestResponse,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::None,
        Level::Metadata,
        Level::Request,
        Level::RequestResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in its life a request's event is written (upstream's `audit.Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// As soon as the request is authenticated, before it is handled.
    RequestReceived,
    /// Once the response headers are sent, only for long-running requests (watch, logs, exec).
    ResponseStarted,
    /// Once the response is complete.
    ResponseComplete,
    /// The handler panicked.
    Panic,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|l| l.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of stages (`omitStages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }
    pub fn with(self, stage: Stage) -> Stages {
        Stages(self.0 | stage.bit())
    }
    pub fn union(self, other: Stages) -> Stages {
        Stages(self.0 | other.0)
    }
}

impl FromIterator<Stage> for Stages {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Stages {
        iter.into_iter().fold(Stages::default(), Stages::with)
    }
}

/// A group's resources a rule names (`resources[]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupResources {
    /// "" is the core group, "*" any group.
    pub group: String,
    /// Plurals, `pods/log` (a subresource), `*/status` (that subresource of anything),
    /// `pods/*` (pods and all their subresources) or `*`; empty: all of the group's.
    pub resources: Vec<String>,
    /// Only objects of these names; empty: any.
    pub resource_names: Vec<String>,
}

/// One rule (`rules[]`): every field it sets must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub level: Level,
    pub users: Vec<String>,
    pub user_groups: Vec<String>,
    pub verbs: Vec<String>,
    pub resources: Vec<GroupResources>,
    /// "" matches cluster-scoped resources.
    pub namespaces: Vec<String>,
    /// Paths of non-resource requests; a trailing `*` matches any suffix.
    pub non_resource_urls: Vec<String>,
    /// The rule's own omitted stages and the policy's.
    pub omit_stages: Stages,
    /// Unset: the policy's `omitManagedFields`.
    pub omit_managed_fields: Option<bool>,
}

/// A loaded and validated policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub omit_stages: Stages,
    pub omit_managed_fields: bool,
}

/// What the policy decided for one request (upstream's `RequestAuditConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestConfig {
    pub level: Level,
    pub omit_stages: Stages,
    pub omit_managed_fields: bool,
}

/// Why a policy file was refused; its text is upstream's.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

// The file's shape, read leniently (unknown fields are warned about, as upstream's fallback from
// strict to lenient decoding does); values are checked by `validate`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    rules: Option<Vec<RawRule>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    level: Option<String>,
    users: Option<Vec<String>>,
    user_groups: Option<Vec<String>>,
    verbs: Option<Vec<String>>,
    resources: Option<Vec<RawGroupResources>>,
    namespaces: Option<Vec<String>>,
    #[serde(rename = "nonResourceURLs")]
    non_resource_urls: Option<Vec<String>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawGroupResources {
    group: Option<String>,
    resources: Option<Vec<String>>,
    resource_names: Option<Vec<String>>,
}

const POLICY_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
];
const RULE_FIELDS: &[&str] = &[
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
];
const GROUP_RESOURCES_FIELDS: &[&str] = &["group", "resources", "resourceNames"];

/// Fields strict decoding would refuse, as `unknown field "rules[0].foo"`.
fn unknown_fields(doc: &serde_yaml::Value) -> Vec<String> {
    fn check(map: &serde_yaml::Value, known: &[&str], at: &str, out: &mut Vec<String>) {
        let Some(map) = map.as_mapping() else { return };
        for key in map.keys() {
            let name = key.as_str().map(str::to_string).unwrap_or_else(|| {
                serde_yaml::to_string(key)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            });
            if !known.contains(&name.as_str()) {
                let path = if at.is_empty() {
                    name
                } else {
                    format!("{at}.{name}")
                };
                out.push(format!("unknown field {path:?}"));
            }
        }
    }
    let mut out = Vec::new();
    check(doc, POLICY_FIELDS, "", &mut out);
    if let Some(rules) = doc.get("rules").and_then(serde_yaml::Value::as_sequence) {
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            check(rule, RULE_FIELDS, &at, &mut out);
            if let Some(grs) = rule
                .get("resources")
                .and_then(serde_yaml::Value::as_sequence)
            {
                for (j, gr) in grs.iter().enumerate() {
                    check(
                        gr,
                        GROUP_RESOURCES_FIELDS,
                        &format!("{at}.resources[{j}]"),
                        &mut out,
                    );
                }
            }
        }
    }
    out
}

/// upstream's aggregate of errors: one alone, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&String> = Vec::new();
    for e in errors {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn field_error(e: FieldError) -> String {
    format!("{}: {}", e.field, e.message)
}

fn string_list(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

fn parse_stages(raw: &[String], at: &str, errors: &mut Vec<String>) -> Stages {
    let allowed: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    let mut stages = Stages::default();
    for (i, s) in raw.iter().enumerate() {
        match Stage::parse(s) {
            Some(stage) => stages = stages.with(stage),
            None => errors.push(field_error(FieldError::invalid(
                format!("{at}[{i}]"),
                &Value::String(s.clone()),
                format!("allowed stages are {}", allowed.join(",")),
            ))),
        }
    }
    stages
}

fn parse_rule(raw: RawRule, policy_omit: Stages, at: &str, errors: &mut Vec<String>) -> Rule {
    let level = match raw.level.as_deref() {
        None | Some("") => {
            errors.push(field_error(FieldError::required(format!("{at}.level"), "")));
            Level::None
        }
        Some(l) => Level::parse(l).unwrap_or_else(|| {
            let supported: Vec<&str> = Level::ALL.iter().map(|l| l.as_str()).collect();
            errors.push(field_error(FieldError::not_supported(
                format!("{at}.level"),
                &Value::String(l.to_string()),
                &supported,
            )));
            Level::None
        }),
    };
    let non_resource_urls = raw.non_resource_urls.unwrap_or_default();
    for (i, url) in non_resource_urls.iter().enumerate() {
        if url == "*" {
            continue;
        }
        let value = Value::String(url.clone());
        let field = format!("{at}.nonResourceURLs[{i}]");
        if !url.starts_with('/') {
            errors.push(field_error(FieldError::invalid(
                field.clone(),
                &value,
                "non-resource URL rules must begin with a '/' character",
            )));
        }
        if !url.is_empty() && url[..url.len() - 1].contains('*') {
            errors.push(field_error(FieldError::invalid(
                field,
                &value,
                "non-resource URL wildcards '*' must be the final character of the rule",
            )));
        }
    }
    let mut resources = Vec::new();
    for gr in raw.resources.unwrap_or_default() {
        let gr = GroupResources {
            group: gr.group.unwrap_or_default(),
            resources: gr.resources.unwrap_or_default(),
            resource_names: gr.resource_names.unwrap_or_default(),
        };
        if !gr.group.is_empty() && gr.group != "*" {
            let mut msgs = Vec::new();
            if gr.group.len() > 253 {
                msgs.push("must be no more than 253 characters");
            }
            if !gr.group.split('.').all(crate::names::is_dns1123_label) {
                msgs.push(crate::names::DNS1123_SUBDOMAIN_MSG);
            }
            if !msgs.is_empty() {
                errors.push(field_error(FieldError::invalid(
                    format!("{at}.resources.group"),
                    &Value::String(gr.group.clone()),
                    msgs.join(","),
                )));
            }
        }
        if !gr.resource_names.is_empty() && gr.resources.is_empty() {
            errors.push(field_error(FieldError::invalid(
                format!("{at}.resources.resourceNames"),
                &string_list(&gr.resource_names),
                "using resourceNames requires at least one resource",
            )));
        }
        resources.push(gr);
    }
    let omit_stages = parse_stages(
        &raw.omit_stages.unwrap_or_default(),
        &format!("{at}.omitStages"),
        errors,
    );
    let namespaces = raw.namespaces.unwrap_or_default();
    if !non_resource_urls.is_empty() && (!resources.is_empty() || !namespaces.is_empty()) {
        errors.push(field_error(FieldError::invalid(
            format!("{at}.nonResourceURLs"),
            &string_list(&non_resource_urls),
            "rules cannot apply to both regular resources and non-resource URLs",
        )));
    }
    Rule {
        level,
        users: raw.users.unwrap_or_default(),
        user_groups: raw.user_groups.unwrap_or_default(),
        verbs: raw.verbs.unwrap_or_default(),
        resources,
        namespaces,
        non_resource_urls,
        omit_stages: omit_stages.union(policy_omit),
        omit_managed_fields: raw.omit_managed_fields,
    }
}

impl Policy {
    /// Reads `--audit-policy-file`. The error reads as upstream's, after its
    /// `loading audit policy file: ` prefix.
    pub fn load(path: &Path) -> Result<(Policy, Vec<String>), PolicyError> {
        let bytes = std::fs::read(path).map_err(|e| {
            PolicyError(format!(
                "failed to read file path {:?}: {e}",
                path.display().to_string()
            ))
        })?;
        Policy::parse(&bytes)
            .map_err(|e| PolicyError(format!("{}: from file {}", e.0, path.display())))
    }

    /// A policy from YAML or JSON. Besides the policy, the fields strict decoding would have
    /// refused (unknown ones), which upstream only warns about.
    pub fn parse(bytes: &[u8]) -> Result<(Policy, Vec<String>), PolicyError> {
        let fail = |m: String| PolicyError(format!("failed decoding: {m}"));
        let doc: serde_yaml::Value =
            serde_yaml::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
        let doc = match doc {
            serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
            serde_yaml::Value::Mapping(_) => doc,
            _ => return Err(fail("the policy is not a YAML or JSON object".into())),
        };
        let text = |key: &str| {
            doc.get(key)
                .and_then(serde_yaml::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (kind, api_version) = (text("kind"), text("apiVersion"));
        if kind.is_empty() {
            return Err(fail("Object 'Kind' is missing".into()));
        }
        if api_version.is_empty() {
            return Err(fail("Object 'apiVersion' is missing".into()));
        }
        if kind != "Policy" || api_version != API_VERSION {
            return Err(fail(format!(
                "no kind {kind:?} is registered for version {api_version:?}"
            )));
        }
        let warnings = unknown_fields(&doc);
        let raw: RawPolicy = serde_yaml::from_value(doc).map_err(|e| fail(e.to_string()))?;

        let mut errors = Vec::new();
        let omit_stages = parse_stages(
            &raw.omit_stages.unwrap_or_default(),
            "omitStages",
            &mut errors,
        );
        let rules: Vec<Rule> = raw
            .rules
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| parse_rule(r, omit_stages, &format!("rules[{i}]"), &mut errors))
            .collect();
        if !errors.is_empty() {
            return Err(PolicyError(aggregate(&errors)));
        }
        if rules.is_empty() {
            return Err(PolicyError("loaded illegal policy with 0 rules".into()));
        }
        Ok((
            Policy {
                rules,
                omit_stages,
                omit_managed_fields: raw.omit_managed_fields.unwrap_or(false),
            },
            warnings,
        ))
    }

    /// The first matching rule's level, omitted stages and managed-fields choice; no match:
    /// level None.
    pub fn evaluate(&self, info: &RequestInfo, user: Option<&UserInfo>) -> RequestConfig {
        for rule in &self.rules {
            if rule.matches(info, user) {
                return RequestConfig {
                    level: rule.level,
                    omit_stages: rule.omit_stages,
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                };
            }
        }
        RequestConfig {
            level: Level::None,
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|s| s == value)
}

/// A non-resource URL spec: `*`, the exact path, or a prefix ending in `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|_| path.starts_with(spec.trim_end_matches('*')))
}

impl Rule {
    pub fn matches(&self, info: &RequestInfo, user: Option<&UserInfo>) -> bool {
        if !self.users.is_empty() && !user.is_some_and(|u| has(&self.users, &u.name)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !user.is_some_and(|u| u.groups.iter().any(|g| has(&self.user_groups, g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !has(&self.verbs, &info.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(info);
        }
        if !self.non_resource_urls.is_empty() {
            return !info.is_resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&info.path, spec));
        }
        true
    }

    fn matches_resource(&self, info: &RequestInfo) -> bool {
        if !info.is_resource_request {
            return false;
        }
        if !self.namespaces.is_empty() && !has(&self.namespaces, &info.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let (resource, sub) = (info.resource.as_str(), info.subresource.as_str());
        let combined = if sub.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{sub}")
        };
        for gr in &self.resources {
            if gr.group != info.api_group && gr.group != "*" {
                continue;
            }
            if gr.resources.is_empty() {
                return true;
            }
            if !gr.resource_names.is_empty() && !has(&gr.resource_names, &info.name) {
                continue;
            }
            for res in &gr.resources {
                if res == &combined || res == "*" {
                    return true;
                }
                if !sub.is_empty() && res.strip_prefix("*/") == Some(sub) {
                    return true;
                }
                if res.strip_suffix("/*") == Some(resource) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::request::RequestInfo;

    /// The example policy of the Kubernetes documentation's "Auditing" page, with every field a
    /// rule can have.
    const DOCS_POLICY: &str = r#"
apiVersion: audit.k8s.io/v1 # This is required.
kind: Policy
# Don't generate audit events for all requests in RequestReceived stage.
omitStages:
  - "RequestReceived"
rules:
  # Log pod changes at RequestResponse level
  - level: RequestResponse
    resources:
    - group: ""
      # Resource "pods" doesn't match requests to any subresource of pods,
      # which is consistent with the RBAC policy.
      resources: ["pods"]
  # Log "pods/log", "pods/status" at Metadata level
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]

  # Don't log requests to a configmap called "controller-leader"
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]

  # Don't log watch requests by the "system:kube-proxy" on endpoints or services
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: "" # core API group
      resources: ["endpoints", "services"]

  # Don't log authenticated requests to certain non-resource URL paths.
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*" # Wildcard matching.
    - "/version"

  # Log the request body of configmap changes in kube-system.
  - level: Request
    resources:
    - group: "" # core API group
      resources: ["configmaps"]
    # This rule only applies to resources in the "kube-system" namespace.
    # The empty string "" can be used to select non-namespaced resources.
    namespaces: ["kube-system"]

  # Log configmap and secret changes in all other namespaces at the Metadata level.
  - level: Metadata
    resources:
    - group: "" # core API group
      resources: ["secrets", "configmaps"]

  # Log all other resources in core and extensions at the Request level.
  - level: Request
    resources:
    - group: "" # core API group
    - group: "extensions" # Version of group should NOT be included.

  # A catch-all rule to log all other requests at the Metadata level.
  - level: Metadata
    # Long-running requests like watches that fall under this rule will not
    # generate an audit event in RequestReceived.
    omitStages:
      - "RequestReceived"
    omitManagedFields: false
"#;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req(method: &str, uri: &str) -> RequestInfo {
        RequestInfo::resolve(method, uri)
    }

    fn level(p: &Policy, method: &str, uri: &str, u: Option<&UserInfo>) -> Level {
        p.evaluate(&req(method, uri), u).level
    }

    #[test]
    fn parses_the_documentation_example() {
        let (p, warnings) = Policy::parse(DOCS_POLICY.as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(p.rules.len(), 9);
        assert_eq!(
            p.omit_stages,
            Stages::default().with(Stage::RequestReceived)
        );
        assert!(!p.omit_managed_fields);
        assert_eq!(p.rules[0].level, Level::RequestResponse);
        assert_eq!(
            p.rules[0].resources,
            vec![GroupResources {
                group: "".into(),
                resources: vec!["pods".into()],
                resource_names: vec![],
            }]
        );
        assert_eq!(
            p.rules[2].resources[0].resource_names,
            vec!["controller-leader"]
        );
        assert_eq!(p.rules[3].users, vec!["system:kube-proxy"]);
        assert_eq!(p.rules[3].verbs, vec!["watch"]);
        assert_eq!(p.rules[4].user_groups, vec!["system:authenticated"]);
        assert_eq!(p.rules[4].non_resource_urls, vec!["/api*", "/version"]);
        assert_eq!(p.rules[5].namespaces, vec!["kube-system"]);
        assert_eq!(p.rules[7].resources.len(), 2);
        assert_eq!(p.rules[7].resources[1].group, "extensions");
        // Every rule omits the policy's stages as well as its own.
        assert!(p
            .rules
            .iter()
            .all(|r| r.omit_stages.contains(Stage::RequestReceived)));
        assert!(!p.rules[0].omit_stages.contains(Stage::ResponseComplete));
        assert_eq!(p.rules[8].omit_managed_fields, Some(false));
        assert_eq!(p.rules[0].omit_managed_fields, None);
    }

    #[test]
    fn evaluates_the_documentation_example() {
        let (p, _) = Policy::parse(DOCS_POLICY.as_bytes()).unwrap();
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        let proxy = user("system:kube-proxy", &["system:authenticated"]);
        let u = Some(&admin);
        // pods: RequestResponse; their subresources are not "pods".
        assert_eq!(
            level(&p, "POST", "/api/v1/namespaces/a/pods", u),
            Level::RequestResponse
        );
        assert_eq!(
            level(&p, "GET", "/api/v1/namespaces/a/pods/p/log", u),
            Level::Metadata
        );
        assert_eq!(
            level(&p, "PUT", "/api/v1/namespaces/a/pods/p/status", u),
            Level::Metadata
        );
        // pods/exec: no pods rule, caught by the core group's Request rule.
        assert_eq!(
            level(&p, "POST", "/api/v1/namespaces/a/pods/p/exec", u),
            Level::Request
        );
        // resourceNames.
        assert_eq!(
            level(
                &p,
                "PUT",
                "/api/v1/namespaces/a/configmaps/controller-leader",
                u
            ),
            Level::None
        );
        // A list has no name: the name rule does not match it.
        assert_eq!(
            level(&p, "GET", "/api/v1/namespaces/a/configmaps", u),
            Level::Metadata
        );
        // users + verbs.
        assert_eq!(
            level(&p, "GET", "/api/v1/services?watch=true", Some(&proxy)),
            Level::None
        );
        assert_eq!(
            level(&p, "GET", "/api/v1/services", Some(&proxy)),
            Level::Request
        );
        assert_eq!(
            level(&p, "GET", "/api/v1/services?watch=1", u),
            Level::Request
        );
        // nonResourceURLs with userGroups.
        assert_eq!(level(&p, "GET", "/apis", u), Level::None);
        assert_eq!(level(&p, "GET", "/api", u), Level::None);
        assert_eq!(level(&p, "GET", "/apis/apps/v1", u), Level::None);
        assert_eq!(level(&p, "GET", "/version", u), Level::None);
        assert_eq!(level(&p, "GET", "/version", None), Level::Metadata);
        assert_eq!(level(&p, "GET", "/healthz", u), Level::Metadata);
        // namespaces.
        assert_eq!(
            level(&p, "POST", "/api/v1/namespaces/kube-system/configmaps", u),
            Level::Request
        );
        assert_eq!(
            level(&p, "POST", "/api/v1/namespaces/default/configmaps", u),
            Level::Metadata
        );
        assert_eq!(
            level(&p, "GET", "/api/v1/namespaces/x/secrets/s", u),
            Level::Metadata
        );
        // extensions and the catch-all.
        assert_eq!(
            level(
                &p,
                "GET",
                "/apis/extensions/v1beta1/namespaces/a/ingresses",
                u
            ),
            Level::Request
        );
        assert_eq!(
            level(&p, "GET", "/apis/apps/v1/deployments", u),
            Level::Metadata
        );
        let catch_all = p.evaluate(&req("GET", "/apis/apps/v1/deployments"), u);
        assert!(catch_all.omit_stages.contains(Stage::RequestReceived));
    }

    #[test]
    fn first_matching_rule_wins() {
        let (p, _) = Policy::parse(
            br#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
                {"level": "None", "users": ["system:kube-scheduler"]},
                {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}]},
                {"level": "Metadata"},
                {"level": "Request"}
            ]}"#,
        )
        .unwrap();
        let admin = user("admin", &[]);
        let scheduler = user("system:kube-scheduler", &[]);
        assert_eq!(
            level(&p, "POST", "/api/v1/namespaces/a/configmaps", Some(&admin)),
            Level::RequestResponse
        );
        assert_eq!(
            level(
                &p,
                "POST",
                "/api/v1/namespaces/a/configmaps",
                Some(&scheduler)
            ),
            Level::None
        );
        assert_eq!(
            level(&p, "GET", "/api/v1/pods", Some(&admin)),
            Level::Metadata
        );
        // Nothing matches: not audited, with the policy's stages.
        let (p, _) = Policy::parse(
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Panic]\nomitManagedFields: true\nrules:\n- level: Metadata\n  verbs: [delete]\n",
        )
        .unwrap();
        let c = p.evaluate(&req("GET", "/api/v1/pods"), Some(&admin));
        assert_eq!(
            c,
            RequestConfig {
                level: Level::None,
                omit_stages: Stages::default().with(Stage::Panic),
                omit_managed_fields: true,
            }
        );
        let c = p.evaluate(&req("DELETE", "/api/v1/namespaces/a/pods/p"), Some(&admin));
        assert_eq!(c.level, Level::Metadata);
        assert!(c.omit_managed_fields, "the policy's default");
    }

    #[test]
    fn users_and_groups() {
        let (p, _) = Policy::parse(
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n  users: [alice, bob]\n  userGroups: [devs]\n- level: Metadata\n  userGroups: [ops, system:nodes]\n",
        )
        .unwrap();
        let get = "/api/v1/pods";
        assert_eq!(
            level(&p, "GET", get, Some(&user("alice", &["devs"]))),
            Level::Request
        );
        // users and userGroups must both match.
        assert_eq!(
            level(&p, "GET", get, Some(&user("alice", &["qa"]))),
            Level::None
        );
        assert_eq!(
            level(&p, "GET", get, Some(&user("carol", &["devs"]))),
            Level::None
        );
        assert_eq!(
            level(
                &p,
                "GET",
                get,
                Some(&user("node-1", &["system:nodes", "x"]))
            ),
            Level::Metadata
        );
        // No user (failed authentication) matches no rule that names users or groups.
        assert_eq!(level(&p, "GET", get, None), Level::None);
    }

    #[test]
    fn resources_and_subresources() {
        let (p, _) = Policy::parse(
            br#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: RequestResponse
  resources: [{group: "", resources: ["*/status"]}]
- level: Request
  resources: [{group: apps, resources: ["deployments/*"]}]
- level: None
  resources: [{group: "*", resources: ["leases"], resourceNames: [kube-scheduler]}]
- level: Metadata
  resources: [{group: "*", resources: ["*"]}]
  namespaces: ["", kube-system]
"#,
        )
        .unwrap();
        let admin = user("admin", &[]);
        let u = Some(&admin);
        assert_eq!(
            level(&p, "PUT", "/api/v1/namespaces/a/pods/p/status", u),
            Level::RequestResponse
        );
        assert_eq!(
            level(&p, "PUT", "/api/v1/nodes/n/status", u),
            Level::RequestResponse
        );
        // "*/status" is only for the named group (core), and needs a subresource.
        assert_eq!(
            level(
                &p,
                "PUT",
                "/apis/apps/v1/namespaces/a/statefulsets/s/status",
                u
            ),
            Level::None
        );
        // "deployments/*": the resource and every subresource.
        assert_eq!(
            level(&p, "GET", "/apis/apps/v1/namespaces/a/deployments/d", u),
            Level::Request
        );
        assert_eq!(
            level(
                &p,
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                u
            ),
            Level::Request
        );
        // resourceNames with a wildcard group.
        assert_eq!(
            level(
                &p,
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler",
                u
            ),
            Level::None
        );
        // Namespaces: "" is cluster-scoped.
        assert_eq!(
            level(
                &p,
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/other",
                u
            ),
            Level::Metadata
        );
        assert_eq!(level(&p, "GET", "/api/v1/nodes", u), Level::Metadata);
        assert_eq!(
            level(&p, "GET", "/api/v1/namespaces/default/pods", u),
            Level::None
        );
        // A namespaces-only rule applies to resource requests only.
        assert_eq!(level(&p, "GET", "/healthz", u), Level::None);
    }

    #[test]
    fn non_resource_urls() {
        let (p, _) = Policy::parse(
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [/healthz*, /version]\n- level: Request\n  nonResourceURLs: ['/apis/*']\n- level: Metadata\n  nonResourceURLs: ['*']\n",
        )
        .unwrap();
        let admin = user("admin", &[]);
        let u = Some(&admin);
        assert_eq!(level(&p, "GET", "/healthz", u), Level::None);
        assert_eq!(level(&p, "GET", "/healthz/etcd", u), Level::None);
        assert_eq!(level(&p, "GET", "/version", u), Level::None);
        assert_eq!(level(&p, "GET", "/version/", u), Level::Metadata);
        assert_eq!(level(&p, "GET", "/apis/apps", u), Level::Request);
        assert_eq!(level(&p, "GET", "/apis", u), Level::Metadata);
        assert_eq!(level(&p, "GET", "/metrics", u), Level::Metadata);
        // Resource requests never match non-resource rules.
        assert_eq!(
            level(&p, "GET", "/apis/apps/v1/deployments", u),
            Level::None
        );
        assert_eq!(level(&p, "GET", "/api/v1/pods", u), Level::None);
    }

    fn error_of(text: &str) -> String {
        Policy::parse(text.as_bytes()).unwrap_err().0
    }

    #[test]
    fn malformed_policies() {
        assert_eq!(
            error_of("kind: Policy\nrules: [{level: None}]"),
            "failed decoding: Object 'apiVersion' is missing"
        );
        assert_eq!(
            error_of("apiVersion: audit.k8s.io/v1\nrules: [{level: None}]"),
            "failed decoding: Object 'Kind' is missing"
        );
        assert_eq!(
            error_of("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]"),
            "failed decoding: no kind \"Policy\" is registered for version \"audit.k8s.io/v1beta1\""
        );
        assert!(
            error_of("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: {")
                .starts_with("failed decoding: ")
        );
        let e = error_of("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: 3");
        assert!(
            e.starts_with("failed decoding: ") && e.contains("invalid type"),
            "{e}"
        );
        assert_eq!(
            error_of("apiVersion: audit.k8s.io/v1\nkind: Policy\n"),
            "loaded illegal policy with 0 rules"
        );
        assert_eq!(
            error_of("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]"),
            r#"rules[0].level: Unsupported value: "Everything": supported values: "None", "Metadata", "Request", "RequestResponse""#
        );
        assert_eq!(
            error_of("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{verbs: [get]}]"),
            "rules[0].level: Required value"
        );
        assert_eq!(
            error_of(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Sent]\nrules:\n- level: None\n  nonResourceURLs: [healthz, '/a*b']\n  namespaces: [x]\n- level: Metadata\n  resources: [{group: Apps/v1, resourceNames: [x]}]\n"
            ),
            concat!(
                r#"[omitStages[0]: Invalid value: "Sent": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic, "#,
                r#"rules[0].nonResourceURLs[0]: Invalid value: "healthz": non-resource URL rules must begin with a '/' character, "#,
                r#"rules[0].nonResourceURLs[1]: Invalid value: "/a*b": non-resource URL wildcards '*' must be the final character of the rule, "#,
                r#"rules[0].nonResourceURLs: Invalid value: ["healthz","/a*b"]: rules cannot apply to both regular resources and non-resource URLs, "#,
                r#"rules[1].resources.group: Invalid value: "Apps/v1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), "#,
                r#"rules[1].resources.resourceNames: Invalid value: ["x"]: using resourceNames requires at least one resource]"#,
            )
        );
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let (p, warnings) = Policy::parse(
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata: {name: p}\nrule: []\nrules:\n- level: Metadata\n  verb: [get]\n  resources: [{group: '', resource: [pods]}]\n",
        )
        .unwrap();
        assert_eq!(
            warnings,
            vec![
                r#"unknown field "rule""#,
                r#"unknown field "rules[0].verb""#,
                r#"unknown field "rules[0].resources[0].resource""#,
            ]
        );
        // The misspelt field is ignored: the rule matches every verb.
        assert_eq!(p.rules[0].verbs, Vec::<String>::new());
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "apiVersion: audit.k8s.io/v1\nkind: Policy\n").unwrap();
        assert_eq!(
            Policy::load(&path).unwrap_err().0,
            format!(
                "loaded illegal policy with 0 rules: from file {}",
                path.display()
            )
        );
        let missing = dir.path().join("nope.yaml");
        let e = Policy::load(&missing).unwrap_err().0;
        assert!(
            e.starts_with(&format!(
                "failed to read file path {:?}: ",
                missing.display().to_string()
            )),
            "{e}"
        );
    }
}
