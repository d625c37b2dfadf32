//! The HTTP edge of tianguis: server-rendered pages (work without JavaScript), the JSON API
//! under `/api/v1`, sessions and CSRF, translations, the mobile-money adapter and its local
//! simulator, metrics, and the background workers (timed jobs, payment reconciliation). Only
//! this crate knows about HTTP, HTML and JSON wire formats.

pub mod abuse;
pub mod api;
pub mod caps;
pub mod ctx;
pub mod disburse;
pub mod error;
pub mod forms;
pub mod i18n;
pub mod metrics;
pub mod payments;
pub mod sms;
pub mod who;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tianguis_store::Db;
use tower_http::compression::CompressionLayer;

#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL the provider calls back, e.g. http://127.0.0.1:8080.
    pub public_url: String,
    pub momo_base_url: String,
    pub momo_api_key: String,
    pub momo_secret: String,
    /// Mount the local mobile-money simulator at /sim/momo (demo and tests).
    pub simulator: bool,
    pub sim_approve_after_ms: u64,
    /// Failed logins per phone per minute (ten times as many per client address).
    pub login_per_minute: u32,
    /// Checkouts per account per minute.
    pub checkout_per_minute: u32,
    /// Texted codes and order lookups by code, per client address per minute (they cost money
    /// or can be guessed).
    pub codes_per_minute: u32,
    /// Texted codes to one phone per hour, whoever asks.
    pub codes_per_phone_per_hour: u32,
    /// Behind a reverse proxy: the header it puts the client's address in (e.g.
    /// `x-forwarded-for`), believed only from the addresses in `trusted_proxies`.
    pub client_ip_header: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    /// A bearer token that may read `/metrics` (admins may read it signed in).
    pub metrics_token: Option<String>,
    pub worker_interval_ms: u64,
    /// SMS gateway (Africa's Talking API); the local simulator is at /sim/sms when `simulator`.
    pub sms_base_url: String,
    pub sms_username: String,
    pub sms_api_key: String,
    pub sms_from: Option<String>,
    /// Mount the local SMS gateway simulator at /sim/sms (demo and tests).
    pub sms_simulator: bool,
    /// Payouts to wallets: a provider speaking MTN MoMo's Disbursement API (see `disburse`).
    pub payout_base_url: String,
    pub payout_api_user: String,
    pub payout_api_key: String,
    pub payout_subscription_key: String,
    /// MTN's `X-Target-Environment` (`sandbox`, `mtnuganda`, ...).
    pub payout_environment: String,
    /// Mount the local disbursement simulator at /sim/disburse (demo and tests).
    pub payout_simulator: bool,
    /// Prepare payout batches on the marketplace's schedule (off in tests that count money).
    pub payout_schedule: bool,
    /// The readiness diagnostic's questionnaire (the shipped one, or the file an officer
    /// gave the server; checked before the server starts).
    pub questionnaire: Option<Arc<tianguis_domain::diagnostic::Questionnaire>>,
    /// The token in the path the SMS gateway forwards replies to
    /// (`/api/v1/sms/inbound/{token}`); empty: replies are not taken.
    pub sms_inbound_token: String,
}

impl Config {
    /// A server at `public_url` with both local simulators mounted (demo and tests): mobile
    /// money and text messages never leave the machine. Their keys are made afresh each start.
    pub fn local(public_url: &str) -> Config {
        Config {
            public_url: public_url.to_string(),
            momo_base_url: format!("{public_url}/sim/momo"),
            momo_api_key: format!("sim-{}", tianguis_store::random_token(8)),
            momo_secret: tianguis_store::random_token(16),
            simulator: true,
            sim_approve_after_ms: 300,
            login_per_minute: 10,
            checkout_per_minute: 20,
            codes_per_minute: 10,
            codes_per_phone_per_hour: 5,
            client_ip_header: None,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            worker_interval_ms: 1000,
            sms_base_url: format!("{public_url}/sim/sms"),
            sms_username: "sandbox".into(),
            sms_api_key: format!("sim-{}", tianguis_store::random_token(8)),
            sms_from: None,
            sms_simulator: true,
            payout_base_url: format!("{public_url}/sim/disburse"),
            payout_api_user: uuid::Uuid::new_v4().to_string(),
            payout_api_key: tianguis_store::random_token(16),
            payout_subscription_key: tianguis_store::random_token(16),
            payout_environment: "sandbox".into(),
            payout_simulator: true,
            payout_schedule: true,
            sms_inbound_token: tianguis_store::random_token(16),
            questionnaire: tianguis_app::diagnostic::readiness(&i18n::lang_codes())
                .ok()
                .map(Arc::new),
        }
    }
}

pub struct Inner {
    pub db: Db,
    pub config: Config,
    pub momo: payments::MobileMoney,
    pub sms: sms::SmsGateway,
    pub metrics: metrics::Metrics,
    /// What the local SMS simulator was sent, when it is mounted (read by admins).
    pub sms_sim: Option<sms::SimOutbox>,
    pub disburse: disburse::Disbursement,
    /// What the local disbursement simulator was asked for, when it is mounted.
    pub disburse_sim: Option<disburse::SimLedger>,
}

pub type AppState = Arc<Inner>;

pub fn state(db: Db, config: Config) -> AppState {
    Arc::new(Inner {
        momo: payments::MobileMoney::new(
            &config.momo_base_url,
            &config.momo_api_key,
            config.momo_secret.as_bytes(),
        ),
        sms: sms::SmsGateway::new(
            &config.sms_base_url,
            &config.sms_username,
            &config.sms_api_key,
            config.sms_from.clone(),
        ),
        sms_sim: config.sms_simulator.then(sms::SimOutbox::default),
        disburse: disburse::Disbursement::new(
            &config.payout_base_url,
            &config.payout_api_user,
            &config.payout_api_key,
            &config.payout_subscription_key,
            &config.payout_environment,
        ),
        disburse_sim: config.payout_simulator.then(disburse::SimLedger::default),
        metrics: metrics::Metrics::default(),
        db,
        config,
    })
}

/// The whole application as a router (tests can call it without a socket).
pub fn app(state: AppState) -> Router {
    let mut r = Router::new()
        .merge(caps::router(state.clone()))
        .nest("/api/v1", api::router())
        .merge(edge_routes().into_parts().0);
    r = r.merge(simulator_routes(
        &state.config,
        state.config.simulator,
        state.sms_sim.clone(),
        state.disburse_sim.clone(),
    ));
    r.layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(CompressionLayer::new())
        .layer(DefaultBodyLimit::max(12 * 1024 * 1024))
        .with_state(state)
}

/// The local simulators at the paths the adapters are pointed at, with `config`'s keys:
/// mobile money when `momo` (calling back only `config.public_url`; a payer approves after
/// `sim_approve_after_ms`, never by itself when 0), texts and payouts when given where to keep
/// what they were sent.
fn simulator_routes<S: Clone + Send + Sync + 'static>(
    config: &Config,
    momo: bool,
    sms_sent: Option<sms::SimOutbox>,
    payouts: Option<disburse::SimLedger>,
) -> Router<S> {
    let mut r = Router::new();
    if momo {
        let approve = (config.sim_approve_after_ms > 0)
            .then(|| Duration::from_millis(config.sim_approve_after_ms));
        r = r.nest_service(
            "/sim/momo",
            payments::simulator(
                config.momo_secret.as_bytes(),
                &config.momo_api_key,
                approve,
                &api::callback_url(&config.public_url),
            ),
        );
    }
    if let Some(outbox) = sms_sent {
        r = r.nest_service(
            "/sim/sms",
            sms::simulator(&config.sms_username, &config.sms_api_key, outbox),
        );
    }
    if let Some(ledger) = payouts {
        r = r.nest_service(
            "/sim/disburse",
            disburse::simulator(
                &config.payout_api_user,
                &config.payout_api_key,
                &config.payout_subscription_key,
                ledger,
            ),
        );
    }
    r
}

/// The three local simulators as a process of their own (`tianguis simulate`), at the paths
/// the server mounts them at: a provider that outlives the server it serves, as a real one
/// does, for the fault tests (kill the server, restore its database) and for demos of the real
/// adapters.
pub fn standalone_simulators(config: &Config) -> Router {
    simulator_routes(
        config,
        true,
        Some(sms::SimOutbox::default()),
        Some(disburse::SimLedger::default()),
    )
    .route("/healthz", axum::routing::get(|| async { "ok" }))
}

/// What the edge itself serves: health, the offline script, metrics, the marketplace's
/// public keys.
pub fn edge_routes() -> caps::Table {
    caps::Table::new("edge")
        .get("/healthz", healthz)
        .get("/.well-known/did.json", did_json)
        .get("/static/offline.js", offline_js)
        .get("/metrics", metrics_page)
}

async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        // No scripts at all; inline styles only (the pages carry their few lines of CSS).
        (
            "content-security-policy",
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        if let Ok(v) = axum::http::HeaderValue::from_str(value) {
            h.entry(name).or_insert(v);
        }
    }
    let labels = metrics::ReqLabels {
        route,
        method,
        status: resp.status().as_u16(),
    };
    s.metrics.requests.get_or_create(&labels).inc();
    s.metrics
        .latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// The offline queue for agents' forms (an enhancement: every page works without it).
pub const OFFLINE_JS: &str = include_str!("../static/offline.js");

async fn offline_js() -> Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        OFFLINE_JS,
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    use axum::response::IntoResponse;
    match s.db.ping().await {
        Ok(_) => "ok".into_response(),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable",
        )
            .into_response(),
    }
}

/// The marketplace's DID document: the public keys its credentials are signed with (for anyone
/// checking one; `tianguis credential verify --keys` reads a saved copy offline).
async fn did_json(State(s): State<AppState>) -> Response {
    use axum::response::IntoResponse;
    match tianguis_app::credentials::did_document(&s.db, &s.config.public_url).await {
        Ok(doc) => (
            [
                (axum::http::header::CONTENT_TYPE, "application/did+json"),
                (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
            ],
            doc.to_string(),
        )
            .into_response(),
        Err(e) => error::Problem::from(e).into_response(),
    }
}

/// Prometheus text for a scraper with the configured bearer token, or for a signed-in admin.
async fn metrics_page(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use axum::response::IntoResponse;
    if !metrics_allowed(&s, &headers).await {
        return error::problem(axum::http::StatusCode::UNAUTHORIZED, "err-metrics-token");
    }
    if let Ok(states) = s.db.orders_by_state().await {
        for (st, n) in states {
            s.metrics
                .orders
                .get_or_create(&metrics::StateLabels { state: st })
                .set(n);
        }
    }
    if let Ok(states) = s.db.delivery_jobs_by_state().await {
        for (st, n) in states {
            s.metrics
                .deliveries
                .get_or_create(&metrics::StateLabels { state: st })
                .set(n);
        }
    }
    if let Ok(n) = s.db.jobs_pending().await {
        s.metrics.jobs_pending.set(n);
    }
    if let Ok(counts) = s.db.job_counts().await {
        for (lane, kind, status, n) in counts {
            s.metrics
                .jobs
                .get_or_create(&metrics::JobLabels { lane, kind, status })
                .set(n);
        }
    }
    if let Ok((late, at_risk)) = s.db.promise_watch().await {
        s.metrics
            .promise
            .get_or_create(&metrics::StateLabels {
                state: "late".into(),
            })
            .set(late.len() as i64);
        s.metrics
            .promise
            .get_or_create(&metrics::StateLabels {
                state: "at_risk".into(),
            })
            .set(at_risk.len() as i64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn metrics_allowed(s: &AppState, h: &axum::http::HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let bearer = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(given), Some(want)) = (bearer, s.config.metrics_token.as_deref())
        && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
    {
        return true;
    }
    // An admin's API token or page session.
    if let Some(t) = bearer
        && let Ok(Some(u)) = s.db.user_by_token(t).await
    {
        return u.is(tianguis_store::users::Role::Admin);
    }
    match ctx::session_user(s, h).await {
        Some(u) => u.is(tianguis_store::users::Role::Admin),
        None => false,
    }
}

/// The job queue's runner for this process: the order timer (from the app), and the handlers
/// that call outside providers and the planner (they need this edge's adapters).
pub fn runner(state: &AppState) -> tianguis_app::queue::Runner {
    use tianguis_store::queue::Kind;
    let worker = format!(
        "pid{}-{}",
        std::process::id(),
        tianguis_store::random_token(3)
    );
    tianguis_app::queue::Runner::new(&worker)
        .handle(
            Kind::Sms,
            sms::SmsJob {
                gateway: state.sms.clone(),
                public_url: state.config.public_url.clone(),
            },
        )
        .handle(
            Kind::MomoRequest,
            payments::RequestJob {
                momo: state.momo.clone(),
                callback_url: api::callback_url(&state.config.public_url),
            },
        )
        .handle(
            Kind::MomoStatus,
            payments::StatusJob {
                momo: state.momo.clone(),
            },
        )
        .handle(Kind::RoutePlan, caps::courier::PlanJob)
        .handle(
            Kind::Payout,
            disburse::PayoutJob {
                api: state.disburse.clone(),
            },
        )
}

/// Background work of one server process: one loop per lane of the job queue, so order timers
/// never wait behind a slow provider or the route planner's CPU work, plus housekeeping. Safe
/// to run in every process against one database (jobs are claimed with leases).
pub fn spawn_workers(state: AppState) -> tokio::task::JoinHandle<()> {
    spawn_workers_until(state, tokio::sync::watch::channel(false).1)
}

/// The background loops, each stopping at its next tick once `stop` turns true: a job run in
/// progress always finishes (its effects and its queue row commit together). The handle ends
/// when every loop has.
pub fn spawn_workers_until(
    state: AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use tianguis_store::queue::Lane;
    let runner = runner(&state);
    let every = Duration::from_millis(state.config.worker_interval_ms.max(50));
    let mut loops = Vec::new();
    // Calls to providers wait on the network, so each lane has several loops taking one job
    // at a time; a loop whose round was full goes again at once (a backlog drains at the
    // providers' pace, not the tick's).
    const ROUND: i64 = 20;
    for (lane, period, loops_in_lane) in [
        (Lane::Providers, every, 4),
        (Lane::Texts, every, 2),
        (Lane::Planner, every * 2, 1),
    ] {
        for worker in 0..loops_in_lane {
            let (s, r, mut stop) = (state.clone(), runner.clone(), stop.clone());
            loops.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                let mut n: u64 = 0;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    if lane == Lane::Planner && worker == 0 && n.is_multiple_of(30) {
                        // Morning plans about once a minute; queued plans every tick.
                        if let Err(e) = caps::courier::queue_morning_plans(&s.db).await {
                            tracing::warn!(error = %e, "morning plans failed");
                        }
                    }
                    n += 1;
                    loop {
                        match r.run_lane(&s.db, lane, ROUND).await {
                            Ok(run) if i64::from(run.total()) >= ROUND && !*stop.borrow() => {}
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, lane = lane.as_str(), "job run failed");
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    let mut stop_timers = stop;
    loops.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop_timers.wait_for(|s| *s) => break,
            }
            n += 1;
            if let Err(e) = runner.run_lane(&state.db, Lane::Timers, 200).await {
                tracing::warn!(error = %e, "timer run failed");
            }
            // The payout schedule, about once a minute: a batch when its period comes round
            // (one per period, whichever server gets there), for officials to approve.
            if state.config.payout_schedule
                && n.is_multiple_of(60)
                && let Err(e) = tianguis_app::payouts::tick(&state.db).await
            {
                tracing::warn!(error = %e, "payout schedule failed");
            }
            if n.is_multiple_of(600) {
                if let Err(e) = state.db.delete_expired_sessions().await {
                    tracing::warn!(error = %e, "session clean-up failed");
                }
                if let Err(e) = state.db.sweep_rate_events().await {
                    tracing::warn!(error = %e, "rate-limit clean-up failed");
                }
            }
        }
    }));
    tokio::spawn(async move {
        for l in loops {
            let _ = l.await;
        }
    })
}

/// Serve on a bound listener until the process is stopped.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_until(state, listener, std::future::pending()).await
}

/// Serve until `shutdown` completes, then stop gracefully: no new connections, requests in
/// flight answered, the background loops finish the job runs they are in (at most 30 s for
/// all of it), then return.
pub async fn serve_until(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = spawn_workers_until(state.clone(), stop_rx);
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(30), workers)
        .await
        .is_err()
    {
        tracing::warn!("background jobs still running after 30 s; stopping anyway");
    }
    served
}

/// SIGTERM (what service managers and container runtimes send) or Ctrl-C.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("stopping: finishing requests and job runs in flight");
}
