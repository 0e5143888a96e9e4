//! Shared counters between nodes over Redis (`detection.redis`).
//!
//! Behind a load balancer each node sees 1/N of a campaign. Every
//! `detection.redis_flush_interval` (250 ms by default) this task drains what the local
//! detector counted from tracked callers ([`Detector::drain_deltas`]) and, in one pipelined
//! round trip,
//!
//! ```text
//! XADD fraudwall:detection MAXLEN ~ 100000 * node <node id> d <JSON array of CounterDelta>
//! XREAD COUNT 10000 STREAMS fraudwall:detection <last id seen>
//! ```
//!
//! then merges the other nodes' entries ([`Detector::merge_remote`]; its own are skipped).
//! Deltas are increments, so merging is addition: nothing is double-counted. On connecting
//! it starts reading after the stream's current last entry (`XREVRANGE … COUNT 1`), so a
//! restarted node does not replay old history as if it were new.
//!
//! It never sits on a call's path: calls are judged on the local detector, which this task
//! only feeds. When Redis is slow (no answer within [`TIMEOUT`]), down (refused, reset) or
//! answers garbage (not the reply the command asks for, an entry that does not parse), the
//! round is counted (`fraudwall_detection_redis_total{outcome}`), the change of state is
//! logged once, and the node carries on with its local counts; the deltas drained meanwhile
//! are counted as `unsent`. A lost connection is re-opened at most once a second.

use super::{DeltaFate, DetectionMetrics, RedisOutcome};
use crate::detection::{CounterDelta, Detector};
use redis::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Redis stream the nodes share.
pub const STREAM: &str = "fraudwall:detection";
/// The longest one exchange (or a connection attempt) may take before it counts as slow.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// Entries kept in the stream (approximately; `MAXLEN ~`).
const MAXLEN: u32 = 100_000;
/// Entries read per round at most.
const READ_COUNT: u32 = 10_000;
/// Reconnection attempts at most this often.
const RECONNECT: Duration = Duration::from_secs(1);

/// What the task needs from `[detection]`.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// `detection.redis`.
    pub url: String,
    /// `detection.redis_flush_interval`.
    pub interval: Duration,
}

/// Why an exchange did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Slow(Duration),
    /// Refused, reset or closed.
    #[error("unreachable: {0}")]
    Down(String),
    /// An answer that is not what the command asks for.
    #[error("answered garbage: {0}")]
    Garbage(String),
}

impl SharedError {
    fn outcome(&self) -> RedisOutcome {
        match self {
            SharedError::Slow(_) => RedisOutcome::Slow,
            SharedError::Down(_) => RedisOutcome::Down,
            SharedError::Garbage(_) => RedisOutcome::Garbage,
        }
    }

    fn of(e: redis::RedisError) -> SharedError {
        if e.is_timeout() {
            SharedError::Slow(TIMEOUT)
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            SharedError::Down(e.to_string())
        } else {
            SharedError::Garbage(e.to_string())
        }
    }
}

async fn within<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, SharedError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Err(_) => Err(SharedError::Slow(TIMEOUT)),
        Ok(Err(e)) => Err(SharedError::of(e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// One node's side of the exchange: its id, its connection, where it has read up to.
pub struct Exchange {
    client: redis::Client,
    node: String,
    conn: Option<redis::aio::MultiplexedConnection>,
    last_id: Option<String>,
    next_connect: Option<Instant>,
}

impl Exchange {
    /// An exchange for `url` with a fresh random node id (not connected yet).
    pub fn new(url: &str) -> Result<Exchange, SharedError> {
        let client = redis::Client::open(url)
            .map_err(|e| SharedError::Garbage(format!("detection.redis {url:?}: {e}")))?;
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        Ok(Exchange {
            client,
            node: id.iter().map(|b| format!("{b:02x}")).collect(),
            conn: None,
            last_id: None,
            next_connect: None,
        })
    }

    /// This node's id in the stream.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Pushes `deltas` and returns the other nodes' deltas since the last round, with the
    /// number of stream entries that did not parse. Connects first if needed (at most once
    /// per [`RECONNECT`]).
    pub async fn round(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<(Vec<CounterDelta>, usize), SharedError> {
        let mut conn = match self.conn.clone() {
            Some(c) => c,
            None => {
                let now = Instant::now();
                if self.next_connect.is_some_and(|t| now < t) {
                    return Err(SharedError::Down("waiting to reconnect".into()));
                }
                self.next_connect = Some(now + RECONNECT);
                let c = within(self.client.get_multiplexed_async_connection()).await?;
                self.conn = Some(c.clone());
                c
            }
        };
        let r = self.exchange(&mut conn, deltas).await;
        if matches!(r, Err(SharedError::Down(_) | SharedError::Slow(_))) {
            // Start over on a fresh connection: a late answer must not be read as the next.
            self.conn = None;
        }
        r
    }

    async fn exchange(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
        deltas: &[CounterDelta],
    ) -> Result<(Vec<CounterDelta>, usize), SharedError> {
        if self.last_id.is_none() {
            let v: Value = within(
                redis::cmd("XREVRANGE")
                    .arg(STREAM)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(conn),
            )
            .await?;
            let entries = stream_entries(&v)?;
            self.last_id = Some(
                entries
                    .last()
                    .map(|(id, _)| id.clone())
                    .unwrap_or_else(|| "0-0".into()),
            );
        }
        let last = self.last_id.clone().unwrap_or_else(|| "0-0".into());
        let mut pipe = redis::pipe();
        if !deltas.is_empty() {
            let json = serde_json::to_vec(deltas)
                .map_err(|e| SharedError::Garbage(format!("cannot encode deltas: {e}")))?;
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAXLEN)
                .arg("*")
                .arg("node")
                .arg(&self.node)
                .arg("d")
                .arg(json)
                .ignore();
        }
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(&last);
        let reply: Vec<Value> = within(pipe.query_async(conn)).await?;
        let read = reply
            .last()
            .ok_or_else(|| SharedError::Garbage("no reply to XREAD".into()))?;
        let streams = match read {
            Value::Nil => return Ok((Vec::new(), 0)),
            Value::Array(streams) => streams
                .iter()
                .map(|s| match s {
                    Value::Array(kv) if kv.len() == 2 => Ok(&kv[1]),
                    other => Err(garbage("XREAD stream", other)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Value::Map(kv) => kv.iter().map(|(_, v)| v).collect(),
            other => return Err(garbage("XREAD", other)),
        };
        let mut out = Vec::new();
        let mut bad = 0;
        for s in streams {
            for (id, fields) in stream_entries(s)? {
                self.last_id = Some(id);
                let mut node = None;
                let mut data = None;
                for pair in fields.chunks(2) {
                    match pair {
                        [Value::BulkString(k), Value::BulkString(v)] if k == b"node" => {
                            node = Some(v.as_slice())
                        }
                        [Value::BulkString(k), Value::BulkString(v)] if k == b"d" => {
                            data = Some(v.as_slice())
                        }
                        _ => {}
                    }
                }
                if node == Some(self.node.as_bytes()) {
                    continue;
                }
                match data.map(serde_json::from_slice::<Vec<CounterDelta>>) {
                    Some(Ok(d)) => out.extend(d),
                    _ => bad += 1,
                }
            }
        }
        Ok((out, bad))
    }
}

fn garbage(what: &str, v: &Value) -> SharedError {
    let mut text = format!("{v:?}");
    text.truncate(80);
    SharedError::Garbage(format!("{what} answered {text}"))
}

/// The entries of an XRANGE/XREAD stream: `[[id, [field, value, ...]], ...]`.
fn stream_entries(v: &Value) -> Result<Vec<(String, &[Value])>, SharedError> {
    let Value::Array(entries) = v else {
        return match v {
            Value::Nil => Ok(Vec::new()),
            other => Err(garbage("stream", other)),
        };
    };
    entries
        .iter()
        .map(|e| match e {
            Value::Array(pair) if pair.len() == 2 => {
                let id = match &pair[0] {
                    Value::BulkString(b) => std::str::from_utf8(b)
                        .ok()
                        .filter(|s| valid_id(s))
                        .map(str::to_string),
                    Value::SimpleString(s) if valid_id(s) => Some(s.clone()),
                    _ => None,
                };
                let fields = match &pair[1] {
                    Value::Array(f) => Some(f.as_slice()),
                    _ => None,
                };
                match (id, fields) {
                    (Some(id), Some(f)) => Ok((id, f)),
                    _ => Err(garbage("stream entry", e)),
                }
            }
            other => Err(garbage("stream entry", other)),
        })
        .collect()
}

/// A stream id: `<ms>-<seq>`.
fn valid_id(s: &str) -> bool {
    let mut parts = s.splitn(2, '-');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next())
}

/// The task: one round every `interval` until `stop` changes. Never returns an error: it
/// logs and counts, and the detector keeps its local counts.
pub async fn run(
    cfg: SharedConfig,
    detector: Arc<Detector>,
    metrics: Arc<DetectionMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ex = match Exchange::new(&cfg.url) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("detection.redis: {e}: counters stay local");
            return;
        }
    };
    tracing::info!(
        "detection: sharing counters over {} as node {} every {:?}",
        cfg.url,
        ex.node(),
        cfg.interval
    );
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let deltas = detector.drain_deltas();
        match ex.round(&deltas).await {
            Ok((remote, bad)) => {
                metrics.redis(RedisOutcome::Ok);
                metrics.deltas(DeltaFate::Pushed, deltas.len());
                metrics.deltas(DeltaFate::Merged, remote.len());
                if bad > 0 {
                    metrics.redis(RedisOutcome::Garbage);
                    metrics.deltas(DeltaFate::Garbage, bad);
                }
                if !remote.is_empty() {
                    detector.merge_remote(&remote, Instant::now());
                }
                if !healthy {
                    tracing::info!("detection.redis: reachable again, sharing counters");
                    healthy = true;
                }
            }
            Err(e) => {
                metrics.redis(e.outcome());
                metrics.deltas(DeltaFate::Unsent, deltas.len());
                if healthy {
                    tracing::warn!(
                        "detection.redis {}: {e}: carrying on with local counts (retrying)",
                        cfg.url
                    );
                    healthy = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn delta() -> CounterDelta {
        CounterDelta {
            caller: "+8613800000001".parse().unwrap(),
            calls: 3,
            callees: [1, 2],
            ended: 2,
            answered: 1,
            short: 2,
            one_ring: 0,
            sequential: 0,
        }
    }

    /// A fake server answering every read with `answer` (None: never answering).
    async fn fake(answer: Option<&'static [u8]>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        // One answer per command (a RESP array starts each, pipelined or
                        // not), so a pipelining client is never left waiting.
                        let commands = (0..n)
                            .filter(|&i| buf[i] == b'*' && (i == 0 || buf[i - 1] == b'\n'))
                            .count()
                            .max(1);
                        if let Some(a) = answer {
                            for _ in 0..commands {
                                if s.write_all(a).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn garbage_slow_and_refused_are_told_apart_and_never_panic() {
        // Not RESP at all.
        let addr = fake(Some(b"\x00\xffHELLO garbage\r\n\r\n")).await;
        let mut ex = Exchange::new(&format!("redis://{addr}")).unwrap();
        let e = ex.round(&[delta()]).await.unwrap_err();
        assert_eq!(e.outcome(), RedisOutcome::Garbage, "{e}");

        // Valid RESP, but not what XREVRANGE / XREAD answer.
        let addr = fake(Some(b"+OK\r\n")).await;
        let mut ex = Exchange::new(&format!("redis://{addr}")).unwrap();
        let e = ex.round(&[delta()]).await.unwrap_err();
        assert_eq!(e.outcome(), RedisOutcome::Garbage, "{e}");

        // A stream entry whose data is not deltas: counted, skipped, the rest kept.
        let addr = fake(Some(
            b"*1\r\n*2\r\n$3\r\n1-1\r\n*4\r\n$4\r\nnode\r\n$1\r\nx\r\n$1\r\nd\r\n$5\r\n[1,2]\r\n",
        ))
        .await;
        let mut ex = Exchange::new(&format!("redis://{addr}")).unwrap();
        // The first answer is taken as XREVRANGE's (id 1-1); the pipeline then gets two
        // copies, the last read as XREAD's: not a stream list, so garbage.
        let r = ex.round(&[delta()]).await;
        assert!(
            matches!(r, Err(SharedError::Garbage(_)) | Ok((_, 1..))),
            "{r:?}"
        );

        // Silent: slow.
        let addr = fake(None).await;
        let mut ex = Exchange::new(&format!("redis://{addr}")).unwrap();
        let t = Instant::now();
        let e = ex.round(&[delta()]).await.unwrap_err();
        assert_eq!(e.outcome(), RedisOutcome::Slow, "{e}");
        assert!(t.elapsed() < TIMEOUT * 4);

        // Refused: down, and the next attempt waits for the reconnection delay.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let mut ex = Exchange::new(&format!("redis://{addr}")).unwrap();
        let e = ex.round(&[delta()]).await.unwrap_err();
        assert_eq!(e.outcome(), RedisOutcome::Down, "{e}");
        let e = ex.round(&[]).await.unwrap_err();
        assert_eq!(e, SharedError::Down("waiting to reconnect".into()));
    }

    #[test]
    fn stream_ids_and_entries_are_checked() {
        assert!(valid_id("1700000000000-0"));
        assert!(!valid_id("1700000000000"));
        assert!(!valid_id("a-1"));
        let good = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"5-1".to_vec()),
            Value::Array(vec![]),
        ])]);
        assert_eq!(stream_entries(&good).unwrap()[0].0, "5-1");
        assert!(stream_entries(&Value::Okay).is_err());
        assert!(stream_entries(&Value::Array(vec![Value::Int(3)])).is_err());
        assert!(stream_entries(&Value::Nil).unwrap().is_empty());
    }
}
