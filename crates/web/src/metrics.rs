//! Prometheus metrics (prometheus-client): requests by route and status, latency histogram,
//! and gauges read from the database at scrape time (orders by state, jobs pending).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReqLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub lane: String,
    pub kind: String,
    pub status: String,
}

pub struct Metrics {
    /// The job queue by lane, kind and status (dead jobs need an official).
    pub jobs: Family<JobLabels, Gauge>,
    pub registry: Registry,
    pub requests: Family<ReqLabels, Counter>,
    pub latency: Family<ReqLabels, Histogram>,
    pub orders: Family<StateLabels, Gauge>,
    pub jobs_pending: Gauge,
    pub promise: Family<StateLabels, Gauge>,
    pub deliveries: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<ReqLabels, Counter>::default();
        let latency = Family::<ReqLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        let orders = Family::<StateLabels, Gauge>::default();
        let jobs_pending = Gauge::default();
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "tianguis_jobs",
            "Queued jobs by lane, kind and status",
            jobs.clone(),
        );
        let promise = Family::<StateLabels, Gauge>::default();
        let deliveries = Family::<StateLabels, Gauge>::default();
        registry.register(
            "tianguis_delivery_jobs",
            "Courier-pool delivery jobs by state",
            deliveries.clone(),
        );
        registry.register(
            "tianguis_delivery_promise",
            "Open orders late or at risk of breaking the delivery promise",
            promise.clone(),
        );
        registry.register("tianguis_http_requests", "HTTP requests", requests.clone());
        registry.register(
            "tianguis_http_request_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register("tianguis_orders", "Orders by state", orders.clone());
        registry.register(
            "tianguis_jobs_pending",
            "Jobs waiting to run, all lanes",
            jobs_pending.clone(),
        );
        Metrics {
            jobs,
            registry,
            requests,
            latency,
            orders,
            jobs_pending,
            promise,
            deliveries,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
