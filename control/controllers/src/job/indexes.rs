//! Completion indexes of Indexed Jobs (upstream `indexed_job_utils.go`): the set of indexes as
//! ordered intervals, written the way `status.completedIndexes` shows them (`"0-2,5,7-8"`), and
//! the index a pod carries in its `batch.kubernetes.io/job-completion-index` annotation.
//!
//! Why intervals: a Job of 100,000 completions that all succeeded is one interval, and its
//! status string stays short (`"0-99999"`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// The annotation (and, since 1.28, label) that holds a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The pod's completion index, if it has a valid one.
pub fn of_pod(pod: &Pod) -> Option<i32> {
    let value = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
    value.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// A set of indexes, kept as sorted, disjoint, non-adjacent `[first, last]` intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes(Vec<(i32, i32)>);

impl Indexes {
    /// Parses a status string; indexes at or above `completions` and malformed parts are
    /// ignored, as upstream does for a status written by an older spec.
    pub fn parse(text: &str, completions: i32) -> Indexes {
        let mut set = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
                None => (part.parse::<i32>(), part.parse::<i32>()),
            };
            let (Ok(first), Ok(last)) = (first, last) else {
                continue;
            };
            if first < 0 || last < first {
                continue;
            }
            for i in first..=last.min(completions - 1) {
                set.insert(i);
            }
        }
        Indexes::from_sorted(set.into_iter())
    }

    fn from_sorted(indexes: impl Iterator<Item = i32>) -> Indexes {
        let mut intervals: Vec<(i32, i32)> = Vec::new();
        for i in indexes {
            match intervals.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                Some((_, last)) if *last >= i => {}
                _ => intervals.push((i, i)),
            }
        }
        Indexes(intervals)
    }

    /// This set plus `more`.
    pub fn with(&self, more: impl IntoIterator<Item = i32>) -> Indexes {
        let mut set: BTreeSet<i32> = self.iter().collect();
        set.extend(more);
        Indexes::from_sorted(set.into_iter())
    }

    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.iter().flat_map(|(a, b)| *a..=*b)
    }

    pub fn contains(&self, index: i32) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&index))
    }

    pub fn total(&self) -> i32 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// The lowest `count` indexes below `completions` that are neither in this set nor in
    /// `active` (upstream `firstPendingIndexes`).
    pub fn first_pending(
        &self,
        active: &BTreeSet<i32>,
        count: usize,
        completions: i32,
    ) -> Vec<i32> {
        (0..completions)
            .filter(|i| !self.contains(*i) && !active.contains(i))
            .take(count)
            .collect()
    }
}

impl std::fmt::Display for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, (first, last)) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_upstream_strings() {
        let set = Indexes::parse("0-2,5,7-8", 10);
        assert_eq!(set.total(), 6);
        assert_eq!(set.to_string(), "0-2,5,7-8");
        assert_eq!(set.with([3, 4, 6]).to_string(), "0-8");
        assert_eq!(Indexes::parse("1,2", 10).to_string(), "1-2");
        assert_eq!(Indexes::parse("", 10).to_string(), "");
    }

    #[test]
    fn drops_indexes_out_of_range_and_garbage() {
        assert_eq!(Indexes::parse("0-20,x,5-3,-1", 4).to_string(), "0-3");
    }

    #[test]
    fn first_pending_skips_done_and_active() {
        let done = Indexes::parse("0,2", 6);
        let active = BTreeSet::from([1]);
        assert_eq!(done.first_pending(&active, 2, 6), vec![3, 4]);
        assert_eq!(done.first_pending(&active, 10, 6), vec![3, 4, 5]);
    }
}
