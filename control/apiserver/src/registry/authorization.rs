//! authorization.k8s.io access reviews (`pkg/registry/authorization`): create-only, nothing
//! stored. Authorization is not enforced yet (a later issue), so every authenticated user may do
//! everything, and the answer says so.

use serde_json::{json, Value};

use crate::registry::{Review, Strategy};

/// SelfSubjectAccessReview and SubjectAccessReview: allowed.
pub struct AccessReviews;

pub static ACCESS_REVIEWS: AccessReviews = AccessReviews;

impl Strategy for AccessReviews {
    fn review(&self, review: &Review, mut object: Value) -> Value {
        let user = review.user;
        object["status"] = json!({"allowed": true, "reason": format!("user {:?} is allowed: authorization is not enforced yet", user.name)});
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}

/// SelfSubjectRulesReview: every verb on every resource.
pub struct RulesReviews;

pub static RULES_REVIEWS: RulesReviews = RulesReviews;

impl Strategy for RulesReviews {
    fn review(&self, _review: &Review, mut object: Value) -> Value {
        object["status"] = json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}
