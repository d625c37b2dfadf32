//! `tianguis chaos`: the fault test. Real server processes (this binary, `serve`) on one
//! database, the provider simulators in a process of their own (`simulate`, so the provider
//! outlives what it serves, as a real one does), shoppers, sellers, a cashier and payout runs
//! driving them over HTTP, and SIGKILL at random moments. Every request that got no answer is
//! sent again with its key until it is answered, some answered ones too; at the end the
//! database is audited with SQL (`Db::audit`) and its payments are compared with the
//! provider's statement. `--restore` instead backs the database up under load, goes on,
//! restores it and goes on again against the same provider.
//!
//! It refuses a database that has anyone in it: it is for empty test databases only.

use anyhow::{Context, Result, bail, ensure};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tianguis_app::people::NewUser;
use tianguis_domain::process::{OrderState, Transition};
use tianguis_store::Db;
use tianguis_store::users::{Role, User};

#[derive(clap::Args)]
pub struct Args {
    /// How long to drive load, in seconds (the kills are spread over it).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// How many times to kill a server with SIGKILL.
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// Server processes on the one database (more than one needs PostgreSQL).
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Shoppers placing orders at once.
    #[arg(long, default_value_t = 6)]
    shoppers: usize,
    /// The restore drill: back up under load, go on, restore, go on (no kills).
    #[arg(long)]
    restore: bool,
    /// How long, at most, to let the servers finish what is due before the audit.
    #[arg(long, default_value_t = 40)]
    settle_seconds: u64,
    /// Seed for the random choices (the run is printed with it).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the processes' logs and the backup go (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The soak (`tianguis bench soak`): sample the server's memory and the answers' p99 this
    /// often, in seconds.
    #[arg(skip)]
    sample_every: Option<u64>,
}

impl Args {
    /// `tianguis bench soak`: mixed load on one server for `minutes`, no kills.
    pub fn soak(minutes: u64, shoppers: usize) -> Args {
        Args {
            seconds: minutes * 60,
            kills: 0,
            servers: 1,
            shoppers,
            restore: false,
            settle_seconds: 40,
            seed: None,
            dir: None,
            sample_every: Some(60),
        }
    }
}

/// A process's resident memory in KiB (Linux), from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every `every` seconds, until aborted: the server's memory, the answers since the last
/// sample and their p50 and p99.
async fn sample(seen: Arc<Seen>, pid: u32, every: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    for n in 1u64.. {
        tick.tick().await;
        let mut lat = seen
            .latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let kib = rss_kib(pid).unwrap_or(0);
        println!(
            "minute {n:>3}  rss {:>7.1} MiB  answers {:>6}  p50 {:>6.1} ms  p99 {:>7.1} ms",
            kib as f64 / 1024.0,
            lat.len(),
            crate::pct(&mut lat, 0.5),
            crate::pct(&mut lat, 0.99)
        );
    }
}

/// A small deterministic random source (splitmix64): a run is repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The keys the simulators and the servers share for this run (made afresh, never stored).
struct Keys {
    momo_key: String,
    momo_secret: String,
    sms_key: String,
    payout_user: String,
    payout_key: String,
    payout_sub: String,
}

impl Keys {
    fn new() -> Keys {
        let t = tianguis_store::random_token;
        Keys {
            momo_key: format!("chaos-{}", t(8)),
            momo_secret: t(16),
            sms_key: format!("chaos-{}", t(8)),
            payout_user: format!("chaos-{}", t(8)),
            payout_key: t(16),
            payout_sub: t(16),
        }
    }
}

/// One server process slot: its port stays the same across restarts (the provider calls the
/// first one back).
struct Server {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

struct Fleet {
    exe: PathBuf,
    url: String,
    sim: String,
    public: String,
    keys: Keys,
    servers: Vec<Server>,
    alive: Vec<Arc<AtomicBool>>,
    http: reqwest::Client,
}

impl Fleet {
    fn spawn(&mut self, i: usize) -> Result<()> {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)?;
        let k = &self.keys;
        let child = Command::new(&self.exe)
            .args(["serve", "--bind", &format!("127.0.0.1:{}", s.port)])
            .args(["--public-url", &self.public])
            .args(["--momo-url", &format!("{}/sim/momo", self.sim)])
            .args(["--momo-key", &k.momo_key, "--momo-secret", &k.momo_secret])
            .args(["--sms-url", &format!("{}/sim/sms", self.sim)])
            .args(["--sms-username", "sandbox", "--sms-key", &k.sms_key])
            .args(["--payout-url", &format!("{}/sim/disburse", self.sim)])
            .args([
                "--payout-user",
                &k.payout_user,
                "--payout-key",
                &k.payout_key,
            ])
            .args(["--payout-subscription-key", &k.payout_sub])
            .env("DATABASE_URL", &self.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        s.child = Some(child);
        Ok(())
    }

    async fn wait_healthy(&mut self, i: usize) -> Result<()> {
        let base = format!("http://127.0.0.1:{}", self.servers[i].port);
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if let Some(c) = self.servers[i].child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                // Its port may still be held by the one killed a moment ago: start again.
                tracing::debug!("server {i} exited at start ({status}); starting again");
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.spawn(i)?;
                continue;
            }
            if let Ok(r) = self.http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                self.alive[i].store(true, Relaxed);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "server {i} did not become healthy; see {}",
            self.servers[i].log.display()
        )
    }

    async fn start(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        self.wait_healthy(i).await
    }

    /// SIGKILL: no chance to finish anything.
    fn kill(&mut self, i: usize) -> Result<()> {
        self.alive[i].store(false, Relaxed);
        if let Some(mut c) = self.servers[i].child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for the graceful stop.
    fn stop(&mut self, i: usize) -> Result<()> {
        self.alive[i].store(false, Relaxed);
        if let Some(mut c) = self.servers[i].child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()?;
            let until = Instant::now() + Duration::from_secs(40);
            while c.try_wait()?.is_none() {
                if Instant::now() > until {
                    c.kill()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            c.wait()?;
        }
        Ok(())
    }
}

/// The marketplace the run drives: its people, their tokens, the products and their stock.
struct World {
    admin: User,
    treasurer: User,
    /// (seller user, token).
    sellers: Vec<(User, String)>,
    /// buyer id -> token.
    buyers: Vec<(i64, String)>,
    /// (product id, baseline stock).
    products: Vec<(i64, i64)>,
}

const PASSWORD: &str = "chaos-test-pass";
const STOCK: i64 = 1_000_000;

async fn build_world(db: &Db, shoppers: usize) -> Result<World> {
    db.set_setting("currency", "MXN").await?;
    db.set_country("MX").await?;
    // Unpaid orders give their stock back after a minute: timers fire inside a run.
    db.set_setting("unpaid_cancel_minutes", "1").await?;
    db.set_setting("payout_threshold_minor", "1").await?;
    db.set_setting("payout_minimum_minor", "1").await?;
    let place = db.create_place("Chaos", "village", None).await?;
    let cat = db.create_category("chaos", "Chaos", "Caos", None).await?;
    let user = |phone: String, name: &'static str, role: Role| {
        let db = db.clone();
        async move {
            tianguis_app::people::create_user(
                &db,
                NewUser {
                    phone: &phone,
                    email: None,
                    name,
                    password: PASSWORD,
                    role,
                    place_id: Some(place),
                },
            )
            .await
        }
    };
    let admin = user("+529510700001".into(), "Chaos admin", Role::Admin).await?;
    let treasurer = user("+529510700002".into(), "Chaos treasurer", Role::Admin).await?;
    let mut sellers = Vec::new();
    let mut products = Vec::new();
    for s in 0..3 {
        let u = user(format!("+5295107001{s:02}"), "Chaos seller", Role::Seller).await?;
        let seller = db
            .create_seller(u.id, &format!("Chaos shop {s}"), place, 3, s == 0)
            .await?;
        for i in 0..8 {
            let input = tianguis_store::catalog::ProductInput {
                category_id: cat,
                name_en: format!("Chaos item {s}-{i}"),
                price_minor: 1_500 + 250 * i + 100 * s,
                stock: STOCK,
                ..Default::default()
            };
            products.push((db.create_product(seller, &input).await?, STOCK));
        }
        let token = db.create_api_token(u.id, "chaos").await?;
        // Read again: the account owns a shop now.
        sellers.push((db.user(u.id).await?, token));
    }
    let mut buyers = Vec::new();
    // Several accounts per shopper: each account's checkouts per minute are limited.
    for b in 0..shoppers * 6 {
        let id = db
            .insert_user_hashed(
                &format!("+52951072{b:04}"),
                "Chaos buyer",
                "!",
                Role::Buyer,
                Some(place),
            )
            .await?;
        buyers.push((id, db.create_api_token(id, "chaos").await?));
    }
    Ok(World {
        admin,
        treasurer,
        sellers,
        buyers,
        products,
    })
}

/// What the drivers saw, shared between them.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    answered: AtomicU64,
    /// Sent again after no answer (the server died, or answered 503).
    resent: AtomicU64,
    /// Answered checkouts sent again with their key on purpose.
    replays: AtomicU64,
    /// A replay answered with another checkout, or not 200.
    replay_mismatches: AtomicU64,
    server_errors: AtomicU64,
    /// Given up after two minutes without an answer (the run stays bounded; a failure).
    unanswered: AtomicU64,
    refused: AtomicU64,
    moves: AtomicU64,
    cash: AtomicU64,
    payout_batches: AtomicU64,
    /// key -> (phase, checkout id, buyer id)
    checkouts: Mutex<HashMap<String, (u8, i64, i64)>>,
    /// Keys sent.
    keys: Mutex<Vec<String>>,
    /// (order, transition) answered 200.
    moved: Mutex<Vec<(i64, String)>>,
    /// Statuses other than the expected ones, for the report.
    odd: Mutex<HashMap<u16, u64>>,
    /// Milliseconds from sending to the answer, since the soak's last sample.
    latencies: Mutex<Vec<f64>>,
}

/// Drives requests at whichever server is up, sending a request again (same key, same body)
/// until some server answers it with anything but 503.
#[derive(Clone)]
struct Driver {
    http: reqwest::Client,
    bases: Vec<String>,
    alive: Vec<Arc<AtomicBool>>,
    seen: Arc<Seen>,
    next: Arc<AtomicU64>,
}

enum Body {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

impl Driver {
    async fn send(
        &self,
        post: bool,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, String)],
        body: &Body,
    ) -> (u16, String) {
        self.seen.requests.fetch_add(1, Relaxed);
        let started = Instant::now();
        let mut first = true;
        loop {
            if started.elapsed() > Duration::from_secs(120) {
                self.seen.unanswered.fetch_add(1, Relaxed);
                tracing::warn!("no answer to {path} for two minutes");
                return (0, String::new());
            }
            let n = self.next.fetch_add(1, Relaxed) as usize;
            let live: Vec<usize> = (0..self.bases.len())
                .filter(|i| self.alive[*i].load(Relaxed))
                .collect();
            if live.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if !first {
                self.seen.resent.fetch_add(1, Relaxed);
            }
            first = false;
            let base = &self.bases[live[n % live.len()]];
            let url = format!("{base}{path}");
            let mut rb = if post {
                self.http.post(url)
            } else {
                self.http.get(url)
            };
            if let Some(t) = auth {
                rb = rb.bearer_auth(t);
            }
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            rb = match body {
                Body::None => rb,
                Body::Json(v) => rb.json(v),
                Body::Form(f) => rb.form(f),
            };
            match rb.send().await {
                Ok(r) if r.status().as_u16() != 503 => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    self.seen.answered.fetch_add(1, Relaxed);
                    if let Ok(mut l) = self.seen.latencies.lock() {
                        l.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    if status >= 500 {
                        self.seen.server_errors.fetch_add(1, Relaxed);
                        tracing::warn!("{status} from {path}: {text}");
                    }
                    return (status, text);
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn odd(seen: &Seen, status: u16) {
    if let Ok(mut m) = seen.odd.lock() {
        *m.entry(status).or_insert(0) += 1;
    }
}

async fn shopper(d: Driver, w: Arc<World>, who: usize, phase: u8, until: Instant, seed: u64) {
    let mut rng = Rng(seed);
    let mine: Vec<&(i64, String)> = w
        .buyers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % (w.buyers.len() / 6).max(1) == who)
        .map(|(_, b)| b)
        .collect();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let (buyer, token) = mine[(n as usize) % mine.len().max(1)];
        let mut lines = Vec::new();
        let mut picked = HashSet::new();
        for _ in 0..1 + rng.below(2) {
            let (p, _) = w.products[rng.below(w.products.len() as u64) as usize];
            if picked.insert(p) {
                lines.push(serde_json::json!({"product_id": p, "quantity": 1 + rng.below(3)}));
            }
        }
        let roll = rng.below(100);
        let method = match roll {
            0..55 => "mobile_money",
            55..80 => "cash_on_delivery",
            _ => "cash",
        };
        // One mobile-money payer in eight declines (the simulator declines numbers ending 999).
        let phone = if method == "mobile_money" && rng.chance(12) {
            "+529515550999".to_string()
        } else {
            format!("+5295155{:05}", buyer % 100_000)
        };
        let body = Body::Json(serde_json::json!({
            "lines": lines, "method": method,
            "address": "7685X722+FQ Chaos", "phone": phone,
        }));
        let key = format!("chaos-{phase}-{who}-{n}-{seed:x}");
        if let Ok(mut k) = d.seen.keys.lock() {
            k.push(key.clone());
        }
        let headers = [("idempotency-key", key.clone())];
        let (status, text) = d
            .send(true, "/api/v1/checkout", Some(token), &headers, &body)
            .await;
        match status {
            200 | 201 => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let id = v["checkout_id"].as_i64().unwrap_or(-1);
                if let Ok(mut c) = d.seen.checkouts.lock() {
                    c.insert(key.clone(), (phase, id, *buyer));
                }
                // Now and then the answered request is sent again: the same purchase.
                if rng.chance(10) {
                    d.seen.replays.fetch_add(1, Relaxed);
                    let (s2, t2) = d
                        .send(true, "/api/v1/checkout", Some(token), &headers, &body)
                        .await;
                    let v2: serde_json::Value = serde_json::from_str(&t2).unwrap_or_default();
                    if s2 != 200 || v2["checkout_id"].as_i64() != Some(id) {
                        d.seen.replay_mismatches.fetch_add(1, Relaxed);
                        tracing::warn!("replay of {key}: {s2} {t2}");
                    }
                }
            }
            429 => {
                d.seen.refused.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            s => {
                d.seen.refused.fetch_add(1, Relaxed);
                odd(&d.seen, s);
            }
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(60))).await;
    }
}

/// Send one order move; one answered 200 is recorded as the transition the history must show,
/// one answered with a status in `settled` is one the order no longer needs.
async fn act(
    d: &Driver,
    token: &str,
    order: i64,
    (path, body): (&str, Body),
    transition: &str,
    settled: &[u16],
) {
    let (status, _) = d
        .send(
            true,
            &format!("/api/v1/orders/{order}/{path}"),
            Some(token),
            &[],
            &body,
        )
        .await;
    match status {
        200 => {
            d.seen.moves.fetch_add(1, Relaxed);
            if let Ok(mut m) = d.seen.moved.lock() {
                m.push((order, transition.to_string()));
            }
        }
        s if settled.contains(&s) => {}
        s => odd(&d.seen, s),
    }
}

async fn move_order(d: &Driver, token: &str, order: i64, t: &str) {
    // 409: moved meanwhile (a timer, the buyer, or this same request before a kill).
    let path = format!("transitions/{t}");
    act(d, token, order, (&path, Body::None), t, &[409]).await
}

/// Deliver with the buyer's code (read from the database: the buyer tells the courier).
async fn deliver(d: &Driver, db: &Db, token: &str, order: i64, cod: bool) {
    let Ok(o) = db.order(order).await else { return };
    let Some(code) = o.delivery_code else { return };
    let t = if cod {
        Transition::CollectOnDelivery
    } else {
        Transition::DeliverWithCode
    };
    let body = Body::Json(serde_json::json!({ "code": code }));
    // 422 too: the code was used up by such a move.
    act(d, token, order, ("deliver", body), t.as_str(), &[409, 422]).await
}

/// A seller working through their orders, and the buyers answering for theirs: accept, pack,
/// ship, deliver with the code, confirm, ask for returns and take them back.
async fn seller(d: Driver, db: Db, w: Arc<World>, s: usize, until: Instant, seed: u64) {
    let mut rng = Rng(seed);
    let (user, token) = &w.sellers[s];
    let tokens: HashMap<i64, &String> = w.buyers.iter().map(|(id, t)| (*id, t)).collect();
    while Instant::now() < until {
        let mut list = Vec::new();
        for state in [
            OrderState::Placed,
            OrderState::Paid,
            OrderState::Accepted,
            OrderState::Packed,
            OrderState::Shipped,
            OrderState::Delivered,
            OrderState::ReturnRequested,
        ] {
            list.extend(
                db.orders_for(user, true, Some(state), 15)
                    .await
                    .unwrap_or_default(),
            );
        }
        for o in list {
            if Instant::now() >= until {
                break;
            }
            let cod = o.method == tianguis_store::orders::PaymentMethod::CashOnDelivery;
            let buyer = tokens.get(&o.buyer_id).map(|t| t.as_str()).unwrap_or("");
            match o.state {
                OrderState::Placed if cod => {
                    move_order(&d, token, o.id, "accept_on_delivery").await
                }
                OrderState::Paid if rng.chance(4) => move_order(&d, token, o.id, "cancel").await,
                OrderState::Paid => move_order(&d, token, o.id, "accept").await,
                OrderState::Accepted => move_order(&d, token, o.id, "pack").await,
                OrderState::Packed => move_order(&d, token, o.id, "ship").await,
                OrderState::Shipped if cod || rng.chance(50) => {
                    deliver(&d, &db, token, o.id, cod).await
                }
                OrderState::Shipped => {
                    move_order(&d, buyer, o.id, "confirm_delivery").await;
                }
                OrderState::Delivered if rng.chance(15) => {
                    move_order(&d, buyer, o.id, "request_return").await
                }
                OrderState::Delivered => move_order(&d, buyer, o.id, "confirm_receipt").await,
                OrderState::ReturnRequested => move_order(&d, token, o.id, "mark_returned").await,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(200))).await;
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[i..].split('"').next()?.to_string())
}

/// The cashier at the counter: an admin signed in through the pages, recording the cash that
/// buyers bring for their orders.
async fn cashier(d: Driver, db: Db, w: Arc<World>, until: Instant) -> Result<()> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()?;
    let page = Driver {
        http: browser,
        ..d.clone()
    };
    let (_, html) = page.send(false, "/login", None, &[], &Body::None).await;
    let csrf = csrf_in(&html).unwrap_or_default();
    let form = |csrf: &str, extra: &[(&str, &str)]| {
        let mut f = vec![("csrf".to_string(), csrf.to_string())];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Body::Form(f)
    };
    let (status, _) = page
        .send(
            true,
            "/login",
            None,
            &[],
            &form(
                &csrf,
                &[("phone", w.admin.phone.as_str()), ("password", PASSWORD)],
            ),
        )
        .await;
    ensure!(status == 303, "the cashier could not sign in ({status})");
    let (_, html) = page.send(false, "/admin", None, &[], &Body::None).await;
    let csrf = csrf_in(&html).unwrap_or_default();
    while Instant::now() < until {
        let pending = db
            .all_orders(Some(OrderState::Placed), 200)
            .await
            .unwrap_or_default();
        for o in pending {
            let (Some(pid), tianguis_store::orders::PaymentMethod::Cash) = (o.payment_id, o.method)
            else {
                continue;
            };
            let (status, _) = page
                .send(
                    true,
                    &format!("/admin/payments/{pid}/cash"),
                    None,
                    &[],
                    &form(&csrf, &[]),
                )
                .await;
            match status {
                303 => {
                    d.seen.cash.fetch_add(1, Relaxed);
                }
                409 => {}
                s => odd(&d.seen, s),
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    Ok(())
}

/// Officials run a payout batch every few seconds: one prepares, the other approves; the
/// transfers then go out from the servers' queue through the payout provider.
async fn treasury(d: Driver, db: Db, w: Arc<World>, until: Instant) {
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let prepared = tianguis_app::payouts::prepare(
            &db,
            Some(&w.admin),
            tianguis_domain::payout::Run::Manual,
        )
        .await;
        if let Ok(Some(id)) = prepared
            && tianguis_app::payouts::approve(&db, &w.treasurer, id)
                .await
                .is_ok()
        {
            d.seen.payout_batches.fetch_add(1, Relaxed);
        }
    }
}

/// What drives the load: the requests' driver, the database the drivers read, the world.
struct Load<'a> {
    d: &'a Driver,
    db: &'a Db,
    w: &'a Arc<World>,
    shoppers: usize,
}

/// Run the drivers for `seconds`, killing a server `kills` times meanwhile.
async fn drive(
    fleet: &mut Fleet,
    load: &Load<'_>,
    phase: u8,
    seconds: u64,
    kills: u32,
    rng: &mut Rng,
) -> Result<u32> {
    let Load { d, db, w, shoppers } = *load;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for who in 0..shoppers {
        tasks.spawn(shopper(d.clone(), w.clone(), who, phase, until, rng.next()));
    }
    for s in 0..w.sellers.len() {
        tasks.spawn(seller(
            d.clone(),
            db.clone(),
            w.clone(),
            s,
            until,
            rng.next(),
        ));
    }
    {
        let (d, db, w) = (d.clone(), db.clone(), w.clone());
        tasks.spawn(async move {
            if let Err(e) = cashier(d, db, w, until).await {
                tracing::warn!("cashier: {e:#}");
            }
        });
    }
    tasks.spawn(treasury(d.clone(), db.clone(), w.clone(), until));
    let mut done = 0;
    let start = Instant::now();
    while done < kills && Instant::now() < until {
        // The next kill at a random moment of its share of the run.
        let share = seconds as f64 / f64::from(kills + 1);
        let target = share * (f64::from(done) + 0.5 + rng.below(1000) as f64 / 1000.0);
        let at = start + Duration::from_secs_f64(target);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let i = rng.below(fleet.servers.len() as u64) as usize;
        fleet.kill(i)?;
        done += 1;
        fleet.start(i).await?;
    }
    while tasks.join_next().await.is_some() {}
    Ok(done)
}

/// Wait until no timer is due (a killed server's lease on one runs out first) and no call to
/// a money provider is due and free to take (or the time is up). Texts may lag behind (their
/// own lane): they move no money.
async fn settle(db: &Db, seconds: u64) -> Result<()> {
    use tianguis_store::queue::Lane;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        if db.jobs_due_in(Lane::Timers, false).await?
            + db.jobs_due_in(Lane::Providers, true).await?
            == 0
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// The provider's statement of account: reference -> (status, amount, currency).
async fn provider_statement(
    http: &reqwest::Client,
    sim: &str,
    keys: &Keys,
) -> Result<HashMap<String, (String, i64, String)>> {
    let list: Vec<serde_json::Value> = http
        .get(format!("{sim}/sim/momo/v1/payments"))
        .bearer_auth(&keys.momo_key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|p| {
            Some((
                p["reference"].as_str()?.to_string(),
                (
                    p["status"].as_str()?.to_string(),
                    p["amount_minor"].as_i64()?,
                    p["currency"].as_str()?.to_string(),
                ),
            ))
        })
        .collect())
}

/// Our mobile-money payments against the provider's statement (`domain::reconcile`); the
/// payment ids it found mis-applied.
fn reconcile(
    ours: &[tianguis_store::audit::AuditPayment],
    theirs: &HashMap<String, (String, i64, String)>,
) -> (tianguis_domain::reconcile::Statement, Vec<i64>) {
    use tianguis_domain::reconcile::{Line, statement};
    let momo: Vec<&tianguis_store::audit::AuditPayment> = ours
        .iter()
        .filter(|p| p.method == "mobile_money" && p.reference.is_some())
        .collect();
    let ours_lines: Vec<Line<'_>> = momo
        .iter()
        .map(|p| Line {
            reference: p.reference.as_deref().unwrap_or(""),
            status: &p.status,
            amount_minor: p.amount_minor,
            currency: &p.currency,
        })
        .collect();
    let theirs_lines: Vec<Line<'_>> = theirs
        .iter()
        .map(|(r, (status, amount, currency))| Line {
            reference: r,
            status,
            amount_minor: *amount,
            currency,
        })
        .collect();
    let st = statement(&ours_lines, &theirs_lines);
    let ids = st.misapplied.iter().map(|i| momo[*i].id).collect();
    (st, ids)
}

pub async fn run(url: &str, a: Args) -> Result<()> {
    ensure!(
        a.servers >= 1 && (a.servers == 1 || !url.starts_with("sqlite:")),
        "several servers need PostgreSQL (SQLite is one machine's database)"
    );
    ensure!(a.shoppers >= 1, "at least one shopper");
    let mut db = Db::connect(url).await?;
    db.migrate().await?;
    ensure!(
        db.people_count().await? == 0,
        "chaos runs only on an empty database: it kills servers and fills it with test orders"
    );
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
    });
    let mut rng = Rng(seed);
    let dir = match a.dir.clone() {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("tianguis-chaos-{seed:x}")),
    };
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "chaos: seed {seed}, {} server(s), logs in {}",
        a.servers,
        dir.display()
    );
    let world = Arc::new(build_world(&db, a.shoppers).await?);
    let keys = Keys::new();
    let ports: Vec<u16> = (0..a.servers).map(|_| free_port()).collect::<Result<_>>()?;
    let sim_port = free_port()?;
    let sim = format!("http://127.0.0.1:{sim_port}");
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let exe = std::env::current_exe()?;
    let sim_log = std::fs::File::create(dir.join("simulators.log"))?;
    let mut simulators = Command::new(&exe)
        .args(["simulate", "--bind", &format!("127.0.0.1:{sim_port}")])
        .args(["--server-url", &public])
        .args([
            "--momo-key",
            &keys.momo_key,
            "--momo-secret",
            &keys.momo_secret,
        ])
        .args(["--sms-key", &keys.sms_key])
        .args([
            "--payout-user",
            &keys.payout_user,
            "--payout-key",
            &keys.payout_key,
        ])
        .args(["--payout-subscription-key", &keys.payout_sub])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(sim_log.try_clone()?)
        .stderr(sim_log)
        .spawn()
        .context("cannot start the simulators")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let outcome = async {
        let up = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{sim}/healthz"))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            ensure!(Instant::now() < up, "the simulators did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut fleet = Fleet {
            exe: exe.clone(),
            url: url.to_string(),
            sim: sim.clone(),
            public: public.clone(),
            keys,
            servers: ports
                .iter()
                .enumerate()
                .map(|(i, p)| Server {
                    port: *p,
                    child: None,
                    log: dir.join(format!("server-{i}.log")),
                })
                .collect(),
            alive: (0..a.servers)
                .map(|_| Arc::new(AtomicBool::new(false)))
                .collect(),
            http: http.clone(),
        };
        for i in 0..a.servers {
            fleet.start(i).await?;
        }
        let driver = Driver {
            http: http.clone(),
            bases: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            alive: fleet.alive.clone(),
            seen: Arc::new(Seen::default()),
            next: Arc::new(AtomicU64::new(0)),
        };
        let started = Instant::now();
        let mut restarts = 0;
        if a.restore {
            restarts += restore_drill(&mut fleet, &driver, &mut db, &world, &a, &dir, &mut rng).await?;
        } else {
            let sampler = a.sample_every.and_then(|every| {
                let pid = fleet.servers[0].child.as_ref()?.id();
                Some(tokio::spawn(sample(driver.seen.clone(), pid, every)))
            });
            let load = Load {
                d: &driver,
                db: &db,
                w: &world,
                shoppers: a.shoppers,
            };
            restarts += drive(&mut fleet, &load, 0, a.seconds, a.kills, &mut rng).await?;
            if let Some(s) = sampler {
                s.abort();
                let pid = fleet.servers[0].child.as_ref().map(Child::id).unwrap_or(0);
                let last = rss_kib(pid).unwrap_or(0);
                println!(
                    "memory        {:.1} MiB at the end of the load ({} samples printed above)",
                    last as f64 / 1024.0,
                    a.seconds / a.sample_every.unwrap_or(60).max(1)
                );
            }
        }
        settle(&db, a.settle_seconds).await?;
        for i in 0..a.servers {
            fleet.stop(i)?;
        }
        let took = started.elapsed().as_secs_f64();
        let report = verdict(&db, &driver.seen, &world, &http, &sim, &fleet.keys, a.restore)
            .await?;
        let s = &driver.seen;
        let backend = if url.starts_with("sqlite:") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        println!(
            "chaos on {backend}, {} server(s), seed {seed}, {took:.0} s",
            a.servers
        );
        println!(
            "restarts      {restarts}{}",
            if a.restore { " (restored once)" } else { "" }
        );
        println!(
            "requests      {} sent, {} answered, {} sent again after no answer, {} answered ones replayed ({} answered differently)",
            s.requests.load(Relaxed),
            s.answered.load(Relaxed),
            s.resent.load(Relaxed),
            s.replays.load(Relaxed),
            s.replay_mismatches.load(Relaxed)
        );
        println!(
            "acknowledged  {} checkouts, {} order moves, {} cash payments, {} payout batches; {} refused (4xx)",
            report.acknowledged,
            s.moves.load(Relaxed),
            s.cash.load(Relaxed),
            s.payout_batches.load(Relaxed),
            s.refused.load(Relaxed)
        );
        if a.restore {
            println!(
                "restore       {} acknowledged after the backup and before the restore (gone with it, as a restore must); {} provider payments made meanwhile are unknown to the restored database",
                report.lost_by_restore,
                report.reconciled.unknown_to_us
            );
        }
        println!("lost          {}", report.lost);
        println!("duplicated    {}", report.duplicated);
        println!(
            "server errors {} ({} requests never answered)",
            s.server_errors.load(Relaxed),
            s.unanswered.load(Relaxed)
        );
        let au = &report.audit;
        println!(
            "ledger        {} unbalanced transactions, {} drifted accounts, {} negative protected accounts, totals {}, paid in {} = payments {}",
            au.unbalanced_transactions,
            au.drifted_accounts,
            au.negative_protected_accounts,
            if au.totals_broken { "BROKEN" } else { "hold" },
            au.paid_in_minor,
            au.payments_succeeded_minor
        );
        println!(
            "stock         {} products off",
            au.stock_off.len()
        );
        println!(
            "timers        {} overdue, {} orders missing theirs, {} repeated transitions",
            au.overdue_timers,
            au.missing_timers.len(),
            au.repeated_events
        );
        println!(
            "payments      {} stranded, {} mis-applied, {} settled alike at the provider and here, {} final there and queued to be asked here, {} refused provider answers",
            au.stranded_payments.len(),
            report.misapplied.len(),
            report.reconciled.agreed,
            report.reconciled.awaiting,
            au.provider_mismatches
        );
        println!(
            "orders        {} orders, {} events; dead jobs {:?}",
            au.orders, au.events, au.dead_jobs
        );
        let odd = s.odd.lock().map(|m| m.clone()).unwrap_or_default();
        if !odd.is_empty() {
            println!("other answers {odd:?}");
        }
        let held = report.held(s);
        println!("verdict       {}", if held { "held" } else { "BROKEN" });
        if !held {
            if !au.stock_off.is_empty() {
                println!("  stock off (product, expected, found): {:?}", au.stock_off);
            }
            if !au.missing_timers.is_empty() {
                println!("  orders missing a timer: {:?}", au.missing_timers);
            }
            if !au.stranded_payments.is_empty() {
                println!("  stranded payments: {:?}", au.stranded_payments);
            }
            if !report.misapplied.is_empty() {
                println!("  mis-applied payments: {:?}", report.misapplied);
            }
            bail!("an invariant broke; the logs are in {}", dir.display());
        }
        Ok(())
    }
    .await;
    let _ = simulators.kill();
    let _ = simulators.wait();
    outcome
}

struct Report {
    audit: tianguis_store::audit::Audit,
    reconciled: tianguis_domain::reconcile::Statement,
    misapplied: Vec<i64>,
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    lost_by_restore: usize,
    moves_missing: usize,
}

impl Report {
    fn held(&self, seen: &Seen) -> bool {
        self.audit.holds()
            && self.misapplied.is_empty()
            && self.lost == 0
            && self.duplicated == 0
            && self.moves_missing == 0
            && seen.replay_mismatches.load(Relaxed) == 0
            && seen.server_errors.load(Relaxed) == 0
            && seen.unanswered.load(Relaxed) == 0
    }
}

async fn verdict(
    db: &Db,
    seen: &Seen,
    w: &World,
    http: &reqwest::Client,
    sim: &str,
    keys: &Keys,
    restored: bool,
) -> Result<Report> {
    let audit = db.audit(&w.products, 15_000).await?;
    let theirs = provider_statement(http, sim, keys).await?;
    let ours = db.audit_payments().await?;
    let (reconciled, misapplied) = reconcile(&ours, &theirs);
    let acked = seen.checkouts.lock().map(|c| c.clone()).unwrap_or_default();
    let in_db: HashMap<i64, i64> = db.checkout_buyers().await?.into_iter().collect();
    let keys_in_db = db.idempotency_keys().await?;
    // Phase 1 is before the backup (it must all be there after the restore), phase 2 between
    // the backup and the restore (gone with it, unless the backup caught it), phase 3 after.
    let must_be_there = |phase: u8| !restored || phase != 2;
    let mut lost = 0;
    let mut lost_by_restore = 0;
    for (key, (phase, id, buyer)) in &acked {
        let there = in_db.get(id) == Some(buyer) && keys_in_db.contains(key);
        if !there {
            if must_be_there(*phase) {
                lost += 1;
                tracing::warn!("acknowledged checkout {id} ({key}) is missing");
            } else {
                lost_by_restore += 1;
            }
        }
    }
    // Every checkout in the database is one that some key sent by the drivers stands for.
    let sent: HashSet<String> = seen
        .keys
        .lock()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default();
    let kept = keys_in_db.iter().filter(|k| sent.contains(*k)).count();
    let duplicated = in_db.len().saturating_sub(kept);
    let acknowledged = acked.len();
    // Every move answered 200 is in the order's history (unless a restore took it away).
    let mut moves_missing = 0;
    if !restored {
        let moved = seen.moved.lock().map(|m| m.clone()).unwrap_or_default();
        let history = db.order_transitions().await?;
        for (order, t) in moved {
            if !history.contains(&(order, t.clone())) {
                moves_missing += 1;
                tracing::warn!("order {order}: {t} was answered but is not in its history");
            }
        }
    }
    Ok(Report {
        audit,
        reconciled,
        misapplied,
        acknowledged,
        lost,
        duplicated,
        lost_by_restore,
        moves_missing,
    })
}

/// Back up under load, go on, kill the servers, restore the backup, go on against the same
/// provider. Returns the restarts.
async fn restore_drill(
    fleet: &mut Fleet,
    d: &Driver,
    db: &mut Db,
    w: &Arc<World>,
    a: &Args,
    dir: &Path,
    rng: &mut Rng,
) -> Result<u32> {
    let third = (a.seconds / 3).max(5);
    let backup = dir.join("backup");
    let _ = std::fs::remove_file(&backup);
    // Phase 1: everything acknowledged in it is in the backup.
    let load = Load {
        d,
        db,
        w,
        shoppers: a.shoppers,
    };
    drive(fleet, &load, 1, third, 0, rng).await?;
    // Phase 2, with the backup taken as it starts, under its load: what is acknowledged in
    // it may or may not be in the backup.
    let url = fleet.url.clone();
    let file = backup.clone();
    let take = tokio::spawn(async move { back_up(&url, &file).await });
    let load = Load {
        d,
        db,
        w,
        shoppers: a.shoppers,
    };
    drive(fleet, &load, 2, third, 0, rng).await?;
    take.await??;
    for i in 0..fleet.servers.len() {
        fleet.kill(i)?;
    }
    db.close().await;
    restore(&fleet.url, &backup).await?;
    *db = Db::connect_existing(&fleet.url).await?;
    for i in 0..fleet.servers.len() {
        fleet.start(i).await?;
    }
    let load = Load {
        d,
        db,
        w,
        shoppers: a.shoppers,
    };
    drive(fleet, &load, 3, third, 0, rng).await?;
    Ok(fleet.servers.len() as u32)
}

/// A backup of the live database: SQLite's `VACUUM INTO` (as `tianguis backup`), PostgreSQL's
/// `pg_dump` in its custom format.
async fn back_up(url: &str, file: &Path) -> Result<()> {
    if url.starts_with("sqlite:") {
        let db = Db::connect_existing(url).await?;
        db.backup(&file.to_string_lossy()).await?;
        db.close().await;
    } else {
        let out = tokio::task::spawn_blocking({
            let (url, file) = (url.to_string(), file.to_path_buf());
            move || {
                Command::new("pg_dump")
                    .args(["--format=custom", "--no-owner", "--file"])
                    .arg(&file)
                    .arg(&url)
                    .output()
            }
        })
        .await??;
        ensure!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Put a backup in the database's place (the servers are down).
async fn restore(url: &str, file: &Path) -> Result<()> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.split('?').next().unwrap_or(path);
        // A new file in its place (never overwritten in place under an old handle).
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        std::fs::copy(file, path).context("copying the backup into place")?;
    } else {
        let name = url
            .rsplit('/')
            .next()
            .and_then(|n| n.split('?').next())
            .context("no database name in the URL")?
            .to_string();
        let admin_url = tianguis_store::db::sibling_url(url, "postgres");
        let admin = Db::connect_existing(&admin_url).await?;
        admin
            .raw_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .raw_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await;
        let out = Command::new("pg_restore")
            .args(["--no-owner", "--dbname"])
            .arg(url)
            .arg(file)
            .output()?;
        ensure!(
            out.status.success(),
            "pg_restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
