//! `spec.successPolicy` of Indexed Jobs (upstream `success_policy.go`): the Job succeeds early
//! when a rule is met — every index in `succeededIndexes` succeeded, or `succeededCount` of
//! them (or of all indexes when the rule names none).

use k8s_openapi::api::batch::v1::SuccessPolicy;

use super::indexes::Indexes;

/// The message of the first rule the succeeded indexes meet.
pub fn matched(
    policy: Option<&SuccessPolicy>,
    completions: i32,
    succeeded: &Indexes,
) -> Option<String> {
    let policy = policy?;
    for (n, rule) in policy.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(text), count) => {
                let wanted = Indexes::parse(text, completions);
                let done = wanted.iter().filter(|i| succeeded.contains(*i)).count() as i32;
                match count {
                    Some(count) => done >= count,
                    None => wanted.total() > 0 && done == wanted.total(),
                }
            }
            (None, Some(count)) => succeeded.total() >= count,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {n}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::SuccessPolicyRule;

    #[test]
    fn rules_by_indexes_and_count() {
        let policy = SuccessPolicy {
            rules: vec![
                SuccessPolicyRule {
                    succeeded_indexes: Some("0-2".into()),
                    succeeded_count: None,
                },
                SuccessPolicyRule {
                    succeeded_indexes: None,
                    succeeded_count: Some(4),
                },
            ],
        };
        let done = Indexes::parse("0,1,5", 10);
        assert_eq!(matched(Some(&policy), 10, &done), None);
        assert_eq!(
            matched(Some(&policy), 10, &done.with([2])),
            Some("Matched rules at index 0".into())
        );
        assert_eq!(
            matched(Some(&policy), 10, &Indexes::parse("4-7", 10)),
            Some("Matched rules at index 1".into())
        );
    }
}
