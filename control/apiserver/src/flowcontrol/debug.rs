//! `/debug/api_priority_and_fairness/dump_priority_levels`, `dump_queues` and `dump_requests`
//! (upstream's `apf_controller_debug.go`): comma-separated columns aligned by Go's `tabwriter`
//! (minimum width 8, padding 1), one row per level, queue or request.

use super::FlowControl;

/// The dump at `path`, if it is one.
pub fn dump(flow_control: &FlowControl, path: &str, query: &[(String, String)]) -> Option<String> {
    if !flow_control.options.enabled {
        // Not installed when priority and fairness is off, as upstream.
        return None;
    }
    let which = path.strip_prefix("/debug/api_priority_and_fairness/")?;
    let levels = flow_control.levels();
    let mut rows: Vec<Vec<String>> = Vec::new();
    match which {
        "dump_priority_levels" => {
            rows.push(
                [
                    "PriorityLevelName",
                    "ActiveQueues",
                    "IsIdle",
                    "IsQuiescing",
                    "WaitingRequests",
                    "ExecutingRequests",
                    "DispatchedRequests",
                    "RejectedRequests",
                    "TimedoutRequests",
                    "CancelledRequests",
                ]
                .map(String::from)
                .to_vec(),
            );
            for level in &levels {
                let t = level.queues.lock().totals();
                rows.push(vec![
                    level.name(),
                    t.active_queues.to_string(),
                    t.idle.to_string(),
                    "false".into(),
                    t.waiting.to_string(),
                    t.executing.to_string(),
                    t.dispatched.to_string(),
                    t.rejected.to_string(),
                    t.timed_out.to_string(),
                    t.cancelled.to_string(),
                ]);
            }
        }
        "dump_queues" => {
            rows.push(
                [
                    "PriorityLevelName",
                    "Index",
                    "PendingRequests",
                    "ExecutingRequests",
                    "SeatsInUse",
                    "NextDispatchR",
                    "InitialSeatsSum",
                    "MaxSeatsSum",
                    "TotalWorkSum",
                ]
                .map(String::from)
                .to_vec(),
            );
            for level in &levels {
                let name = level.name();
                for queue in level.queues.lock().queue_rows() {
                    let mut row = vec![name.clone()];
                    row.extend(queue);
                    rows.push(row);
                }
            }
        }
        "dump_requests" => {
            let details = query
                .iter()
                .any(|(k, v)| k == "includeRequestDetails" && !v.is_empty());
            let mut header: Vec<String> = [
                "PriorityLevelName",
                "FlowSchemaName",
                "QueueIndex",
                "RequestIndexInQueue",
                "FlowDistingsher",
                "ArriveTime",
                "InitialSeats",
                "FinalSeats",
                "AdditionalLatency",
                "StartTime",
            ]
            .map(String::from)
            .to_vec();
            if details {
                header.extend(
                    [
                        "UserName",
                        "Verb",
                        "APIPath",
                        "Namespace",
                        "Name",
                        "APIVersion",
                        "Resource",
                        "SubResource",
                    ]
                    .map(String::from),
                );
            }
            rows.push(header);
            for level in &levels {
                let name = level.name();
                for (columns, extra) in level.queues.lock().request_rows() {
                    let mut row = vec![name.clone()];
                    row.extend(columns);
                    if details {
                        row.extend(extra);
                    }
                    rows.push(row);
                }
            }
        }
        _ => return None,
    }
    Some(tabwrite(&rows))
}

/// Go's `tabwriter.NewWriter(w, 8, 0, 1, ' ', 0)` over rows written as `a,\tb,\tc\n`: every cell
/// but a row's last is padded to its column's width (the widest cell plus one, at least 8).
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 < row.len() {
                        format!("{c},")
                    } else {
                        c.clone()
                    }
                })
                .collect()
        })
        .collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![8usize; columns];
    for row in &cells {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 1);
        }
    }
    let mut out = String::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                out.push_str(&format!("{cell:<width$}", width = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_like_go_tabwriter() {
        let rows = vec![
            vec![
                "PriorityLevelName".to_string(),
                "ActiveQueues".into(),
                "IsIdle".into(),
            ],
            vec!["exempt".into(), "0".into(), "true".into()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "PriorityLevelName, ActiveQueues, IsIdle\n\
             exempt,            0,            true\n"
        );
    }

    #[test]
    fn priority_levels_dump_lists_every_level() {
        let fc = FlowControl::new(Default::default(), Default::default());
        let text = dump(
            &fc,
            "/debug/api_priority_and_fairness/dump_priority_levels",
            &[],
        )
        .unwrap();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("PriorityLevelName, ActiveQueues,"));
        let names: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(names, ["catch-all", "exempt"]);
        assert!(dump(&fc, "/debug/api_priority_and_fairness/nope", &[]).is_none());
        let queues = dump(&fc, "/debug/api_priority_and_fairness/dump_queues", &[]).unwrap();
        // Only the header: catch-all rejects rather than queues, exempt never waits.
        assert_eq!(queues.lines().count(), 1);
    }
}
