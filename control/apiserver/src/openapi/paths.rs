//! A resource's paths and operations in an OpenAPI v3 document, laid out as kube-apiserver's
//! endpoint installer lays them out: the collection, the item, the all-namespaces list and the
//! subresources, each path item declaring its path parameters (`{namespace}`, `{name}`,
//! `{path}`) and `pretty`, each operation upstream's `operationId`
//! (`readCoreV1NamespacedPod`), tag (`core_v1`), `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind`. Client generators need the declared path parameters;
//! kubectl reads the group-version-kind and the query parameters (`fieldValidation` tells it
//! the server validates fields).

use serde_json::{json, Map, Value};

use super::parameters;
use crate::resources::{ResourceInfo, Sub};

/// The `#/components/schemas/...` references an operation can name.
pub(super) struct Refs {
    pub kind: String,
    pub list: String,
    pub patch: String,
    pub delete_options: String,
    pub status: String,
    /// A subresource's body and reply (`None`: plain text, as for logs, exec or proxies).
    pub sub: Box<dyn Fn(Sub) -> Option<String>>,
}

/// `core_v1`, `rbacAuthorization_v1`: upstream's tag for a group version.
pub(super) fn tag(group: &str, version: &str) -> String {
    let mut words = group_words(group).into_iter();
    let mut tag = words.next().unwrap_or_default();
    for w in words {
        tag.push_str(&upper_first(&w));
    }
    format!("{tag}_{version}")
}

/// `CoreV1`, `RbacAuthorizationV1`, `StableExampleComV1`: the group version in operation ids.
fn id_prefix(group: &str, version: &str) -> String {
    let mut s: String = group_words(group).iter().map(|w| upper_first(w)).collect();
    s.push_str(&upper_first(version));
    s
}

fn group_words(group: &str) -> Vec<String> {
    if group.is_empty() {
        return vec!["core".into()];
    }
    let short = group.strip_suffix(".k8s.io").unwrap_or(group);
    short.split('.').map(str::to_string).collect()
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn string_schema() -> Value {
    json!({"type": "string", "uniqueItems": true})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true, "schema": string_schema()})
}

/// A query parameter by name, from upstream's table.
fn query(name: &str) -> Value {
    let (_, ty, description) = parameters::QUERY
        .iter()
        .find(|(n, _, _)| *n == name)
        .copied()
        .unwrap_or((name, "string", ""));
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn field_manager(patch: bool) -> Value {
    let description = if patch {
        parameters::FIELD_MANAGER_PATCH
    } else {
        parameters::FIELD_MANAGER
    };
    json!({"name": "fieldManager", "in": "query", "description": description, "schema": string_schema()})
}

const LIST_QUERY: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];

/// What an operation takes and answers.
enum Body {
    None,
    /// The object itself (create, replace).
    Object(String),
    /// A patch document of any of the served patch types.
    Patch {
        patch: String,
    },
    /// Optional DeleteOptions.
    Delete(String),
}

struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    query: Vec<Value>,
    body: Body,
    /// The reply's schema reference (`None`: a string).
    reply: Option<String>,
    codes: &'static [(&'static str, &'static str)],
    gvk: Value,
    /// Watchable lists also answer in the streaming media types.
    list: bool,
}

const OK: (&str, &str) = ("200", "OK");
const CREATED: (&str, &str) = ("201", "Created");
const ACCEPTED: (&str, &str) = ("202", "Accepted");
const UNAUTHORIZED: (&str, &str) = ("401", "Unauthorized");

impl Op {
    fn to_value(&self, tag: &str, custom: bool) -> Value {
        let mut media: Vec<&str> = vec!["application/json", "application/yaml"];
        if !custom {
            media.push("application/vnd.kubernetes.protobuf");
        }
        if self.list {
            media.push("application/json;stream=watch");
            if !custom {
                media.push("application/vnd.kubernetes.protobuf;stream=watch");
            }
        }
        let reply_schema = match &self.reply {
            Some(r) => json!({"$ref": r}),
            None => json!({"type": "string"}),
        };
        let mut responses = Map::new();
        for (code, description) in self.codes {
            let mut resp = json!({"description": description});
            if *code != "401" {
                let mut content = Map::new();
                if self.reply.is_some() {
                    for m in &media {
                        content.insert((*m).into(), json!({"schema": reply_schema}));
                    }
                } else {
                    content.insert("*/*".into(), json!({"schema": reply_schema}));
                }
                resp["content"] = Value::Object(content);
            }
            responses.insert((*code).into(), resp);
        }
        let mut op = json!({
            "tags": [tag],
            "description": self.description,
            "operationId": self.id,
            "responses": responses,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        if !self.query.is_empty() {
            op["parameters"] = Value::Array(self.query.clone());
        }
        let body = match &self.body {
            Body::None => None,
            Body::Object(r) => Some((vec!["*/*"], r, true)),
            Body::Delete(r) => Some((vec!["*/*"], r, false)),
            // Strategic merge patch is left out on purpose: kubectl then computes its patches
            // from its compiled-in types, which carry the merge keys.
            Body::Patch { patch } => Some((
                vec![
                    "application/apply-patch+yaml",
                    "application/json-patch+json",
                    "application/merge-patch+json",
                ],
                patch,
                true,
            )),
        };
        if let Some((types, r, required)) = body {
            let mut content = Map::new();
            for t in types {
                content.insert(t.into(), json!({"schema": {"$ref": r}}));
            }
            op["requestBody"] = json!({"content": content});
            if required {
                op["requestBody"]["required"] = json!(true);
            }
        }
        op
    }
}

fn write_query(patch: bool) -> Vec<Value> {
    let mut q = vec![
        query("dryRun"),
        field_manager(patch),
        query("fieldValidation"),
    ];
    if patch {
        q.push(query("force"));
    }
    q
}

fn delete_query() -> Vec<Value> {
    vec![
        query("dryRun"),
        query("gracePeriodSeconds"),
        query("orphanDependents"),
        query("propagationPolicy"),
    ]
}

/// Adds the paths of one resource to `paths`.
pub(super) fn add(r: &ResourceInfo, refs: &Refs, paths: &mut Map<String, Value>) {
    let custom = r.custom.is_some();
    let tag = tag(r.group, r.version);
    let gv = id_prefix(r.group, r.version);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let kind = r.kind;
    let kind_gvk = gvk(r.group, r.version, kind);
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let (collection, scope_params) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.resource),
            vec![path_param("namespace", parameters::NAMESPACE)],
        )
    } else {
        (format!("{base}/{}", r.resource), vec![])
    };
    let name_param = |of: &str| path_param("name", &format!("name of the {of}"));
    let can = |verb: &str| r.verbs.contains(&verb);
    let mut insert = |path: String, params: Vec<Value>, ops: Vec<Op>| {
        if ops.is_empty() {
            return;
        }
        let mut item = Map::new();
        for op in &ops {
            item.insert(op.method.into(), op.to_value(&tag, custom));
        }
        let mut params = params;
        params.push(query("pretty"));
        item.insert("parameters".into(), Value::Array(params));
        paths.insert(path, Value::Object(item));
    };
    let op = |method, action, id: String, description: String| Op {
        method,
        action,
        id,
        description,
        query: vec![],
        body: Body::None,
        reply: Some(refs.kind.clone()),
        codes: &[OK, UNAUTHORIZED],
        gvk: kind_gvk.clone(),
        list: false,
    };

    // The collection.
    let mut ops = Vec::new();
    if can("list") {
        ops.push(Op {
            query: LIST_QUERY.iter().map(|n| query(n)).collect(),
            reply: Some(refs.list.clone()),
            list: true,
            ..op(
                "get",
                "list",
                format!("list{gv}{scope}{kind}"),
                format!("list or watch objects of kind {kind}"),
            )
        });
    }
    if can("create") {
        ops.push(Op {
            query: write_query(false),
            body: Body::Object(refs.kind.clone()),
            codes: &[OK, CREATED, ACCEPTED, UNAUTHORIZED],
            ..op(
                "post",
                "post",
                format!("create{gv}{scope}{kind}"),
                format!("create {} {kind}", article(kind)),
            )
        });
    }
    if can("deletecollection") {
        let mut q = delete_query();
        q.extend(
            LIST_QUERY
                .iter()
                .filter(|n| **n != "watch" && **n != "allowWatchBookmarks")
                .map(|n| query(n)),
        );
        ops.push(Op {
            query: q,
            body: Body::Delete(refs.delete_options.clone()),
            reply: Some(refs.status.clone()),
            ..op(
                "delete",
                "deletecollection",
                format!("delete{gv}Collection{scope}{kind}"),
                format!("delete collection of {kind}"),
            )
        });
    }
    insert(collection.clone(), scope_params.clone(), ops);

    // The item.
    let mut item_params = vec![name_param(kind)];
    item_params.extend(scope_params.iter().cloned());
    let mut ops = Vec::new();
    if can("get") {
        ops.push(op(
            "get",
            "get",
            format!("read{gv}{scope}{kind}"),
            format!("read the specified {kind}"),
        ));
    }
    if can("update") {
        ops.push(Op {
            query: write_query(false),
            body: Body::Object(refs.kind.clone()),
            codes: &[OK, CREATED, UNAUTHORIZED],
            ..op(
                "put",
                "put",
                format!("replace{gv}{scope}{kind}"),
                format!("replace the specified {kind}"),
            )
        });
    }
    if can("delete") {
        ops.push(Op {
            query: delete_query(),
            body: Body::Delete(refs.delete_options.clone()),
            codes: &[OK, ACCEPTED, UNAUTHORIZED],
            ..op(
                "delete",
                "delete",
                format!("delete{gv}{scope}{kind}"),
                format!("delete {} {kind}", article(kind)),
            )
        });
    }
    if can("patch") {
        ops.push(Op {
            query: write_query(true),
            body: Body::Patch {
                patch: refs.patch.clone(),
            },
            codes: &[OK, CREATED, UNAUTHORIZED],
            ..op(
                "patch",
                "patch",
                format!("patch{gv}{scope}{kind}"),
                format!("partially update the specified {kind}"),
            )
        });
    }
    let item = format!("{collection}/{{name}}");
    insert(item.clone(), item_params.clone(), ops);

    // Every namespace's objects.
    if r.namespaced && can("list") {
        insert(
            format!("{base}/{}", r.resource),
            vec![],
            vec![Op {
                query: LIST_QUERY.iter().map(|n| query(n)).collect(),
                reply: Some(refs.list.clone()),
                list: true,
                ..op(
                    "get",
                    "list",
                    format!("list{gv}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                )
            }],
        );
    }

    // Subresources.
    for &sub in r.subresources {
        let (sg, sv, skind, verbs) = sub.discovery(r);
        let name = sub.name();
        let suffix = upper_first(name);
        let sub_gvk = gvk(sg, sv, skind);
        let reply = (refs.sub)(sub);
        let sub_op = |method, action, id: String, description: String| Op {
            reply: reply.clone(),
            gvk: sub_gvk.clone(),
            ..op(method, action, id, description)
        };
        let mut ops = Vec::new();
        let connect = matches!(sub, Sub::Exec | Sub::Attach | Sub::PortForward | Sub::Proxy);
        if connect {
            let methods: &[&str] = if sub == Sub::Proxy {
                &["get", "put", "post", "delete", "options", "head", "patch"]
            } else {
                &["get", "post"]
            };
            let item_ops = |with_path: bool| -> Vec<Op> {
                methods
                    .iter()
                    .map(|m| {
                        let upper = upper_first(m);
                        sub_op(
                            m_static(m),
                            "connect",
                            format!(
                                "connect{gv}{upper}{scope}{kind}{suffix}{}",
                                if with_path { "WithPath" } else { "" }
                            ),
                            format!("connect {} requests to {name} of {kind}", m.to_uppercase()),
                        )
                    })
                    .collect()
            };
            insert(
                format!("{item}/{name}"),
                item_params.clone(),
                item_ops(false),
            );
            if sub == Sub::Proxy {
                let mut params = item_params.clone();
                params.push(path_param("path", parameters::PATH));
                insert(format!("{item}/{name}/{{path}}"), params, item_ops(true));
            }
            continue;
        }
        for verb in verbs {
            match *verb {
                "get" => ops.push(Op {
                    codes: &[OK, UNAUTHORIZED],
                    ..sub_op(
                        "get",
                        "get",
                        format!("read{gv}{scope}{kind}{suffix}"),
                        format!("read {name} of the specified {kind}"),
                    )
                }),
                "update" => ops.push(Op {
                    query: write_query(false),
                    body: Body::Object(reply.clone().unwrap_or_else(|| refs.kind.clone())),
                    codes: &[OK, CREATED, UNAUTHORIZED],
                    ..sub_op(
                        "put",
                        "put",
                        format!("replace{gv}{scope}{kind}{suffix}"),
                        format!("replace {name} of the specified {kind}"),
                    )
                }),
                "patch" => ops.push(Op {
                    query: write_query(true),
                    body: Body::Patch {
                        patch: refs.patch.clone(),
                    },
                    codes: &[OK, CREATED, UNAUTHORIZED],
                    ..sub_op(
                        "patch",
                        "patch",
                        format!("patch{gv}{scope}{kind}{suffix}"),
                        format!("partially update {name} of the specified {kind}"),
                    )
                }),
                "create" => ops.push(Op {
                    query: write_query(false),
                    body: Body::Object(reply.clone().unwrap_or_else(|| refs.kind.clone())),
                    codes: &[OK, CREATED, ACCEPTED, UNAUTHORIZED],
                    ..sub_op(
                        "post",
                        "post",
                        format!("create{gv}{scope}{kind}{suffix}"),
                        format!("create {name} of {} {kind}", article(kind)),
                    )
                }),
                _ => {}
            }
        }
        insert(format!("{item}/{name}"), item_params.clone(), ops);
    }
}

/// Upstream's article before a kind in descriptions (`a Pod`, `an Endpoints`).
fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

fn m_static(m: &str) -> &'static str {
    match m {
        "get" => "get",
        "put" => "put",
        "post" => "post",
        "delete" => "delete",
        "options" => "options",
        "head" => "head",
        _ => "patch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_upstream() {
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(
            tag("flowcontrol.apiserver.k8s.io", "v1"),
            "flowcontrolApiserver_v1"
        );
        assert_eq!(id_prefix("apps", "v1"), "AppsV1");
        assert_eq!(
            id_prefix("stable.example.com", "v1beta1"),
            "StableExampleComV1beta1"
        );
    }
}
