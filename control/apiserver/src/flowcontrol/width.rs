//! How many seats a request takes (upstream's work estimator, `pkg/util/flowcontrol/request`):
//! one, except for lists (and watches asking for their initial events), which take one per
//! hundred objects of the resource the watch cache holds, at most the level's maximum: 15% of
//! its nominal seats, or its nominal seats over its hand size if fewer, at least one and never
//! more than ten. A big list then weighs on its flow's share as the work it is, instead of
//! counting like a get.
//!
//! Not estimated: the extra seats upstream keeps after a write for the watchers it must notify.

use super::config::LevelSpec;
use super::request_info::RequestInfo;

/// Upstream's `ObjectsPerSeat`.
pub const OBJECTS_PER_SEAT: f64 = 100.0;
/// Upstream's `MaximumSeatsLimit`.
pub const MAXIMUM_SEATS_LIMIT: usize = 10;

/// The most seats a request of the level may take (upstream's `MaxSeatsTracker` value).
pub fn max_seats(spec: &LevelSpec) -> usize {
    if spec.exempt || spec.queuing.queues == 0 {
        return MAXIMUM_SEATS_LIMIT;
    }
    let nominal = spec.limits.nominal;
    let by_share = (nominal as f64 * 0.15).ceil() as usize;
    let by_hand = nominal / spec.queuing.hand_size.max(1);
    by_share.min(by_hand).clamp(1, MAXIMUM_SEATS_LIMIT)
}

/// Whether the request's width depends on how many objects there are.
pub fn counts_objects(info: &RequestInfo, query: &[(String, String)]) -> bool {
    match info.verb.as_str() {
        "list" => true,
        "watch" => query
            .iter()
            .any(|(k, v)| k == "sendInitialEvents" && v == "true"),
        _ => false,
    }
}

/// The request's seats; `stored`: the resource's objects when it counts them (`None`: unknown,
/// one seat, as upstream when it has no count).
pub fn seats(stored: Option<usize>, max: usize) -> usize {
    match stored {
        None => 1,
        Some(n) => ((n as f64 / OBJECTS_PER_SEAT).ceil() as usize).clamp(1, max.max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowcontrol::metrics::Limits;
    use crate::flowcontrol::queueset::QueuingConfig;
    use axum::http::Method;

    fn level(nominal: usize, queues: usize, hand_size: usize) -> LevelSpec {
        LevelSpec {
            name: "l".into(),
            uid: String::new(),
            exempt: false,
            queuing: QueuingConfig {
                queues,
                hand_size,
                queue_length_limit: 50,
            },
            limits: Limits {
                nominal,
                ..Default::default()
            },
        }
    }

    #[test]
    fn upstreams_max_seats() {
        // workload-low at 600 server seats: 245 nominal, hand 6 → 10 (the cap).
        assert_eq!(max_seats(&level(245, 128, 6)), 10);
        // global-default: 49 nominal, hand 6 → min(8, 8).
        assert_eq!(max_seats(&level(49, 128, 6)), 8);
        // Small servers: never below one.
        assert_eq!(max_seats(&level(3, 128, 6)), 1);
        assert_eq!(max_seats(&level(3, 0, 0)), 10);
    }

    #[test]
    fn lists_take_a_seat_per_hundred_objects() {
        assert_eq!(seats(Some(0), 8), 1);
        assert_eq!(seats(Some(100), 8), 1);
        assert_eq!(seats(Some(101), 8), 2);
        assert_eq!(seats(Some(5000), 8), 8);
        assert_eq!(seats(None, 8), 1);
        let list = RequestInfo::new(&Method::GET, "/api/v1/pods", &[]);
        assert!(counts_objects(&list, &[]));
        let watch = RequestInfo::new(
            &Method::GET,
            "/api/v1/pods",
            &[("watch".into(), "1".into())],
        );
        assert!(!counts_objects(&watch, &[]));
        let initial = [("sendInitialEvents".to_string(), "true".to_string())];
        assert!(counts_objects(&watch, &initial));
        let get = RequestInfo::new(&Method::GET, "/api/v1/namespaces/a/pods/p", &[]);
        assert!(!counts_objects(&get, &[]));
    }
}
