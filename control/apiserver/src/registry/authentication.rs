//! authentication.k8s.io TokenReview (`pkg/registry/authentication/tokenreview`): create-only,
//! nothing stored. It answers with the API server's own authenticator, which is how the
//! kubelet checks the bearer tokens its API receives (upstream's webhook token authenticator).

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
        object["status"] = match (review.authenticate)(&token) {
            Some(user) if !token.is_empty() => json!({
                "authenticated": true,
                "user": {"username": user.name, "uid": user.uid, "groups": user.groups},
                "audiences": audiences,
            }),
            _ => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}
