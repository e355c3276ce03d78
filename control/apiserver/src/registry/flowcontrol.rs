//! flowcontrol.apiserver.k8s.io/v1 (`pkg/registry/flowcontrol`): FlowSchemas and
//! PriorityLevelConfigurations with upstream's v1 defaults and validation, status written
//! through `/status`, the printers, and upstream's bootstrap configuration
//! (`k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap`): the mandatory `exempt` and `catch-all`
//! objects, whose specs may not be changed, and the suggested ones, all created at start when
//! absent (`server.rs`) and marked for automatic update as upstream marks them.
//!
//! Flow control itself — classifying requests by these schemas, queuing them per priority
//! level, the `Dangling` status conditions — is `crate::flowcontrol`, which reads these objects
//! from the watch cache.

use crate::error::FieldError;
use crate::names::{
    is_dns1123_label, is_dns1123_subdomain, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use crate::registry::fields::{check_enum, child, default, spec_of, strings};
use crate::registry::Strategy;
use crate::table::prelude::*;

/// The annotation upstream's configuration producer reads to know it may keep an object current.
pub const AUTO_UPDATE_ANNOTATION: &str = "apf.kubernetes.io/autoupdate-spec";

const MAX_MATCHING_PRECEDENCE: i64 = 10_000;
const MAX_QUEUES: i64 = 10_000_000;

pub struct FlowSchemas;

pub static FLOW_SCHEMAS: FlowSchemas = FlowSchemas;

impl Strategy for FlowSchemas {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        if let Some(spec) = spec_of(object) {
            if spec
                .get("matchingPrecedence")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0
            {
                spec.insert("matchingPrecedence".into(), json!(1000));
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let name = text(object, &["metadata", "name"]);
        let spec = &object["spec"];
        validate_flow_schema_spec(name, spec, errors);
        if let Some(mandatory) = mandatory_flow_schemas()
            .into_iter()
            .find(|m| m["metadata"]["name"] == name)
        {
            check_fixed_spec(name, spec, &mandatory["spec"], errors);
        }
        validate_conditions(object, errors);
    }

    fn printer(&self) -> &'static Printer {
        &FLOW_SCHEMA_PRINTER
    }
}

pub struct PriorityLevelConfigurations;

pub static PRIORITY_LEVEL_CONFIGURATIONS: PriorityLevelConfigurations = PriorityLevelConfigurations;

impl Strategy for PriorityLevelConfigurations {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        if let Some(exempt) = spec.get_mut("exempt").and_then(Value::as_object_mut) {
            default(exempt, "nominalConcurrencyShares", json!(0));
            default(exempt, "lendablePercent", json!(0));
        }
        if let Some(limited) = spec.get_mut("limited").and_then(Value::as_object_mut) {
            default(limited, "nominalConcurrencyShares", json!(30));
            default(limited, "lendablePercent", json!(0));
            let response = child(limited, "limitResponse");
            if let Some(queuing) = response.get_mut("queuing").and_then(Value::as_object_mut) {
                for (key, value) in [("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)] {
                    if queuing.get(key).and_then(Value::as_i64).unwrap_or(0) == 0 {
                        queuing.insert(key.into(), json!(value));
                    }
                }
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let name = text(object, &["metadata", "name"]);
        let spec = &object["spec"];
        validate_priority_level_spec(name, spec, errors);
        if let Some(mandatory) = mandatory_priority_levels()
            .into_iter()
            .find(|m| m["metadata"]["name"] == name)
        {
            check_fixed_spec(name, spec, &mandatory["spec"], errors);
        }
        validate_conditions(object, errors);
    }

    fn printer(&self) -> &'static Printer {
        &PRIORITY_LEVEL_CONFIGURATION_PRINTER
    }
}

// ---------------------------------------------------------------- validation

/// The mandatory objects' specs are fixed: upstream compares the defaulted spec with its own.
fn check_fixed_spec(name: &str, spec: &Value, fixed: &Value, errors: &mut Vec<FieldError>) {
    let mut expected = json!({"spec": fixed.clone()});
    let strategy: &dyn Strategy = if fixed.get("type").is_some() {
        &PRIORITY_LEVEL_CONFIGURATIONS
    } else {
        &FLOW_SCHEMAS
    };
    strategy.default(&mut expected);
    if *spec != expected["spec"] {
        errors.push(FieldError::invalid(
            "spec",
            spec,
            format!("spec of '{name}' must equal the fixed value"),
        ));
    }
}

fn validate_conditions(object: &Value, errors: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, condition) in list(object, &["status", "conditions"]).iter().enumerate() {
        let kind = text(condition, &["type"]);
        if !seen.insert(kind) {
            errors.push(FieldError::duplicate(
                format!("status.conditions[{i}].type"),
                &json!(kind),
            ));
        }
        if kind.is_empty() {
            errors.push(FieldError::required(
                format!("status.conditions[{i}].type"),
                "must not be empty",
            ));
        }
    }
}

fn has_wildcard(values: &[String]) -> bool {
    values.iter().any(|v| v == "*")
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "proxy",
    "update",
    "watch",
];

fn validate_flow_schema_spec(name: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    let precedence = spec["matchingPrecedence"].as_i64().unwrap_or(0);
    let at = "spec.matchingPrecedence";
    if precedence <= 0 {
        errors.push(FieldError::invalid(
            at,
            &json!(precedence),
            "must be a positive value",
        ));
    }
    if precedence > MAX_MATCHING_PRECEDENCE {
        errors.push(FieldError::invalid(
            at,
            &json!(precedence),
            format!("must not be greater than {MAX_MATCHING_PRECEDENCE}"),
        ));
    }
    if precedence == 1 && name != "exempt" {
        errors.push(FieldError::invalid(
            at,
            &json!(precedence),
            "only the schema named 'exempt' may have matchingPrecedence 1",
        ));
    }
    if spec["distinguisherMethod"].is_object() {
        check_enum(
            "spec.distinguisherMethod.type",
            Some(&spec["distinguisherMethod"]["type"]),
            &["ByNamespace", "ByUser"],
            errors,
        );
    }
    match text(spec, &["priorityLevelConfiguration", "name"]) {
        "" => errors.push(FieldError::required(
            "spec.priorityLevelConfiguration.name",
            "must reference a priority level",
        )),
        level if !is_dns1123_subdomain(level) => errors.push(FieldError::invalid(
            "spec.priorityLevelConfiguration.name",
            &json!(level),
            DNS1123_SUBDOMAIN_MSG,
        )),
        _ => {}
    }
    for (i, rule) in list(spec, &["rules"]).iter().enumerate() {
        validate_rules_with_subjects(rule, &format!("spec.rules[{i}]"), errors);
    }
}

fn validate_rules_with_subjects(rule: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let subjects = list(rule, &["subjects"]);
    if subjects.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.subjects"),
            "subjects must contain at least one value",
        ));
    }
    for (i, subject) in subjects.iter().enumerate() {
        validate_subject(subject, &format!("{path}.subjects[{i}]"), errors);
    }
    let resource_rules = list(rule, &["resourceRules"]);
    let non_resource_rules = list(rule, &["nonResourceRules"]);
    if resource_rules.is_empty() && non_resource_rules.is_empty() {
        errors.push(FieldError::required(
            path,
            "at least one of resourceRules and nonResourceRules has to be non-empty",
        ));
    }
    for (i, r) in resource_rules.iter().enumerate() {
        validate_resource_rule(r, &format!("{path}.resourceRules[{i}]"), errors);
    }
    for (i, r) in non_resource_rules.iter().enumerate() {
        validate_non_resource_rule(r, &format!("{path}.nonResourceRules[{i}]"), errors);
    }
}

fn validate_subject(subject: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let kinds = [
        ("ServiceAccount", "serviceAccount"),
        ("User", "user"),
        ("Group", "group"),
    ];
    let kind = text(subject, &["kind"]);
    let Some((kind_name, own)) = kinds.iter().find(|(k, _)| *k == kind) else {
        errors.push(FieldError::not_supported(
            format!("{path}.kind"),
            &json!(kind),
            &["Group", "ServiceAccount", "User"],
        ));
        return;
    };
    let body = &subject[*own];
    if !body.is_object() {
        errors.push(FieldError::required(
            format!("{path}.{own}"),
            format!("{own} is required when subject kind is '{kind_name}'"),
        ));
    } else if text(body, &["name"]).is_empty() {
        errors.push(FieldError::required(format!("{path}.{own}.name"), ""));
    }
    if *own == "serviceAccount" && body.is_object() {
        match text(body, &["namespace"]) {
            "" => errors.push(FieldError::required(
                format!("{path}.serviceAccount.namespace"),
                "must specify namespace for service account",
            )),
            ns if !is_dns1123_label(ns) => errors.push(FieldError::invalid(
                format!("{path}.serviceAccount.namespace"),
                &json!(ns),
                DNS1123_LABEL_MSG,
            )),
            _ => {}
        }
    }
    for (other_kind, other) in kinds.iter().filter(|(_, o)| o != own) {
        if subject[*other].is_object() {
            errors.push(FieldError::forbidden(
                format!("{path}.{other}"),
                format!("{other} is forbidden when subject kind is not '{other_kind}'"),
            ));
        }
    }
}

fn validate_verbs(rule: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let verbs = strings(rule, "verbs");
    if verbs.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    } else if has_wildcard(&verbs) {
        if verbs.len() > 1 {
            errors.push(FieldError::invalid(
                format!("{path}.verbs"),
                &json!(verbs),
                "if '*' is present, must not specify other verbs",
            ));
        }
    } else if verbs.iter().any(|v| !VERBS.contains(&v.as_str())) {
        errors.push(FieldError::not_supported(
            format!("{path}.verbs"),
            &json!(verbs),
            VERBS,
        ));
    }
}

fn validate_resource_rule(rule: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_verbs(rule, path, errors);
    for (key, what) in [("apiGroups", "api group"), ("resources", "resource")] {
        let values = strings(rule, key);
        if values.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.{key}"),
                format!("resource rules must supply at least one {what}"),
            ));
        } else if values.len() > 1 && has_wildcard(&values) {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(values),
                format!("if '*' is present, must not specify other {what}s"),
            ));
        }
    }
    let namespaces = strings(rule, "namespaces");
    let cluster_scope = rule["clusterScope"].as_bool().unwrap_or(false);
    if namespaces.is_empty() && !cluster_scope {
        errors.push(FieldError::required(
            format!("{path}.namespaces"),
            "resource rules that are not cluster scoped must supply at least one namespace",
        ));
    } else if has_wildcard(&namespaces) {
        if namespaces.len() > 1 {
            errors.push(FieldError::invalid(
                format!("{path}.namespaces"),
                &json!(namespaces),
                "if '*' is present, must not specify other namespaces",
            ));
        }
    } else {
        for (i, ns) in namespaces.iter().enumerate() {
            if !is_dns1123_label(ns) {
                errors.push(FieldError::invalid(
                    format!("{path}.namespaces[{i}]"),
                    &json!(ns),
                    format!("each member of this list must be '*' or a DNS-1123 label; {DNS1123_LABEL_MSG}"),
                ));
            }
        }
    }
}

fn validate_non_resource_rule(rule: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_verbs(rule, path, errors);
    let urls = strings(rule, "nonResourceURLs");
    if urls.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.nonResourceURLs"),
            "nonResourceURLs must contain at least one value",
        ));
    } else if has_wildcard(&urls) {
        if urls.len() > 1 {
            errors.push(FieldError::invalid(
                format!("{path}.nonResourceURLs"),
                &json!(urls),
                "if '*' is present, must not specify other non-resource URLs",
            ));
        }
    } else {
        for (i, url) in urls.iter().enumerate() {
            if let Some(message) = non_resource_url_problem(url) {
                errors.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs[{i}]"),
                    &json!(url),
                    message,
                ));
            }
        }
    }
}

/// `ValidateNonResourceURLPath`.
fn non_resource_url_problem(url: &str) -> Option<&'static str> {
    if url.is_empty() {
        return Some("must not be empty");
    }
    if url == "/" {
        return None;
    }
    if !url.starts_with('/') {
        return Some("must start with slash");
    }
    if url.contains(' ') {
        return Some("must not contain white-space");
    }
    if url.contains("//") {
        return Some("must not contain double slash");
    }
    let wildcards = url.matches('*').count();
    if wildcards > 1 || (wildcards == 1 && !url.ends_with("/*")) {
        return Some("wildcard can only do suffix matching");
    }
    None
}

fn validate_priority_level_spec(name: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    let kind = text(spec, &["type"]);
    if (name == "exempt") != (kind == "Exempt") {
        errors.push(FieldError::invalid(
            "spec.type",
            &json!(kind),
            "type must be 'Exempt' if and only if name is 'exempt'",
        ));
    }
    match kind {
        "Exempt" => {
            if spec["limited"].is_object() {
                errors.push(FieldError::forbidden(
                    "spec.limited",
                    "must be nil if the type is not Limited",
                ));
            }
            let exempt = &spec["exempt"];
            check_shares("spec.exempt", exempt, errors);
        }
        "Limited" => {
            if spec["exempt"].is_object() {
                errors.push(FieldError::forbidden(
                    "spec.exempt",
                    "must be nil if the type is Limited",
                ));
            }
            let limited = &spec["limited"];
            if !limited.is_object() {
                errors.push(FieldError::required(
                    "spec.limited",
                    "must not be empty when type is Limited",
                ));
                return;
            }
            check_shares("spec.limited", limited, errors);
            if let Some(limit) = limited["borrowingLimitPercent"].as_i64().filter(|l| *l < 0) {
                errors.push(FieldError::invalid(
                    "spec.limited.borrowingLimitPercent",
                    &json!(limit),
                    "if specified, must be a non-negative integer",
                ));
            }
            validate_limit_response(&limited["limitResponse"], errors);
        }
        _ => errors.push(FieldError::not_supported(
            "spec.type",
            &json!(kind),
            &["Exempt", "Limited"],
        )),
    }
}

fn check_shares(path: &str, config: &Value, errors: &mut Vec<FieldError>) {
    if let Some(shares) = config["nominalConcurrencyShares"]
        .as_i64()
        .filter(|s| *s < 0)
    {
        errors.push(FieldError::invalid(
            format!("{path}.nominalConcurrencyShares"),
            &json!(shares),
            "must be a non-negative integer",
        ));
    }
    if let Some(percent) = config["lendablePercent"]
        .as_i64()
        .filter(|p| !(0..=100).contains(p))
    {
        errors.push(FieldError::invalid(
            format!("{path}.lendablePercent"),
            &json!(percent),
            "must be between 0 and 100, inclusive",
        ));
    }
}

fn validate_limit_response(response: &Value, errors: &mut Vec<FieldError>) {
    let path = "spec.limited.limitResponse";
    let queuing = &response["queuing"];
    match text(response, &["type"]) {
        "Reject" => {
            if queuing.is_object() {
                errors.push(FieldError::forbidden(
                    format!("{path}.queuing"),
                    "must be nil if limited.limitResponse.type is not Limited",
                ));
            }
        }
        "Queue" => {
            if !queuing.is_object() {
                errors.push(FieldError::required(
                    format!("{path}.queuing"),
                    "must not be empty if limited.limitResponse.type is Limited",
                ));
                return;
            }
            let at = format!("{path}.queuing");
            let limit = queuing["queueLengthLimit"].as_i64().unwrap_or(0);
            if limit <= 0 {
                errors.push(FieldError::invalid(
                    format!("{at}.queueLengthLimit"),
                    &json!(limit),
                    "must be positive",
                ));
            }
            let queues = queuing["queues"].as_i64().unwrap_or(0);
            if queues <= 0 {
                errors.push(FieldError::invalid(
                    format!("{at}.queues"),
                    &json!(queues),
                    "must be positive",
                ));
            } else if queues > MAX_QUEUES {
                errors.push(FieldError::invalid(
                    format!("{at}.queues"),
                    &json!(queues),
                    format!("must not be greater than {MAX_QUEUES}"),
                ));
            }
            let hand = queuing["handSize"].as_i64().unwrap_or(0);
            if hand <= 0 {
                errors.push(FieldError::invalid(
                    format!("{at}.handSize"),
                    &json!(hand),
                    "must be positive",
                ));
            } else if hand > queues {
                errors.push(FieldError::invalid(
                    format!("{at}.handSize"),
                    &json!(hand),
                    format!("should not be greater than queues ({queues})"),
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(other),
            &["Queue", "Reject"],
        )),
    }
}

// ---------------------------------------------------------------- bootstrap

fn auto_updated(name: &str) -> Value {
    json!({"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}})
}

fn priority_level(name: &str, spec: Value) -> Value {
    json!({"metadata": auto_updated(name), "spec": spec})
}

/// A Limited level that queues: (shares, lendable %, queues, hand size).
fn queuing_level(name: &str, shares: i64, lendable: i64, queues: i64, hand_size: i64) -> Value {
    priority_level(
        name,
        json!({"type": "Limited", "limited": {
            "nominalConcurrencyShares": shares, "lendablePercent": lendable,
            "limitResponse": {"type": "Queue", "queuing": {
                "queues": queues, "handSize": hand_size, "queueLengthLimit": 50}}}}),
    )
}

fn flow_schema(
    name: &str,
    level: &str,
    precedence: i64,
    distinguisher: Option<&str>,
    rules: Value,
) -> Value {
    let mut spec = json!({"priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence, "rules": [rules]});
    if let Some(method) = distinguisher {
        spec["distinguisherMethod"] = json!({"type": method});
    }
    json!({"metadata": auto_updated(name), "spec": spec})
}

fn groups(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "Group", "group": {"name": n}}))
        .collect()
}

fn users(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "User", "user": {"name": n}}))
        .collect()
}

fn kube_system_service_accounts() -> Vec<Value> {
    vec![
        json!({"kind": "ServiceAccount", "serviceAccount": {"name": "*", "namespace": "kube-system"}}),
    ]
}

/// Every verb on every resource, cluster-scoped or in any namespace, and every non-resource URL.
fn everything(subjects: Vec<Value>) -> Value {
    json!({"subjects": subjects,
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                           "namespaces": ["*"], "clusterScope": true}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]})
}

/// The priority levels every API server has (`MandatoryPriorityLevelConfigurations`).
pub fn mandatory_priority_levels() -> Vec<Value> {
    vec![
        priority_level(
            "catch-all",
            json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
                "lendablePercent": 0, "limitResponse": {"type": "Reject"}}}),
        ),
        priority_level(
            "exempt",
            json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
        ),
    ]
}

/// The flow schemas every API server has (`MandatoryFlowSchemas`).
pub fn mandatory_flow_schemas() -> Vec<Value> {
    vec![
        flow_schema(
            "exempt",
            "exempt",
            1,
            None,
            everything(groups(&["system:masters"])),
        ),
        flow_schema(
            "catch-all",
            "catch-all",
            10_000,
            Some("ByUser"),
            everything(groups(&["system:unauthenticated", "system:authenticated"])),
        ),
    ]
}

/// Upstream's suggested priority levels (`SuggestedPriorityLevelConfigurations`).
pub fn suggested_priority_levels() -> Vec<Value> {
    vec![
        queuing_level("system", 30, 33, 64, 6),
        queuing_level("node-high", 40, 25, 64, 6),
        queuing_level("leader-election", 10, 0, 16, 4),
        queuing_level("workload-high", 40, 50, 128, 6),
        queuing_level("workload-low", 100, 90, 128, 6),
        queuing_level("global-default", 20, 50, 128, 6),
    ]
}

/// Upstream's suggested flow schemas (`SuggestedFlowSchemas`).
pub fn suggested_flow_schemas() -> Vec<Value> {
    let all = ["system:unauthenticated", "system:authenticated"];
    let leases = |verbs: Value| {
        json!({"verbs": verbs, "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
               "namespaces": ["*"]})
    };
    let mut leader_election_subjects =
        users(&["system:kube-controller-manager", "system:kube-scheduler"]);
    leader_election_subjects.extend(kube_system_service_accounts());
    vec![
        flow_schema(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            everything(groups(&["system:nodes"])),
        ),
        flow_schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            json!({"subjects": groups(&["system:nodes"]), "resourceRules": [
                {"verbs": ["*"], "apiGroups": [""], "resources": ["nodes", "nodes/status"],
                 "namespaces": ["*"], "clusterScope": true},
                leases(json!(["*"]))]}),
        ),
        flow_schema(
            "probes",
            "exempt",
            2,
            None,
            json!({"subjects": groups(&all), "nonResourceRules": [
                {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}),
        ),
        flow_schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            json!({"subjects": leader_election_subjects,
                   "resourceRules": [leases(json!(["get", "create", "update"]))]}),
        ),
        flow_schema(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-controller-manager"])),
        ),
        flow_schema(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-scheduler"])),
        ),
        flow_schema(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            everything(kube_system_service_accounts()),
        ),
        flow_schema(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            everything(groups(&["system:serviceaccounts"])),
        ),
        flow_schema(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            everything(groups(&all)),
        ),
    ]
}

// ---------------------------------------------------------------- table

pub const FLOW_SCHEMA_COLUMNS: &[Column] = &[
    NAME,
    col(
        "PriorityLevel",
        "string",
        "`name` is the name of the priority level configuration being referenced Required.",
    ),
    col(
        "MatchingPrecedence",
        "string",
        "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.",
    ),
    col(
        "DistinguisherMethod",
        "string",
        "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.",
    ),
    AGE,
    col(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

pub static FLOW_SCHEMA_PRINTER: Printer = Printer::new(FLOW_SCHEMA_COLUMNS, flow_schema_cells);

fn flow_schema_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let distinguisher = non_empty_or(
        text(obj, &["spec", "distinguisherMethod", "type"]),
        "<none>",
    );
    // `?` until the APF controller has said whether the priority level exists.
    let missing = list(obj, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Dangling")
        .map(|c| text(c, &["status"]))
        .unwrap_or("?");
    vec![
        name(obj),
        text(obj, &["spec", "priorityLevelConfiguration", "name"]).into(),
        integer(obj, &["spec", "matchingPrecedence"]).into(),
        distinguisher.into(),
        age(obj, now).into(),
        missing.into(),
    ]
}

pub const PRIORITY_LEVEL_CONFIGURATION_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.",
    ),
    col(
        "NominalConcurrencyShares",
        "string",
        "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level.",
    ),
    col(
        "Queues",
        "string",
        "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.",
    ),
    col(
        "HandSize",
        "string",
        "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  This field has a default value of 8.",
    ),
    col(
        "QueueLengthLimit",
        "string",
        "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.",
    ),
    AGE,
];

pub static PRIORITY_LEVEL_CONFIGURATION_PRINTER: Printer = Printer::new(
    PRIORITY_LEVEL_CONFIGURATION_COLUMNS,
    priority_level_configuration_cells,
);

fn priority_level_configuration_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Integers where the level is Limited (and queues), `<none>` otherwise.
    let number = |path: &[&str]| -> Value {
        match field(obj, path).and_then(Value::as_i64) {
            Some(n) => n.into(),
            None => "<none>".into(),
        }
    };
    let limited = field(obj, &["spec", "limited"]).is_some_and(Value::is_object);
    let shares = if limited {
        number(&["spec", "limited", "nominalConcurrencyShares"])
    } else {
        "<none>".into()
    };
    let queuing = ["spec", "limited", "limitResponse", "queuing"];
    let queue_field = |key: &str| -> Value {
        let mut path = queuing.to_vec();
        path.push(key);
        number(&path)
    };
    vec![
        name(obj),
        text(obj, &["spec", "type"]).into(),
        shares,
        queue_field("queues"),
        queue_field("handSize"),
        queue_field("queueLengthLimit"),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the API server stores for a bootstrap object: decoded into its type, defaulted.
    fn stored(resource: &str, object: &Value) -> Value {
        let info = crate::resources::find("flowcontrol.apiserver.k8s.io", "v1", resource).unwrap();
        let mut object = (info.typed.normalize)(object).unwrap();
        info.strategy.default(&mut object);
        object
    }

    fn errors_of(resource: &str, object: &Value) -> Vec<String> {
        let info = crate::resources::find("flowcontrol.apiserver.k8s.io", "v1", resource).unwrap();
        crate::registry::validate(info.strategy, object)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn bootstrap_configuration_is_valid_and_unchanged_by_defaults() {
        let levels = mandatory_priority_levels()
            .into_iter()
            .chain(suggested_priority_levels());
        for level in levels {
            let object = stored("prioritylevelconfigurations", &level);
            assert_eq!(
                object["spec"], level["spec"],
                "defaults change {}",
                level["metadata"]["name"]
            );
            assert!(errors_of("prioritylevelconfigurations", &object).is_empty());
        }
        let schemas = mandatory_flow_schemas()
            .into_iter()
            .chain(suggested_flow_schemas());
        for schema in schemas {
            let object = stored("flowschemas", &schema);
            assert_eq!(
                object["spec"], schema["spec"],
                "defaults change {}",
                schema["metadata"]["name"]
            );
            let errors = errors_of("flowschemas", &object);
            assert!(
                errors.is_empty(),
                "{}: {errors:?}",
                schema["metadata"]["name"]
            );
        }
        assert_eq!(suggested_flow_schemas().len(), 9);
        assert_eq!(suggested_priority_levels().len(), 6);
    }

    #[test]
    fn mandatory_specs_are_fixed() {
        let mut exempt = stored("flowschemas", &mandatory_flow_schemas()[0]);
        exempt["spec"]["matchingPrecedence"] = json!(2);
        assert_eq!(errors_of("flowschemas", &exempt).len(), 1);
        assert!(errors_of("flowschemas", &exempt)[0]
            .ends_with("spec of 'exempt' must equal the fixed value"));
        let mut catch_all = stored(
            "prioritylevelconfigurations",
            &mandatory_priority_levels()[0],
        );
        catch_all["spec"]["limited"]["nominalConcurrencyShares"] = json!(10);
        assert!(errors_of("prioritylevelconfigurations", &catch_all)[0]
            .ends_with("spec of 'catch-all' must equal the fixed value"));
    }

    #[test]
    fn defaults_and_validation() {
        let mut level = json!({"metadata": {"name": "batch"}, "spec": {"type": "Limited",
            "limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 4}}}}});
        PRIORITY_LEVEL_CONFIGURATIONS.default(&mut level);
        assert_eq!(
            level["spec"]["limited"],
            json!({"nominalConcurrencyShares": 30, "lendablePercent": 0,
                   "limitResponse": {"type": "Queue", "queuing": {"queues": 4, "handSize": 8, "queueLengthLimit": 50}}})
        );
        assert_eq!(
            errors_of("prioritylevelconfigurations", &level),
            ["spec.limited.limitResponse.queuing.handSize: Invalid value: 8: should not be greater than queues (4)"]
        );
        let mut schema = json!({"metadata": {"name": "mine"}, "spec": {
            "priorityLevelConfiguration": {"name": "batch"},
            "rules": [{"subjects": [{"kind": "User"}], "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["healthz"]}]}]}});
        FLOW_SCHEMAS.default(&mut schema);
        assert_eq!(schema["spec"]["matchingPrecedence"], 1000);
        assert_eq!(
            errors_of("flowschemas", &schema),
            [
                "spec.rules[0].subjects[0].user: Required value: user is required when subject kind is 'User'",
                "spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"healthz\": must start with slash",
            ]
        );
    }

    #[test]
    fn printers() {
        let now = Timestamp::now();
        let exempt = stored("flowschemas", &mandatory_flow_schemas()[0]);
        assert_eq!(
            (FLOW_SCHEMA_PRINTER.cells)(&exempt, now)[..4],
            [json!("exempt"), json!("exempt"), json!(1), json!("<none>")]
        );
        assert_eq!((FLOW_SCHEMA_PRINTER.cells)(&exempt, now)[5], "?");
        let catch_all = stored("flowschemas", &mandatory_flow_schemas()[1]);
        assert_eq!(
            (FLOW_SCHEMA_PRINTER.cells)(&catch_all, now)[..4],
            [
                json!("catch-all"),
                json!("catch-all"),
                json!(10000),
                json!("ByUser")
            ]
        );
        let levels = mandatory_priority_levels();
        assert_eq!(
            (PRIORITY_LEVEL_CONFIGURATION_PRINTER.cells)(&levels[0], now)[..6],
            [
                json!("catch-all"),
                json!("Limited"),
                json!(5),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        assert_eq!(
            (PRIORITY_LEVEL_CONFIGURATION_PRINTER.cells)(&levels[1], now)[..3],
            [json!("exempt"), json!("Exempt"), json!("<none>")]
        );
        let global = &suggested_priority_levels()[5];
        assert_eq!(
            (PRIORITY_LEVEL_CONFIGURATION_PRINTER.cells)(global, now)[2..6],
            [json!(20), json!(128), json!(6), json!(50)]
        );
    }
}
