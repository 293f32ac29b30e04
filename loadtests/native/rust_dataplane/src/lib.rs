//! Prototype (R): the pass-through loop of benchmark row (a) in Rust, no Python object per record.
//!
//! `run(bootstrap, source, sink, group, batch_size=1000, timeout_s=0.5, linger_s=0.005,
//! max_records=0) -> int` consumes batches (records already fetched at once; when there are
//! none, up to `timeout_s` for the first, then up to `linger_s` for more, like
//! `loadtests.passthrough.next_batch`), produces each record's key, value and headers unchanged
//! to `sink` (idempotent, acks=all, linger.ms=5), waits for every acknowledgement (flush), then
//! commits the batch's offsets synchronously. It returns after `max_records` records (0: until a
//! signal handler raises, checked between batches). Prints the harness's readiness marker
//! `{"msg": "partitions assigned", "partitions": [...]}` on assignment.
//! Errors: `RuntimeError` with the librdkafka error name (no record content).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

struct CCtx;
impl ClientContext for CCtx {}
impl ConsumerContext for CCtx {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            parts.sort();
            println!("{{\"msg\": \"partitions assigned\", \"partitions\": {:?}}}", parts);
        }
    }
}

struct PCtx {
    failed: AtomicU64,
}
impl ClientContext for PCtx {}
impl ProducerContext for PCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn err(e: KafkaError) -> PyErr {
    PyRuntimeError::new_err(format!("kafka: {e}"))
}

const REBALANCE_COMMIT: [RDKafkaErrorCode; 4] = [
    RDKafkaErrorCode::RebalanceInProgress,
    RDKafkaErrorCode::IllegalGeneration,
    RDKafkaErrorCode::UnknownMemberId,
    RDKafkaErrorCode::AssignmentLost,
];

struct Loop<'a> {
    consumer: &'a BaseConsumer<CCtx>,
    producer: &'a BaseProducer<PCtx>,
    source: &'a str,
    sink: &'a str,
}

impl Loop<'_> {
    fn produce(&self, m: &BorrowedMessage<'_>, offsets: &mut BTreeMap<i32, i64>) -> Result<(), KafkaError> {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(self.sink);
        if let Some(v) = m.payload() {
            rec = rec.payload(v);
        }
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        if let Some(h) = m.headers() {
            let mut oh = OwnedHeaders::new_with_capacity(h.count());
            for x in h.iter() {
                oh = oh.insert(Header { key: x.key, value: x.value });
            }
            rec = rec.headers(oh);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
        offsets.insert(m.partition(), m.offset() + 1);
        Ok(())
    }

    /// One polled item: Ok(true) a record was produced, Ok(false) nothing (timeout / EOF).
    fn take(&self, timeout: Duration, offsets: &mut BTreeMap<i32, i64>) -> Result<bool, KafkaError> {
        match self.consumer.poll(timeout) {
            None => Ok(false),
            Some(Ok(m)) => self.produce(&m, offsets).map(|_| true),
            Some(Err(KafkaError::PartitionEOF(_))) => Ok(false),
            Some(Err(e)) => Err(e),
        }
    }

    fn batch(&self, batch_size: usize, timeout: Duration, linger: Duration) -> Result<u64, KafkaError> {
        let mut offsets = BTreeMap::new();
        let mut n = 0usize;
        while n < batch_size && self.take(Duration::ZERO, &mut offsets)? {
            n += 1;
        }
        if n == 0 {
            if !self.take(timeout, &mut offsets)? {
                return Ok(0);
            }
            n = 1;
            let deadline = Instant::now() + linger;
            while n < batch_size {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !self.take(left, &mut offsets)? {
                    break;
                }
                n += 1;
            }
        }
        self.producer.flush(Duration::from_secs(300))?;
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            return Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut)).map_err(|e| {
                eprintln!("{failed} records not acknowledged");
                e
            });
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(self.source, *p, Offset::Offset(*o))?;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(c)) if REBALANCE_COMMIT.contains(&c) => {}
            Err(e) => return Err(e),
        }
        Ok(n as u64)
    }
}

#[pyfunction]
#[pyo3(signature = (bootstrap, source, sink, group, batch_size=1000, timeout_s=0.5, linger_s=0.005, max_records=0))]
#[allow(clippy::too_many_arguments)]
fn run(py: Python<'_>, bootstrap: &str, source: &str, sink: &str, group: &str, batch_size: usize,
       timeout_s: f64, linger_s: f64, max_records: u64) -> PyResult<u64> {
    let consumer: BaseConsumer<CCtx> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(CCtx)
        .map_err(err)?;
    let producer: BaseProducer<PCtx> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", (batch_size * 4).max(100_000).to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(PCtx { failed: AtomicU64::new(0) })
        .map_err(err)?;
    consumer.subscribe(&[source]).map_err(err)?;
    let lp = Loop { consumer: &consumer, producer: &producer, source, sink };
    let (timeout, linger) = (Duration::from_secs_f64(timeout_s), Duration::from_secs_f64(linger_s));
    let mut total = 0u64;
    let out = loop {
        if max_records > 0 && total >= max_records {
            break Ok(total);
        }
        if let Err(e) = py.check_signals() {
            break Err(e);
        }
        match py.allow_threads(|| lp.batch(batch_size, timeout, linger)) {
            Ok(n) => total += n,
            Err(e) => break Err(err(e)),
        }
    };
    consumer.unsubscribe();
    drop(lp);
    out
}

#[pymodule]
fn dpp_rust_dataplane(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    Ok(())
}
