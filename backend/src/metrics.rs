//! The server's Prometheus metrics (`GET /metrics`), one [`Metrics`] per server.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: typed metric families,
//! no global registry. A registry per server matters here because the tests run many servers in
//! one process and check each one's counters; a global recorder (the `metrics` crate's design)
//! would mix them. The text it writes is the OpenMetrics format, which Prometheus scrapes natively.
//!
//! Names, types and labels are listed in `docs/OPERATIONS.md`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// `content-type` of the `/metrics` answer.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// `/transform`, `/info`, `/healthz`, `/metrics` or `other`.
    pub(crate) route: &'static str,
    /// `ok`, the error code (`9412`, …), or `none` when the client left before any answer.
    pub(crate) code: String,
    /// `complete` when the whole answer was written, `aborted` when the client went away first.
    pub(crate) delivery: &'static str,
}

/// A route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: &'static str,
}

/// A route and a phase of the request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabels {
    pub(crate) route: &'static str,
    /// `receive`, `queue`, `decode`, `transform`, `encode` or `send`.
    pub(crate) phase: &'static str,
}

/// A listener kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransportLabels {
    /// `unix` or `tcp`.
    pub(crate) transport: &'static str,
}

/// A listener kind and why something happened to a connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnectionLabels {
    pub(crate) transport: &'static str,
    pub(crate) reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps. Cheap to update from any thread (atomics).
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) request_duration: HistogramFamily<RouteLabels>,
    pub(crate) phase_duration: HistogramFamily<PhaseLabels>,
    pub(crate) received_bytes: Family<RouteLabels, Counter>,
    pub(crate) sent_bytes: Family<RouteLabels, Counter>,
    pub(crate) jobs_queued: Gauge,
    pub(crate) jobs_running: Gauge,
    pub(crate) memory_budget_used: Gauge,
    pub(crate) connections_open: Family<TransportLabels, Gauge>,
    pub(crate) connections_accepted: Family<TransportLabels, Counter>,
    pub(crate) connections_rejected: Family<ConnectionLabels, Counter>,
    pub(crate) connections_closed: Family<ConnectionLabels, Counter>,
}

/// 100 µs to ~105 s in ×2 steps: cheap `/healthz` answers and slow uploads on one scale.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("imgbind");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered (or abandoned), by route, outcome code and whether the answer was fully written",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register_with_unit(
            "request_duration",
            "Whole request time, from its head being read to its answer written or abandoned",
            Unit::Seconds,
            request_duration.clone(),
        );
        let phase_duration: HistogramFamily<PhaseLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register_with_unit(
            "request_phase_duration",
            "Time per request phase: receive (body read), queue (waiting for a job slot), decode, transform, encode (engine), send (answer written)",
            Unit::Seconds,
            phase_duration.clone(),
        );
        let received_bytes = Family::<RouteLabels, Counter>::default();
        registry.register_with_unit(
            "received",
            "Bytes read from clients (request heads and bodies as sent)",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let sent_bytes = Family::<RouteLabels, Counter>::default();
        registry.register_with_unit(
            "sent",
            "Bytes written to clients (answer heads and bodies)",
            Unit::Bytes,
            sent_bytes.clone(),
        );
        let jobs_queued = Gauge::default();
        registry.register(
            "jobs_queued",
            "Image jobs waiting for a free slot (the queue depth)",
            jobs_queued.clone(),
        );
        let jobs_running = Gauge::default();
        registry.register(
            "jobs_running",
            "Image jobs running on the blocking pool",
            jobs_running.clone(),
        );
        let memory_budget_used = Gauge::default();
        registry.register_with_unit(
            "memory_budget_used",
            "Memory held for requests (bodies, running jobs' estimates, answers not yet written), of --memory-budget",
            prometheus_client::registry::Unit::Bytes,
            memory_budget_used.clone(),
        );
        let connections_open = Family::<TransportLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections_accepted = Family::<TransportLabels, Counter>::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );
        let connections_rejected = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections_rejected",
            "Connections turned away at the connection cap: reason=busy (a new connection answered 9522 and closed), reason=evicted (an open connection still waiting for a request head closed to make room), reason=displaced (the slowest upload under --body-min-rate answered 9522 and closed to make room)",
            connections_rejected.clone(),
        );
        let connections_closed = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Client connections ended, by reason: done, header_timeout, idle_timeout, send_timeout, evicted, shutdown, error",
            connections_closed.clone(),
        );
        for transport in ["unix", "tcp"] {
            // Present from the start, so a scrape shows zeros rather than nothing.
            drop(connections_open.get_or_create(&TransportLabels { transport }));
            drop(connections_accepted.get_or_create(&TransportLabels { transport }));
        }
        Metrics {
            registry,
            requests,
            request_duration,
            phase_duration,
            received_bytes,
            sent_bytes,
            jobs_queued,
            jobs_running,
            memory_budget_used,
            connections_open,
            connections_accepted,
            connections_rejected,
            connections_closed,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Counts one rejected or evicted connection.
    pub(crate) fn connection_rejected(&self, transport: &'static str, reason: &'static str) {
        self.connections_rejected
            .get_or_create(&ConnectionLabels { transport, reason })
            .inc();
    }

    /// Counts one ended connection.
    pub(crate) fn connection_closed(&self, transport: &'static str, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ConnectionLabels { transport, reason })
            .inc();
    }
}

/// The `route` label for a request path: a fixed set, so clients cannot grow the label space.
pub(crate) fn route(path: &str) -> &'static str {
    use imgbind_wire::protocol::{PATH_HEALTH, PATH_INFO, PATH_READY, PATH_TRANSFORM};
    match path {
        PATH_TRANSFORM => PATH_TRANSFORM,
        PATH_INFO => PATH_INFO,
        PATH_HEALTH => PATH_HEALTH,
        PATH_READY => PATH_READY,
        PATH_METRICS => PATH_METRICS,
        _ => "other",
    }
}

/// Where the metrics are served.
pub(crate) const PATH_METRICS: &str = "/metrics";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_types_and_labels() {
        let metrics = Metrics::new();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: "/transform",
                code: "9412".into(),
                delivery: "complete",
            })
            .inc();
        metrics
            .phase_duration
            .get_or_create(&PhaseLabels {
                route: "/transform",
                phase: "decode",
            })
            .observe(0.003);
        metrics.connection_rejected("tcp", "busy");
        let text = metrics.encode();
        for expected in [
            "# TYPE imgbind_requests counter",
            "imgbind_requests_total{route=\"/transform\",code=\"9412\",delivery=\"complete\"} 1",
            "# TYPE imgbind_request_phase_duration_seconds histogram",
            "imgbind_request_phase_duration_seconds_count{route=\"/transform\",phase=\"decode\"} 1",
            "imgbind_connections_rejected_total{transport=\"tcp\",reason=\"busy\"} 1",
            "imgbind_connections_open{transport=\"unix\"} 0",
            "# TYPE imgbind_jobs_queued gauge",
            "# EOF",
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        assert_eq!(route("/transform"), "/transform");
        assert_eq!(route("/etc/passwd"), "other");
    }
}
