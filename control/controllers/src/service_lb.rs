//! The service load-balancer controller for bare metal (the role of a cloud provider's service
//! controller, as MetalLB's controller and k3s's ServiceLB do it): every Service of type
//! LoadBalancer gets an address out of `--load-balancer-ip-range` in
//! `status.loadBalancer.ingress`; the nodes' agents then serve it like a NodePort and one of
//! them answers ARP for it (netd's `announce`).
//!
//! - `spec.loadBalancerIP` (deprecated upstream, still honoured by MetalLB) asks for one
//!   address of the range; an address outside the range or held by another Service is an
//!   event, and the Service stays pending.
//! - Services with a `spec.loadBalancerClass` belong to another implementation and are left
//!   alone, as upstream's service controller does.
//! - A Service that stops being a LoadBalancer loses its address (status cleared).
//! - What is allocated is rebuilt from the Services' status on every pass (the only durable
//!   record), so a restarted or newly elected controller never hands out an address twice.
//!
//! Events use upstream's reasons: `EnsuringLoadBalancer`, `EnsuredLoadBalancer`,
//! `SyncLoadBalancerFailed`, `DeletingLoadBalancer`, `DeletedLoadBalancer`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;

/// The addresses `--load-balancer-ip-range` gives (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Pool {
    /// `192.168.56.200-192.168.56.250` or a CIDR such as `192.168.56.192/27`.
    pub fn parse(s: &str) -> anyhow::Result<Pool> {
        let bad = || {
            anyhow::anyhow!("--load-balancer-ip-range {s:?}: expected FIRST-LAST or a CIDR (IPv4)")
        };
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (
                a.trim().parse::<Ipv4Addr>().map_err(|_| bad())?,
                b.trim().parse::<Ipv4Addr>().map_err(|_| bad())?,
            )
        } else {
            let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
            let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            let network = u32::from(ip) & mask;
            (Ipv4Addr::from(network), Ipv4Addr::from(network | !mask))
        };
        anyhow::ensure!(
            first <= last,
            "--load-balancer-ip-range {s:?}: FIRST is after LAST"
        );
        Ok(Pool { first, last })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

fn key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

fn ours(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

fn ingress_ips(service: &Service) -> Vec<Ipv4Addr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// What to do with one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Assign(Ipv4Addr),
    Fail(String),
    Clear,
}

/// Decides every Service's action from the current list (pure: unit-tested).
pub fn plan(pool: &Pool, services: &[&Service]) -> Vec<(String, Action)> {
    let mut held: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for service in services.iter().filter(|s| ours(s)) {
        for ip in ingress_ips(service) {
            held.entry(ip).or_insert_with(|| key(service));
        }
    }
    let mut actions = Vec::new();
    let mut sorted: Vec<&&Service> = services.iter().collect();
    // Oldest first, so an address both ask for goes to the one that asked first.
    sorted.sort_by_key(|s| (s.creation_timestamp().map(|t| t.0), key(s)));
    for service in sorted {
        let name = key(service);
        let ips = ingress_ips(service);
        if !ours(service) {
            let is_lb_type = service
                .spec
                .as_ref()
                .is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer"));
            if !ips.is_empty() && !is_lb_type {
                actions.push((name, Action::Clear));
            }
            continue;
        }
        let requested = service
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .filter(|s| !s.is_empty());
        if !ips.is_empty() {
            // Held already; a changed request is honoured only by recreating the Service.
            continue;
        }
        let chosen = match requested {
            Some(text) => match text.parse::<Ipv4Addr>() {
                Err(_) => Err(format!(
                    "spec.loadBalancerIP {text:?} is not an IPv4 address"
                )),
                Ok(ip) if !pool.contains(ip) => Err(format!(
                    "spec.loadBalancerIP {ip} is not in the address pool {pool}"
                )),
                Ok(ip) => match held.get(&ip) {
                    Some(holder) => Err(format!(
                        "spec.loadBalancerIP {ip} is already used by Service {holder}"
                    )),
                    None => Ok(ip),
                },
            },
            None => pool
                .addresses()
                .find(|ip| !held.contains_key(ip))
                .ok_or_else(|| format!("no addresses left in the pool {pool}")),
        };
        match chosen {
            Ok(ip) => {
                held.insert(ip, name.clone());
                actions.push((name, Action::Assign(ip)));
            }
            Err(why) => actions.push((name, Action::Fail(why))),
        }
    }
    actions
}

/// Runs the controller until the watch ends.
pub async fn run(client: Client, pool: Pool, recorder: Recorder) {
    let recorder = recorder.for_component("service-controller");
    let (store, writer) = reflector::store::<Service>();
    let mut events = reflector(
        writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .ready_chunks(256)
    .boxed();
    let mut synced = false;
    // Failures already reported, so a pending Service gets one event per reason.
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    while let Some(batch) = events.next().await {
        for event in batch {
            match event {
                Ok(watcher::Event::InitDone) => synced = true,
                Ok(_) => {}
                Err(e) => tracing::warn!("watching services: {e}"),
            }
        }
        if !synced {
            continue;
        }
        let services = store.state();
        let refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
        for (name, action) in plan(&pool, &refs) {
            let Some(service) = refs.iter().find(|s| key(s) == name) else {
                continue;
            };
            let api: Api<Service> =
                Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
            match action {
                Action::Assign(ip) => {
                    recorder.publish(
                        *service,
                        "Normal",
                        "EnsuringLoadBalancer",
                        "Ensuring load balancer".into(),
                    );
                    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
                    match api
                        .patch_status(
                            &service.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(service = %name, %ip, "assigned a LoadBalancer IP");
                            reported.remove(&name);
                            recorder.publish(
                                *service,
                                "Normal",
                                "EnsuredLoadBalancer",
                                "Ensured load balancer".into(),
                            );
                        }
                        Err(e) => {
                            tracing::warn!(service = %name, "setting the LoadBalancer IP: {e}");
                            recorder.publish(
                                *service,
                                "Warning",
                                "SyncLoadBalancerFailed",
                                format!("Error syncing load balancer: failed to ensure load balancer: {e}"),
                            );
                        }
                    }
                }
                Action::Fail(why) => {
                    if reported.get(&name) != Some(&why) {
                        tracing::warn!(service = %name, "{why}");
                        recorder.publish(
                            *service,
                            "Warning",
                            "SyncLoadBalancerFailed",
                            format!("Error syncing load balancer: failed to ensure load balancer: {why}"),
                        );
                        reported.insert(name, why);
                    }
                }
                Action::Clear => {
                    recorder.publish(
                        *service,
                        "Normal",
                        "DeletingLoadBalancer",
                        "Deleting load balancer".into(),
                    );
                    let patch = json!({"status": {"loadBalancer": {"ingress": null}}});
                    match api
                        .patch_status(
                            &service.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                    {
                        Ok(_) => recorder.publish(
                            *service,
                            "Normal",
                            "DeletedLoadBalancer",
                            "Deleted load balancer".into(),
                        ),
                        Err(e) => {
                            tracing::warn!(service = %name, "clearing the LoadBalancer IP: {e}")
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, spec: serde_json::Value, ip: Option<&str>) -> Service {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap();
        if let Some(ip) = ip {
            s.status =
                serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": ip}]}})).unwrap();
        }
        s
    }

    #[test]
    fn pools_parse_as_ranges_or_cidrs() {
        let p = Pool::parse("192.168.56.200-192.168.56.250").unwrap();
        assert!(p.contains("192.168.56.200".parse().unwrap()));
        assert!(!p.contains("192.168.56.251".parse().unwrap()));
        let c = Pool::parse("192.168.56.192/30").unwrap();
        assert_eq!(c.to_string(), "192.168.56.192-192.168.56.195");
        for bad in [
            "nope",
            "192.168.56.9-192.168.56.1",
            "10.0.0.0/33",
            "fd00::1-fd00::2",
        ] {
            assert!(Pool::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_handed_out_once_requests_are_checked_and_other_classes_left_alone() {
        let pool = Pool::parse("192.168.56.200-192.168.56.201").unwrap();
        let held = service("a", json!({"type": "LoadBalancer"}), Some("192.168.56.200"));
        let fresh = service("b", json!({"type": "LoadBalancer"}), None);
        let full = service("c", json!({"type": "LoadBalancer"}), None);
        let taken = service(
            "d",
            json!({"type": "LoadBalancer", "loadBalancerIP": "192.168.56.200"}),
            None,
        );
        let outside = service(
            "e",
            json!({"type": "LoadBalancer", "loadBalancerIP": "10.0.0.1"}),
            None,
        );
        let other = service(
            "f",
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}),
            None,
        );
        let was_lb = service("g", json!({"type": "ClusterIP"}), Some("192.168.56.201"));
        let actions: BTreeMap<String, Action> = plan(
            &pool,
            &[&held, &fresh, &full, &taken, &outside, &other, &was_lb],
        )
        .into_iter()
        .collect();
        assert_eq!(
            actions["default/b"],
            Action::Assign("192.168.56.201".parse().unwrap())
        );
        assert!(
            matches!(&actions["default/c"], Action::Fail(w) if w.contains("no addresses left"))
        );
        assert!(
            matches!(&actions["default/d"], Action::Fail(w) if w.contains("already used by Service default/a"))
        );
        assert!(
            matches!(&actions["default/e"], Action::Fail(w) if w.contains("not in the address pool"))
        );
        assert!(!actions.contains_key("default/a"));
        assert!(!actions.contains_key("default/f"));
        assert_eq!(actions["default/g"], Action::Clear);
    }
}
