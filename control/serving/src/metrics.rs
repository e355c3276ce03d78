//! Metrics every component exports besides its own, under upstream's names: the process
//! (component-base's `process_*`, from `/proc/self`) and leader election
//! (`leader_election_master_status`, client-go's). Rendered in the Prometheus text format
//! (0.0.4) that upstream's components serve.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`render`]'s text, as upstream's components send it.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// A registry with the process and leader election metrics (`leader`: the component's
/// candidate, if it runs leader-elected).
pub fn component_registry(leader: Option<skiff_leaderelection::LeaderHealth>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process));
    if let Some(leader) = leader {
        registry.register_collector(Box::new(LeaderStatus(leader)));
    }
    registry
}

/// `leader_election_master_status{name="<lease>"}`: 1 while this instance leads, else 0.
#[derive(Debug)]
pub struct LeaderStatus(pub skiff_leaderelection::LeaderHealth);

impl Collector for LeaderStatus {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "leader_election_master_status",
            "[ALPHA] Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("name", self.0.lease_name())];
        let series = metric.encode_family(&labels)?;
        ConstGauge::new(i64::from(self.0.is_leader())).encode(series)
    }
}

/// The process metrics of Prometheus' Go client (`process_*`), read at each scrape.
#[derive(Debug)]
pub struct Process;

/// What `/proc/self` says.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: i64,
    pub virtual_memory_bytes: i64,
    pub start_time_seconds: f64,
    pub open_fds: Option<i64>,
    /// None when unlimited.
    pub max_fds: Option<i64>,
}

impl ProcessStats {
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s))
            .unwrap_or(0.0);
        let mut stats = parse_stat(&stat, clock_ticks(), page_size(), boot_time)?;
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64);
        stats.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| parse_max_fds(&s));
        Some(stats)
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> i64 {
    // SAFETY: as above.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as i64
    } else {
        4096
    }
}

/// `/proc/self/stat` (proc(5)): utime and stime (fields 14, 15, in clock ticks), starttime
/// (22, ticks after boot), vsize (23, bytes), rss (24, pages). The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after its closing one.
fn parse_stat(stat: &str, ticks: f64, page_size: i64, boot_time: f64) -> Option<ProcessStats> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |n: usize| -> Option<i64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        start_time_seconds: boot_time + field(22)? as f64 / ticks,
        virtual_memory_bytes: field(23)?,
        resident_memory_bytes: field(24)? * page_size,
        open_fds: None,
        max_fds: None,
    })
}

/// `btime` in `/proc/stat`: the boot time, in seconds since the epoch.
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits` (None: unlimited).
fn parse_max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.cpu_seconds).encode(metric)?;
        if let Some(max) = stats.max_fds {
            let metric = encoder.encode_descriptor(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(max).encode(metric)?;
        }
        if let Some(open) = stats.open_fds {
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(open).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(stats.resident_memory_bytes).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(stats.start_time_seconds).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(stats.virtual_memory_bytes).encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as proc(5) allows.
        let stat = "4242 (skiff (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 \
                    100000 1073741824 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_001_000.0);
        assert_eq!(s.virtual_memory_bytes, 1073741824);
        assert_eq!(s.resident_memory_bytes, 2560 * 4096);
        assert!(parse_stat("garbage", 100.0, 4096, 0.0).is_none());
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(parse_max_fds(&limits.replace("1024 ", "unlimited ")), None);
    }

    /// A candidate that has not acquired the Lease reports 0 under client-go's name.
    #[tokio::test]
    async fn renders_leader_status() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let config =
            skiff_leaderelection::LeaseConfig::new("kube-system", "kube-controller-manager", "me");
        let elector = skiff_leaderelection::LeaderElector::new(client, config);
        let text = render(&component_registry(Some(elector.health())));
        assert!(
            text.contains("# TYPE leader_election_master_status gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("leader_election_master_status{name=\"kube-controller-manager\"} 0\n"),
            "{text}"
        );
    }

    /// This process's own numbers, rendered under the Go client's names.
    #[test]
    fn renders_process_metrics() {
        let text = render(&component_registry(None));
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_start_time_seconds ",
            "process_open_fds ",
            "process_max_fds ",
            "process_virtual_memory_bytes ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
        }
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(rss > 1e6, "{rss}");
    }
}
