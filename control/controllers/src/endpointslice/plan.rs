//! From the slices a service has to the slices it should have, with as few writes as possible
//! (upstream `reconciler.go` `reconcileByPortMapping` and `finalize`). Pure: the controller
//! carries the plan out.
//!
//! Per port set:
//! 1. each existing slice keeps the endpoints that are still desired (updated in place if
//!    they changed) and drops the others; a slice left empty is deleted;
//! 2. new endpoints first fill slices that are written anyway (fullest first), so no extra
//!    slice is touched;
//! 3. what is left goes into the fullest unchanged slice that can take all of it, else into
//!    new slices of at most `max` endpoints.
//!
//! A service without endpoints keeps exactly one empty placeholder slice (upstream does too,
//! so consumers can tell "no endpoints" from "not processed yet"). Finally a create paired
//! with a delete becomes an update of the slice that would be deleted: same result, one write
//! instead of two and no moment without the slice.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::discovery::v1::Endpoint;

use super::desired::{endpoint_key, port_key, Group};

/// A slice the service has now.
#[derive(Clone, Debug)]
pub struct Existing {
    pub name: String,
    pub group: Group,
    /// Its labels or owner are not what they should be: write it even if its endpoints are.
    pub stale_meta: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Group>,
    pub update: Vec<(String, Group)>,
    pub delete: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn placeholder() -> Group {
    Group {
        ports: Vec::new(),
        endpoints: Vec::new(),
    }
}

pub fn plan(mut existing: Vec<Existing>, desired: BTreeMap<String, Group>, max: usize) -> Plan {
    let max = max.max(1);
    existing.sort_by(|a, b| a.name.cmp(&b.name));
    let mut plan = Plan::default();

    if desired.values().all(|g| g.endpoints.is_empty()) {
        let keep = existing.iter().position(|s| s.group == placeholder());
        for (i, slice) in existing.into_iter().enumerate() {
            match keep {
                Some(k) if k == i => {
                    if slice.stale_meta {
                        plan.update.push((slice.name, placeholder()));
                    }
                }
                _ => plan.delete.push(slice.name),
            }
        }
        if keep.is_none() {
            plan.create.push(placeholder());
        }
        recycle(&mut plan);
        return plan;
    }

    let mut by_key: BTreeMap<String, Vec<Existing>> = BTreeMap::new();
    for slice in existing {
        by_key
            .entry(port_key(&slice.group.ports))
            .or_default()
            .push(slice);
    }
    for (key, slices) in &by_key {
        if !desired.contains_key(key) {
            plan.delete.extend(slices.iter().map(|s| s.name.clone()));
        }
    }
    for (key, group) in desired {
        let order: Vec<String> = group.endpoints.iter().map(endpoint_key).collect();
        let mut wanted: HashMap<String, Endpoint> = order
            .iter()
            .cloned()
            .zip(group.endpoints.iter().cloned())
            .collect();
        let mut to_update: Vec<(String, Vec<Endpoint>)> = Vec::new();
        let mut unchanged: Vec<(String, Vec<Endpoint>)> = Vec::new();
        for slice in by_key.remove(&key).unwrap_or_default() {
            let mut changed = slice.stale_meta;
            let mut kept = Vec::new();
            for endpoint in slice.group.endpoints {
                match wanted.remove(&endpoint_key(&endpoint)) {
                    Some(want) => {
                        changed |= want != endpoint;
                        kept.push(want);
                    }
                    None => changed = true,
                }
            }
            if kept.is_empty() {
                plan.delete.push(slice.name);
            } else if changed {
                to_update.push((slice.name, kept));
            } else {
                unchanged.push((slice.name, kept));
            }
        }
        let mut left: std::collections::VecDeque<Endpoint> =
            order.iter().filter_map(|k| wanted.remove(k)).collect();
        to_update.sort_by_key(|(_, endpoints)| std::cmp::Reverse(endpoints.len()));
        for (_, endpoints) in &mut to_update {
            while endpoints.len() < max {
                let Some(e) = left.pop_front() else { break };
                endpoints.push(e);
            }
        }
        while !left.is_empty() {
            if left.len() < max {
                let fits = unchanged
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, eps))| eps.len() + left.len() <= max)
                    .max_by_key(|(_, (_, eps))| eps.len())
                    .map(|(i, _)| i);
                if let Some(i) = fits {
                    let (name, mut endpoints) = unchanged.swap_remove(i);
                    endpoints.extend(left.drain(..));
                    to_update.push((name, endpoints));
                    break;
                }
            }
            let take = left.len().min(max);
            plan.create.push(Group {
                ports: group.ports.clone(),
                endpoints: left.drain(..take).collect(),
            });
        }
        plan.update
            .extend(to_update.into_iter().map(|(name, endpoints)| {
                (
                    name,
                    Group {
                        ports: group.ports.clone(),
                        endpoints,
                    },
                )
            }));
    }
    recycle(&mut plan);
    plan
}

/// A create and a delete become one update of the slice that would have been deleted.
fn recycle(plan: &mut Plan) {
    while !plan.create.is_empty() && !plan.delete.is_empty() {
        let name = plan.delete.remove(0);
        let group = plan.create.remove(0);
        plan.update.push((name, group));
    }
}

#[cfg(test)]
mod tests {
    use super::super::desired::desired;
    use super::*;
    use crate::service_pods::testing::{named, pod, service};
    use k8s_openapi::api::core::v1::Pod;

    fn pods(n: usize, port: i32) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    "n",
                    true,
                    &[("http", port)],
                )
            })
            .collect()
    }

    /// What a plan leaves: name → endpoint count, applying it to `existing`.
    fn apply(existing: &[Existing], plan: &Plan) -> Vec<Existing> {
        let mut out: Vec<Existing> = existing
            .iter()
            .filter(|s| !plan.delete.contains(&s.name))
            .filter(|s| !plan.update.iter().any(|(n, _)| n == &s.name))
            .cloned()
            .collect();
        for (name, group) in &plan.update {
            out.push(Existing {
                name: name.clone(),
                group: group.clone(),
                stale_meta: false,
            });
        }
        for (i, group) in plan.create.iter().enumerate() {
            out.push(Existing {
                name: format!("new-{}-{i}", existing.len()),
                group: group.clone(),
                stale_meta: false,
            });
        }
        out
    }

    #[test]
    fn at_most_max_endpoints_per_slice() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let all = pods(250, 8080);
        let plan = plan(Vec::new(), desired(&svc, &all, |_| None), 100);
        let sizes: Vec<usize> = plan.create.iter().map(|g| g.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(plan.update.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn nothing_to_do_when_nothing_changed() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let all = pods(150, 8080);
        let first = plan(Vec::new(), desired(&svc, &all, |_| None), 100);
        let existing = apply(&[], &first);
        assert_eq!(
            plan(existing, desired(&svc, &all, |_| None), 100),
            Plan::default()
        );
    }

    #[test]
    fn changes_touch_as_few_slices_as_possible() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let all = pods(150, 8080);
        let existing = apply(&[], &plan(Vec::new(), desired(&svc, &all, |_| None), 100));
        // One pod turns not ready: only its slice is written.
        let mut changed = all.clone();
        changed[3]
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        let p = plan(existing.clone(), desired(&svc, &changed, |_| None), 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.endpoints.len(), 100);
        // Five more pods: they go into the slice that has room (50 + 5), nothing is created.
        let more = pods(155, 8080);
        let p = plan(existing.clone(), desired(&svc, &more, |_| None), 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.endpoints.len(), 55);
        // Scaled down to 10: the slice of 100 keeps its 10, the other one goes.
        let fewer = pods(10, 8080);
        let p = plan(existing.clone(), desired(&svc, &fewer, |_| None), 100);
        let after = apply(&existing, &p);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].group.endpoints.len(), 10);
        assert_eq!(p.delete.len(), 1);
    }

    #[test]
    fn placeholder_when_empty_and_recycled_when_pods_come() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let p = plan(Vec::new(), desired(&svc, &[], |_| None), 100);
        assert_eq!(p.create, vec![placeholder()]);
        let existing = apply(&[], &p);
        assert_eq!(
            plan(existing.clone(), desired(&svc, &[], |_| None), 100),
            Plan::default()
        );
        // Pods arrive: the placeholder is reused (updated) rather than deleted + created.
        let p = plan(
            existing.clone(),
            desired(&svc, &pods(3, 8080), |_| None),
            100,
        );
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].0, existing[0].name);
        assert_eq!(p.update[0].1.endpoints.len(), 3);
        // And all pods gone: back to a placeholder, in the same slice.
        let full = apply(&existing, &p);
        let p = plan(full.clone(), desired(&svc, &[], |_| None), 100);
        assert_eq!(p.update, vec![(full[0].name.clone(), placeholder())]);
        assert!(p.create.is_empty() && p.delete.is_empty());
    }

    #[test]
    fn a_new_port_set_moves_endpoints() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let existing = apply(
            &[],
            &plan(Vec::new(), desired(&svc, &pods(3, 8080), |_| None), 100),
        );
        // The pods now serve http on 9090: one slice rewritten with the new port.
        let p = plan(existing, desired(&svc, &pods(3, 9090), |_| None), 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.ports[0].port, Some(9090));
    }
}
