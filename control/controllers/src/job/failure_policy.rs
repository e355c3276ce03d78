//! `spec.podFailurePolicy` (upstream `pod_failure_policy.go`): the first rule that matches a
//! failed pod decides what its failure means — `FailJob` fails the whole Job at once (with a
//! message naming the container and exit code, or the condition), `Ignore` does not count it
//! against `backoffLimit` (e.g. a pod evicted by a node drain, condition `DisruptionTarget`),
//! `Count` counts it as usual. A pod no rule matches counts.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Job fails with this message.
    FailJob(String),
    /// Not counted against backoffLimit.
    Ignore,
    /// Counted (also when no rule matches).
    Count,
}

impl Outcome {
    pub fn counts(&self) -> bool {
        !matches!(self, Outcome::Ignore)
    }
}

/// What the policy makes of the failed `pod`.
pub fn evaluate(policy: &PodFailurePolicy, pod: &Pod) -> Outcome {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(requirement) = &rule.on_exit_codes {
            failed_container(pod, requirement).map(|c| {
                format!(
                    "Container {} for pod {namespace}/{name} failed with exit code {} matching {} rule at index {index}",
                    c.name,
                    exit_code(c).unwrap_or(0),
                    rule.action
                )
            })
        } else {
            matching_condition(pod, rule).map(|type_| {
                format!(
                    "Pod {namespace}/{name} has condition {type_} matching {} rule at index {index}",
                    rule.action
                )
            })
        };
        let Some(message) = matched else { continue };
        return match rule.action.as_str() {
            "FailJob" => Outcome::FailJob(message),
            "Ignore" => Outcome::Ignore,
            // Count, and FailIndex (backoffLimitPerIndex only): counted as a failure.
            _ => Outcome::Count,
        };
    }
    Outcome::Count
}

fn exit_code(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// The first container (init containers first, as upstream) whose non-zero exit code satisfies
/// the requirement.
fn failed_container<'a>(
    pod: &'a Pod,
    requirement: &k8s_openapi::api::batch::v1::PodFailurePolicyOnExitCodesRequirement,
) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in statuses {
        if let Some(wanted) = &requirement.container_name {
            if &container.name != wanted {
                continue;
            }
        }
        let Some(code) = exit_code(container) else {
            continue;
        };
        if code == 0 {
            continue;
        }
        let listed = requirement.values.contains(&code);
        let matches = match requirement.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        if matches {
            return Some(container);
        }
    }
    None
}

fn matching_condition<'a>(pod: &'a Pod, rule: &PodFailurePolicyRule) -> Option<&'a str> {
    let patterns = rule.on_pod_conditions.as_ref()?;
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    patterns.iter().find_map(|pattern| {
        let wanted = pattern.status.as_deref().unwrap_or("True");
        conditions
            .iter()
            .find(|c| c.type_ == pattern.type_ && c.status == wanted)
            .map(|c| c.type_.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn failed_pod(exit: i32, condition: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("job-abc".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                conditions: condition.map(|c| {
                    vec![PodCondition {
                        type_: c.into(),
                        status: "True".into(),
                        ..PodCondition::default()
                    }]
                }),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: exit,
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    fn policy() -> PodFailurePolicy {
        PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: Some("True".into()),
                    }]),
                    on_exit_codes: None,
                },
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some("main".into()),
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
            ],
        }
    }

    #[test]
    fn first_matching_rule_decides() {
        assert_eq!(
            evaluate(&policy(), &failed_pod(42, None)),
            Outcome::FailJob(
                "Container main for pod default/job-abc failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
        assert_eq!(
            evaluate(&policy(), &failed_pod(42, Some("DisruptionTarget"))),
            Outcome::Ignore
        );
        assert_eq!(evaluate(&policy(), &failed_pod(1, None)), Outcome::Count);
    }
}
