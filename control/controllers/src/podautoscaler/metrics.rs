//! The metrics APIs the autoscaler reads (upstream `podautoscaler/metrics/client.go`), all
//! aggregated APIs reached through the API server: pod usage from the resource metrics API
//! (`metrics.k8s.io/v1beta1`, metrics-server; `skiff up --metrics-server` installs it), pod and
//! object metrics from the custom metrics API (`custom.metrics.k8s.io/v1beta2`) and external
//! metrics (`external.metrics.k8s.io/v1beta1`), e.g. from prometheus-adapter. Errors read as
//! upstream's, since they end up in events and conditions.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use serde_json::Value;
use skiff_apiserver::admission::quantity::Quantity;

use super::replicas::{PodMetric, PodMetrics};

/// The window a custom metric is taken over when its server does not say.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

pub struct MetricsClient {
    client: Client,
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn timestamp(item: &Value) -> Timestamp {
    item["timestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One pod's sample from a metrics list item, keyed by the name at `name_pointer`.
fn insert_sample(
    out: &mut PodMetrics,
    item: &Value,
    name_pointer: &str,
    window: Duration,
    value: i64,
) {
    let name = item
        .pointer(name_pointer)
        .and_then(Value::as_str)
        .unwrap_or_default();
    out.insert(
        name.to_string(),
        PodMetric {
            timestamp: timestamp(item),
            window,
            value,
        },
    );
}

fn milli(value: &Value) -> Option<i64> {
    Quantity::from_json(value).map(|q| q.milli_value())
}

fn items(list: &Value) -> &[Value] {
    list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A metav1.LabelSelector in the query syntax (upstream `LabelSelectorAsSelector(..).String()`:
/// requirements sorted by key, values sorted).
pub fn selector_string(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        requirements.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        };
        requirements.push((e.key.clone(), text));
    }
    requirements.sort();
    requirements
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// A metav1.LabelSelector as Go's `%+v` prints it in upstream's external-metric errors.
pub fn selector_debug(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "nil".into();
    };
    let labels: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: Vec<String> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
        labels.join(""),
        expressions.join("")
    )
}

impl MetricsClient {
    pub fn new(client: Client) -> MetricsClient {
        MetricsClient { client }
    }

    async fn get(&self, path: String) -> Result<Value, String> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        self.client
            .request::<Value>(request)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => status.message.clone(),
                other => other.to_string(),
            })
    }

    /// Each selected pod's usage of `resource` (the named container's, or the sum over its
    /// containers; a pod missing the resource in any container has no sample), and the first
    /// sample's time (upstream `GetResourceMetric`).
    pub async fn resource(
        &self,
        resource: &str,
        namespace: &str,
        selector: &str,
        container: &str,
    ) -> Result<(PodMetrics, Timestamp), String> {
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods{}",
            query(&[("labelSelector", selector)])
        );
        let list = self
            .get(path)
            .await
            .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"))?;
        let items = items(&list);
        let Some(first) = items.first() else {
            return Err("no metrics returned from resource metrics API".into());
        };
        let mut out = PodMetrics::new();
        for item in items {
            let containers = item["containers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let value = if container.is_empty() {
                if containers.is_empty() {
                    None
                } else {
                    containers
                        .iter()
                        .map(|c| milli(&c["usage"][resource]))
                        .sum::<Option<i64>>()
                }
            } else {
                containers
                    .iter()
                    .find(|c| c["name"] == container)
                    .and_then(|c| milli(&c["usage"][resource]))
            };
            let Some(value) = value else { continue };
            let window = item["window"]
                .as_str()
                .and_then(|w| crate::duration::parse(w).ok())
                .unwrap_or(DEFAULT_WINDOW);
            insert_sample(&mut out, item, "/metadata/name", window, value);
        }
        Ok((out, timestamp(first)))
    }

    /// A custom metric of each selected pod (upstream `GetRawMetric`).
    pub async fn pods_metric(
        &self,
        metric: &str,
        namespace: &str,
        selector: &str,
        metric_selector: &str,
    ) -> Result<(PodMetrics, Timestamp), String> {
        let path = format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}{}",
            query(&[
                ("labelSelector", selector),
                ("metricLabelSelector", metric_selector)
            ])
        );
        let list = self
            .get(path)
            .await
            .map_err(|e| format!("unable to fetch metrics from custom metrics API: {e}"))?;
        let items = items(&list);
        let Some(first) = items.first() else {
            return Err("no metrics returned from custom metrics API".into());
        };
        let mut out = PodMetrics::new();
        for item in items {
            let Some(value) = milli(&item["value"]) else {
                continue;
            };
            let window = item["windowSeconds"]
                .as_u64()
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_WINDOW);
            insert_sample(&mut out, item, "/describedObject/name", window, value);
        }
        Ok((out, timestamp(first)))
    }

    /// A custom metric of one object (upstream `GetObjectMetric`): `qualified_resource` is the
    /// object's `resource.group` ("deployments.apps", "services"); a Namespace's metrics are
    /// under `namespaces/<ns>/metrics/<metric>`.
    pub async fn object_metric(
        &self,
        metric: &str,
        namespace: &str,
        qualified_resource: Option<&str>,
        name: &str,
        metric_selector: &str,
    ) -> Result<(i64, Timestamp), String> {
        let q = query(&[("metricLabelSelector", metric_selector)]);
        let path = match qualified_resource {
            None => format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/metrics/{metric}{q}"),
            Some(resource) => format!(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}{q}"
            ),
        };
        let list = self
            .get(path)
            .await
            .map_err(|e| format!("unable to fetch metrics from custom metrics API: {e}"))?;
        let items = items(&list);
        if items.len() != 1 {
            return Err(format!(
                "unable to fetch metrics from custom metrics API: the custom metrics API server returned {} results when we asked for exactly one",
                items.len()
            ));
        }
        let value = milli(&items[0]["value"])
            .ok_or("unable to fetch metrics from custom metrics API: the metric has no value")?;
        Ok((value, timestamp(&items[0])))
    }

    /// The values of an external metric (upstream `GetExternalMetric`).
    pub async fn external(
        &self,
        metric: &str,
        namespace: &str,
        metric_selector: &str,
    ) -> Result<(Vec<i64>, Timestamp), String> {
        let path = format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}{}",
            query(&[("labelSelector", metric_selector)])
        );
        let list = self
            .get(path)
            .await
            .map_err(|e| format!("unable to fetch metrics from external metrics API: {e}"))?;
        let items = items(&list);
        let Some(first) = items.first() else {
            return Err("no metrics returned from external metrics API".into());
        };
        Ok((
            items.iter().filter_map(|i| milli(&i["value"])).collect(),
            timestamp(first),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_print_as_upstreams_query_syntax() {
        assert_eq!(selector_string(None), "");
        let s = LabelSelector {
            match_labels: Some([("tier".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "In".into(),
                    values: Some(vec!["b".into(), "a".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(Some(&s)), "!canary,tier=web,zone in (a,b)");
        assert_eq!(
            query(&[
                ("labelSelector", "app=web,zone in (a,b)"),
                ("metricLabelSelector", "")
            ]),
            "?labelSelector=app%3Dweb%2Czone+in+%28a%2Cb%29"
        );
        assert_eq!(selector_debug(None), "nil");
    }
}
