//! Building protobuf bodies the way kubectl does, for the tests.

use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::encoding::{encode_key, WireType};
use prost::Message as _;
use serde_json::{json, Value};

use super::{decode, MAGIC};

/// What kubectl sends: magic + runtime.Unknown around the object.
pub(super) fn envelope(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Decodes and checks the JSON deserializes into the k8s-openapi type
/// without losing anything: serializing that back gives the same JSON
/// (k8s-openapi ignores unknown keys, so a misnamed field would vanish).
pub(super) fn decode_as<T>(body: &[u8]) -> (Value, T)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let decoded = decode(body).expect("decodes");
    assert_eq!(decoded.object["apiVersion"], json!(decoded.api_version));
    assert_eq!(decoded.object["kind"], json!(decoded.kind));
    let typed: T =
        serde_json::from_value(decoded.object.clone()).expect("fits the k8s-openapi type");
    let again = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(
        again, decoded.object,
        "k8s-openapi round trip changed the object"
    );
    (decoded.object, typed)
}

pub(super) fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// ObjectMeta as Go's marshaller writes it: every non-pointer field is
/// present, the zero creationTimestamp as an empty message.
pub(super) fn go_meta(name: &str, namespace: &str) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(pb_meta::Time::default()),
        ..Default::default()
    }
}

pub(super) fn quantity(text: &str) -> Quantity {
    Quantity { string: s(text) }
}
pub(super) fn deployment() -> k8s_pb::api::apps::v1::Deployment {
    use k8s_pb::api::apps::v1 as apps;
    let app = labels(&[("app", "web")]);
    let container = pb_core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        command: vec![
            "nginx".to_string(),
            "-g".to_string(),
            "daemon off;".to_string(),
        ],
        ports: vec![pb_core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s(""),
            host_ip: s(""),
        }],
        env: vec![
            pb_core::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            // An explicitly empty value is a map/list element of its own
            // and must survive.
            pb_core::EnvVar {
                name: s("EMPTY"),
                value: s(""),
                value_from: None,
            },
            pb_core::EnvVar {
                name: s("TOKEN"),
                value: s(""),
                value_from: Some(pb_core::EnvVarSource {
                    secret_key_ref: Some(pb_core::SecretKeySelector {
                        local_object_reference: Some(pb_core::LocalObjectReference {
                            name: s("creds"),
                        }),
                        key: s("token"),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
        ],
        env_from: vec![pb_core::EnvFromSource {
            prefix: s(""),
            config_map_ref: Some(pb_core::ConfigMapEnvSource {
                local_object_reference: Some(pb_core::LocalObjectReference {
                    name: s("settings"),
                }),
                optional: Some(false),
            }),
            secret_ref: None,
        }],
        resources: Some(pb_core::ResourceRequirements {
            limits: [
                ("cpu".to_string(), quantity("500m")),
                ("memory".to_string(), quantity("128Mi")),
            ]
            .into_iter()
            .collect(),
            requests: [("cpu".to_string(), quantity("100m"))]
                .into_iter()
                .collect(),
            claims: vec![],
        }),
        liveness_probe: Some(pb_core::Probe {
            handler: Some(pb_core::ProbeHandler {
                http_get: Some(pb_core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    }),
                    host: s(""),
                    scheme: s(""),
                    http_headers: vec![],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            ..Default::default()
        }),
        termination_message_path: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(pb_meta::ObjectMeta {
            labels: app.clone(),
            ..go_meta("web", "default")
        }),
        spec: Some(apps::DeploymentSpec {
            // kubectl create deployment --replicas=0: a pointer to zero.
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: app.clone(),
                match_expressions: vec![],
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels: app,
                    creation_timestamp: Some(pb_meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(pb_core::PodSpec {
                    containers: vec![container],
                    volumes: vec![pb_core::Volume {
                        name: s("config"),
                        volume_source: Some(pb_core::VolumeSource {
                            config_map: Some(pb_core::ConfigMapVolumeSource {
                                local_object_reference: Some(pb_core::LocalObjectReference {
                                    name: s("settings"),
                                }),
                                default_mode: Some(0o644),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    restart_policy: s(""),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    }
}
/// Appends a raw field to an encoded message.
pub(super) fn push_field(buf: &mut Vec<u8>, tag: u32, wire: u8, payload: &[u8]) {
    let wire = WireType::try_from(u64::from(wire)).expect("a wire type");
    encode_key(tag, wire, buf);
    buf.extend_from_slice(payload);
}

pub(super) fn wrap_raw(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: None,
        content_type: None,
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}
