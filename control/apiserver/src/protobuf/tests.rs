//! Whole objects as kubectl and client libraries send them, decoded and
//! checked against the k8s-openapi types.

use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::decode;
use super::testing::{decode_as, deployment, envelope, go_meta, labels, s};

#[test]
fn namespace_as_kubectl_create_namespace_sends_it() {
    let namespace = pb_core::Namespace {
        metadata: Some(go_meta("blue", "")),
        spec: Some(pb_core::NamespaceSpec::default()),
        status: Some(pb_core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let body = envelope("v1", "Namespace", &namespace);
    let (object, typed) = decode_as::<k8s_openapi::api::core::v1::Namespace>(&body);
    // Empty omitempty strings are dropped; the zero generation stays (see
    // the module docs); the zero creationTimestamp is left out.
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "blue", "generation": 0},
            "spec": {},
            "status": {},
        })
    );
    assert_eq!(typed.metadata.name.as_deref(), Some("blue"));
    assert_eq!(typed.metadata.namespace, None);
}

#[test]
fn deployment_with_pod_template() {
    let body = envelope("apps/v1", "Deployment", &deployment());
    let (object, typed) = decode_as::<k8s_openapi::api::apps::v1::Deployment>(&body);
    assert_eq!(
        object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "generation": 0, "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "command": ["nginx", "-g", "daemon off;"],
                            "ports": [{"name": "http", "hostPort": 0, "containerPort": 80}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "EMPTY"},
                                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                            ],
                            "envFrom": [{"configMapRef": {"name": "settings", "optional": false}}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "100m"},
                            },
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5},
                            "stdin": false,
                            "tty": false,
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}],
                        "hostNetwork": false,
                    },
                },
                "strategy": {},
                "minReadySeconds": 0,
                "paused": false,
            },
            "status": {},
        })
    );
    let spec = typed.spec;
    assert_eq!(spec.replicas, Some(0));
    let pod = spec.template.spec.expect("pod spec");
    let limits = pod.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits["memory"].0, "128Mi");
}

#[test]
fn secret_bytes_are_base64() {
    let secret = pb_core::Secret {
        metadata: Some(go_meta("creds", "")),
        immutable: None,
        data: [
            ("token".to_string(), b"s3cr\xffet".to_vec()),
            ("empty".to_string(), Vec::new()),
        ]
        .into_iter()
        .collect(),
        string_data: [("plain".to_string(), "text".to_string())]
            .into_iter()
            .collect(),
        r#type: s("kubernetes.io/basic-auth"),
    };
    let body = envelope("v1", "Secret", &secret);
    let (object, typed) = decode_as::<k8s_openapi::api::core::v1::Secret>(&body);
    assert_eq!(
        object["data"],
        json!({"token": "czNjcv9ldA==", "empty": ""})
    );
    assert_eq!(object["stringData"], json!({"plain": "text"}));
    assert_eq!(object["type"], json!("kubernetes.io/basic-auth"));
    assert_eq!(typed.data.expect("data")["token"].0, b"s3cr\xffet".to_vec());
}

#[test]
fn service_ports_with_int_or_string() {
    let port = |name: &str, number: i32, target: IntOrString| pb_core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port: Some(number),
        target_port: Some(target),
        node_port: Some(0),
        app_protocol: None,
    };
    let service = pb_core::Service {
        metadata: Some(pb_meta::ObjectMeta {
            labels: labels(&[("app", "web")]),
            ..go_meta("web", "")
        }),
        spec: Some(pb_core::ServiceSpec {
            ports: vec![
                port(
                    "http",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    },
                ),
                port(
                    "metrics",
                    9090,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("metrics"),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("None"),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            external_ips: vec!["192.0.2.10".to_string()],
            health_check_node_port: Some(0),
            ..Default::default()
        }),
        status: Some(pb_core::ServiceStatus {
            load_balancer: Some(pb_core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let body = envelope("v1", "Service", &service);
    let (object, _) = decode_as::<k8s_openapi::api::core::v1::Service>(&body);
    assert_eq!(
        object["spec"],
        json!({
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 0},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics", "nodePort": 0},
            ],
            "selector": {"app": "web"},
            "clusterIP": "None",
            "type": "ClusterIP",
            "externalIPs": ["192.0.2.10"],
            "healthCheckNodePort": 0,
        })
    );
    assert_eq!(object["status"], json!({"loadBalancer": {}}));
}

#[test]
fn configmap_keeps_empty_values() {
    let config_map = pb_core::ConfigMap {
        metadata: Some(go_meta("settings", "")),
        immutable: Some(false),
        data: [
            ("a".to_string(), "1".to_string()),
            ("blank".to_string(), String::new()),
        ]
        .into_iter()
        .collect(),
        binary_data: [("bin".to_string(), vec![0u8, 1, 2])].into_iter().collect(),
    };
    let body = envelope("v1", "ConfigMap", &config_map);
    let (object, _) = decode_as::<k8s_openapi::api::core::v1::ConfigMap>(&body);
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "generation": 0},
            "immutable": false,
            "data": {"a": "1", "blank": ""},
            "binaryData": {"bin": "AAEC"},
        })
    );
}

fn job_spec() -> k8s_pb::api::batch::v1::JobSpec {
    k8s_pb::api::batch::v1::JobSpec {
        backoff_limit: Some(0),
        template: Some(pb_core::PodTemplateSpec {
            metadata: Some(pb_meta::ObjectMeta::default()),
            spec: Some(pb_core::PodSpec {
                containers: vec![pb_core::Container {
                    name: s("pi"),
                    image: s("perl"),
                    command: vec!["perl".to_string(), "-e".to_string(), "print 1".to_string()],
                    resources: Some(pb_core::ResourceRequirements::default()),
                    ..Default::default()
                }],
                restart_policy: s("Never"),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn job_and_cronjob() {
    use k8s_pb::api::batch::v1 as batch;
    let job = batch::Job {
        metadata: Some(go_meta("pi", "")),
        spec: Some(job_spec()),
        status: Some(batch::JobStatus {
            active: Some(0),
            succeeded: Some(0),
            failed: Some(0),
            ..Default::default()
        }),
    };
    let body = envelope("batch/v1", "Job", &job);
    let (object, _) = decode_as::<k8s_openapi::api::batch::v1::Job>(&body);
    assert_eq!(
        object["spec"],
        json!({
            "backoffLimit": 0,
            "template": {
                "metadata": {},
                "spec": {
                    "containers": [{"name": "pi", "image": "perl", "command": ["perl", "-e", "print 1"], "resources": {}}],
                    "restartPolicy": "Never",
                },
            },
        })
    );
    assert_eq!(
        object["status"],
        json!({"active": 0, "succeeded": 0, "failed": 0})
    );

    let cron_job = batch::CronJob {
        metadata: Some(go_meta("nightly", "")),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: None,
            concurrency_policy: s(""),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    name: s("nightly"),
                    ..Default::default()
                }),
                spec: Some(job_spec()),
            }),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus::default()),
    };
    let body = envelope("batch/v1", "CronJob", &cron_job);
    let (object, typed) = decode_as::<k8s_openapi::api::batch::v1::CronJob>(&body);
    assert_eq!(object["spec"]["schedule"], json!("0 3 * * *"));
    assert_eq!(
        object["spec"]["jobTemplate"]["metadata"],
        json!({"name": "nightly"})
    );
    assert_eq!(
        typed
            .spec
            .job_template
            .spec
            .expect("job spec")
            .backoff_limit,
        Some(0)
    );
}

#[test]
fn self_subject_access_review_as_auth_can_i_sends_it() {
    use k8s_pb::api::authorization::v1 as authz;
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(go_meta("", "")),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("default"),
                verb: s("create"),
                group: s(""),
                version: s(""),
                resource: s("pods"),
                subresource: s(""),
                name: s(""),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: s(""),
            evaluation_error: s(""),
        }),
    };
    let body = envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &review,
    );
    let (object, _) =
        decode_as::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>(&body);
    assert_eq!(
        object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"generation": 0},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false, "denied": false},
        })
    );
}

#[test]
fn subject_access_review_extra_is_a_map_of_arrays() {
    use k8s_pb::api::authorization::v1 as authz;
    let review = authz::SubjectAccessReview {
        metadata: Some(pb_meta::ObjectMeta::default()),
        spec: Some(authz::SubjectAccessReviewSpec {
            user: s("alice"),
            groups: vec!["dev".to_string()],
            extra: [(
                "scopes".to_string(),
                authz::ExtraValue {
                    items: vec!["a".to_string(), "b".to_string()],
                },
            )]
            .into_iter()
            .collect(),
            non_resource_attributes: Some(authz::NonResourceAttributes {
                path: s("/healthz"),
                verb: s("get"),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("authorization.k8s.io/v1", "SubjectAccessReview", &review);
    let (object, _) = decode_as::<k8s_openapi::api::authorization::v1::SubjectAccessReview>(&body);
    assert_eq!(object["spec"]["extra"], json!({"scopes": ["a", "b"]}));
}

#[test]
fn eviction_keeps_a_zero_grace_period() {
    let eviction = k8s_pb::api::policy::v1::Eviction {
        metadata: Some(go_meta("web-1", "default")),
        delete_options: Some(pb_meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(pb_meta::Preconditions {
                uid: s("0f6b1c2e-1111-2222-3333-444455556666"),
                resource_version: None,
            }),
            ..Default::default()
        }),
    };
    let body = envelope("policy/v1", "Eviction", &eviction);
    let (object, _) = decode_as::<k8s_openapi::api::policy::v1::Eviction>(&body);
    assert_eq!(
        object,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "default", "generation": 0},
            "deleteOptions": {
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "0f6b1c2e-1111-2222-3333-444455556666"},
            },
        })
    );
}

#[test]
fn token_request_as_kubectl_create_token_sends_it() {
    use k8s_pb::api::authentication::v1 as authn;
    let request = authn::TokenRequest {
        metadata: Some(go_meta("builder", "default")),
        spec: Some(authn::TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc".to_string()],
            expiration_seconds: Some(600),
            bound_object_ref: None,
        }),
        status: Some(authn::TokenRequestStatus {
            token: s(""),
            expiration_timestamp: Some(pb_meta::Time::default()),
        }),
    };
    let body = envelope("authentication.k8s.io/v1", "TokenRequest", &request);
    let object = decode(&body).expect("decodes").object;
    assert_eq!(
        object["spec"],
        json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600})
    );
    // token is required (not omitempty) so its "" stays; the zero
    // expirationTimestamp (null upstream) is left out.
    assert_eq!(object["status"], json!({"token": ""}));
}

#[test]
fn times_and_micro_times() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("node-a"),
            creation_timestamp: Some(pb_meta::Time {
                seconds: Some(1_704_164_705),
                nanos: Some(999_999_999),
            }),
            deletion_timestamp: None,
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-a"),
            lease_duration_seconds: Some(40),
            acquire_time: Some(pb_meta::MicroTime {
                seconds: Some(1_704_164_705),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(pb_meta::MicroTime {
                seconds: Some(0),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
    };
    let body = envelope("coordination.k8s.io/v1", "Lease", &lease);
    let (object, typed) = decode_as::<k8s_openapi::api::coordination::v1::Lease>(&body);
    // Time drops the fraction; MicroTime keeps microseconds.
    assert_eq!(
        object["metadata"]["creationTimestamp"],
        json!("2024-01-02T03:05:05Z")
    );
    assert_eq!(
        object["spec"]["acquireTime"],
        json!("2024-01-02T03:05:05.123456Z")
    );
    assert_eq!(
        object["spec"]["renewTime"],
        json!("1970-01-01T00:00:00.000000Z")
    );
    let created = typed
        .metadata
        .creation_timestamp
        .expect("creationTimestamp");
    assert_eq!(created.0.as_second(), 1_704_164_705);
}

#[test]
fn raw_extension_and_fields_v1_embed_json() {
    let revision = k8s_pb::api::apps::v1::ControllerRevision {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("web-1"),
            managed_fields: vec![pb_meta::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: Some(pb_meta::Time {
                    seconds: Some(1_704_164_645),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(pb_meta::FieldsV1 {
                    raw: Some(br#"{"f:data":{}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..Default::default()
        }),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":[1,2]}}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    let body = envelope("apps/v1", "ControllerRevision", &revision);
    let (object, _) = decode_as::<k8s_openapi::api::apps::v1::ControllerRevision>(&body);
    assert_eq!(object["data"], json!({"spec": {"template": {"x": [1, 2]}}}));
    assert_eq!(
        object["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": "2024-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {}},
        }])
    );

    // An embedded object may itself be Kubernetes protobuf.
    let inner = envelope(
        "v1",
        "ConfigMap",
        &pb_core::ConfigMap {
            metadata: Some(go_meta("c", "")),
            ..Default::default()
        },
    );
    let revision = k8s_pb::api::apps::v1::ControllerRevision {
        metadata: None,
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(inner) }),
        revision: None,
    };
    let object = decode(&envelope("apps/v1", "ControllerRevision", &revision))
        .expect("decodes")
        .object;
    assert_eq!(
        object["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "generation": 0}})
    );

    let revision = k8s_pb::api::apps::v1::ControllerRevision {
        metadata: None,
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(b"not json".to_vec()),
        }),
        revision: None,
    };
    let error = decode(&envelope("apps/v1", "ControllerRevision", &revision)).unwrap_err();
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[test]
fn custom_resource_definition_schema_unions() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    let string_schema = || ext::JsonSchemaProps {
        r#type: s("string"),
        ..Default::default()
    };
    let schema = ext::JsonSchemaProps {
        r#type: s("object"),
        properties: [
            (
                "list".to_string(),
                ext::JsonSchemaProps {
                    r#type: s("array"),
                    items: Some(Box::new(ext::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(string_schema())),
                        j_son_schemas: vec![],
                    })),
                    ..Default::default()
                },
            ),
            (
                "mode".to_string(),
                ext::JsonSchemaProps {
                    r#type: s("string"),
                    r#enum: vec![
                        ext::Json {
                            raw: Some(br#""a""#.to_vec()),
                        },
                        ext::Json {
                            raw: Some(br#""b""#.to_vec()),
                        },
                    ],
                    default: Some(ext::Json {
                        raw: Some(br#""a""#.to_vec()),
                    }),
                    ..Default::default()
                },
            ),
        ]
        .into_iter()
        .collect(),
        additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let crd = ext::CustomResourceDefinition {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("widgets.example.com"),
            ..Default::default()
        }),
        spec: Some(ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(ext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(ext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd);
    let (object, _) =
        decode_as::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&body);
    assert_eq!(
        object["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({
            "type": "object",
            "properties": {
                "list": {"type": "array", "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            },
            "additionalProperties": false,
            "x-kubernetes-preserve-unknown-fields": true,
        })
    );
}

/// admissionregistration.k8s.io/v1 MutatingAdmissionPolicies (served in v1 since 1.36, the
/// wire form carried over from v1beta1: the table's promoted messages) decode as the e2e
/// suite's client sends them.
#[test]
fn mutating_admission_policy_in_v1() {
    use k8s_pb::api::admissionregistration::v1beta1 as pb_adm;
    let policy = pb_adm::MutatingAdmissionPolicy {
        metadata: Some(go_meta("add-label", "")),
        spec: Some(pb_adm::MutatingAdmissionPolicySpec {
            failure_policy: s("Fail"),
            reinvocation_policy: s("IfNeeded"),
            mutations: vec![pb_adm::Mutation {
                patch_type: s("ApplyConfiguration"),
                apply_configuration: Some(pb_adm::ApplyConfiguration {
                    expression: s("Object{metadata: Object.metadata{labels: {\"a\": \"b\"}}}"),
                }),
                json_patch: None,
            }],
            ..Default::default()
        }),
    };
    let body = envelope(
        "admissionregistration.k8s.io/v1",
        "MutatingAdmissionPolicy",
        &policy,
    );
    let decoded = decode(&body).expect("a v1 MutatingAdmissionPolicy decodes");
    let spec = &decoded.object["spec"];
    assert_eq!(decoded.object["kind"], "MutatingAdmissionPolicy");
    assert_eq!(spec["failurePolicy"], "Fail");
    assert_eq!(spec["reinvocationPolicy"], "IfNeeded");
    assert_eq!(spec["mutations"][0]["patchType"], "ApplyConfiguration");
    assert!(spec["mutations"][0]["applyConfiguration"]["expression"]
        .as_str()
        .unwrap()
        .starts_with("Object{"));
}
