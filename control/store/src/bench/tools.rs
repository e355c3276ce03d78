//! `skiff store bench-tools`: etcd's own load generators — `etcdctl check perf` and the
//! `benchmark` tool from etcd's repository — against real etcd and `skiff store`, one after the
//! other in one run, each test on a fresh pair of servers; prints both figures and the ratio.
//!
//! These are loads skiff did not write: the same binaries etcd's maintainers use to measure
//! etcd (op-guide/performance.md), with their connection and client counts. `skiff store bench`
//! (the module above) measures the paths the API server uses through the Rust client; this one
//! answers whether the store holds up under etcd's clients and their 1,000-client profiles.
//!
//! The anchors come from `../shared/tools/build-anchors.sh` (`TARGETS="etcd"` builds etcd,
//! etcdctl and `benchmark` 3.6 into /opt/anchors/bin); Debian's etcd 3.4 works too for
//! `check perf` (`--etcd /usr/bin/etcd --etcdctl /usr/bin/etcdctl`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::servers::{connect_when_ready, start_etcd, start_skiff};

#[derive(Debug, Clone, clap::Args)]
pub struct ToolsArgs {
    /// The etcd binary compared against.
    #[arg(long, default_value = "/opt/anchors/bin/etcd")]
    pub etcd: PathBuf,
    /// The etcdctl that runs `check perf`.
    #[arg(long, default_value = "/opt/anchors/bin/etcdctl")]
    pub etcdctl: PathBuf,
    /// etcd's `benchmark` tool (tools/benchmark in etcd's repository).
    #[arg(long, default_value = "/opt/anchors/bin/benchmark")]
    pub benchmark: PathBuf,
    /// `etcdctl check perf` loads to run (s: 50 clients, m: 200, l: 500, xl: 1,000; 60 s each
    /// per server).
    #[arg(long, value_delimiter = ',', default_value = "s,m,l,xl")]
    pub check_perf: Vec<String>,
    /// `benchmark` profiles to run: put, txn-put, range-l, range-s, watch, watch-latency.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "put,txn-put,range-l,range-s,watch,watch-latency"
    )]
    pub profiles: Vec<String>,
    /// Client counts for put, txn-put and range (connections: clients/10, at least 1).
    #[arg(long, value_delimiter = ',', default_value = "1,50,1000")]
    pub clients: Vec<u32>,
    /// Requests per put/txn-put/range test (a tenth of it for 1 client).
    #[arg(long, default_value_t = 100_000)]
    pub total: u64,
    /// Where both stores keep their data (a temporary dir under /var/tmp by default, on disk).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// One measured figure of one test, for both servers.
struct Row {
    test: String,
    unit: &'static str,
    higher_is_better: bool,
    etcd: f64,
    skiff: f64,
}

impl Row {
    /// > 1 means skiff is better.
    fn ratio(&self) -> f64 {
        if self.higher_is_better {
            self.skiff / self.etcd
        } else {
            self.etcd / self.skiff
        }
    }
}

/// What one run of a tool reports: figure name → value.
type Report = Vec<(&'static str, &'static str, bool, f64)>;

/// Runs a tool against one endpoint (`host:port`) and reads its output.
type RunTool = Box<dyn Fn(&ToolsArgs, &str) -> anyhow::Result<Report>>;

/// A test: its name and how to run it.
struct Test {
    name: String,
    run: RunTool,
}

pub async fn run(args: ToolsArgs) -> anyhow::Result<()> {
    for (bin, what) in [
        (&args.etcd, "etcd"),
        (&args.etcdctl, "etcdctl"),
        (&args.benchmark, "benchmark"),
    ] {
        if !bin.exists() {
            bail!(
                "{} ({what}) does not exist: build the anchors with \
                 TARGETS=etcd ../shared/tools/build-anchors.sh, or pass --{what}",
                bin.display()
            );
        }
    }
    let work = tempfile::Builder::new()
        .prefix("skiff-bench-tools-")
        .tempdir_in(args.work_dir.as_deref().unwrap_or(Path::new("/var/tmp")))?;
    let version = tool_version(&args.etcd)?;
    println!(
        "etcd {version} vs skiff store; each test on fresh servers, etcd first, data in {}",
        work.path().display()
    );
    println!("fsync floor of this disk: {}\n", fsync_floor(work.path())?);
    let mut rows = Vec::new();
    for (i, test) in tests(&args)?.into_iter().enumerate() {
        let mut figures = Vec::new();
        for which in ["etcd", "skiff"] {
            let dir = work.path().join(format!("{i}-{which}"));
            let (mut server, url) = match which {
                "etcd" => start_etcd(&args.etcd, &dir)?,
                _ => start_skiff(&dir)?,
            };
            connect_when_ready(&url, &mut server).await?;
            let endpoint = url.trim_start_matches("http://").to_string();
            let report = tokio::task::block_in_place(|| (test.run)(&args, &endpoint))
                .with_context(|| format!("{} against {which}", test.name))?;
            drop(server);
            std::fs::remove_dir_all(&dir).ok();
            figures.push(report);
        }
        let [etcd, skiff] = <[Report; 2]>::try_from(figures).expect("two servers");
        for ((figure, unit, higher_is_better, e), (_, _, _, s)) in etcd.into_iter().zip(skiff) {
            let row = Row {
                test: if figure.is_empty() {
                    test.name.clone()
                } else {
                    format!("{} {figure}", test.name)
                },
                unit,
                higher_is_better,
                etcd: e,
                skiff: s,
            };
            println!(
                "{:<48} etcd {:>10.1} {unit:<9} skiff {:>10.1} {unit:<9} {:.2}x",
                row.test,
                row.etcd,
                row.skiff,
                row.ratio()
            );
            rows.push(row);
        }
    }
    println!("\n| test | etcd {version} | skiff store | skiff vs etcd |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} {} | {:.1} {} | {:.2}x |",
            r.test,
            r.etcd,
            r.unit,
            r.skiff,
            r.unit,
            r.ratio()
        );
    }
    println!("\n(ratio > 1: skiff is better; for latencies it is etcd's / skiff's)");
    Ok(())
}

fn tool_version(etcd: &Path) -> anyhow::Result<String> {
    let out = Command::new(etcd).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or("?")
        .trim()
        .to_string())
}

/// The median time of a 4 KiB write + fdatasync on the disk under `dir`: the floor under any
/// durable write, for judging the 1-client figures.
fn fsync_floor(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&[0u8; 4096])?;
    file.sync_all()?;
    let mut times = Vec::new();
    for i in 0..200u64 {
        let t = std::time::Instant::now();
        file.write_all_at(&[i as u8; 4096], (i % 16) * 4096)?;
        // SAFETY: fdatasync on a descriptor this function owns.
        let rc = unsafe { libc::fdatasync(std::os::fd::AsRawFd::as_raw_fd(&file)) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        times.push(t.elapsed());
    }
    std::fs::remove_file(&path).ok();
    times.sort();
    Ok(format!(
        "4 KiB write + fdatasync p50 {:.3} ms, p99 {:.3} ms",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() * 99 / 100].as_secs_f64() * 1000.0
    ))
}

fn tests(args: &ToolsArgs) -> anyhow::Result<Vec<Test>> {
    let mut tests = Vec::new();
    for load in &args.check_perf {
        if !["s", "m", "l", "xl"].contains(&load.as_str()) {
            bail!("--check-perf {load}: expected s, m, l or xl");
        }
        let load = load.clone();
        tests.push(Test {
            name: format!("etcdctl check perf --load={load}"),
            run: Box::new(move |args, endpoint| check_perf(args, endpoint, &load)),
        });
    }
    for profile in &args.profiles {
        match profile.as_str() {
            "put" | "txn-put" | "range-l" | "range-s" => {
                for &clients in &args.clients {
                    let profile = profile.clone();
                    tests.push(Test {
                        name: format!("benchmark {profile}, {clients} clients"),
                        run: Box::new(move |args, endpoint| {
                            request_profile(args, endpoint, &profile, clients)
                        }),
                    });
                }
            }
            "watch" => tests.push(Test {
                name: "benchmark watch, 100 streams x 10 watchers".into(),
                run: Box::new(watch),
            }),
            "watch-latency" => tests.push(Test {
                name: "benchmark watch-latency, 10 streams x 10 watchers".into(),
                run: Box::new(watch_latency),
            }),
            other => bail!(
                "--profiles {other}: expected put, txn-put, range-l, range-s, watch, watch-latency"
            ),
        }
    }
    Ok(tests)
}

/// `etcdctl check perf`: its writes per second and slowest request (it prints PASS/FAIL lines
/// and exits non-zero on FAIL, which is a result here, not an error).
fn check_perf(args: &ToolsArgs, endpoint: &str, load: &str) -> anyhow::Result<Report> {
    let out = Command::new(&args.etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=http://{endpoint}"))
        .args(["check", "perf", &format!("--load={load}")])
        .output()
        .context("running etcdctl check perf")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(vec![
        (
            "throughput",
            "writes/s",
            true,
            number_after(&text, "Throughput")?,
        ),
        (
            "slowest",
            "ms",
            false,
            number_after(&text, "Slowest request took")? * 1000.0,
        ),
    ])
}

/// The first number after `marker` on the line holding it: check perf prints
/// `PASS: Throughput is 14995 writes/s` or `FAIL: Throughput too low: 7334 writes/s`, and
/// `PASS: Slowest request took 0.29s` or `Slowest request took too long: 0.61s`.
fn number_after(text: &str, marker: &str) -> anyhow::Result<f64> {
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .with_context(|| format!("no {marker:?} in etcdctl's output:\n{text}"))?;
    let rest = &line[line.find(marker).expect("found") + marker.len()..];
    let number: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .with_context(|| format!("reading a number in {line:?}"))
}

/// put / txn-put / range at one client count, as etcd's performance guide runs them: 8-byte
/// keys, 256-byte values, connections = clients / 10.
fn request_profile(
    args: &ToolsArgs,
    endpoint: &str,
    profile: &str,
    clients: u32,
) -> anyhow::Result<Report> {
    let conns = (clients / 10).max(1);
    let total = if clients == 1 {
        (args.total / 10).max(1)
    } else {
        args.total
    };
    let mut cmd = benchmark_command(args, endpoint, conns, clients);
    match profile {
        "put" => {
            cmd.args(["put", "--key-size=8", "--val-size=256", "--sequential-keys"])
                .arg("--key-space-size=100000");
        }
        "txn-put" => {
            cmd.args(["txn-put", "--key-size=8", "--val-size=256"])
                .arg("--key-space-size=100000");
        }
        "range-l" | "range-s" => {
            // The key read, with a 256-byte value.
            let put = Command::new(&args.etcdctl)
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=http://{endpoint}"))
                .args(["put", "foo", &"v".repeat(256)])
                .output()
                .context("running etcdctl put")?;
            if !put.status.success() {
                bail!("etcdctl put: {}", String::from_utf8_lossy(&put.stderr));
            }
            let consistency = if profile == "range-l" { "l" } else { "s" };
            cmd.args(["range", "foo", &format!("--consistency={consistency}")]);
        }
        other => bail!("unknown profile {other}"),
    }
    cmd.arg(format!("--total={total}"));
    let text = run_benchmark(cmd)?;
    let summary = section(&text, "Summary:").context("no summary in benchmark's output")?;
    Ok(vec![
        ("", "req/s", true, summary.requests_per_sec),
        ("p99", "ms", false, summary.p99_ms),
    ])
}

/// Events delivered per second to 1,000 watchers (100 streams of 10) on one key while puts
/// are made: etcd's watch fan-out.
fn watch(args: &ToolsArgs, endpoint: &str) -> anyhow::Result<Report> {
    let mut cmd = benchmark_command(args, endpoint, 10, 10);
    cmd.args([
        "watch",
        "--streams=100",
        "--watch-per-stream=10",
        "--put-total=2000",
        "--put-rate=1000",
    ]);
    let text = run_benchmark(cmd)?;
    let events = section(&text, "Watch events received summary")
        .context("no events summary in benchmark's output")?;
    Ok(vec![(
        "events received",
        "events/s",
        true,
        events.requests_per_sec,
    )])
}

/// The time from a put to its event at 100 watchers, at 1,000 puts per second.
fn watch_latency(args: &ToolsArgs, endpoint: &str) -> anyhow::Result<Report> {
    let mut cmd = benchmark_command(args, endpoint, 10, 10);
    cmd.args([
        "watch-latency",
        "--streams=10",
        "--watchers-per-stream=10",
        "--put-total=5000",
        "--put-rate=1000",
        "--val-size=256",
    ]);
    let text = run_benchmark(cmd)?;
    let events = section(&text, "Watch events summary")
        .context("no events summary in benchmark's output")?;
    Ok(vec![
        ("delivery p50", "ms", false, events.p50_ms),
        ("delivery p99", "ms", false, events.p99_ms),
    ])
}

fn benchmark_command(args: &ToolsArgs, endpoint: &str, conns: u32, clients: u32) -> Command {
    let mut cmd = Command::new(&args.benchmark);
    cmd.arg(format!("--endpoints={endpoint}"))
        .arg(format!("--conns={conns}"))
        .arg(format!("--clients={clients}"))
        .arg("--precise");
    cmd
}

fn run_benchmark(mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd.output().context("running etcd's benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "benchmark failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    Ok(text)
}

/// The figures of one "Summary" block of benchmark's report.
#[derive(Debug, PartialEq)]
struct Summary {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Reads the block that starts at the first line containing `title`: its `Requests/sec:` and
/// its latency distribution's 50% and 99% lines.
fn section(text: &str, title: &str) -> Option<Summary> {
    let start = text.find(title)?;
    let block = &text[start..];
    // The block ends where the next report's title begins (a line ending in "summary:").
    let end = block[title.len()..]
        .find("summary:")
        .map(|i| i + title.len())
        .unwrap_or(block.len());
    let block = &block[..end];
    let value = |prefix: &str| -> Option<f64> {
        block.lines().find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(prefix)?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    Some(Summary {
        requests_per_sec: value("Requests/sec:")?,
        p50_ms: value("50% in").unwrap_or(f64::NAN) * 1000.0,
        p99_ms: value("99% in").unwrap_or(f64::NAN) * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCH: &str = "Watch creation summary:\n\nSummary:\n  Total:\t0.0298 secs.\n  Requests/sec:\t1343.6818\n\nLatency distribution:\n  50% in 0.0009 secs.\n  99% in 0.0197 secs.\nWatch events received summary:\n\nSummary:\n  Total:\t0.3091 secs.\n  Requests/sec:\t25880.0646\n\nLatency distribution:\n  10% in 0.0000 secs.\n  50% in 0.0001 secs.\n  99% in 0.0003 secs.\n  99.9% in 0.0002 secs.\n";

    #[test]
    fn reads_check_perf_pass_and_fail_lines() {
        let pass = "PASS: Throughput is 14995 writes/s\nPASS: Slowest request took 0.293410s\n";
        assert_eq!(number_after(pass, "Throughput").unwrap(), 14995.0);
        assert_eq!(number_after(pass, "Slowest request took").unwrap(), 0.29341);
        let fail =
            "FAIL: Throughput too low: 7334 writes/s\nSlowest request took too long: 0.612000s\n";
        assert_eq!(number_after(fail, "Throughput").unwrap(), 7334.0);
        assert_eq!(number_after(fail, "Slowest request took").unwrap(), 0.612);
        assert!(number_after("nothing", "Throughput").is_err());
    }

    #[test]
    fn reads_each_section_of_benchmarks_report() {
        let created = section(WATCH, "Watch creation summary").unwrap();
        assert_eq!(created.requests_per_sec, 1343.6818);
        assert!((created.p99_ms - 19.7).abs() < 1e-9);
        let events = section(WATCH, "Watch events received summary").unwrap();
        assert_eq!(events.requests_per_sec, 25880.0646);
        assert!((events.p50_ms - 0.1).abs() < 1e-9);
        assert!((events.p99_ms - 0.3).abs() < 1e-9, "99.9% is not 99%");
        assert_eq!(section(WATCH, "Put summary"), None);
    }
}
