//! `bench`: runc vs skiff-runtime latency, interleaved so background load hits both alike.

use crate::cli::BenchArgs;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Per runtime, the duration of each iteration.
type Timings = Vec<Vec<Duration>>;

struct Runtime {
    name: &'static str,
    program: PathBuf,
    root: PathBuf,
}

pub fn bench(args: &BenchArgs) -> Result<i32> {
    let work = std::env::temp_dir().join(format!("skiff-bench-{}", std::process::id()));
    let bundle = make_bundle(&args.bundle, &work)?;
    let me = std::env::current_exe()?;
    let runtimes = [
        Runtime {
            name: "runc",
            program: PathBuf::from(&args.runc),
            root: work.join("runc-root"),
        },
        Runtime {
            name: "skiff-runtime",
            program: me,
            root: work.join("skiff-root"),
        },
    ];
    let measured = measure(&runtimes, &bundle, args.iterations);
    // Also after a failed step: containers the loop left are removed by their exact ids.
    for runtime in &runtimes {
        for entry in std::fs::read_dir(&runtime.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with("bench-") {
                let _ = invoke(runtime, &["delete", "--force", &id]);
            }
        }
    }
    // skiff-runtime's per-root cgroup parent is the bench's own (containers were deleted).
    let parent = crate::containers::cgroup_parent(&runtimes[1].root);
    let parent = parent.trim_start_matches('/');
    // v2: /sys/fs/cgroup/<parent>; v1: one per controller hierarchy.
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent));
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(controller.path().join(parent));
    }
    let _ = std::fs::remove_dir_all(&work);
    let (mut run_times, mut cycle_times) = measured?;
    println!("{} iterations, interleaved; milliseconds", args.iterations);
    for (label, times) in [
        ("run /bin/true", &mut run_times),
        ("create+start+delete -f", &mut cycle_times),
    ] {
        let runc_median = median(&mut times[0]);
        for (r, runtime) in runtimes.iter().enumerate() {
            let med = median(&mut times[r]);
            println!(
                "{label:<24} {:<15} median {:>7.2}  p95 {:>7.2}  runc/this {:.2}x",
                runtime.name,
                ms(med),
                ms(percentile(&mut times[r], 95)),
                ms(runc_median) / ms(med)
            );
        }
    }
    Ok(0)
}

/// Runs each sequence `iterations` times per runtime, interleaved; returns per-runtime
/// durations of `run` and of `create && start && delete --force`.
fn measure(runtimes: &[Runtime], bundle: &Path, iterations: usize) -> Result<(Timings, Timings)> {
    let mut run_times = vec![Vec::new(); runtimes.len()];
    let mut cycle_times = vec![Vec::new(); runtimes.len()];
    for i in 0..iterations {
        for (r, runtime) in runtimes.iter().enumerate() {
            let id = format!("bench-{}-{i}", r);
            let start = Instant::now();
            invoke(runtime, &["run", "--bundle", path_str(bundle), &id])?;
            run_times[r].push(start.elapsed());
            let id = format!("bench-c-{}-{i}", r);
            let start = Instant::now();
            invoke(runtime, &["create", "--bundle", path_str(bundle), &id])?;
            invoke(runtime, &["start", &id])?;
            invoke(runtime, &["delete", "--force", &id])?;
            cycle_times[r].push(start.elapsed());
        }
    }
    Ok((run_times, cycle_times))
}

fn invoke(runtime: &Runtime, args: &[&str]) -> Result<()> {
    let mut command = Command::new(&runtime.program);
    command
        .arg("--root")
        .arg(&runtime.root)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", runtime.program.display()))?;
    if !status.success() {
        bail!("{} {:?} failed: {status}", runtime.name, args);
    }
    Ok(())
}

/// Copy of the bundle's config.json running /bin/true, pointing at the original rootfs.
fn make_bundle(source: &Path, work: &Path) -> Result<PathBuf> {
    let source = std::fs::canonicalize(source)?;
    let text =
        std::fs::read_to_string(source.join("config.json")).context("bundle has no config.json")?;
    let mut config: serde_json::Value = serde_json::from_str(&text)?;
    let rootfs = config["root"]["path"]
        .as_str()
        .context("config has no root.path")?
        .to_string();
    config["root"]["path"] = serde_json::json!(source.join(rootfs));
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["process"]["terminal"] = serde_json::json!(false);
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    Ok(bundle)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &mut [Duration]) -> Duration {
    percentile(times, 50)
}

fn percentile(times: &mut [Duration], pct: usize) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times.sort_unstable();
    let index = ((times.len() - 1) * pct) / 100;
    times[index]
}
