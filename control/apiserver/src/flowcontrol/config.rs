//! From the FlowSchema and PriorityLevelConfiguration objects to what the filter uses (upstream's
//! `cfgMeal`): the schemas in matching order (`matchingPrecedence` ascending, then name), those
//! naming a level that does not exist set aside (they are `Dangling`), the mandatory `exempt`
//! and `catch-all` objects imagined when they are missing, and each level's seats: the server's
//! limit (`--max-requests-inflight` + `--max-mutating-requests-inflight`) shared by
//! `nominalConcurrencyShares`, rounded up, with the lendable and borrowing bounds upstream
//! derives from the percentages.
//!
//! skiff enforces the nominal limit: levels do not lend idle seats or borrow them (upstream's
//! once-a-second reallocation from observed demand is not built), so a level's current limit is
//! its nominal one.

use std::sync::Arc;

use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use serde_json::Value;

use super::metrics::Limits;
use super::queueset::QueuingConfig;
use crate::registry::flowcontrol as bootstrap;

/// How a schema splits its requests into flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distinguisher {
    None,
    ByUser,
    ByNamespace,
}

#[derive(Clone, Debug)]
pub struct Schema {
    pub name: String,
    pub uid: String,
    pub level: String,
    pub distinguisher: Distinguisher,
    pub object: FlowSchema,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LevelSpec {
    pub name: String,
    pub uid: String,
    pub exempt: bool,
    pub queuing: QueuingConfig,
    pub limits: Limits,
}

/// A FlowSchema's `Dangling` condition as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub schema: Arc<Value>,
    pub level: String,
    pub dangling: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub schemas: Vec<Schema>,
    pub levels: Vec<LevelSpec>,
    /// Every stored FlowSchema with whether its level exists.
    pub references: Vec<Reference>,
}

fn uid(object: &Value) -> String {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `server_limit`: the server's total seats.
pub fn compile(
    schema_objects: &[Arc<Value>],
    level_objects: &[Arc<Value>],
    server_limit: usize,
) -> Compiled {
    let mut levels: Vec<(Value, PriorityLevelConfiguration)> = level_objects
        .iter()
        .filter_map(|v| {
            let typed = serde_json::from_value((**v).clone()).ok()?;
            Some(((**v).clone(), typed))
        })
        .collect();
    for mandatory in bootstrap::mandatory_priority_levels() {
        if !levels.iter().any(|(v, _)| name(v) == name(&mandatory)) {
            if let Ok(typed) = serde_json::from_value(mandatory.clone()) {
                levels.push((mandatory, typed));
            }
        }
    }
    levels.sort_by(|a, b| name(&a.0).cmp(name(&b.0)));
    let specs = level_specs(&levels, server_limit);

    let mut references = Vec::new();
    let mut schemas: Vec<(i32, Schema)> = Vec::new();
    for object in schema_objects {
        let Ok(typed) = serde_json::from_value::<FlowSchema>((**object).clone()) else {
            continue;
        };
        let spec = &typed.spec;
        let level = spec.priority_level_configuration.name.clone();
        let exists =
            specs.iter().any(|s| s.name == level) && level_objects.iter().any(|l| name(l) == level);
        references.push(Reference {
            schema: object.clone(),
            level: level.clone(),
            dangling: !exists,
        });
        if !specs.iter().any(|s| s.name == level) {
            continue;
        }
        schemas.push((
            spec.matching_precedence.unwrap_or(1000),
            schema_of(object, typed),
        ));
    }
    for mandatory in bootstrap::mandatory_flow_schemas() {
        let wanted = name(&mandatory).to_string();
        if !schemas.iter().any(|(_, s)| s.name == wanted) {
            if let Ok(typed) = serde_json::from_value::<FlowSchema>(mandatory.clone()) {
                let precedence = typed.spec.matching_precedence.unwrap_or(1000);
                // Upstream puts an imagined `exempt` first and an imagined `catch-all` last,
                // which is where their precedences (1 and 10000) sort them too.
                schemas.push((precedence, schema_of(&Arc::new(mandatory), typed)));
            }
        }
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    Compiled {
        schemas: schemas.into_iter().map(|(_, s)| s).collect(),
        levels: specs,
        references,
    }
}

fn schema_of(object: &Arc<Value>, typed: FlowSchema) -> Schema {
    let spec = Some(&typed.spec);
    let distinguisher = match spec
        .and_then(|s| s.distinguisher_method.as_ref())
        .map(|d| d.type_.as_str())
    {
        Some("ByUser") => Distinguisher::ByUser,
        Some("ByNamespace") => Distinguisher::ByNamespace,
        _ => Distinguisher::None,
    };
    Schema {
        name: name(object).to_string(),
        uid: uid(object),
        level: spec
            .map(|s| s.priority_level_configuration.name.clone())
            .unwrap_or_default(),
        distinguisher,
        object: typed,
    }
}

/// Upstream's shares arithmetic (`finishQueueSetReconfigsLocked`).
fn level_specs(
    levels: &[(Value, PriorityLevelConfiguration)],
    server_limit: usize,
) -> Vec<LevelSpec> {
    struct Shares {
        nominal: i32,
        lendable: Option<i32>,
        borrowing: Option<i32>,
    }
    let shares_of = |pl: &PriorityLevelConfiguration| -> Shares {
        let spec = Some(&pl.spec);
        if let Some(limited) = spec.and_then(|s| s.limited.as_ref()) {
            return Shares {
                nominal: limited.nominal_concurrency_shares.unwrap_or(30),
                lendable: limited.lendable_percent,
                borrowing: limited.borrowing_limit_percent,
            };
        }
        let exempt = spec.and_then(|s| s.exempt.as_ref());
        Shares {
            nominal: exempt
                .and_then(|e| e.nominal_concurrency_shares)
                .unwrap_or(0),
            lendable: exempt.and_then(|e| e.lendable_percent),
            // Exempt levels may borrow without bound.
            borrowing: None,
        }
    };
    let share_sum: f64 = levels
        .iter()
        .map(|(_, pl)| f64::from(shares_of(pl).nominal.max(0)))
        .sum();
    levels
        .iter()
        .map(|(object, pl)| {
            let shares = shares_of(pl);
            let nominal = if share_sum > 0.0 {
                (server_limit as f64 * f64::from(shares.nominal.max(0)) / share_sum).ceil() as usize
            } else {
                0
            };
            let lendable = shares.lendable.map_or(0, |p| {
                (nominal as f64 * f64::from(p.clamp(0, 100)) / 100.0).round() as usize
            });
            let borrowing = shares.borrowing.map_or(server_limit, |p| {
                (nominal as f64 * f64::from(p.max(0)) / 100.0).round() as usize
            });
            let spec = Some(&pl.spec);
            let exempt = spec.is_some_and(|s| s.type_ == "Exempt");
            let queuing = spec
                .and_then(|s| s.limited.as_ref())
                .filter(|l| l.limit_response.type_ == "Queue")
                .and_then(|l| l.limit_response.queuing.as_ref())
                .map_or(QueuingConfig::REJECT, |q| QueuingConfig {
                    queues: q.queues.unwrap_or(64).max(0) as usize,
                    hand_size: q.hand_size.unwrap_or(8).max(0) as usize,
                    queue_length_limit: q.queue_length_limit.unwrap_or(50).max(0) as usize,
                });
            LevelSpec {
                name: name(object).to_string(),
                uid: uid(object),
                exempt,
                queuing,
                limits: Limits {
                    nominal,
                    lower: nominal - lendable,
                    upper: nominal + borrowing,
                    current: nominal,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(values: Vec<Value>) -> Vec<Arc<Value>> {
        values
            .into_iter()
            .map(|mut v| {
                let n = v["metadata"]["name"].as_str().unwrap().to_string();
                v["metadata"]["uid"] = json!(format!("uid-{n}"));
                Arc::new(v)
            })
            .collect()
    }

    fn bootstrap_config() -> Compiled {
        let levels = objects(
            bootstrap::mandatory_priority_levels()
                .into_iter()
                .chain(bootstrap::suggested_priority_levels())
                .collect(),
        );
        let schemas = objects(
            bootstrap::mandatory_flow_schemas()
                .into_iter()
                .chain(bootstrap::suggested_flow_schemas())
                .collect(),
        );
        compile(&schemas, &levels, 600)
    }

    /// kube-apiserver's defaults (600 seats) give the bootstrap levels these nominal limits
    /// (`apiserver_flowcontrol_nominal_limit_seats` of a fresh cluster).
    #[test]
    fn bootstrap_levels_get_upstreams_nominal_limits() {
        let c = bootstrap_config();
        let nominal = |n: &str| {
            c.levels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.limits.nominal)
                .unwrap()
        };
        assert_eq!(nominal("exempt"), 0);
        assert_eq!(nominal("catch-all"), 13);
        assert_eq!(nominal("global-default"), 49);
        assert_eq!(nominal("leader-election"), 25);
        assert_eq!(nominal("node-high"), 98);
        assert_eq!(nominal("system"), 74);
        assert_eq!(nominal("workload-high"), 98);
        assert_eq!(nominal("workload-low"), 245);
        let low = c.levels.iter().find(|l| l.name == "workload-low").unwrap();
        assert_eq!(
            low.queuing,
            QueuingConfig {
                queues: 128,
                hand_size: 6,
                queue_length_limit: 50
            }
        );
        assert!(c.levels.iter().find(|l| l.name == "exempt").unwrap().exempt);
    }

    #[test]
    fn schemas_sort_by_precedence_then_name() {
        let c = bootstrap_config();
        let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"exempt"));
        assert_eq!(names.last(), Some(&"catch-all"));
        let precedences: Vec<i32> = c
            .schemas
            .iter()
            .map(|s| s.object.spec.matching_precedence.unwrap())
            .collect();
        assert!(precedences.windows(2).all(|w| w[0] <= w[1]));
        assert!(c.references.iter().all(|r| !r.dangling));
    }

    #[test]
    fn dangling_schemas_are_set_aside_and_mandatory_ones_imagined() {
        let schemas = objects(vec![json!({
            "metadata": {"name": "orphan"},
            "spec": {"priorityLevelConfiguration": {"name": "nope"}, "matchingPrecedence": 500,
                     "rules": [{"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}
        })]);
        let c = compile(&schemas, &[], 600);
        assert_eq!(c.references.len(), 1);
        assert!(c.references[0].dangling);
        let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["exempt", "catch-all"]);
        // The imagined levels share the seats: catch-all's 5 shares are all there are.
        let catch_all = c.levels.iter().find(|l| l.name == "catch-all").unwrap();
        assert_eq!(catch_all.limits.nominal, 600);
    }
}
