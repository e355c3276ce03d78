//! API errors as Kubernetes `Status` objects (apimachinery/pkg/api/errors): every failure a client
//! sees has the code, reason and message upstream would give, so kubectl prints
//! `Error from server (<Reason>): <message>`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel through every `Result` of a request, and most carry none.
    pub details: Option<Box<StatusDetails>>,
    /// `metadata.continue` of the Status: a 410 for a compacted continue token carries one to
    /// go on with an inconsistent list (upstream's `handleCompactedErrorForPaging`).
    pub continue_token: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The resource an error is about, as upstream's errors name it: group, plural and kind. Every
/// served resource converts into one (`resources::ResourceInfo`), so this module needs no
/// resource table.
#[derive(Clone, Copy, Debug)]
pub struct Kind<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub kind: &'a str,
}

impl Kind<'_> {
    /// `details` naming an object of this kind (upstream puts the plural in `kind` for most
    /// errors and the kind for Invalid).
    fn details(&self, name: &str, kind: &str) -> StatusDetails {
        StatusDetails {
            name: Some(name.to_string()),
            group: Some(self.group.to_string()),
            kind: Some(kind.to_string()),
            ..StatusDetails::default()
        }
    }

    /// `pods`, `deployments.apps`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// One field-level validation failure (`details.causes[]` of a 422 Invalid).
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

impl FieldError {
    /// The `details.causes[]` entry.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.into()),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> FieldError {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {shown}: {}", detail.as_ref()),
        }
    }
    /// `field.Invalid` with the value left out (upstream's `OmitValueType`, for objects and
    /// lists).
    pub fn invalid_omitted(field: impl Into<String>, detail: impl AsRef<str>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}", detail.as_ref()),
        }
    }
    pub fn required(field: impl Into<String>, detail: impl AsRef<str>) -> FieldError {
        let detail = detail.as_ref();
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            message: if detail.is_empty() {
                "Required value".into()
            } else {
                format!("Required value: {detail}")
            },
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {}", detail.as_ref()),
        }
    }
    pub fn not_supported(
        field: impl Into<String>,
        value: &Value,
        supported: &[&str],
    ) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        }
    }
    /// A value of the wrong type (`field.TypeInvalid`): shown as `Invalid value`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl AsRef<str>,
    ) -> FieldError {
        FieldError {
            reason: "FieldValueTypeInvalid",
            ..FieldError::invalid(field, value, detail)
        }
    }
    /// `field.TooLong`: the value is left out of the message.
    pub fn too_long(field: impl Into<String>, max: u64) -> FieldError {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            field: field.into(),
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} {unit}"),
        }
    }
    /// `field.TooMany`: a list or map with more entries than allowed.
    pub fn too_many(field: impl Into<String>, actual: u64, max: u64) -> FieldError {
        let unit = if max == 1 { "item" } else { "items" };
        FieldError {
            field: field.into(),
            reason: "FieldValueTooMany",
            message: format!("Too many: {actual}: must have at most {max} {unit}"),
        }
    }
    /// `field.NotSupported` with the allowed values already quoted.
    pub fn not_supported_values(
        field: impl Into<String>,
        value: &Value,
        supported: &[String],
    ) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
        }
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            continue_token: None,
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
    pub fn not_found<'a>(info: impl Into<Kind<'a>>, name: &str) -> ApiError {
        let info = info.into();
        ApiError {
            continue_token: None,
            details: Some(Box::new(info.details(name, info.resource))),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", info.qualified()),
            )
        }
    }
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
    pub fn already_exists<'a>(info: impl Into<Kind<'a>>, name: &str) -> ApiError {
        let info = info.into();
        ApiError {
            continue_token: None,
            details: Some(Box::new(info.details(name, info.resource))),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", info.qualified()),
            )
        }
    }
    pub fn conflict<'a>(info: impl Into<Kind<'a>>, name: &str, why: &str) -> ApiError {
        let info = info.into();
        ApiError {
            continue_token: None,
            details: Some(Box::new(info.details(name, info.resource))),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    info.qualified()
                ),
            )
        }
    }
    pub fn modified<'a>(info: impl Into<Kind<'a>>, name: &str) -> ApiError {
        let info = info.into();
        ApiError::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn invalid<'a>(info: impl Into<Kind<'a>>, name: &str, causes: Vec<FieldError>) -> ApiError {
        let info = info.into();
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let kind_group = if info.group.is_empty() {
            info.kind.to_string()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        let causes: Vec<StatusCause> = causes.iter().map(FieldError::to_cause).collect();
        ApiError {
            continue_token: None,
            details: Some(Box::new(StatusDetails {
                causes: Some(causes),
                ..info.details(name, info.kind)
            })),
            ..ApiError::new(
                422,
                "Invalid",
                format!("{kind_group} \"{name}\" is invalid: {summary}"),
            )
        }
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"))
    }
    pub fn not_acceptable() -> ApiError {
        ApiError::new(406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io")
    }
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }
    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    pub fn to_status(&self) -> Value {
        let status = Status {
            metadata: ListMeta {
                continue_: self.continue_token.clone(),
                ..ListMeta::default()
            },
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.into()),
            code: Some(self.code.into()),
            details: self.details.as_deref().cloned(),
        };
        serde_json::to_value(status).expect("a Status serializes")
    }
}

impl From<etcd_client::Error> for ApiError {
    fn from(e: etcd_client::Error) -> ApiError {
        // Storage unreachable or refusing: a 5xx the client may retry, never a panic.
        ApiError::new(500, "InternalError", format!("storage error: {e}"))
    }
}

/// A `Status` of success (deletecollection, eviction, deletes that complete immediately).
pub fn success_status(details: Option<StatusDetails>) -> Value {
    let status = Status {
        metadata: ListMeta::default(),
        status: Some("Success".into()),
        details,
        ..Status::default()
    };
    serde_json::to_value(status).expect("a Status serializes")
}
