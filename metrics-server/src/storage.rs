//! The last two points of every node and container, and usage from them, as upstream's
//! `pkg/storage` computes it:
//!
//! - CPU is the rate of the cumulative counter between the two points, in nanocores:
//!   `(cpu_last - cpu_prev) / (t_last - t_prev)`; memory is the last working set. The window
//!   is `t_last - t_prev`, the timestamp `t_last`.
//! - A new point replaces the last only when it is newer; the last becomes the previous. A
//!   point no newer than the last keeps the stored previous if that is older than it.
//! - A container that restarted (started after the last point was taken) starts over. A
//!   container younger than the resolution (but at least 10 s old) gets a made-up previous
//!   point at its start with zero CPU, so it shows up after one scrape (upstream's
//!   `freshContainerMinMetricsResolution`).
//! - A pod appears only when every container it reported has two points; its timestamp and
//!   window are its earliest container's. A counter that went backwards or a start time that
//!   moved back skips that node or container (logged).
//! - What a scrape round did not report (a node that failed) is gone until it reports again.

use std::collections::BTreeMap;

use crate::decode::{Batch, PodKey, Point};

/// A fresh container's youngest age for the made-up previous point (upstream's 10 s).
const FRESH_CONTAINER_MIN_AGE_NS: i64 = 10_000_000_000;

/// What a node or container used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// ns since the epoch.
    pub timestamp_ns: i64,
    pub window_ns: u64,
    pub cpu_nanocores: u64,
    pub memory: u64,
}

/// A pod's containers' usage, with the pod's timestamp and window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUsage {
    pub timestamp_ns: i64,
    pub window_ns: u64,
    pub containers: Vec<(String, Usage)>,
}

/// Usage between two points (upstream's `resourceUsage`).
pub fn resource_usage(last: &Point, prev: &Point) -> Result<Usage, &'static str> {
    if last.start_ns < prev.start_ns {
        return Err("unexpected decrease in startTime of node/container");
    }
    if last.cpu_ns < prev.cpu_ns {
        return Err("unexpected decrease in cumulative CPU usage value");
    }
    let window_ns = last.timestamp_ns.saturating_sub(prev.timestamp_ns);
    if window_ns <= 0 {
        return Err("no time between the two points");
    }
    let rate = (last.cpu_ns - prev.cpu_ns) as f64 / (window_ns as f64 / 1e9);
    Ok(Usage {
        timestamp_ns: last.timestamp_ns,
        window_ns: window_ns as u64,
        cpu_nanocores: rate as u64,
        memory: last.memory,
    })
}

#[derive(Default)]
pub struct Storage {
    /// The scrape period (`--metric-resolution`), for fresh containers.
    resolution_ns: i64,
    nodes_last: BTreeMap<String, Point>,
    nodes_prev: BTreeMap<String, Point>,
    pods_last: BTreeMap<PodKey, BTreeMap<String, Point>>,
    pods_prev: BTreeMap<PodKey, BTreeMap<String, Point>>,
}

impl Storage {
    pub fn new(resolution: std::time::Duration) -> Storage {
        Storage {
            resolution_ns: resolution.as_nanos() as i64,
            ..Storage::default()
        }
    }

    /// Whether anything can be answered yet (upstream's `Ready`: some node or container has
    /// two points).
    pub fn ready(&self) -> bool {
        !self.nodes_prev.is_empty() || !self.pods_prev.is_empty()
    }

    /// Points stored that usage can be computed from: (nodes, containers).
    pub fn points(&self) -> (usize, usize) {
        (
            self.nodes_prev.len(),
            self.pods_prev.values().map(BTreeMap::len).sum(),
        )
    }

    /// One scrape round: every node's batch, by node name.
    pub fn store(&mut self, round: BTreeMap<String, Batch>) {
        let mut nodes_last = BTreeMap::new();
        let mut nodes_prev = BTreeMap::new();
        let mut pods_last = BTreeMap::new();
        let mut pods_prev = BTreeMap::new();
        for (name, batch) in round {
            if let Some(new) = batch.node {
                if let Some(last) = self.nodes_last.get(&name) {
                    if new.timestamp_ns > last.timestamp_ns {
                        nodes_prev.insert(name.clone(), *last);
                    } else if let Some(prev) = self.nodes_prev.get(&name) {
                        if prev.timestamp_ns < new.timestamp_ns {
                            nodes_prev.insert(name.clone(), *prev);
                        }
                    }
                }
                nodes_last.insert(name, new);
            }
            for (pod, containers) in batch.pods {
                if pods_last.contains_key(&pod) {
                    tracing::warn!(namespace = %pod.0, pod = %pod.1, "duplicate pod point");
                    continue;
                }
                let mut prev_containers = BTreeMap::new();
                for (container, new) in &containers {
                    if let Some(prev) = self.previous(&pod, container, new) {
                        prev_containers.insert(container.clone(), prev);
                    }
                }
                if !prev_containers.is_empty() {
                    pods_prev.insert(pod.clone(), prev_containers);
                }
                pods_last.insert(pod, containers);
            }
        }
        self.nodes_last = nodes_last;
        self.nodes_prev = nodes_prev;
        self.pods_last = pods_last;
        self.pods_prev = pods_prev;
    }

    /// The previous point of `container` once `new` is stored.
    fn previous(&self, pod: &PodKey, container: &str, new: &Point) -> Option<Point> {
        let age = new.timestamp_ns.saturating_sub(new.start_ns);
        if new.start_ns < new.timestamp_ns
            && age < self.resolution_ns
            && age >= FRESH_CONTAINER_MIN_AGE_NS
        {
            return Some(Point {
                timestamp_ns: new.start_ns,
                cpu_ns: 0,
                ..*new
            });
        }
        let last = self.pods_last.get(pod)?.get(container)?;
        // Started after the last point: a restart, start over.
        if new.start_ns >= last.timestamp_ns {
            return None;
        }
        if new.timestamp_ns > last.timestamp_ns {
            return Some(*last);
        }
        let prev = self.pods_prev.get(pod)?.get(container)?;
        (prev.timestamp_ns < new.timestamp_ns).then_some(*prev)
    }

    pub fn node(&self, name: &str) -> Option<Usage> {
        let last = self.nodes_last.get(name)?;
        let prev = self.nodes_prev.get(name)?;
        resource_usage(last, prev)
            .map_err(|e| tracing::warn!(node = name, "skipping node usage metric: {e}"))
            .ok()
    }

    pub fn pod(&self, key: &PodKey) -> Option<PodUsage> {
        let last = self.pods_last.get(key)?;
        let prev = self.pods_prev.get(key)?;
        let mut containers = Vec::with_capacity(last.len());
        let mut earliest: Option<Usage> = None;
        for (name, point) in last {
            let prev = prev.get(name)?;
            match resource_usage(point, prev) {
                Ok(usage) => {
                    if earliest.is_none_or(|e| e.timestamp_ns > usage.timestamp_ns) {
                        earliest = Some(usage);
                    }
                    containers.push((name.clone(), usage));
                }
                Err(e) => tracing::warn!(
                    namespace = %key.0, pod = %key.1, container = %name,
                    "skipping container usage metric: {e}"
                ),
            }
        }
        let earliest = earliest.unwrap_or(Usage {
            timestamp_ns: 0,
            window_ns: 0,
            cpu_nanocores: 0,
            memory: 0,
        });
        Some(PodUsage {
            timestamp_ns: earliest.timestamp_ns,
            window_ns: earliest.window_ns,
            containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn point(t_s: i64, cpu_s: f64, memory: u64) -> Point {
        Point {
            start_ns: 0,
            timestamp_ns: t_s * S,
            cpu_ns: (cpu_s * 1e9) as u64,
            memory,
        }
    }

    fn round(node: Option<Point>, pods: &[(&str, &str, Point)]) -> BTreeMap<String, Batch> {
        let mut batch = Batch {
            node,
            pods: BTreeMap::new(),
        };
        for (pod, container, p) in pods {
            batch
                .pods
                .entry(("default".to_string(), pod.to_string()))
                .or_default()
                .insert(container.to_string(), *p);
        }
        [("n1".to_string(), batch)].into()
    }

    fn web() -> PodKey {
        ("default".into(), "web".into())
    }

    #[test]
    fn cpu_is_the_counters_rate_memory_the_last_working_set() {
        let mut s = Storage::new(std::time::Duration::from_secs(15));
        s.store(round(
            Some(point(100, 10.0, 1000)),
            &[("web", "a", point(100, 1.0, 10))],
        ));
        assert!(!s.ready());
        assert_eq!(s.node("n1"), None, "one point: nothing yet");
        assert_eq!(s.pod(&web()), None);
        s.store(round(
            Some(point(115, 13.0, 2000)),
            &[("web", "a", point(115, 1.15, 20))],
        ));
        assert!(s.ready());
        assert_eq!(
            s.node("n1"),
            Some(Usage {
                timestamp_ns: 115 * S,
                window_ns: 15 * S as u64,
                cpu_nanocores: 200_000_000,
                memory: 2000
            })
        );
        let pod = s.pod(&web()).unwrap();
        assert_eq!(pod.window_ns, 15 * S as u64);
        assert_eq!(pod.containers[0].1.cpu_nanocores, 10_000_000);
        assert_eq!(pod.containers[0].1.memory, 20);
        // The same point again (a kubelet that did not measure anew): the previous is kept.
        s.store(round(Some(point(115, 13.0, 2000)), &[]));
        assert_eq!(s.node("n1").unwrap().cpu_nanocores, 200_000_000);
        // A node missing from a round is gone.
        s.store(BTreeMap::new());
        assert_eq!(s.node("n1"), None);
        assert!(!s.ready());
    }

    #[test]
    fn a_pod_needs_two_points_of_every_container() {
        let mut s = Storage::new(std::time::Duration::from_secs(15));
        s.store(round(None, &[("web", "a", point(100, 1.0, 10))]));
        s.store(round(
            None,
            &[
                ("web", "a", point(115, 2.0, 10)),
                ("web", "b", point(115, 1.0, 10)),
            ],
        ));
        assert_eq!(s.pod(&web()), None, "b has one point");
        s.store(round(
            None,
            &[
                ("web", "a", point(130, 3.0, 10)),
                ("web", "b", point(130, 2.5, 10)),
            ],
        ));
        let pod = s.pod(&web()).unwrap();
        let cpu: u64 = pod.containers.iter().map(|(_, u)| u.cpu_nanocores).sum();
        assert_eq!(cpu, 66_666_666 + 100_000_000);
    }

    #[test]
    fn restarts_and_backwards_counters() {
        let mut s = Storage::new(std::time::Duration::from_secs(15));
        s.store(round(None, &[("web", "a", point(100, 5.0, 10))]));
        // Restarted at 110 (after the last point): no previous.
        let restarted = Point {
            start_ns: 110 * S,
            ..point(130, 0.5, 10)
        };
        s.store(round(None, &[("web", "a", restarted)]));
        assert_eq!(s.pod(&web()), None);
        // A counter going backwards without a restart: skipped.
        assert_eq!(
            resource_usage(&point(10, 1.0, 1), &point(5, 2.0, 1)),
            Err("unexpected decrease in cumulative CPU usage value")
        );
    }

    /// Extreme values from a kubelet (a start time of -Inf, counters at the top): no panic.
    #[test]
    fn extreme_points_do_not_panic() {
        let mut s = Storage::new(std::time::Duration::from_secs(15));
        let odd = Point {
            start_ns: i64::MIN,
            timestamp_ns: i64::MAX,
            cpu_ns: u64::MAX,
            memory: u64::MAX,
        };
        s.store(round(Some(odd), &[("web", "a", odd)]));
        s.store(round(
            Some(point(1, 0.0, 0)),
            &[("web", "a", point(1, 0.0, 0))],
        ));
        let _ = (s.node("n1"), s.pod(&web()));
    }

    #[test]
    fn a_fresh_container_counts_from_its_start() {
        let mut s = Storage::new(std::time::Duration::from_secs(60));
        let fresh = Point {
            start_ns: 100 * S,
            ..point(120, 2.0, 10)
        };
        s.store(round(None, &[("web", "a", fresh)]));
        let pod = s.pod(&web()).unwrap();
        assert_eq!(pod.window_ns, 20 * S as u64);
        assert_eq!(pod.containers[0].1.cpu_nanocores, 100_000_000);
    }
}
