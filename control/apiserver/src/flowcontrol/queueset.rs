//! One priority level's queues and seats: upstream's fair queuing for server requests
//! (`k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing/queueset`), in its structure.
//!
//! A request takes seats (always one here: skiff does no width estimation) out of the level's
//! concurrency limit. When none are free it waits in one of the level's queues: its flow's hash
//! deals a hand of `handSize` queues (`shuffle_sharding`) and the request joins the one with the
//! least work waiting; when that queue already holds `queueLengthLimit` requests it is refused
//! (`queue-full`). A level of type `Reject` (no queues) refuses at once (`concurrency-limit`).
//!
//! Which queue is served next is decided in virtual time, as upstream's queue set decides it:
//! the set's clock `R` advances at the rate each active queue would be served at if the seats
//! were shared equally among them (`min(seats wanted, limit) / active queues` seat-seconds per
//! second); each queue has the virtual time its next request may start at (`nextDispatchR`),
//! which moves on by the request's work (`seats × G`, G = 3 ms) when it is dispatched and is
//! corrected by the difference between G and the real service time when it finishes. The queue
//! whose head request would finish first in virtual time goes next, ties broken round-robin.
//! So a flow that sends slow requests is charged for their real duration and the other queues
//! catch up: each busy queue gets an equal share of the seats, whatever its flow sends.
//!
//! The set is plain data behind the caller's lock: `start` says execute, wait (with a receiver
//! that dispatch fills) or reject; `finish` returns the seats and dispatches what now fits;
//! `abandon` takes a waiting request out (its wait limit passed, or its client went away).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use super::metrics::Counters;
use super::shuffle_sharding::Dealer;

/// Upstream's `estimatedServiceDuration` (G): the work charged when a request is dispatched,
/// per seat, corrected when it finishes.
pub const ESTIMATED_SERVICE_SECONDS: f64 = 0.003;

/// A level's queuing parameters (`spec.limited.limitResponse.queuing`); `queues == 0` is the
/// `Reject` limit response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuingConfig {
    pub queues: usize,
    pub hand_size: usize,
    pub queue_length_limit: usize,
}

impl QueuingConfig {
    pub const REJECT: QueuingConfig = QueuingConfig {
        queues: 0,
        hand_size: 0,
        queue_length_limit: 0,
    };
}

/// Why a request was not served (the `reason` label of `rejected_requests_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    QueueFull,
    ConcurrencyLimit,
    TimeOut,
    Cancelled,
}

impl Reject {
    pub fn reason(self) -> &'static str {
        match self {
            Reject::QueueFull => "queue-full",
            Reject::ConcurrencyLimit => "concurrency-limit",
            Reject::TimeOut => "time-out",
            Reject::Cancelled => "cancelled",
        }
    }
}

/// Who a request is, for the dumps and the metrics.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub flow_schema: String,
    pub distinguisher: String,
    /// The request's user, verb and path (`dump_requests?includeRequestDetails=1`).
    pub details: Vec<String>,
}

/// A request holding seats; give it back to [`QueueSet::finish`].
#[derive(Debug)]
pub struct Execution {
    id: u64,
    queue: Option<usize>,
    shape: u64,
    seats: usize,
    started: Instant,
}

/// What dispatch sends a waiting request.
#[derive(Debug)]
pub struct Dispatched(pub(super) Execution);

pub enum Start {
    Execute(Execution),
    /// Queued: `rx` receives the execution when the request is dispatched.
    Wait {
        id: u64,
        rx: oneshot::Receiver<Dispatched>,
    },
    Reject(Reject),
}

struct Waiter {
    id: u64,
    hash: u64,
    seats: usize,
    meta: RequestMeta,
    arrived: SystemTime,
    arrival_r: f64,
    wake: oneshot::Sender<Dispatched>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiter>,
    next_dispatch_r: f64,
    executing: usize,
    seats_in_use: usize,
}

impl Queue {
    fn waiting_seats(&self) -> usize {
        self.waiting.iter().map(|w| w.seats).sum()
    }

    fn idle(&self) -> bool {
        self.waiting.is_empty() && self.executing == 0
    }
}

struct Running {
    queue: Option<usize>,
    meta: RequestMeta,
    arrived: SystemTime,
    started: SystemTime,
    seats: usize,
}

/// The counts `dump_priority_levels` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub active_queues: usize,
    pub idle: bool,
    pub waiting: usize,
    pub executing: usize,
    pub dispatched: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub cancelled: u64,
}

pub struct QueueSet {
    level: String,
    config: QueuingConfig,
    limit: usize,
    dealer: Option<Dealer>,
    queues: Vec<Queue>,
    /// Moves when the queues are rebuilt: executions from before no longer name a queue.
    shape: u64,
    current_r: f64,
    last_sync: Instant,
    robin: usize,
    enqueues: usize,
    seats_in_use: usize,
    executing: usize,
    waiting: usize,
    next_id: u64,
    running: HashMap<u64, Running>,
    totals: Totals,
    metrics: Arc<Counters>,
}

impl QueueSet {
    pub fn new(
        level: &str,
        config: QueuingConfig,
        limit: usize,
        metrics: Arc<Counters>,
    ) -> QueueSet {
        let mut set = QueueSet {
            level: level.to_string(),
            config: QueuingConfig::REJECT,
            limit,
            dealer: None,
            queues: Vec::new(),
            shape: 0,
            current_r: 0.0,
            last_sync: Instant::now(),
            robin: 0,
            enqueues: 0,
            seats_in_use: 0,
            executing: 0,
            waiting: 0,
            next_id: 0,
            running: HashMap::new(),
            totals: Totals::default(),
            metrics,
        };
        set.configure(config, limit, Instant::now());
        set
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A new configuration. The limit applies at once; when the queues change shape the waiting
    /// requests are dealt again into the new ones (or stay in one queue that drains, when the
    /// level no longer queues), as upstream keeps serving what it has accepted.
    pub fn configure(&mut self, config: QueuingConfig, limit: usize, now: Instant) {
        self.sync(now);
        self.limit = limit;
        if config != self.config {
            self.config = config;
            self.dealer = Dealer::new(config.queues, config.hand_size.min(config.queues));
            let waiters: Vec<Waiter> = self
                .queues
                .iter_mut()
                .flat_map(|q| q.waiting.drain(..))
                .collect();
            self.shape += 1;
            for r in self.running.values_mut() {
                r.queue = None;
            }
            let count = if config.queues > 0 {
                config.queues
            } else {
                usize::from(!waiters.is_empty())
            };
            self.queues = (0..count).map(|_| Queue::default()).collect();
            self.robin = 0;
            for w in waiters {
                let index = match self.dealer {
                    Some(_) => self.shuffle_shard(w.hash),
                    None => 0,
                };
                let queue = &mut self.queues[index];
                if queue.idle() {
                    queue.next_dispatch_r = self.current_r;
                }
                queue.waiting.push_back(w);
            }
        }
        self.dispatch_as_much_as_possible(now);
    }

    /// Advances virtual time to `now`.
    fn sync(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_sync).as_secs_f64();
        self.current_r += elapsed * self.virtual_time_ratio();
        self.last_sync = now;
    }

    /// Upstream's `getVirtualTimeRatioLocked`.
    fn virtual_time_ratio(&self) -> f64 {
        let mut active = 0usize;
        let mut seats = 0usize;
        for q in &self.queues {
            seats += q.seats_in_use + q.waiting_seats();
            if !q.idle() {
                active += 1;
            }
        }
        if active == 0 {
            return 0.0;
        }
        seats.min(self.limit) as f64 / active as f64
    }

    fn can_accommodate(&self, seats: usize) -> bool {
        if seats > self.limit {
            return self.executing == 0;
        }
        self.seats_in_use + seats <= self.limit
    }

    /// The least loaded queue of the flow's hand, looked at from a rotating offset (upstream's
    /// `shuffleShardLocked`).
    fn shuffle_shard(&mut self, hash: u64) -> usize {
        let Some(dealer) = self.dealer else {
            return 0;
        };
        let hand = dealer.deal(hash);
        let offset = self.enqueues % hand.len();
        self.enqueues += 1;
        let mut best = hand[offset];
        let mut least = f64::MAX;
        for i in 0..hand.len() {
            let index = hand[(offset + i) % hand.len()];
            let work = self.queues[index].waiting_seats() as f64 * ESTIMATED_SERVICE_SECONDS;
            if work < least {
                least = work;
                best = index;
            }
        }
        best
    }

    /// A request arrives (`hash`: its flow's; `seats`: its width).
    pub fn start(&mut self, now: Instant, hash: u64, seats: usize, meta: RequestMeta) -> Start {
        self.sync(now);
        self.next_id += 1;
        let id = self.next_id;
        if self.config.queues == 0 {
            if !self.can_accommodate(seats) {
                return Start::Reject(self.reject(&meta.flow_schema, Reject::ConcurrencyLimit));
            }
            let execution = self.begin_execution(id, None, seats, meta, SystemTime::now(), now);
            return Start::Execute(execution);
        }
        let index = self.shuffle_shard(hash);
        if self.seats_in_use >= self.limit
            && self.queues[index].waiting.len() >= self.config.queue_length_limit
        {
            return Start::Reject(self.reject(&meta.flow_schema, Reject::QueueFull));
        }
        let (wake, mut rx) = oneshot::channel();
        let queue = &mut self.queues[index];
        if queue.idle() {
            queue.next_dispatch_r = self.current_r;
        }
        self.metrics.add_inqueue(&self.level, &meta.flow_schema, 1);
        queue.waiting.push_back(Waiter {
            id,
            hash,
            seats,
            meta,
            arrived: SystemTime::now(),
            arrival_r: self.current_r,
            wake,
        });
        self.waiting += 1;
        self.bound_next_dispatch(index);
        self.dispatch_as_much_as_possible(now);
        match rx.try_recv() {
            Ok(Dispatched(execution)) => Start::Execute(execution),
            Err(_) => Start::Wait { id, rx },
        }
    }

    fn reject(&mut self, schema: &str, why: Reject) -> Reject {
        self.totals.rejected += 1;
        match why {
            Reject::TimeOut => self.totals.timed_out += 1,
            Reject::Cancelled => self.totals.cancelled += 1,
            _ => {}
        }
        self.metrics.rejected(&self.level, schema, why.reason());
        why
    }

    fn begin_execution(
        &mut self,
        id: u64,
        queue: Option<usize>,
        seats: usize,
        meta: RequestMeta,
        arrived: SystemTime,
        now: Instant,
    ) -> Execution {
        self.seats_in_use += seats;
        self.executing += 1;
        self.totals.dispatched += 1;
        if let Some(q) = queue {
            let queue = &mut self.queues[q];
            queue.executing += 1;
            queue.seats_in_use += seats;
            queue.next_dispatch_r += seats as f64 * ESTIMATED_SERVICE_SECONDS;
        }
        self.metrics
            .add_executing(&self.level, &meta.flow_schema, 1);
        self.metrics.dispatched(&self.level, &meta.flow_schema);
        self.running.insert(
            id,
            Running {
                queue,
                meta,
                arrived,
                started: SystemTime::now(),
                seats,
            },
        );
        Execution {
            id,
            queue,
            shape: self.shape,
            seats,
            started: now,
        }
    }

    fn dispatch_as_much_as_possible(&mut self, now: Instant) {
        while self.waiting > 0 && self.dispatch_one(now) {}
    }

    /// Upstream's `dispatchLocked` with `findDispatchQueueToBoundLocked`: the queue whose head
    /// finishes first in virtual time, if its seats fit.
    fn dispatch_one(&mut self, now: Instant) -> bool {
        let n = self.queues.len();
        let mut best = None;
        let mut min_finish = f64::MAX;
        for _ in 0..n {
            self.robin = (self.robin + 1) % n;
            let queue = &self.queues[self.robin];
            if let Some(head) = queue.waiting.front() {
                let finish = queue.next_dispatch_r + head.seats as f64 * ESTIMATED_SERVICE_SECONDS;
                if finish < min_finish {
                    min_finish = finish;
                    best = Some(self.robin);
                }
            }
        }
        let Some(index) = best else {
            return false;
        };
        let seats = self.queues[index].waiting.front().map_or(1, |w| w.seats);
        if !self.can_accommodate(seats) {
            return false;
        }
        let Some(waiter) = self.queues[index].waiting.pop_front() else {
            return false;
        };
        self.robin = index;
        self.waiting -= 1;
        self.metrics
            .add_inqueue(&self.level, &waiter.meta.flow_schema, -1);
        if waiter.wake.is_closed() {
            // Its client is gone (the filter's guard normally takes it out first).
            self.reject(&waiter.meta.flow_schema, Reject::Cancelled);
            self.bound_next_dispatch(index);
            return true;
        }
        let execution = self.begin_execution(
            waiter.id,
            Some(index),
            waiter.seats,
            waiter.meta,
            waiter.arrived,
            now,
        );
        if let Err(Dispatched(execution)) = waiter.wake.send(Dispatched(execution)) {
            self.finish(now, execution);
        }
        self.bound_next_dispatch(index);
        true
    }

    /// A queue's next start is never before its head request arrived (upstream's anti-windup).
    fn bound_next_dispatch(&mut self, index: usize) {
        let queue = &mut self.queues[index];
        if let Some(head) = queue.waiting.front() {
            if queue.next_dispatch_r < head.arrival_r {
                queue.next_dispatch_r = head.arrival_r;
            }
        }
    }

    /// The request is done: its seats go back, the queue's virtual start is corrected by its
    /// real service time, and what now fits is dispatched.
    pub fn finish(&mut self, now: Instant, execution: Execution) {
        self.sync(now);
        let Some(running) = self.running.remove(&execution.id) else {
            return;
        };
        self.executing -= 1;
        self.seats_in_use -= execution.seats;
        self.metrics
            .add_executing(&self.level, &running.meta.flow_schema, -1);
        if let Some(index) = execution.queue.filter(|_| execution.shape == self.shape) {
            let actual = now
                .saturating_duration_since(execution.started)
                .as_secs_f64();
            let queue = &mut self.queues[index];
            queue.executing -= 1;
            queue.seats_in_use -= execution.seats;
            queue.next_dispatch_r -= execution.seats as f64 * (ESTIMATED_SERVICE_SECONDS - actual);
            self.bound_next_dispatch(index);
        }
        self.dispatch_as_much_as_possible(now);
    }

    /// Takes a waiting request out of its queue: its wait limit passed (`TimeOut`) or its
    /// client went away (`Cancelled`). False when it is no longer waiting (dispatched meanwhile:
    /// its receiver holds the execution).
    pub fn abandon(&mut self, id: u64, why: Reject) -> bool {
        for index in 0..self.queues.len() {
            let queue = &mut self.queues[index];
            if let Some(at) = queue.waiting.iter().position(|w| w.id == id) {
                let waiter = queue.waiting.remove(at).expect("position is in range");
                self.waiting -= 1;
                self.metrics
                    .add_inqueue(&self.level, &waiter.meta.flow_schema, -1);
                self.reject(&waiter.meta.flow_schema, why);
                self.bound_next_dispatch(index);
                return true;
            }
        }
        false
    }

    pub fn totals(&self) -> Totals {
        Totals {
            active_queues: self.queues.iter().filter(|q| !q.waiting.is_empty()).count(),
            idle: self.waiting == 0 && self.executing == 0,
            waiting: self.waiting,
            executing: self.executing,
            ..self.totals
        }
    }

    /// `dump_queues` rows after the level's name: index, pending, executing, seats in use,
    /// nextDispatchR, initial seats, max seats, total work.
    pub fn queue_rows(&self) -> Vec<[String; 8]> {
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let seats = q.waiting_seats();
                [
                    i.to_string(),
                    q.waiting.len().to_string(),
                    q.executing.to_string(),
                    q.seats_in_use.to_string(),
                    seat_seconds(q.next_dispatch_r),
                    seats.to_string(),
                    seats.to_string(),
                    seat_seconds(seats as f64 * ESTIMATED_SERVICE_SECONDS),
                ]
            })
            .collect()
    }

    /// `dump_requests` rows after the level's name: flow schema, queue index, index in queue
    /// (-1: executing), distinguisher, arrival, initial seats, final seats, additional latency,
    /// start; then the details.
    pub fn request_rows(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let time = |t: SystemTime| {
            jiff::Timestamp::try_from(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let mut rows = Vec::new();
        for (qi, q) in self.queues.iter().enumerate() {
            for (ri, w) in q.waiting.iter().enumerate() {
                rows.push((
                    vec![
                        w.meta.flow_schema.clone(),
                        qi.to_string(),
                        ri.to_string(),
                        w.meta.distinguisher.clone(),
                        time(w.arrived),
                        w.seats.to_string(),
                        "0".into(),
                        "0s".into(),
                        "0001-01-01T00:00:00Z".into(),
                    ],
                    w.meta.details.clone(),
                ));
            }
        }
        let mut running: Vec<_> = self.running.iter().collect();
        running.sort_by_key(|(id, _)| **id);
        for (_, r) in running {
            let queue = r.queue.map_or(-1, |q| q as i64);
            rows.push((
                vec![
                    r.meta.flow_schema.clone(),
                    queue.to_string(),
                    "-1".into(),
                    r.meta.distinguisher.clone(),
                    time(r.arrived),
                    r.seats.to_string(),
                    "0".into(),
                    "0s".into(),
                    time(r.started),
                ],
                r.meta.details.clone(),
            ));
        }
        rows
    }
}

/// Upstream's `SeatSeconds.String()`: fixed point with eight decimals and the unit `ss`.
pub fn seat_seconds(value: f64) -> String {
    let scaled = (value.max(0.0) * 1e8).round() as u64;
    format!("{}.{:08}ss", scaled / 100_000_000, scaled % 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(queues: usize, hand: usize, length: usize, limit: usize) -> QueueSet {
        QueueSet::new(
            "test",
            QueuingConfig {
                queues,
                hand_size: hand,
                queue_length_limit: length,
            },
            limit,
            Arc::new(Counters::default()),
        )
    }

    fn meta(flow: &str) -> RequestMeta {
        RequestMeta {
            flow_schema: "fs".into(),
            distinguisher: flow.into(),
            details: vec![],
        }
    }

    fn execute(start: Start) -> Execution {
        match start {
            Start::Execute(e) => e,
            _ => panic!("expected to execute"),
        }
    }

    #[test]
    fn executes_while_seats_are_free_then_queues_then_rejects() {
        let mut qs = set(1, 1, 2, 2);
        let now = Instant::now();
        let a = execute(qs.start(now, 1, 1, meta("a")));
        let _b = execute(qs.start(now, 1, 1, meta("a")));
        let Start::Wait { mut rx, .. } = qs.start(now, 1, 1, meta("a")) else {
            panic!("third waits");
        };
        assert!(matches!(qs.start(now, 1, 1, meta("a")), Start::Wait { .. }));
        assert!(matches!(
            qs.start(now, 1, 1, meta("a")),
            Start::Reject(Reject::QueueFull)
        ));
        assert_eq!(qs.totals().waiting, 2);
        assert!(rx.try_recv().is_err());
        qs.finish(now, a);
        assert!(rx.try_recv().is_ok(), "the head of the queue got the seat");
        let t = qs.totals();
        assert_eq!(
            (t.waiting, t.executing, t.dispatched, t.rejected),
            (1, 2, 3, 1)
        );
    }

    #[test]
    fn reject_type_refuses_when_full() {
        let mut qs = set(0, 0, 0, 1);
        let now = Instant::now();
        let a = execute(qs.start(now, 1, 1, meta("a")));
        assert!(matches!(
            qs.start(now, 2, 1, meta("b")),
            Start::Reject(Reject::ConcurrencyLimit)
        ));
        qs.finish(now, a);
        execute(qs.start(now, 2, 1, meta("b")));
    }

    #[test]
    fn abandoned_requests_leave_their_queue() {
        let mut qs = set(4, 2, 10, 1);
        let now = Instant::now();
        let a = execute(qs.start(now, 1, 1, meta("a")));
        let Start::Wait { id, mut rx } = qs.start(now, 1, 1, meta("a")) else {
            panic!("waits");
        };
        assert!(qs.abandon(id, Reject::TimeOut));
        assert!(!qs.abandon(id, Reject::TimeOut));
        assert_eq!(qs.totals().timed_out, 1);
        qs.finish(now, a);
        assert!(rx.try_recv().is_err());
        assert!(qs.totals().idle);
    }

    /// A waiter whose client went away before dispatch gives its seat straight back.
    #[test]
    fn dispatch_to_a_gone_waiter_returns_the_seat() {
        let mut qs = set(1, 1, 10, 1);
        let now = Instant::now();
        let a = execute(qs.start(now, 1, 1, meta("a")));
        let Start::Wait { rx, .. } = qs.start(now, 1, 1, meta("a")) else {
            panic!("waits");
        };
        drop(rx);
        qs.finish(now, a);
        assert!(qs.totals().idle);
        execute(qs.start(now, 1, 1, meta("a")));
    }

    /// The fairness the levels are for: one flow keeps many slow requests queued, another sends
    /// a few; with one seat, dispatch alternates between the two queues instead of serving the
    /// heavy flow's backlog first.
    #[test]
    fn busy_queues_share_the_seats() {
        // Hashes 0 and 1 with one card each land in queues 0 and 1.
        let mut qs = set(2, 1, 100, 1);
        let heavy = 0u64;
        let light = 1u64;
        let mut now = Instant::now();
        let mut running = execute(qs.start(now, heavy, 1, meta("heavy")));
        let mut waiting: VecDeque<(&str, oneshot::Receiver<Dispatched>)> = VecDeque::new();
        for _ in 0..20 {
            let Start::Wait { rx, .. } = qs.start(now, heavy, 1, meta("heavy")) else {
                panic!("waits");
            };
            waiting.push_back(("heavy", rx));
        }
        for _ in 0..3 {
            let Start::Wait { rx, .. } = qs.start(now, light, 1, meta("light")) else {
                panic!("waits");
            };
            waiting.push_back(("light", rx));
        }
        let mut order = Vec::new();
        for _ in 0..8 {
            // Each request holds its seat for 100 ms.
            now += Duration::from_millis(100);
            qs.finish(now, running);
            let mut next = None;
            waiting.retain_mut(|(flow, rx)| match rx.try_recv() {
                Ok(Dispatched(e)) => {
                    next = Some((*flow, e));
                    false
                }
                Err(_) => true,
            });
            let (flow, e) = next.expect("one request dispatched per finish");
            order.push(flow);
            running = e;
        }
        // The light flow's three requests are all served within the first six dispatches,
        // alternating with the heavy flow.
        assert_eq!(
            order[..6],
            ["light", "heavy", "light", "heavy", "light", "heavy"]
        );
    }

    #[test]
    fn a_new_shape_keeps_the_waiting_requests() {
        let mut qs = set(2, 1, 10, 1);
        let now = Instant::now();
        let a = execute(qs.start(now, 0, 1, meta("a")));
        let Start::Wait { mut rx, .. } = qs.start(now, 0, 1, meta("a")) else {
            panic!("waits");
        };
        let wider = QueuingConfig {
            queues: 8,
            hand_size: 3,
            queue_length_limit: 5,
        };
        qs.configure(wider, 1, now);
        assert_eq!(qs.totals().waiting, 1);
        qs.finish(now, a);
        assert!(rx.try_recv().is_ok());
    }

    /// A wide request takes its seats at once. Another flow's narrow request, whose queue's
    /// head finishes first in virtual time, runs beside the first wide one while the second
    /// wide one waits for two seats.
    #[test]
    fn wide_requests_take_several_seats() {
        let mut qs = set(2, 1, 10, 3);
        let now = Instant::now();
        let wide = execute(qs.start(now, 0, 2, meta("a")));
        let Start::Wait { rx: mut second, .. } = qs.start(now, 0, 2, meta("a")) else {
            panic!("2 + 2 seats do not fit in 3");
        };
        let narrow = execute(qs.start(now, 1, 1, meta("b")));
        assert_eq!(qs.totals().executing, 2);
        assert!(second.try_recv().is_err());
        qs.finish(now, wide);
        let second = second.try_recv().expect("two seats free now").0;
        qs.finish(now, second);
        qs.finish(now, narrow);
        assert!(qs.totals().idle);
    }

    #[test]
    fn seat_seconds_format() {
        assert_eq!(seat_seconds(0.0), "0.00000000ss");
        assert_eq!(seat_seconds(1.5), "1.50000000ss");
        assert_eq!(seat_seconds(0.003), "0.00300000ss");
    }
}
