//! From the count the metrics ask for to the count the autoscaler sets (upstream
//! `normalizeDesiredReplicas` and `normalizeDesiredReplicasWithBehaviors`): stabilization over
//! the recent recommendations, then the limits — min/max replicas and the scale rate.
//!
//! Without `spec.behavior` a scale-down takes the highest recommendation of the last
//! `--horizontal-pod-autoscaler-downscale-stabilization` (5 min) and a scale-up at most doubles
//! (at least to 4). With a behavior, each direction has its own stabilization window and
//! policies (`Pods`/`Percent` per period, `selectPolicy` Max/Min/Disabled) measured against the
//! scale events this controller made in the policy's period. The history is this process's
//! memory, as upstream's: a restarted or newly elected controller manager starts afresh.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

#[derive(Clone, Copy, Debug)]
struct Recommendation {
    replicas: i32,
    at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    change: i32,
    at: Instant,
    outdated: bool,
}

/// What one autoscaler's decisions remember.
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_up: Vec<ScaleEvent>,
    scale_down: Vec<ScaleEvent>,
}

/// A decision with the condition that explains it: (replicas, reason, message).
pub type Limited = (i32, &'static str, &'static str);

/// The stabilized count, and whether stabilization changed it, for `AbleToScale`.
pub struct Stabilized {
    pub replicas: i32,
    pub reason: &'static str,
    pub message: &'static str,
}

pub const READY_FOR_NEW_SCALE: (&str, &str) =
    ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
pub const DESIRED_WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

fn stabilized(replicas: i32, (reason, message): (&'static str, &'static str)) -> Stabilized {
    Stabilized {
        replicas,
        reason,
        message,
    }
}

impl History {
    /// The current count is the first recommendation (upstream `recordInitialRecommendation`).
    pub fn record_initial(&mut self, current: i32, now: Instant) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    /// Keeps `desired` among the recommendations, reusing one slot that fell out of every
    /// window (the list stays as long as the windows hold samples).
    fn remember(&mut self, desired: i32, outdated: impl Fn(&Recommendation) -> bool, now: Instant) {
        let entry = Recommendation {
            replicas: desired,
            at: now,
        };
        match self.recommendations.iter().rposition(outdated) {
            Some(i) => self.recommendations[i] = entry,
            None => self.recommendations.push(entry),
        }
    }

    /// Without a behavior: the highest recommendation of the downscale window.
    pub fn stabilize(&mut self, desired: i32, window: Duration, now: Instant) -> Stabilized {
        let cutoff = now.checked_sub(window);
        let before = |r: &Recommendation| cutoff.is_some_and(|c| r.at < c);
        let highest = self
            .recommendations
            .iter()
            .filter(|r| !before(r))
            .map(|r| r.replicas)
            .fold(desired, i32::max);
        self.remember(desired, before, now);
        if highest == desired {
            stabilized(highest, READY_FOR_NEW_SCALE)
        } else {
            stabilized(highest, SCALE_DOWN_STABILIZED)
        }
    }

    /// With a behavior: the lowest recommendation of the scale-up window bounds a scale-up, the
    /// highest of the scale-down window a scale-down.
    pub fn stabilize_with_behavior(
        &mut self,
        behavior: &Behavior,
        current: i32,
        desired: i32,
        now: Instant,
    ) -> Stabilized {
        let up_cutoff = now.checked_sub(behavior.scale_up.window);
        let down_cutoff = now.checked_sub(behavior.scale_down.window);
        let after = |cutoff: Option<Instant>, r: &Recommendation| cutoff.is_none_or(|c| r.at > c);
        let (mut up, mut down) = (desired, desired);
        for r in &self.recommendations {
            if after(up_cutoff, r) {
                up = up.min(r.replicas);
            }
            if after(down_cutoff, r) {
                down = down.max(r.replicas);
            }
        }
        let recommendation = current.max(up).min(down);
        self.remember(
            desired,
            |r| up_cutoff.is_some_and(|c| r.at < c) && down_cutoff.is_some_and(|c| r.at < c),
            now,
        );
        if recommendation == desired {
            stabilized(recommendation, READY_FOR_NEW_SCALE)
        } else if desired >= current {
            stabilized(recommendation, SCALE_UP_STABILIZED)
        } else {
            stabilized(recommendation, SCALE_DOWN_STABILIZED)
        }
    }

    /// The behavior's rate limits and min/max (upstream `convertDesiredReplicasWithBehaviorRate`).
    pub fn limit_with_behavior(
        &self,
        behavior: &Behavior,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        now: Instant,
    ) -> Limited {
        if desired > current {
            let limit = self
                .scale_up_limit(&behavior.scale_up, current, now)
                .max(current);
            let (allowed, why) = if max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if desired > allowed {
                return (allowed, why.0, why.1);
            }
        } else if desired < current {
            let limit = self
                .scale_down_limit(&behavior.scale_down, current, now)
                .min(current);
            let (allowed, why) = if min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if desired < allowed {
                return (allowed, why.0, why.1);
            }
        }
        (desired, DESIRED_WITHIN_RANGE.0, DESIRED_WITHIN_RANGE.1)
    }

    fn change_in_period(events: &[ScaleEvent], period: Duration, now: Instant) -> i32 {
        let cutoff = now.checked_sub(period);
        events
            .iter()
            .filter(|e| cutoff.is_none_or(|c| e.at > c))
            .map(|e| e.change)
            .sum()
    }

    /// The replicas at the start of a policy's period: today's count minus what this controller
    /// added in it, plus what it removed.
    fn period_start(&self, current: i32, period: Duration, now: Instant) -> i32 {
        current - Self::change_in_period(&self.scale_up, period, now)
            + Self::change_in_period(&self.scale_down, period, now)
    }

    fn scale_up_limit(&self, rules: &Rules, current: i32, now: Instant) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period, now);
            match p.kind {
                PolicyKind::Pods => start.saturating_add(p.value),
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
                }
            }
        });
        match rules.select {
            Select::Disabled => current,
            Select::Min => proposals.fold(i32::MAX, i32::min),
            Select::Max => proposals.fold(i32::MIN, i32::max),
        }
    }

    fn scale_down_limit(&self, rules: &Rules, current: i32, now: Instant) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period, now);
            match p.kind {
                PolicyKind::Pods => start.saturating_sub(p.value),
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
                }
            }
        });
        match rules.select {
            Select::Disabled => current,
            // The smallest change is the highest floor.
            Select::Min => proposals.fold(i32::MIN, i32::max),
            Select::Max => proposals.fold(i32::MAX, i32::min),
        }
    }

    /// Remembers a rescale for the policies' periods (only with a behavior, as upstream).
    pub fn record_scale(&mut self, behavior: &Behavior, previous: i32, new: i32, now: Instant) {
        let (events, rules, change) = if new > previous {
            (&mut self.scale_up, &behavior.scale_up, new - previous)
        } else {
            (&mut self.scale_down, &behavior.scale_down, previous - new)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default();
        if let Some(cutoff) = now.checked_sub(longest) {
            for e in events.iter_mut().filter(|e| e.at < cutoff) {
                e.outdated = true;
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match events.iter().rposition(|e| e.outdated) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

/// Without a behavior: min/max and a scale-up of at most ×2 (at least to 4) per decision
/// (upstream `convertDesiredReplicasWithRules`).
pub fn limit_with_rules(current: i32, desired: i32, min: i32, max: i32) -> Limited {
    let scale_up_limit =
        (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32;
    let (allowed, why) = if max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        return (min, TOO_FEW.0, TOO_FEW.1);
    }
    if desired > allowed {
        return (allowed, why.0, why.1);
    }
    (desired, DESIRED_WITHIN_RANGE.0, DESIRED_WITHIN_RANGE.1)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period: Duration,
}

/// One direction's scaling rules, with the API server's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// `spec.behavior` as the controller applies it.
#[derive(Clone, Debug, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

impl Behavior {
    /// Reads `spec.behavior`; a direction the API server did not default (it defaults both
    /// whenever a behavior is set) gets upstream's defaults, and a scale-down without a window
    /// uses `downscale_window` (upstream `maybeInitScaleDownStabilizationWindow`).
    pub fn from_spec(
        behavior: &HorizontalPodAutoscalerBehavior,
        downscale_window: Duration,
    ) -> Behavior {
        let seconds = |s: u64| Duration::from_secs(s);
        let rules = |r: Option<&HPAScalingRules>, window: Duration, up: bool| {
            let Some(r) = r else {
                return Rules {
                    window,
                    select: Select::Max,
                    policies: if up {
                        vec![
                            Policy {
                                kind: PolicyKind::Pods,
                                value: 4,
                                period: seconds(15),
                            },
                            Policy {
                                kind: PolicyKind::Percent,
                                value: 100,
                                period: seconds(15),
                            },
                        ]
                    } else {
                        vec![Policy {
                            kind: PolicyKind::Percent,
                            value: 100,
                            period: seconds(15),
                        }]
                    },
                };
            };
            Rules {
                window: r
                    .stabilization_window_seconds
                    .map(|s| seconds(s.max(0) as u64))
                    .unwrap_or(window),
                select: match r.select_policy.as_deref() {
                    Some("Min") => Select::Min,
                    Some("Disabled") => Select::Disabled,
                    _ => Select::Max,
                },
                policies: r
                    .policies
                    .iter()
                    .flatten()
                    .map(|p| Policy {
                        kind: if p.type_ == "Percent" {
                            PolicyKind::Percent
                        } else {
                            PolicyKind::Pods
                        },
                        value: p.value,
                        period: seconds(p.period_seconds.max(0) as u64),
                    })
                    .collect(),
            }
        };
        Behavior {
            scale_up: rules(behavior.scale_up.as_ref(), Duration::ZERO, true),
            scale_down: rules(behavior.scale_down.as_ref(), downscale_window, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn without_behavior_a_scale_down_waits_for_the_window() {
        let start = Instant::now();
        let mut h = History::default();
        h.record_initial(5, start);
        let s = h.stabilize(2, FIVE_MINUTES, start + Duration::from_secs(15));
        assert_eq!((s.replicas, s.reason), (5, "ScaleDownStabilized"));
        // Once the 5 of the start is older than the window, the recent highest (2 → 3) wins.
        h.stabilize(3, FIVE_MINUTES, start + Duration::from_secs(30));
        let s = h.stabilize(2, FIVE_MINUTES, start + Duration::from_secs(301));
        assert_eq!((s.replicas, s.reason), (3, "ScaleDownStabilized"));
        // A scale-up is never held back.
        let s = h.stabilize(9, FIVE_MINUTES, start + Duration::from_secs(302));
        assert_eq!((s.replicas, s.reason), (9, "ReadyForNewScale"));
        // Old slots are reused: the list holds the window's samples only.
        assert!(h.recommendations.len() <= 4, "{:?}", h.recommendations);
    }

    #[test]
    fn without_behavior_the_rules_bound_the_count() {
        assert_eq!(
            limit_with_rules(1, 50, 1, 10),
            (
                4,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate"
            )
        );
        assert_eq!(limit_with_rules(1, 50, 1, 3).0, 3);
        assert_eq!(limit_with_rules(1, 50, 1, 3).1, "TooManyReplicas");
        assert_eq!(limit_with_rules(6, 20, 1, 30).0, 12);
        assert_eq!(limit_with_rules(3, 0, 2, 10).1, "TooFewReplicas");
        assert_eq!(limit_with_rules(3, 5, 2, 10).1, "DesiredWithinRange");
    }

    fn policy(kind: &str, value: i32, period: i32) -> HPAScalingPolicy {
        HPAScalingPolicy {
            type_: kind.into(),
            value,
            period_seconds: period,
        }
    }

    #[test]
    fn behavior_policies_limit_the_rate_per_period() {
        let spec = HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                policies: Some(vec![policy("Pods", 1, 60)]),
                select_policy: Some("Max".into()),
                ..Default::default()
            }),
            scale_up: None,
        };
        let b = Behavior::from_spec(&spec, FIVE_MINUTES);
        // Up: the defaults (4 pods or 100% per 15 s, the larger).
        assert_eq!(b.scale_up.policies.len(), 2);
        let start = Instant::now();
        let mut h = History::default();
        assert_eq!(
            h.limit_with_behavior(&b, 2, 20, 1, 30, start),
            (6, SCALE_UP_LIMIT.0, SCALE_UP_LIMIT.1)
        );
        assert_eq!(h.limit_with_behavior(&b, 10, 40, 1, 30, start).0, 20);
        // Down: one pod per minute, counting this controller's own scale events.
        assert_eq!(h.limit_with_behavior(&b, 5, 1, 1, 30, start).0, 4);
        h.record_scale(&b, 5, 4, start);
        let later = start + Duration::from_secs(20);
        let limited = h.limit_with_behavior(&b, 4, 1, 1, 30, later);
        assert_eq!(limited, (4, SCALE_DOWN_LIMIT.0, SCALE_DOWN_LIMIT.1));
        let next_minute = start + Duration::from_secs(61);
        assert_eq!(h.limit_with_behavior(&b, 4, 1, 1, 30, next_minute).0, 3);
        // Disabled: no change in that direction at all.
        let mut disabled = b.clone();
        disabled.scale_down.select = Select::Disabled;
        assert_eq!(
            h.limit_with_behavior(&disabled, 4, 1, 1, 30, next_minute).0,
            4
        );
    }

    #[test]
    fn behavior_windows_stabilize_each_direction() {
        let spec = HorizontalPodAutoscalerBehavior {
            scale_up: Some(HPAScalingRules {
                stabilization_window_seconds: Some(60),
                ..Default::default()
            }),
            scale_down: Some(HPAScalingRules::default()),
        };
        let b = Behavior::from_spec(&spec, FIVE_MINUTES);
        assert_eq!(b.scale_down.window, FIVE_MINUTES);
        let start = Instant::now();
        let mut h = History::default();
        h.record_initial(3, start);
        // Up within the up window: the lowest recent recommendation (3) holds it.
        let s = h.stabilize_with_behavior(&b, 3, 6, start + Duration::from_secs(15));
        assert_eq!((s.replicas, s.reason), (3, "ScaleUpStabilized"));
        // Once the initial 3 is older than the window, the lowest of the last minute is 6.
        let s = h.stabilize_with_behavior(&b, 3, 8, start + Duration::from_secs(70));
        assert_eq!((s.replicas, s.reason), (6, "ScaleUpStabilized"));
        let s = h.stabilize_with_behavior(&b, 6, 1, start + Duration::from_secs(90));
        assert_eq!((s.replicas, s.reason), (6, "ScaleDownStabilized"));
    }
}
