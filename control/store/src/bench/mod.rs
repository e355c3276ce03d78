//! `skiff store bench`: starts real etcd and skiff's store side by side on this machine, runs
//! the same etcd v3 workload against both with the `etcd-client` crate, and prints both figures
//! and the ratio. Both keep their default durability (etcd: WAL fsync per raft batch; skiff:
//! fdatasync per group commit).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::Barrier;

use servers::{connect_when_ready, start_etcd, start_skiff};

mod servers;
pub mod tools;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// Sequential puts by one client.
    #[arg(long, default_value_t = 3000)]
    pub sequential_puts: usize,
    /// Puts spread over `clients` concurrent clients.
    #[arg(long, default_value_t = 30000)]
    pub concurrent_puts: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Single-key range reads spread over `clients` clients.
    #[arg(long, default_value_t = 50000)]
    pub reads: usize,
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Events each watcher must receive.
    #[arg(long, default_value_t = 1000)]
    pub watch_events: usize,
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Where both stores keep their data (a temporary dir under /var/tmp by default, on disk).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    ops_per_sec: f64,
    p99_ms: f64,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99_ms: pick(0.99),
    }
}

/// Runs `total` operations spread over `clients` tasks (sharing `conns` connections).
async fn spread<F, Fut>(
    endpoint: &str,
    clients: usize,
    total: usize,
    op: F,
) -> anyhow::Result<Figures>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let conns = clients.clamp(1, 8);
    let mut pool = Vec::new();
    for _ in 0..conns {
        pool.push(Client::connect([endpoint], None).await?);
    }
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = pool[c % conns].clone();
        let op = op.clone();
        let barrier = barrier.clone();
        let mine: Vec<usize> = (c..total).step_by(clients).collect();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut lat = Vec::with_capacity(mine.len());
            for i in mine {
                let t = Instant::now();
                op(client.clone(), i).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(figures(all, start.elapsed()))
}

const WATCH_WRITERS: usize = 8;

struct WatchFigures {
    events_per_sec: f64,
    p99_ms: f64,
}

/// `watchers` watch streams on one prefix; writers put `events` keys, each value carrying
/// its send time. Reports deliveries per second (all watchers) and the p99 put-to-delivery
/// latency.
async fn watch_delivery(
    endpoint: &str,
    watchers: usize,
    events: usize,
    value_size: usize,
) -> anyhow::Result<WatchFigures> {
    let base = Instant::now();
    let client = Client::connect([endpoint], None).await?;
    let mut tasks = Vec::new();
    let ready = Arc::new(Barrier::new(watchers + 1));
    for _ in 0..watchers {
        let mut client = client.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client
                .watch("/bench/watch/", Some(WatchOptions::new().with_prefix()))
                .await?;
            stream.message().await?; // created
            ready.wait().await;
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                let Some(resp) = stream.message().await? else {
                    bail!("watch ended early")
                };
                let now = base.elapsed();
                for e in resp.events() {
                    if e.event_type() == EventType::Put {
                        let v = e.kv().map(|kv| kv.value()).unwrap_or_default();
                        let sent = u64::from_le_bytes(v[..8].try_into()?);
                        lat.push(now.saturating_sub(Duration::from_nanos(sent)));
                    }
                }
            }
            anyhow::Ok(lat)
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    // Several writers, so delivery (not one client's put latency) is what is measured.
    let writers: Vec<_> = (0..WATCH_WRITERS)
        .map(|w| {
            let mut writer = client.clone();
            tokio::spawn(async move {
                for i in (w..events).step_by(WATCH_WRITERS) {
                    let mut value = vec![0u8; value_size.max(8)];
                    value[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
                    writer
                        .put(format!("/bench/watch/{i:08}"), value, None)
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    let f = figures(all, elapsed);
    Ok(WatchFigures {
        events_per_sec: f.ops_per_sec,
        p99_ms: f.p99_ms,
    })
}

/// Sequential puts: one client, one request in flight, alternating between the two stores in
/// `ROUNDS` rounds so that drift on this shared machine (page cache, disk, the other
/// process's background work) falls on both alike. The client runs alone on a single-threaded
/// runtime with one KV client: a lone sequential client needs no worker pool, and the
/// cross-thread wake-ups of one (or a `Client` clone per request) would add the same fixed
/// time to every put of both stores and hide the difference between them.
async fn sequential_puts(
    endpoints: [&str; 2],
    total: usize,
    value_size: usize,
) -> anyhow::Result<[Figures; 2]> {
    const ROUNDS: usize = 5;
    let endpoints = endpoints.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut kvs = Vec::new();
            for endpoint in &endpoints {
                kvs.push(
                    Client::connect([endpoint.as_str()], None)
                        .await?
                        .kv_client(),
                );
            }
            let value = vec![b'x'; value_size];
            let mut latencies = [Vec::new(), Vec::new()];
            let mut elapsed = [Duration::ZERO; 2];
            let per_round = total.div_ceil(ROUNDS);
            for round in 0..ROUNDS {
                let keys = round * per_round..((round + 1) * per_round).min(total);
                for (store, kv) in kvs.iter_mut().enumerate() {
                    let start = Instant::now();
                    for i in keys.clone() {
                        let t = Instant::now();
                        kv.put(format!("/bench/seq/{i:08}"), value.as_slice(), None)
                            .await?;
                        latencies[store].push(t.elapsed());
                    }
                    elapsed[store] += start.elapsed();
                }
            }
            let [etcd, skiff] = latencies;
            anyhow::Ok([figures(etcd, elapsed[0]), figures(skiff, elapsed[1])])
        })
    })
    .await?
}

struct Row {
    name: String,
    etcd: f64,
    skiff: f64,
    unit: &'static str,
    higher_is_better: bool,
}

impl Row {
    fn ratio(&self) -> f64 {
        if self.higher_is_better {
            self.skiff / self.etcd
        } else {
            self.etcd / self.skiff
        }
    }
}

async fn run_suite(
    endpoint: &str,
    args: &BenchArgs,
) -> anyhow::Result<Vec<(String, f64, &'static str, bool)>> {
    let value = Arc::new(vec![b'x'; args.value_size]);
    let mut out = Vec::new();

    let v = value.clone();
    let conc = spread(
        endpoint,
        args.clients,
        args.concurrent_puts,
        move |mut c, i| {
            let v = v.clone();
            async move {
                c.put(format!("/bench/conc/{i:08}"), v.as_slice(), None)
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    out.push((
        format!("concurrent put, {} clients", args.clients),
        conc.ops_per_sec,
        "ops/s",
        true,
    ));
    out.push(("concurrent put p99".into(), conc.p99_ms, "ms", false));

    let keys = args.sequential_puts.max(1);
    let reads = spread(
        endpoint,
        args.clients,
        args.reads,
        move |mut c, i| async move {
            let r = c
                .get(format!("/bench/seq/{:08}", (i * 7919) % keys), None)
                .await?;
            if r.kvs().is_empty() {
                bail!("read found nothing");
            }
            Ok(())
        },
    )
    .await?;
    out.push((
        format!("range (1 key), {} clients", args.clients),
        reads.ops_per_sec,
        "ops/s",
        true,
    ));
    out.push(("range p99".into(), reads.p99_ms, "ms", false));

    let lists = spread(endpoint, 16, 2000, move |mut c, _| async move {
        let r = c
            .get(
                "/bench/seq/",
                Some(GetOptions::new().with_prefix().with_limit(100)),
            )
            .await?;
        if r.kvs().len() != 100.min(keys) {
            bail!("list returned {} keys", r.kvs().len());
        }
        Ok(())
    })
    .await?;
    out.push((
        "range (100 keys), 16 clients".into(),
        lists.ops_per_sec,
        "ops/s",
        true,
    ));

    let w = watch_delivery(endpoint, args.watchers, args.watch_events, args.value_size).await?;
    out.push((
        format!("watch delivery, {} watchers", args.watchers),
        w.events_per_sec,
        "events/s",
        true,
    ));
    out.push(("watch delivery p99".into(), w.p99_ms, "ms", false));
    Ok(out)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let work = match &args.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("skiff-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("skiff-bench-")
            .tempdir_in("/var/tmp")?,
    };
    let (mut etcd, etcd_url) = start_etcd(&args.etcd, &work.path().join("etcd"))?;
    let (mut skiff, skiff_url) = start_skiff(&work.path().join("skiff"))?;
    connect_when_ready(&etcd_url, &mut etcd).await?;
    connect_when_ready(&skiff_url, &mut skiff).await?;
    let etcd_version = Client::connect([&etcd_url], None)
        .await?
        .status()
        .await?
        .version()
        .to_string();

    println!("etcd {etcd_version} at {etcd_url} vs skiff store at {skiff_url}");
    println!("workload: {} sequential puts, {} puts over {} clients, {} reads, {} watchers x {} events, {}-byte values\n",
        args.sequential_puts, args.concurrent_puts, args.clients, args.reads, args.watchers, args.watch_events, args.value_size);
    let [etcd_seq, skiff_seq] = sequential_puts(
        [&etcd_url, &skiff_url],
        args.sequential_puts,
        args.value_size,
    )
    .await
    .context("sequential puts")?;
    let mut etcd_rows = vec![
        (
            "sequential put, 1 client".to_string(),
            etcd_seq.ops_per_sec,
            "ops/s",
            true,
        ),
        (
            "sequential put p99".to_string(),
            etcd_seq.p99_ms,
            "ms",
            false,
        ),
    ];
    let mut skiff_rows = vec![
        (
            "sequential put, 1 client".to_string(),
            skiff_seq.ops_per_sec,
            "ops/s",
            true,
        ),
        (
            "sequential put p99".to_string(),
            skiff_seq.p99_ms,
            "ms",
            false,
        ),
    ];
    etcd_rows.extend(run_suite(&etcd_url, &args).await.context("etcd run")?);
    skiff_rows.extend(run_suite(&skiff_url, &args).await.context("skiff run")?);
    let rows: Vec<Row> = etcd_rows
        .into_iter()
        .zip(skiff_rows)
        .map(|((name, e, unit, hib), (_, s, _, _))| Row {
            name,
            etcd: e,
            skiff: s,
            unit,
            higher_is_better: hib,
        })
        .collect();
    println!("| workload | etcd 3.4 | skiff store | skiff vs etcd |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} {} | {:.1} {} | {:.2}x |",
            r.name,
            r.etcd,
            r.unit,
            r.skiff,
            r.unit,
            r.ratio()
        );
    }
    println!("\n(ratio > 1: skiff is better; for latencies it is etcd's p99 / skiff's p99)");
    drop(etcd);
    drop(skiff);
    Ok(())
}
