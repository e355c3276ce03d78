//! authentication.k8s.io reviews, create-only and stored nowhere: TokenReview
//! (`pkg/registry/authentication/tokenreview`) answers with the API server's own authenticator,
//! which is how the kubelet checks the bearer tokens its API receives (upstream's webhook token
//! authenticator); SelfSubjectReview (`selfsubjectreview`) tells callers who they are
//! (`kubectl auth whoami`).

use serde_json::{json, Value};

use crate::registry::{Review, Strategy};

pub struct TokenReviews;

pub static TOKEN_REVIEWS: TokenReviews = TokenReviews;

impl Strategy for TokenReviews {
    fn review(&self, review: &Review, mut object: Value) -> Value {
        let token = object
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let audiences = object
            .pointer("/spec/audiences")
            .cloned()
            .unwrap_or(json!([]));
        let audiences = review.audiences.as_ref().map_or(audiences, |a| json!(a));
        object["status"] = match (review.authenticate)(&token) {
            Some(user) if !token.is_empty() => {
                let mut status = json!({
                    "authenticated": true,
                    "user": {"username": user.name, "uid": user.uid, "groups": user.groups},
                    "audiences": audiences,
                });
                if !user.extra.is_empty() {
                    status["user"]["extra"] = json!(user.extra);
                }
                status
            }
            _ => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}

/// SelfSubjectReview: the requesting user's attributes.
pub struct SelfSubjectReviews;

pub static SELF_SUBJECT_REVIEWS: SelfSubjectReviews = SelfSubjectReviews;

impl Strategy for SelfSubjectReviews {
    fn review(&self, review: &Review, mut object: Value) -> Value {
        let user = review.user;
        object["status"] = json!({
            "userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups},
        });
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}
