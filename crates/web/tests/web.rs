//! HTTP tests against a real server on 127.0.0.1, on a fresh SQLite file and a fresh PostgreSQL
//! database each. Pages are driven like a browser with JavaScript off: GET a form, read its CSRF
//! token, POST it, follow redirects.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tianguis_demo::{DEMO_ADMIN_PHONE, DEMO_PASSWORD};
use tianguis_store::Db;
use tianguis_testkit::{self as testdb, TestDb};

struct App {
    base: String,
    db: Db,
    t: TestDb,
    /// What the local SMS simulator received (the phones' side of texts).
    sms: tianguis_web::sms::SimOutbox,
}

/// The metrics scraper's token in tests.
const METRICS_TOKEN: &str = "test-metrics-token";

impl App {
    /// `/metrics` as the scraper reads it (with its token).
    async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    /// The texts the SMS simulator delivered to `phone`, waiting up to 10 s for at least one
    /// matching `pred`.
    async fn text_to(&self, phone: &str, pred: impl Fn(&str) -> bool) -> String {
        // The demo's own texts go out first: allow for them on a slow machine.
        for _ in 0..300 {
            if let Some(m) = self
                .sms
                .messages()
                .into_iter()
                .rev()
                .find(|m| m.to == phone && pred(&m.message))
            {
                return m.message;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no text reached {phone}: {:?}", self.sms.messages());
    }
    /// The six-digit code in the newest text to `phone`.
    async fn code_texted_to(&self, phone: &str) -> String {
        let m = self
            .text_to(phone, |m| {
                m.split(|c: char| !c.is_ascii_digit()).any(|w| w.len() == 6)
            })
            .await;
        m.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_string()
    }
}

async fn spawn_on(t: TestDb, seed: bool, tweak: impl FnOnce(&mut tianguis_web::Config)) -> App {
    if seed {
        tianguis_demo::seed(&t.db, false).await.unwrap();
    }
    let (base, sms) = serve_db(t.db.clone(), tweak).await;
    App {
        base,
        db: t.db.clone(),
        t,
        sms,
    }
}

/// Another server process on a database (several servers, one database).
struct Server {
    base: String,
}

async fn spawn_on_db(db: Db, tweak: impl FnOnce(&mut tianguis_web::Config)) -> Server {
    Server {
        base: serve_db(db, tweak).await.0,
    }
}

async fn serve_db(
    db: Db,
    tweak: impl FnOnce(&mut tianguis_web::Config),
) -> (String, tianguis_web::sms::SimOutbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = tianguis_web::Config::local(&base);
    config.login_per_minute = 10_000;
    config.checkout_per_minute = 10_000;
    config.codes_per_minute = 10_000;
    config.codes_per_phone_per_hour = 10_000;
    config.worker_interval_ms = 100;
    config.sim_approve_after_ms = 50;
    config.metrics_token = Some(METRICS_TOKEN.into());
    // Batches only when a test asks for one (the schedule's own runs are tested in the app).
    config.payout_schedule = false;
    tweak(&mut config);
    let state = tianguis_web::state(db, config);
    let sms = state.sms_sim.clone().unwrap_or_default();
    tokio::spawn(tianguis_web::serve(state, listener));
    (base, sms)
}

async fn apps(seed: bool) -> Vec<App> {
    let mut v = Vec::new();
    for t in testdb::all().await {
        v.push(spawn_on(t, seed, |_| {}).await);
    }
    v
}

/// A person with a browser (cookies on, JavaScript off).
struct Browser {
    c: reqwest::Client,
    base: String,
    csrf: String,
}

fn csrf_in(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[i..].split('"').next()?.to_string())
}

impl Browser {
    async fn new(base: &str) -> Browser {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .no_gzip()
            .build()
            .unwrap();
        let mut b = Browser {
            c,
            base: base.to_string(),
            csrf: String::new(),
        };
        b.get("/cart").await;
        b
    }
    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let s = r.status();
        let body = r.text().await.unwrap();
        if let Some(t) = csrf_in(&body) {
            self.csrf = t;
        }
        (s, body)
    }
    /// POST a form with this session's CSRF token; returns status and Location (or body).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf".into(), self.csrf.clone()));
        }
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        (s, loc.unwrap_or(body))
    }
    /// POST a multipart form (text fields and files) with this session's CSRF token.
    async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, Vec<u8>)],
    ) -> (StatusCode, String) {
        let mut form = reqwest::multipart::Form::new().text("csrf", self.csrf.clone());
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        for (k, bytes) in files {
            form = form.part(
                k.to_string(),
                reqwest::multipart::Part::bytes(bytes.clone()).file_name("upload.png"),
            );
        }
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        (s, loc.unwrap_or(body))
    }
    async fn login(base: &str, phone: &str) -> Browser {
        let mut b = Browser::new(base).await;
        b.get("/login").await;
        let (s, _) = b
            .post("/login", &[("phone", phone), ("password", DEMO_PASSWORD)])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "login as {phone}");
        b.get("/cart").await; // the session was rotated: pick up the new CSRF token
        b
    }
}

async fn seller_phone_of(db: &Db, product_id: i64) -> String {
    let p = db.product(product_id).await.unwrap();
    let s = db.seller(p.seller_id).await.unwrap();
    db.user(s.user_id).await.unwrap().phone
}

/// The one-time idempotency key of a checkout form.
fn checkout_key(html: &str) -> String {
    html.split("name=\"idempotency_key\" value=\"")
        .nth(1)
        .expect("a checkout form")
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn first_link(html: &str, prefix: &str) -> i64 {
    let i = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link"))
        + prefix.len();
    html[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

async fn wait_paid(db: &Db, payment_id: i64) {
    for _ in 0..100 {
        if db.payment(payment_id).await.unwrap().status == "succeeded" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the simulator's callback never marked payment {payment_id} paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_signs_up_buys_from_two_sellers_pays_by_mobile_money_and_the_seller_is_paid() {
    for app in apps(true).await {
        let mut buyer = Browser::new(&app.base).await;
        let (s, html) = buyer.get("/signup").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("name=\"phone\""));
        let (s, _) = buyer
            .post(
                "/signup",
                &[
                    ("name", "Rosa Pérez"),
                    ("phone", "+52 951 555 0101"),
                    ("password", "una-clave-larga"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        buyer.get("/").await;
        // Search in Spanish without accents finds "Café".
        let (_, html) = buyer.get("/search?q=cafe").await;
        let p1 = first_link(&html, "href=\"/products/");
        let (_, html) = buyer.get("/search?q=miel").await;
        let mut p2 = first_link(&html, "href=\"/products/");
        let s1 = app.db.product(p1).await.unwrap().seller_id;
        if app.db.product(p2).await.unwrap().seller_id == s1 {
            let (_, html) = buyer.get("/search?q=soap").await;
            p2 = first_link(&html, "href=\"/products/");
        }
        assert_ne!(app.db.product(p2).await.unwrap().seller_id, s1);
        let stock_before = app.db.product(p1).await.unwrap().stock;
        for (p, q) in [(p1, "1"), (p2, "2")] {
            let (s, _) = buyer.get(&format!("/products/{p}")).await;
            assert_eq!(s, StatusCode::OK);
            let (s, loc) = buyer
                .post(
                    "/cart/add",
                    &[("product_id", &p.to_string()), ("quantity", q)],
                )
                .await;
            assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/cart"));
        }
        let (_, html) = buyer.get("/checkout").await;
        assert!(html.contains("idempotency_key"));
        // Each line with its price and its total; the shop under the name.
        let en = tianguis_web::i18n::Tr::new("en");
        let unit = app.db.product(p2).await.unwrap().price;
        let line = tianguis_domain::money::Money::new(unit.minor * 2, unit.currency);
        assert!(
            html.contains(&format!(
                "2 × {}</td><td>{}</td>",
                en.money(&unit),
                en.money(&line)
            )),
            "{html}"
        );
        let key = checkout_key(&html);
        let form = [
            ("idempotency_key", key.as_str()),
            ("address", "X722+FQ Santa Ana, casa azul"),
            ("phone", "+529515550101"),
            ("method", "mobile_money"),
        ];
        let (s, loc) = buyer.post("/checkout", &form).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let payment_id: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        // Pressing "pay" twice (a retry over a bad connection) buys nothing more.
        let (s, loc2) = buyer.post("/checkout", &form).await;
        assert!(
            s == StatusCode::SEE_OTHER && loc2 == loc || s.is_redirection(),
            "{s} {loc2}"
        );
        wait_paid(&app.db, payment_id).await;
        let (_, html) = buyer.get(&format!("/payments/{payment_id}")).await;
        let orders: Vec<i64> = html
            .match_indices("href=\"/orders/")
            .map(|(i, _)| first_link(&html[i..], "href=\"/orders/"))
            .collect();
        assert_eq!(orders.len(), 2, "one order per seller");
        assert_eq!(app.db.product(p1).await.unwrap().stock, stock_before - 1);

        // The first seller handles their order through the pages.
        let mut order = 0;
        for o in &orders {
            if app.db.order(*o).await.unwrap().seller_id == s1 {
                order = *o;
            }
        }
        let mut seller = Browser::login(&app.base, &seller_phone_of(&app.db, p1).await).await;
        let (_, shop) = seller.get("/shop").await;
        assert!(
            shop.contains(&format!("/orders/{order}")),
            "paid order is on the seller's list"
        );
        for step in ["accept", "pack", "ship"] {
            let (s, _) = seller
                .post(&format!("/orders/{order}/{step}"), &[("reason", "")])
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "seller {step}");
        }
        buyer.get(&format!("/orders/{order}")).await;
        for step in ["confirm_delivery", "confirm_receipt"] {
            let (s, _) = buyer.post(&format!("/orders/{order}/{step}"), &[]).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "buyer {step}");
        }
        let o = app.db.order(order).await.unwrap();
        assert_eq!(o.state.as_str(), "completed");
        let st = app.db.seller_statement(s1).await.unwrap();
        assert!(st.earned >= o.total.minor - o.total.minor * o.fee_bps / 10_000 - 1);
        assert!(
            app.db
                .ledger_totals(o.total.currency)
                .await
                .unwrap()
                .holds()
        );
        let (_, html) = buyer.get(&format!("/orders/{order}")).await;
        assert!(
            html.contains("7685X722+FQ")
                && html.contains("https://plus.codes/7685X722+FQ")
                && html.contains("href=\"geo:16.95"),
            "the short code was recovered near Santa Ana: {html}"
        );
        assert!(
            html.contains("Completed")
                && html.contains("Delivered (buyer)")
                && html.contains("On its way (seller)"),
            "translated history with who did what: {html}"
        );
        drop(app.t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyer_pages_fit_the_2g_budget() {
    const BUDGET: usize = 14 * 1024;
    for app in apps(true).await {
        let mut b = Browser::login(&app.base, "+520000002000").await;
        let (_, home) = b.get("/").await;
        let pid = first_link(&home, "href=\"/products/");
        assert!(home.contains("loading=\"lazy\""), "photos are lazy-loaded");
        b.post(
            "/cart/add",
            &[("product_id", &pid.to_string()), ("quantity", "1")],
        )
        .await;
        let buyer = app.db.user_by_phone("+520000002000").await.unwrap();
        let order = app
            .db
            .orders_for(&buyer, false, None, 1)
            .await
            .unwrap()
            .remove(0);
        let pages = [
            "/".to_string(),
            "/search?q=miel".into(),
            "/diagnostic".into(),
            "/credentials/check".into(),
            format!("/products/{pid}"),
            "/cart".into(),
            "/checkout".into(),
            format!("/orders/{}", order.id),
            format!("/payments/{}", order.payment_id.unwrap()),
        ];
        for p in pages {
            let r =
                b.c.get(format!("{}{p}", app.base))
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{p}");
            assert_eq!(
                r.headers()
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap()),
                Some("gzip"),
                "{p}"
            );
            let n = r.bytes().await.unwrap().len();
            assert!(n <= BUDGET, "{p} is {n} bytes compressed, over {BUDGET}");
            eprintln!("{p}: {n} bytes gzip");
        }
        let photo = first_link(&home, "src=\"/photos/");
        let r =
            b.c.get(format!("{}/photos/{photo}", app.base))
                .send()
                .await
                .unwrap();
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert!(r.bytes().await.unwrap().len() <= 30 * 1024);
    }
}

/// Everyone who can knock on a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anon,
    Buyer,
    OtherBuyer,
    Seller,
    OtherSeller,
    Admin,
    /// Runs a pickup point (not the one of the order under test).
    Operator,
    /// Rides the demo motorbike (holds jobs and a route plan).
    Courier,
    /// Rides the demo bicycle (holds nothing).
    OtherCourier,
    /// Agent at the demo's Santa Ana digital centre.
    Agent,
    /// Agent at another centre.
    OtherAgent,
}
const EVERYONE: [Who; 11] = [
    Who::Anon,
    Who::Buyer,
    Who::OtherBuyer,
    Who::Seller,
    Who::OtherSeller,
    Who::Admin,
    Who::Operator,
    Who::Courier,
    Who::OtherCourier,
    Who::Agent,
    Who::OtherAgent,
];
/// Everyone signed in.
const SIGNED_IN: [Who; 10] = [
    Who::Buyer,
    Who::OtherBuyer,
    Who::Seller,
    Who::OtherSeller,
    Who::Admin,
    Who::Operator,
    Who::Courier,
    Who::OtherCourier,
    Who::Agent,
    Who::OtherAgent,
];

/// A form post: path, fields, who may send it.
type FormCase = (String, Vec<(&'static str, &'static str)>, &'static [Who]);

fn denied(s: StatusCode, loc: &str) -> bool {
    matches!(s.as_u16(), 401 | 403 | 404) || (s.is_redirection() && loc.starts_with("/login"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorization_matrix_every_route_every_role() {
    use Who::*;
    for app in apps(true).await {
        let db = &app.db;
        let paid = db
            .all_orders(Some(tianguis_domain::process::OrderState::Paid), 50)
            .await
            .unwrap();
        let o = paid
            .iter()
            .find(|o| o.method == "mobile_money")
            .unwrap()
            .clone();
        let buyer = db.user(o.buyer_id).await.unwrap();
        let seller = db
            .user(db.seller(o.seller_id).await.unwrap().user_id)
            .await
            .unwrap();
        let all = db.list_users(500).await.unwrap();
        let other_buyer = all
            .iter()
            .find(|u| u.primary_role().as_str() == "buyer" && u.id != buyer.id)
            .unwrap();
        let other_seller = all
            .iter()
            .find(|u| u.seller_id.is_some() && u.id != seller.id)
            .unwrap();
        let product = db
            .search(&tianguis_store::catalog::SearchQuery {
                seller_id: Some(o.seller_id),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .products
            .remove(0);
        let cash = db
            .all_orders(Some(tianguis_domain::process::OrderState::Placed), 100)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.payment_status.is_some_and(|s| s == "awaiting_cash"))
            .unwrap();
        let mut browsers = Vec::new();
        let mut tokens = Vec::new();
        for w in EVERYONE {
            let phone = match w {
                Anon => None,
                Buyer => Some(buyer.phone.clone()),
                OtherBuyer => Some(other_buyer.phone.clone()),
                Seller => Some(seller.phone.clone()),
                OtherSeller => Some(other_seller.phone.clone()),
                Admin => Some(DEMO_ADMIN_PHONE.to_string()),
                Operator => Some(tianguis_demo::DEMO_OPERATOR_PHONE.to_string()),
                Courier => Some(tianguis_demo::DEMO_COURIER_PHONE.to_string()),
                OtherCourier => Some("+520000004002".to_string()),
                Agent => Some(tianguis_demo::DEMO_AGENT_PHONE.to_string()),
                OtherAgent => Some("+520000005001".to_string()),
            };
            match phone {
                Some(p) => {
                    browsers.push(Browser::login(&app.base, &p).await);
                    tokens.push(Some(
                        db.create_api_token(db.user_by_phone(&p).await.unwrap().id, "t")
                            .await
                            .unwrap(),
                    ));
                }
                None => {
                    browsers.push(Browser::new(&app.base).await);
                    tokens.push(None);
                }
            }
        }
        let (oid, pid, pay) = (o.id, product.id, o.payment_id.unwrap());
        let moto = db
            .carrier_of(
                db.user_by_phone(tianguis_demo::DEMO_COURIER_PHONE)
                    .await
                    .unwrap()
                    .id,
            )
            .await
            .unwrap()
            .unwrap();
        let plan = db.route_plans_of(moto.id, 1).await.unwrap()[0].id;
        let (held, _) = db.carrier_jobs(moto.id).await.unwrap();
        let accepted = held
            .iter()
            .find(|j| j.state.as_str() == "accepted")
            .unwrap()
            .id;
        let out = held
            .iter()
            .find(|j| j.state.as_str() == "out_for_delivery" && j.pickup_point_id.is_none())
            .unwrap()
            .id;
        let open = db.delivery_offers(&moto).await.unwrap()[0].id;
        let santa_ana = db
            .user_by_phone(tianguis_demo::DEMO_AGENT_PHONE)
            .await
            .unwrap()
            .centre_id
            .unwrap();
        let assisted_order = db
            .centre_orders(santa_ana, 50)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.agent_id.is_some() && x.buyer_id != buyer.id && x.seller_id != o.seller_id)
            .unwrap();
        let (assisted, tracking) = (
            assisted_order.id,
            assisted_order.tracking_code.clone().unwrap(),
        );
        let rosa = db
            .user_by_phone(tianguis_demo::DEMO_AGENT_PHONE)
            .await
            .unwrap()
            .id;
        let official = db.user_by_phone(DEMO_ADMIN_PHONE).await.unwrap();
        let batch = tianguis_app::payouts::prepare(
            db,
            Some(&official),
            tianguis_domain::payout::Run::Manual,
        )
        .await
        .unwrap()
        .unwrap();
        let line = db.payout_lines(batch).await.unwrap()[0].id;
        let gets: Vec<(String, &[Who])> = vec![
            ("/admin/payouts".into(), &[Admin]),
            (format!("/admin/payouts/{batch}"), &[Admin]),
            ("/payouts".into(), &SIGNED_IN),
            ("/".into(), &EVERYONE),
            (format!("/products/{pid}"), &EVERYONE),
            (
                format!(
                    "/photos/{}",
                    db.search(&Default::default()).await.map(|_| 1).unwrap()
                ),
                &EVERYONE,
            ),
            ("/cart".into(), &EVERYONE),
            ("/login".into(), &EVERYONE),
            ("/signup".into(), &EVERYONE),
            ("/checkout".into(), &SIGNED_IN),
            ("/orders".into(), &SIGNED_IN),
            ("/pickup".into(), &[Operator, Admin, Agent, OtherAgent]),
            ("/agent".into(), &[Agent, OtherAgent]),
            ("/agent/sellers".into(), &[Agent, OtherAgent]),
            ("/shop/mandates".into(), &[Seller, OtherSeller]),
            ("/claim".into(), &EVERYONE),
            ("/admin/champions".into(), &[Admin]),
            ("/champion".into(), &[]),
            (
                format!("/agent/commissions?agent={rosa}"),
                &[Agent, OtherAgent, Admin],
            ),
            ("/cash".into(), &SIGNED_IN),
            ("/admin/centres".into(), &[Admin]),
            ("/admin/cash".into(), &[Admin]),
            (format!("/track/{tracking}"), &EVERYONE),
            (format!("/orders/{assisted}"), &[Agent, Admin, Operator]),
            ("/courier".into(), &SIGNED_IN),
            (format!("/courier/plans/{plan}"), &[Courier, Admin]),
            ("/admin/deliveries".into(), &[Admin]),
            ("/admin/diagnostics".into(), &[Admin]),
            (format!("/orders/{oid}"), &[Buyer, Seller, Admin]),
            (format!("/payments/{pay}"), &[Buyer, Admin]),
            ("/shop".into(), &[Seller, OtherSeller]),
            ("/shop/products/new".into(), &[Seller, OtherSeller]),
            (format!("/shop/products/{pid}/edit"), &[Seller]),
            ("/admin".into(), &[Admin]),
            ("/healthz".into(), &EVERYONE),
            ("/.well-known/did.json".into(), &EVERYONE),
            ("/credentials/check".into(), &EVERYONE),
            ("/diagnostic".into(), &EVERYONE),
            ("/metrics".into(), &[Admin]),
            ("/api/v1/openapi.json".into(), &EVERYONE),
            (format!("/api/v1/products/{pid}"), &EVERYONE),
            ("/api/v1/products?q=miel".into(), &EVERYONE),
            ("/search?q=miel".into(), &EVERYONE),
            ("/password/forgot".into(), &EVERYONE),
            ("/track".into(), &EVERYONE),
            ("/static/offline.js".into(), &EVERYONE),
            (format!("/admin/users/{}", other_buyer.id), &[Admin]),
            ("/admin/users".into(), &[Admin]),
            ("/admin/sellers?q=a&women=1&page=2".into(), &[Admin]),
            ("/admin/jobs".into(), &[Admin]),
            ("/sim/sms/messages".into(), &[Admin]),
            ("/catalogue/import".into(), &[Admin, Agent, OtherAgent]),
        ];
        for (path, allowed) in &gets {
            for (i, w) in EVERYONE.iter().enumerate() {
                let r = browsers[i]
                    .c
                    .get(format!("{}{path}", app.base))
                    .send()
                    .await
                    .unwrap();
                let s = r.status();
                let loc = r
                    .headers()
                    .get("location")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                if allowed.contains(w) {
                    assert!(
                        s.as_u16() < 400 && !loc.starts_with("/login"),
                        "GET {path} as {w:?}: {s} {loc}"
                    );
                } else {
                    assert!(
                        denied(s, &loc),
                        "GET {path} as {w:?} should be refused: {s}"
                    );
                }
            }
        }
        // State-changing forms: everyone not allowed is refused with their own valid CSRF token;
        // then the allowed one succeeds.
        let posts: Vec<FormCase> = vec![
            (format!("/orders/{oid}/accept"), vec![], &[Seller]),
            (
                format!("/orders/{oid}/cancel"),
                vec![],
                &[Buyer, Seller, Admin],
            ),
            (
                format!("/orders/{oid}/resolve"),
                vec![("refund_minor", "0")],
                &[Admin],
            ),
            (
                "/admin/settings".into(),
                vec![("platform_fee_bps", "500")],
                &[Admin],
            ),
            (
                "/admin/places".into(),
                vec![("name", "Nuevo Pueblo"), ("kind", "village")],
                &[Admin],
            ),
            (
                "/admin/categories".into(),
                vec![
                    ("slug", "seeds"),
                    ("name_en", "Seeds"),
                    ("name_es", "Semillas"),
                ],
                &[Admin],
            ),
            (
                format!("/admin/payments/{}/cash", cash.payment_id.unwrap()),
                vec![],
                &[Admin],
            ),
            (
                format!("/admin/users/{}", other_buyer.id),
                vec![("role", "buyer"), ("active", "1")],
                &[Admin],
            ),
            (
                format!("/orders/{oid}/deliver"),
                vec![("code", "123456")],
                &[Seller],
            ),
            (format!("/pickup/orders/{oid}/check-in"), vec![], &[]),
            (
                "/admin/pickup-points".into(),
                vec![
                    ("name", "X"),
                    ("kind", "store"),
                    ("place_id", "1"),
                    ("plus_code", "7685X722+FQ"),
                    ("slots", "3"),
                    ("hours", "9-17"),
                    ("hold_days", "5"),
                    ("fee", "10"),
                ],
                &[Admin],
            ),
        ];
        let other_phone: &'static str = Box::leak(other_buyer.phone.clone().into_boxed_str());
        let courier_posts: Vec<FormCase> = vec![
            (
                format!("/admin/users/{}/phone", other_buyer.id),
                vec![("phone", other_phone)],
                &[Admin],
            ),
            (
                "/admin/phone-reports/999999/settle".into(),
                vec![],
                &[Admin],
            ),
            (
                format!("/orders/{oid}/pay-again"),
                vec![("method", "cash")],
                &[Buyer, Admin],
            ),
            ("/admin/payouts".into(), vec![], &[Admin]),
            (
                "/admin/payouts/settings".into(),
                vec![
                    ("every_days", "7"),
                    ("threshold", "5000"),
                    ("minimum", "10"),
                ],
                &[Admin],
            ),
            (format!("/admin/payouts/{batch}/approve"), vec![], &[Admin]),
            (format!("/admin/payouts/{batch}/cancel"), vec![], &[Admin]),
            (
                format!("/admin/payouts/lines/{line}/settle"),
                vec![("note", "R-1"), ("outcome", "paid")],
                &[Admin],
            ),
            (
                "/payouts".into(),
                vec![
                    ("payee", "seller:1"),
                    ("channel", "cash"),
                    ("destination", "x"),
                ],
                &SIGNED_IN,
            ),
            ("/texts".into(), vec![("stop", "1")], &SIGNED_IN),
            (
                format!("/courier/jobs/{accepted}/pick_up"),
                vec![],
                &[Courier, Admin],
            ),
            (
                format!("/courier/jobs/{out}/fail"),
                vec![("reason", "refused")],
                &[Courier, Admin],
            ),
            (
                format!("/courier/jobs/{out}/deliver"),
                vec![("code", "123456")],
                &[Courier, Admin],
            ),
            (
                format!("/courier/jobs/{open}/accept"),
                vec![],
                &[Courier, OtherCourier],
            ),
            ("/courier/plans".into(), vec![], &[Courier, OtherCourier]),
            (
                "/agent/checkout".into(),
                vec![
                    ("buyer_name", "X"),
                    ("buyer_phone", "+529510009999"),
                    ("method", "cash"),
                ],
                &[Agent, OtherAgent],
            ),
            (
                "/admin/centres/agents".into(),
                vec![("centre_id", "1"), ("phone", "+529510003004")],
                &[Admin],
            ),
            (
                "/admin/commissions".into(),
                vec![
                    ("basis", "percent"),
                    ("value", "2.5"),
                    ("source", "platform_fee"),
                ],
                &[Admin],
            ),
        ];
        for (path, form, allowed) in posts.iter().chain(&courier_posts) {
            for (i, w) in EVERYONE.iter().enumerate() {
                if allowed.contains(w) {
                    continue;
                }
                let (s, loc) = browsers[i].post(path, form).await;
                assert!(
                    denied(s, &loc),
                    "POST {path} as {w:?} should be refused: {s} {loc}"
                );
            }
        }
        let state_before = db.order(oid).await.unwrap().state;
        assert_eq!(
            state_before.as_str(),
            "paid",
            "refused moves changed nothing"
        );
        for (job, state) in [(accepted, "accepted"), (out, "out_for_delivery")] {
            assert_eq!(
                db.delivery_job(job).await.unwrap().state.as_str(),
                state,
                "refused job moves changed nothing"
            );
        }
        let courier_i = EVERYONE.iter().position(|w| *w == Courier).unwrap();
        let (s, loc) = browsers[courier_i]
            .post(&format!("/courier/jobs/{accepted}/pick_up"), &[])
            .await;
        assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/courier"));
        assert_eq!(
            db.delivery_job(accepted).await.unwrap().state.as_str(),
            "picked_up"
        );
        let seller_i = EVERYONE.iter().position(|w| *w == Seller).unwrap();
        assert_eq!(
            browsers[seller_i]
                .post(&format!("/orders/{oid}/accept"), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        let admin_i = EVERYONE.iter().position(|w| *w == Admin).unwrap();
        for (path, form, _) in posts.iter().skip(3).filter(|p| p.2 == [Admin]) {
            let (s, loc) = browsers[admin_i].post(path, form).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "admin POST {path}: {loc}");
        }
        // Multipart listing edits: only the owner.
        let other_i = EVERYONE.iter().position(|w| *w == OtherSeller).unwrap();
        let edit = |i: usize, name: &'static str| {
            let b = &browsers[i];
            let form = reqwest::multipart::Form::new()
                .text("csrf", b.csrf.clone())
                .text("name_en", name)
                .text("category_id", product.category_id.to_string())
                .text("price", "12.50")
                .text("stock", "3");
            b.c.post(format!("{}/shop/products/{pid}/edit", app.base))
                .multipart(form)
                .send()
        };
        assert_eq!(
            edit(other_i, "Stolen").await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            edit(seller_i, "Renamed honey").await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
        let p = db.product(pid).await.unwrap();
        assert_eq!(
            (p.name_en.as_str(), p.price.minor, p.stock),
            ("Renamed honey", 1250, 3)
        );
        // The API obeys the same rules.
        for (i, w) in EVERYONE.iter().enumerate() {
            let mut rq = browsers[i]
                .c
                .get(format!("{}/api/v1/orders/{oid}", app.base));
            if let Some(t) = &tokens[i] {
                rq = rq.bearer_auth(t);
            }
            let r = rq.send().await.unwrap();
            let ok = [Buyer, Seller, Admin].contains(w);
            assert_eq!(
                r.status().is_success(),
                ok,
                "API order as {w:?}: {}",
                r.status()
            );
            if !ok {
                assert_eq!(r.headers()["content-type"], "application/problem+json");
            }
        }
        // The matrix is checked against the router's own route list: a route without a row
        // here (or a named test elsewhere) fails.
        let mut rows: Vec<(&str, String)> = gets.iter().map(|(p, _)| ("GET", p.clone())).collect();
        rows.extend(
            posts
                .iter()
                .chain(&courier_posts)
                .map(|(p, _, _)| ("POST", p.clone())),
        );
        rows.push(("POST", format!("/shop/products/{pid}/edit")));
        rows.push(("GET", format!("/api/v1/orders/{oid}")));
        let elsewhere = elsewhere_in_the_suite();
        let mut missing = Vec::new();
        for r in tianguis_web::caps::route_list() {
            let here = rows
                .iter()
                .any(|(m, p)| *m == r.method && route_matches(&r.path, p));
            let there = elsewhere
                .iter()
                .any(|(m, p, _)| *m == r.method && *p == r.path);
            if !here && !there {
                missing.push(format!("{} {}", r.method, r.path));
            }
        }
        assert!(
            missing.is_empty(),
            "routes without an authorization row: {missing:#?}"
        );
    }
}

/// Does a concrete request path (a matrix row) hit a route pattern (`/orders/{id}`)?
fn route_matches(pattern: &str, concrete: &str) -> bool {
    let concrete = concrete.split('?').next().unwrap_or(concrete);
    let (a, b): (Vec<&str>, Vec<&str>) =
        (pattern.split('/').collect(), concrete.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(p, c)| (p.starts_with('{') && !c.is_empty()) || p == c)
}

/// Routes whose who-may-do-it is tested by a named test rather than the matrix's rows (each
/// with where), so the matrix's coverage check knows them.
fn elsewhere_in_the_suite() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "POST",
            "/cart/add",
            "everyone may: every journey test; CSRF sweep",
        ),
        (
            "POST",
            "/cart/update",
            "everyone may: bad_input_gets_a_clear_answer_never_a_500",
        ),
        (
            "POST",
            "/checkout",
            "signed-in only: a_buyer_signs_up_buys_from_two_sellers_...",
        ),
        (
            "POST",
            "/login",
            "everyone: login_is_rate_limited_and_rotates_the_session",
        ),
        (
            "POST",
            "/signup",
            "everyone: a_buyer_signs_up_buys_from_two_sellers_...",
        ),
        ("POST", "/logout", "signs the browser out: CSRF sweep"),
        (
            "POST",
            "/diagnostic",
            "everyone: the_diagnostic_scores_a_firm_and_shows_its_progress",
        ),
        (
            "POST",
            "/credentials/check",
            "everyone: the_signing_keys_are_published_as_a_did_document",
        ),
        (
            "GET",
            "/lang/{code}",
            "language_follows_the_browser_and_can_be_switched",
        ),
        (
            "POST",
            "/claim",
            "simulators_are_not_a_way_in_and_claiming_never_resets_a_password",
        ),
        (
            "POST",
            "/password/forgot",
            "simulators_are_not_a_way_in_and_claiming_never_resets_a_password",
        ),
        (
            "POST",
            "/shop/products/new",
            "a_new_seller_lists_with_a_photo_...",
        ),
        (
            "POST",
            "/admin/users/{id}/grants",
            "an_admin_suspends_a_user_whose_session_and_token_stop_at_once",
        ),
        (
            "POST",
            "/admin/grants/{id}/revoke",
            "an_admin_suspends_a_user_whose_session_and_token_stop_at_once",
        ),
        (
            "POST",
            "/admin/jobs/{id}/retry",
            "a_text_the_gateway_refuses_is_given_up_and_officials_see_it",
        ),
        (
            "POST",
            "/admin/places/{id}/promise",
            "officials_see_late_and_at_risk_deliveries",
        ),
        (
            "POST",
            "/admin/registry",
            "an_official_imports_the_registry_and_a_buyer_checks_out_...",
        ),
        (
            "POST",
            "/catalogue/import",
            "officials: an_official_imports_the_registry_...; agents by mandate: an_agent_brings_a_seller_online_...",
        ),
        (
            "POST",
            "/courier/register",
            "a_courier_takes_a_job_fails_once_delivers_...",
        ),
        (
            "POST",
            "/agent/payments/{id}/cash",
            "an_agent_orders_for_a_walk_in_buyer_...",
        ),
        (
            "POST",
            "/cash/handover",
            "an_agent_orders_for_a_walk_in_buyer_...",
        ),
        (
            "POST",
            "/admin/champions",
            "officials_assign_businesses_to_a_champion_...",
        ),
        (
            "POST",
            "/admin/champions/{id}/pay",
            "officials_assign_businesses_to_a_champion_...",
        ),
        (
            "POST",
            "/agent/sellers",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "POST",
            "/agent/sellers/code",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "GET",
            "/agent/sellers/{sid}/products/new",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "POST",
            "/agent/sellers/{sid}/products/new",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "GET",
            "/mandates/{id}/consent-form",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "POST",
            "/shop/mandates/{id}/revoke",
            "an_agent_brings_a_seller_online_with_consent_...",
        ),
        (
            "GET",
            "/api/v1/orders",
            "the API block of this matrix uses a token; the_api_checks_out_...",
        ),
        (
            "POST",
            "/api/v1/checkout",
            "the_api_checks_out_once_per_idempotency_key_...",
        ),
        (
            "POST",
            "/api/v1/orders/{id}/deliver",
            "cash_on_delivery_through_the_pages; the API test",
        ),
        (
            "POST",
            "/api/v1/orders/{id}/transitions/{name}",
            "the_api_checks_out_once_per_idempotency_key_...",
        ),
        (
            "POST",
            "/api/v1/payments/mobile-money/callback",
            "signed by the provider: bad_input_gets_a_clear_answer_...",
        ),
        (
            "POST",
            "/login/code",
            "everyone: a_person_signs_in_with_a_texted_code_and_lands_where_they_were_going",
        ),
        (
            "POST",
            "/api/v1/sms/inbound/{token}",
            "the gateway only, by its token: replies_to_texts_stop_and_start_them",
        ),
        (
            "POST",
            "/sim/momo/v1/payments",
            "the simulator's own key: simulators_are_not_a_way_in_...",
        ),
        (
            "GET",
            "/sim/momo/v1/payments/{r}",
            "the simulator's own key",
        ),
        (
            "POST",
            "/sim/sms/version1/messaging",
            "the simulator's own key",
        ),
    ]
}

/// Every state-changing page, from the router's route list: without its CSRF token, or with a
/// forged one, it is refused (403) and changes nothing, whoever sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_state_changing_form_refuses_a_missing_or_forged_token() {
    // Forms read as multipart (photos, files); every other one is urlencoded.
    const MULTIPART: &[&str] = &[
        "/shop/products/new",
        "/shop/products/{id}/edit",
        "/admin/registry",
        "/catalogue/import",
        "/agent/sellers",
        "/agent/sellers/code",
        "/agent/sellers/{sid}/products/new",
    ];
    for app in apps(true).await {
        let db = &app.db;
        let snapshot = || async {
            (
                db.orders_by_state().await.unwrap(),
                db.account_balances().await.unwrap(),
                // (the queue is left out: the server's workers run the demo's jobs meanwhile)
                db.list_users(1000)
                    .await
                    .unwrap()
                    .iter()
                    .map(|u| (u.id, u.active, u.grants.len()))
                    .collect::<Vec<_>>(),
                db.pickup_points().await.unwrap().len(),
                db.categories().await.unwrap().len(),
                db.places().await.unwrap().len(),
            )
        };
        // The demo's own texts and payment requests go out first (the snapshot must not move
        // under the sweep because of them).
        for _ in 0..600 {
            let now = db.now_ms();
            let due = db
                .jobs_in("pending", 500)
                .await
                .unwrap()
                .iter()
                .filter(|j| (j.lane == "providers" || j.lane == "texts") && j.run_at <= now)
                .count();
            if due == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = snapshot().await;
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let mut tried = 0;
        for r in tianguis_web::caps::route_list() {
            if r.method != "POST" || r.capability == "api" || r.capability == "simulators" {
                continue;
            }
            let path = r
                .path
                .replace("{transition}", "accept")
                .replace("{action}", "accept")
                .replace("{id}", "1")
                .replace("{sid}", "1");
            for token in ["", "forged-token-0123456789abcdef"] {
                let resp = if MULTIPART.contains(&r.path.as_str()) {
                    let form = reqwest::multipart::Form::new()
                        .text("csrf", token.to_string())
                        .text("name_en", "X");
                    admin
                        .c
                        .post(format!("{}{path}", app.base))
                        .multipart(form)
                        .send()
                        .await
                        .unwrap()
                } else {
                    admin
                        .c
                        .post(format!("{}{path}", app.base))
                        .form(&[("csrf", token), ("name", "X"), ("phone", DEMO_ADMIN_PHONE)])
                        .send()
                        .await
                        .unwrap()
                };
                assert_eq!(
                    resp.status(),
                    StatusCode::FORBIDDEN,
                    "POST {} without a valid token",
                    r.path
                );
            }
            tried += 1;
        }
        assert!(tried > 30, "only {tried} forms");
        assert_eq!(snapshot().await, before, "nothing changed");
        // The admin's own session still works (logout without a token did nothing).
        assert_eq!(admin.get("/admin").await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forms_without_a_valid_csrf_token_change_nothing() {
    for app in apps(true).await {
        let o = app
            .db
            .all_orders(Some(tianguis_domain::process::OrderState::Paid), 1)
            .await
            .unwrap()
            .remove(0);
        let seller = app
            .db
            .user(app.db.seller(o.seller_id).await.unwrap().user_id)
            .await
            .unwrap();
        let mut b = Browser::login(&app.base, &seller.phone).await;
        for token in ["", "forged"] {
            let (s, _) = b
                .post(&format!("/orders/{}/accept", o.id), &[("csrf", token)])
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN);
        }
        assert_eq!(app.db.order(o.id).await.unwrap().state.as_str(), "paid");
        // A token from another session does not work either.
        let other = Browser::new(&app.base).await;
        let (s, _) = b
            .post(
                &format!("/orders/{}/accept", o.id),
                &[("csrf", &other.csrf)],
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_answer_never_a_500() {
    for app in apps(true).await {
        let mut b = Browser::login(&app.base, "+520000002000").await;
        let long = "x".repeat(20_000);
        for path in [
            "/products/abc",
            "/products/99999999",
            "/orders/abc",
            "/orders/99999999",
            "/payments/-1",
            "/search?place=abc&category=--&offset=-5",
            "/nope",
            "/lang/xx",
            "/courier/plans/abc",
            "/courier/plans/99999999",
        ] {
            let (s, body) = b.get(path).await;
            assert!(s.as_u16() < 500, "GET {path}: {s}");
            if s.is_client_error() {
                assert!(
                    body.contains("<html") && body.contains("class=\"err\""),
                    "GET {path} answers with a page: {body}"
                );
            }
        }
        let (s, _) = b.get(&format!("/search?q={long}")).await;
        assert_eq!(s, StatusCode::OK);
        let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("/cart/add", vec![("product_id", "abc"), ("quantity", "1")]),
            ("/cart/add", vec![("product_id", "1"), ("quantity", "-5")]),
            (
                "/cart/add",
                vec![("product_id", "1"), ("quantity", "99999999999999999999")],
            ),
            ("/cart/update", vec![]),
            ("/checkout", vec![("method", "bitcoin")]),
            (
                "/signup",
                vec![("name", "x"), ("phone", "abc"), ("password", "short")],
            ),
            (
                "/signup",
                vec![
                    ("name", "x"),
                    ("phone", "+520000002000"),
                    ("password", "long-enough-1"),
                ],
            ),
            ("/login", vec![]),
            ("/orders/1/fly", vec![]),
            ("/orders/1/resolve", vec![("refund_minor", "lots")]),
            ("/courier/jobs/abc/accept", vec![]),
            ("/courier/jobs/1/fly", vec![]),
            ("/courier/jobs/99999999/accept", vec![]),
            ("/courier/jobs/1/fail", vec![("reason", "aliens")]),
            ("/courier/jobs/1/deliver", vec![("code", &long)]),
            ("/courier/register", vec![("capacity", "lots")]),
            (
                "/courier/register",
                vec![
                    ("name", "x"),
                    ("kind", "bicycle"),
                    ("capacity", "99999999999999999999"),
                    ("radius_km", "5"),
                    ("shift_start", "25:99"),
                    ("shift_end", "1:00"),
                    ("speed_kmh", "0"),
                ],
            ),
            ("/courier/plans", vec![]),
        ];
        for (path, form) in &forms {
            let (s, body) = b.post(path, form).await;
            assert!(
                s.is_client_error() || s.is_redirection(),
                "POST {path} {form:?}: {s} {body}"
            );
        }
        // A cart with something in it, then a checkout with bad fields: the form comes back with a message.
        b.post("/cart/add", &[("product_id", "1"), ("quantity", "1")])
            .await;
        let (s, body) = b
            .post(
                "/checkout",
                &[
                    ("idempotency_key", "k1"),
                    ("address", ""),
                    ("phone", "+529510000000"),
                    ("method", "cash"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("class=\"err\"") && body.contains("name=\"address\""),
            "{body}"
        );
        let (s, body) = b
            .post(
                "/checkout",
                &[
                    ("idempotency_key", "k2"),
                    ("address", "Santa Ana"),
                    ("phone", "no phone"),
                    ("method", "cash"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        // The API: problem+json with a detail a person can act on.
        let c = reqwest::Client::new();
        let token = app
            .db
            .create_api_token(app.db.user_by_phone("+520000002000").await.unwrap().id, "t")
            .await
            .unwrap();
        let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
            (c.post(format!("{}/api/v1/checkout", app.base)).body("{}"), 401),
            (c.post(format!("{}/api/v1/checkout", app.base)).bearer_auth(&token).header("idempotency-key", "a").body("{not json"), 400),
            (c.post(format!("{}/api/v1/checkout", app.base)).bearer_auth(&token).body(r#"{"lines":[],"method":"cash","address":"x","phone":"+529510000000"}"#), 422),
            (
                c.post(format!("{}/api/v1/checkout", app.base))
                    .bearer_auth(&token)
                    .header("idempotency-key", "b")
                    .body(r#"{"lines":[{"product_id":1,"quantity":0}],"method":"cash","address":"x","phone":"+529510000000"}"#),
                409,
            ),
            (
                c.post(format!("{}/api/v1/checkout", app.base))
                    .bearer_auth(&token)
                    .header("idempotency-key", "c")
                    .body(r#"{"lines":[{"product_id":1,"quantity":100000}],"method":"cash","address":"x","phone":"+529510000000"}"#),
                409,
            ),
            (c.get(format!("{}/api/v1/products/xyz", app.base)), 400),
            (c.get(format!("{}/api/v1/products?after=t9.1", app.base)), 400),
            (c.get(format!("{}/api/v1/products?sort=cheap", app.base)), 400),
            (c.get(format!("{}/api/v1/products?limit=1000", app.base)), 400),
            (c.get(format!("{}/api/v1/products/424242", app.base)), 404),
            (c.post(format!("{}/api/v1/orders/1/transitions/fly", app.base)).bearer_auth(&token), 404),
            (c.post(format!("{}/api/v1/payments/mobile-money/callback", app.base)).header("x-signature", "00").body("{}"), 401),
            (c.get(format!("{}/api/v1/nothing", app.base)), 404),
        ];
        for (i, (rq, want)) in cases.into_iter().enumerate() {
            let r = rq.send().await.unwrap();
            assert_eq!(r.status().as_u16(), want, "API case {i}");
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "API case {i}"
            );
            let v: serde_json::Value = r.json().await.unwrap();
            assert!(
                v["detail"].as_str().is_some_and(|d| d.len() > 5),
                "API case {i}: {v}"
            );
        }
        assert!(
            app.db
                .ledger_totals(app.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_checks_out_once_per_idempotency_key_and_documents_itself() {
    for app in apps(true).await {
        let c = reqwest::Client::new();
        let buyer = app.db.user_by_phone("+520000002000").await.unwrap();
        let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
        let products: serde_json::Value = c
            .get(format!("{}/api/v1/products?q=cafe&limit=2", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pid = products["items"][0]["id"].as_i64().unwrap();
        let body = serde_json::json!({"lines": [{"product_id": pid, "quantity": 1}], "method": "mobile_money", "address": "X722+FQ Santa Ana", "phone": "+529510000001"});
        let send = || {
            c.post(format!("{}/api/v1/checkout", app.base))
                .bearer_auth(&token)
                .header("idempotency-key", "api-1")
                .json(&body)
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: serde_json::Value = first.json().await.unwrap();
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);
        wait_paid(&app.db, first["payment_id"].as_i64().unwrap()).await;
        let oid = first["order_ids"][0].as_i64().unwrap();
        let o: serde_json::Value = c
            .get(format!("{}/api/v1/orders/{oid}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(o["order"]["state"], "paid");
        assert!(
            o["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "cancel")
        );
        let r = c
            .post(format!(
                "{}/api/v1/orders/{oid}/transitions/cancel",
                app.base
            ))
            .bearer_auth(&token)
            .json(&serde_json::json!({"reason": "changed my mind"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let totals = app
            .db
            .ledger_totals(app.db.currency().await.unwrap())
            .await
            .unwrap();
        assert!(totals.holds());
        let doc: serde_json::Value = c
            .get(format!("{}/api/v1/openapi.json", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for p in [
            "/api/v1/products",
            "/api/v1/checkout",
            "/api/v1/orders/{id}/transitions/{name}",
        ] {
            assert!(doc["paths"][p].is_object(), "{p} documented");
        }
        // Metrics are for the scraper's token (or an admin), not for anyone.
        let anon = c.get(format!("{}/metrics", app.base)).send().await.unwrap();
        assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
        let wrong = c
            .get(format!("{}/metrics", app.base))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("tianguis_orders{state=\"cancelled\"}")
                && metrics.contains("tianguis_http_requests_total"),
            "{metrics}"
        );
        assert!(metrics.contains("tianguis_jobs_pending"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_serve_the_same_session() {
    for app in apps(true).await {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_b = format!("http://{}", listener.local_addr().unwrap());
        let mut config = tianguis_web::Config::local(&base_b);
        config.worker_interval_ms = 100;
        config.payout_schedule = false;
        tokio::spawn(tianguis_web::serve(
            tianguis_web::state(app.db.clone(), config),
            listener,
        ));
        let mut b = Browser::login(&app.base, "+520000002000").await;
        b.post("/cart/add", &[("product_id", "2"), ("quantity", "1")])
            .await;
        b.base = base_b.clone();
        let (s, html) = b.get("/cart").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains("/products/2") && html.contains("/logout"),
            "server B knows the session and cart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_is_rate_limited_and_rotates_the_session() {
    let app = spawn_on(testdb::sqlite().await, true, |c| c.login_per_minute = 3).await;
    let mut b = Browser::new(&app.base).await;
    let before =
        b.c.get(format!("{}/cart", app.base))
            .send()
            .await
            .unwrap()
            .headers()
            .get("set-cookie")
            .is_none();
    assert!(before, "an existing session is kept while anonymous");
    b.get("/login").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            b.post(
                "/login",
                &[("phone", "+520000002000"), ("password", "wrong")],
            )
            .await
            .0
            .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429]);
    // Guesses sent all at once are counted all the same (each is counted before its password
    // is checked), and signing in gives its attempt back: the owner is never locked out by
    // their own successful logins.
    let app3 = spawn_on(testdb::sqlite().await, true, |c| c.login_per_minute = 3).await;
    for _ in 0..5 {
        Browser::login(&app3.base, "+520000002000").await;
    }
    let mut guessers = Vec::new();
    for _ in 0..8 {
        let mut g = Browser::new(&app3.base).await;
        g.get("/login").await;
        guessers.push(g);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut g in guessers {
        tasks.spawn(async move {
            g.post(
                "/login",
                &[("phone", "+520000002000"), ("password", "wrong")],
            )
            .await
            .0
            .as_u16()
        });
    }
    let mut codes = tasks.join_all().await;
    codes.sort();
    assert_eq!(codes, vec![401, 401, 401, 429, 429, 429, 429, 429]);
    let app2 = spawn_on(testdb::sqlite().await, true, |_| {}).await;
    let c = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{}/login", app2.base)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let sid = cookie.split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let csrf = csrf_in(&html).unwrap();
    let r = c
        .post(format!("{}/login", app2.base))
        .header("cookie", &sid)
        .form(&[
            ("phone", "+520000002000"),
            ("password", DEMO_PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let new_sid = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(sid, new_sid, "the session id changes at login");
    let r = c
        .get(format!("{}/orders", app2.base))
        .header("cookie", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the old id is dead");
    let r = c
        .get(format!("{}/orders", app2.base))
        .header("cookie", &new_sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self';")
            && !csp.contains("unsafe-eval")
            && csp.matches("unsafe-inline").count() == 1,
        "only the site's own script file, no inline or eval: {csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Sessions expire after 30 days and are swept with their carts.
    app2.db.clock.advance(Duration::from_secs(31 * 86_400));
    assert!(app2.db.delete_expired_sessions().await.unwrap() >= 1);
    let r = c
        .get(format!("{}/orders", app2.base))
        .header("cookie", &new_sid)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "an expired session signs nobody in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn language_follows_the_browser_and_can_be_switched() {
    let app = spawn_on(testdb::sqlite().await, true, |_| {}).await;
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let es = c
        .get(format!("{}/", app.base))
        .header("accept-language", "es-MX,es;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(es.contains("Carrito") && es.contains("lang=\"es\""));
    assert!(
        es.contains("Miel") || es.contains("Café") || es.contains("Rebozo"),
        "Spanish product names"
    );
    c.get(format!("{}/lang/bn", app.base)).send().await.unwrap();
    let bn = c
        .get(format!("{}/", app.base))
        .header("accept-language", "es")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        bn.contains("ঝুড়ি") && bn.contains("lang=\"bn\""),
        "the chosen language wins over the header"
    );
    assert!(
        bn.contains('০') || bn.contains('১') || bn.contains('৫'),
        "Bangla digits in prices"
    );
    let en = reqwest::get(format!("{}/", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("Cart") && en.contains("$"));
}

async fn wait_state(db: &Db, order: i64, state: &str) {
    for _ in 0..100 {
        if db.order(order).await.unwrap().state.as_str() == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "order {order} never reached {state}: {}",
        db.order(order).await.unwrap().state
    );
}

fn big_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_seller_lists_with_a_photo_and_a_cash_buyer_returns_and_is_refunded() {
    for app in apps(true).await {
        let mut seller = Browser::new(&app.base).await;
        seller.get("/signup").await;
        let place = app
            .db
            .places()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.kind == "village")
            .unwrap();
        let (s, loc) = seller
            .post(
                "/signup",
                &[
                    ("name", "Doña Chayo"),
                    ("phone", "+52 951 777 0001"),
                    ("password", "tejidos-2026"),
                    ("seller", "1"),
                    ("shop_name", "Tejidos Chayo"),
                    ("place_id", &place.id.to_string()),
                ],
            )
            .await;
        assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/shop"));
        let (_, form) = seller.get("/shop/products/new").await;
        assert!(form.contains("multipart/form-data"));
        let png = big_png();
        assert!(png.len() > 100_000);
        let cat = app
            .db
            .categories()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.slug == "textiles")
            .unwrap();
        let multipart = reqwest::multipart::Form::new()
            .text("csrf", seller.csrf.clone())
            .text("name_en", "Handwoven table runner")
            .text("name_es", "Camino de mesa tejido a mano")
            .text("category_id", cat.id.to_string())
            .text("price", "350,00")
            .text("stock", "4")
            .text("description", "Telar de cintura, algodón.")
            .part(
                "photo",
                reqwest::multipart::Part::bytes(png)
                    .file_name("runner.png")
                    .mime_str("image/png")
                    .unwrap(),
            );
        let r = seller
            .c
            .post(format!("{}/shop/products/new", app.base))
            .multipart(multipart)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let pid: i64 = r.headers()["location"]
            .to_str()
            .unwrap()
            .trim_start_matches("/products/")
            .parse()
            .unwrap();
        let p = app.db.product(pid).await.unwrap();
        assert_eq!(
            (p.price.minor, p.stock, p.name_es.as_deref()),
            (35000, 4, Some("Camino de mesa tejido a mano"))
        );
        let photo = app
            .db
            .photo(p.photo_id.expect("photo stored"))
            .await
            .unwrap();
        assert!(photo.0.len() <= 30 * 1024, "photo {} bytes", photo.0.len());
        // A garbage "photo" is a message on the form, not a crash.
        let bad = reqwest::multipart::Form::new()
            .text("csrf", seller.csrf.clone())
            .text("name_en", "Broken")
            .text("category_id", cat.id.to_string())
            .text("price", "1")
            .text("stock", "1")
            .part(
                "photo",
                reqwest::multipart::Part::bytes(b"GIF89a nope".to_vec()).file_name("x.gif"),
            );
        let r = seller
            .c
            .post(format!("{}/shop/products/new", app.base))
            .multipart(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("JPEG or PNG"));

        // A buyer pays cash at the counter; the admin records it.
        let mut buyer = Browser::login(&app.base, "+520000002001").await;
        buyer.get(&format!("/products/{pid}")).await;
        buyer
            .post(
                "/cart/add",
                &[("product_id", &pid.to_string()), ("quantity", "1")],
            )
            .await;
        let (_, html) = buyer.get("/checkout").await;
        let key = checkout_key(&html);
        let (s, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", &key),
                    ("address", "Junto a la escuela, El Rosario"),
                    ("phone", "+529515550102"),
                    ("method", "cash"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, paid_page) = buyer.get(&loc).await;
        assert!(
            paid_page.contains("cash") || paid_page.contains("efectivo"),
            "{paid_page}"
        );
        let payment: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (_, admin_page) = admin.get("/admin").await;
        assert!(admin_page.contains(&format!("/admin/payments/{payment}/cash")));
        assert_eq!(
            admin
                .post(&format!("/admin/payments/{payment}/cash"), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        let pay = app.db.payment(payment).await.unwrap();
        assert_eq!(pay.status, "succeeded");
        let order = app
            .db
            .all_orders(None, 5)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.checkout_id == pay.checkout_id)
            .unwrap()
            .id;
        let events = app.db.order_events(order).await.unwrap();
        assert_eq!(
            (events[1].actor.as_str(), events[1].transition.as_str()),
            ("collector", "pay"),
            "who took the cash is recorded"
        );

        seller.get("/shop").await;
        for step in ["accept", "pack", "ship"] {
            assert_eq!(
                seller.post(&format!("/orders/{order}/{step}"), &[]).await.0,
                StatusCode::SEE_OTHER,
                "{step}"
            );
        }
        buyer.get(&format!("/orders/{order}")).await;
        assert_eq!(
            buyer
                .post(&format!("/orders/{order}/confirm_delivery"), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            buyer
                .post(
                    &format!("/orders/{order}/request_return"),
                    &[("reason", "wrong colour")]
                )
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            seller
                .post(&format!("/orders/{order}/mark_returned"), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        // The refund is automatic: the worker takes it from the jobs table.
        wait_state(&app.db, order, "refunded").await;
        assert_eq!(
            app.db.product(pid).await.unwrap().stock,
            4,
            "the returned item is back in stock"
        );
        let sid = app
            .db
            .user_by_phone("+529517770001")
            .await
            .unwrap()
            .seller_id
            .unwrap();
        let st = app.db.seller_statement(sid).await.unwrap();
        assert_eq!((st.held, st.earned, st.refunded), (0, 0, 35000 + 3000));
        let (_, html) = buyer.get(&format!("/orders/{order}")).await;
        assert!(
            html.contains("Refunded") && html.contains("wrong colour"),
            "translated history with the reason"
        );
        assert!(
            app.db
                .ledger_totals(p.price.currency)
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_reach_the_reader_in_their_language() {
    let app = spawn_on(testdb::sqlite().await, true, |_| {}).await;
    let mut b = Browser::new(&app.base).await;
    b.get("/lang/es").await;
    b.get("/signup").await;
    let (s, html) = b
        .post(
            "/signup",
            &[
                ("name", "Rosa"),
                ("phone", "12ab"),
                ("password", "una-clave-larga"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("no es un número de teléfono"), "{html}");
    let (s, html) = b.get("/products/999999").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("No encontramos ese producto"), "{html}");
    let (s, html) = b.get("/products/abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(html.contains("no es válido"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_suspends_a_user_whose_session_and_token_stop_at_once() {
    for app in apps(true).await {
        let buyer = app.db.user_by_phone("+520000002003").await.unwrap();
        let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
        let mut b = Browser::login(&app.base, &buyer.phone).await;
        assert_eq!(b.get("/orders").await.0, StatusCode::OK);
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        admin.get("/admin").await;
        // Suspending asks first, on a second page; going back changes nothing.
        let (s, page) = admin
            .post(&format!("/admin/users/{}", buyer.id), &[("role", "buyer")])
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("name=\"confirm\" value=\"1\""), "{page}");
        assert!(app.db.user(buyer.id).await.unwrap().active, "not yet");
        assert_eq!(b.get("/orders").await.0, StatusCode::OK);
        let (s, _) = admin
            .post(
                &format!("/admin/users/{}", buyer.id),
                &[("role", "buyer"), ("confirm", "1")],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(
            b.get("/orders").await.0,
            StatusCode::UNAUTHORIZED,
            "the suspended session is gone"
        );
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/orders", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the token is refused");
        let mut login = Browser::new(&app.base).await;
        login.get("/login").await;
        assert_eq!(
            login
                .post(
                    "/login",
                    &[("phone", &buyer.phone), ("password", DEMO_PASSWORD)]
                )
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        // The admin cannot lock themselves out: neither suspend themselves nor take their own
        // admin role back.
        let me = app.db.user_by_phone(DEMO_ADMIN_PHONE).await.unwrap();
        let (s, html) = admin
            .post(
                &format!("/admin/users/{}", me.id),
                &[("role", "buyer"), ("confirm", "1")],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let own = app.db.grant_records(me.id).await.unwrap()[0].id;
        let (s, html) = admin
            .post(&format!("/admin/grants/{own}/revoke"), &[])
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(
            app.db
                .user(me.id)
                .await
                .unwrap()
                .is(tianguis_store::users::Role::Admin)
        );
        // Roles are given and taken back on the person's page, with a record.
        let (s, page) = admin.get(&format!("/admin/users/{}", buyer.id)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Give a role"), "{page}");
        let centre = app
            .db
            .pickup_points()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.kind == "centre")
            .unwrap();
        let (s, loc) = admin
            .post(
                &format!("/admin/users/{}/grants", buyer.id),
                &[
                    ("role", "agent"),
                    ("scope", &format!("point:{}", centre.id)),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let (s, page) = admin
            .post(
                &format!("/admin/users/{}/grants", buyer.id),
                &[("role", "agent"), ("scope", "everywhere")],
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "agents work at a centre: {page}"
        );
        let rec = app.db.grant_records(buyer.id).await.unwrap();
        assert_eq!((rec.len(), rec[0].granted_by), (1, Some(me.id)));
        let (s, _) = admin
            .post(&format!("/admin/grants/{}/revoke", rec[0].id), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, page) = admin.get(&format!("/admin/users/{}", buyer.id)).await;
        assert!(page.contains("Taken back"), "{page}");
        // Reinstated, they can sign in again.
        admin
            .post(
                &format!("/admin/users/{}", buyer.id),
                &[("role", "buyer"), ("active", "1")],
            )
            .await;
        Browser::login(&app.base, &buyer.phone).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_running_workers_expire_each_unpaid_order_exactly_once() {
    for app in apps(true).await {
        // A second server process: its own pool and workers, the same database and clock.
        let mut db2 = Db::connect(&app.t.url).await.unwrap();
        db2.clock = app.db.clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_b = format!("http://{}", listener.local_addr().unwrap());
        let mut config = tianguis_web::Config::local(&base_b);
        config.worker_interval_ms = 50;
        config.payout_schedule = false;
        config.checkout_per_minute = 10_000;
        tokio::spawn(tianguis_web::serve(
            tianguis_web::state(db2, config),
            listener,
        ));
        let buyer = app.db.user_by_phone("+520000002004").await.unwrap();
        let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
        let c = reqwest::Client::new();
        let pid = 7;
        let stock = app.db.product(pid).await.unwrap().stock;
        let mut orders = Vec::new();
        for i in 0..6 {
            let base = if i % 2 == 0 { &app.base } else { &base_b };
            let body = serde_json::json!({"lines": [{"product_id": pid, "quantity": 1}], "method": "cash", "address": "Santa Ana", "phone": "+529510000002"});
            let r = c
                .post(format!("{base}/api/v1/checkout"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("two-{i}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            orders.push(
                r.json::<serde_json::Value>().await.unwrap()["order_ids"][0]
                    .as_i64()
                    .unwrap(),
            );
        }
        assert_eq!(app.db.product(pid).await.unwrap().stock, stock - 6);
        app.db.clock.advance(Duration::from_secs(2 * 3600));
        for o in &orders {
            wait_state(&app.db, *o, "cancelled").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // let both workers have another go
        for o in &orders {
            let expiries = app
                .db
                .order_events(*o)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.transition == "expire_unpaid")
                .count();
            assert_eq!(expiries, 1, "order {o} expired {expiries} times");
        }
        assert_eq!(
            app.db.product(pid).await.unwrap().stock,
            stock,
            "stock restored exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cash_on_delivery_through_the_pages() {
    for app in apps(true).await {
        let mut buyer = Browser::login(&app.base, "+520000002005").await;
        buyer
            .post("/cart/add", &[("product_id", "11"), ("quantity", "1")])
            .await;
        let (_, html) = buyer.get("/checkout").await;
        assert!(html.contains("value=\"cash_on_delivery\""));
        let key = checkout_key(&html);
        let (s, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", &key),
                    ("address", "392X+2G El Rosario"),
                    ("phone", "+529515550103"),
                    ("method", "cash_on_delivery"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, page) = buyer.get(&loc).await;
        assert!(page.contains("when your order arrives"), "{page}");
        let order = first_link(&page, "href=\"/orders/");
        let mut seller = Browser::login(&app.base, &seller_phone_of(&app.db, 11).await).await;
        let (_, html) = seller.get(&format!("/orders/{order}")).await;
        assert!(
            html.contains("/accept_on_delivery")
                && !html.contains(&format!("/orders/{order}/accept\"")),
            "{html}"
        );
        for step in ["accept_on_delivery", "pack", "ship"] {
            assert_eq!(
                seller.post(&format!("/orders/{order}/{step}"), &[]).await.0,
                StatusCode::SEE_OTHER,
                "{step}"
            );
        }
        // The buyer sees the code; the seller records the delivery and the cash with it.
        let (_, html) = buyer.get(&format!("/orders/{order}")).await;
        let code = app.db.order(order).await.unwrap().delivery_code.unwrap();
        assert!(html.contains(&code), "the buyer sees the delivery code");
        let (_, html) = seller.get(&format!("/orders/{order}")).await;
        assert!(
            html.contains(&format!("/orders/{order}/deliver")) && !html.contains(&code),
            "the seller gets a form, not the code"
        );
        let (s, body) = seller
            .post(&format!("/orders/{order}/deliver"), &[("code", "12")])
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("tries left"), "{body}");
        assert_eq!(
            seller
                .post(&format!("/orders/{order}/deliver"), &[("code", &code)])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        let o = app.db.order(order).await.unwrap();
        assert_eq!(o.state.as_str(), "delivered");
        assert!(
            app.db.seller_statement(o.seller_id).await.unwrap().held >= o.total.minor,
            "the collected cash is held"
        );
        assert!(
            app.db
                .ledger_totals(o.total.currency)
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn officials_see_late_and_at_risk_deliveries() {
    let app = spawn_on(testdb::sqlite().await, true, |_| {}).await;
    // A buyer who signs in themselves (walk-in buyers of the demo have no password).
    let paid = app
        .db
        .all_orders(Some(tianguis_domain::process::OrderState::Paid), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.agent_id.is_none())
        .unwrap();
    let mut buyer =
        Browser::login(&app.base, &app.db.user(paid.buyer_id).await.unwrap().phone).await;
    let (_, html) = buyer.get(&format!("/orders/{}", paid.id)).await;
    assert!(html.contains("Expected by"), "{html}");
    let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
    let (_, html) = admin.get("/admin").await;
    let late_now = html
        .split("Late deliveries")
        .nth(1)
        .unwrap()
        .split("At risk")
        .next()
        .unwrap()
        .to_string();
    assert!(
        !late_now.contains(&format!("/orders/{}\"", paid.id)),
        "not late on day one"
    );
    app.db.clock.advance(Duration::from_secs(5 * 86_400));
    let (_, html) = admin.get("/admin").await;
    let late_section = html
        .split("Late deliveries")
        .nth(1)
        .unwrap()
        .split("At risk")
        .next()
        .unwrap();
    assert!(
        late_section.contains(&format!("/orders/{}\"", paid.id)),
        "{late_section}"
    );
    let metrics = app.metrics().await;
    let late_line = metrics
        .lines()
        .find(|l| l.starts_with("tianguis_delivery_promise{state=\"late\"}"))
        .unwrap();
    assert!(
        late_line
            .split_whitespace()
            .last()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0,
        "{late_line}"
    );
    // A place's own promise, set by the admin only.
    let village = app
        .db
        .places()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.kind == "village")
        .unwrap();
    assert_eq!(
        admin
            .post(
                &format!("/admin/places/{}/promise", village.id),
                &[("days", "6")]
            )
            .await
            .0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.db
            .places()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.id == village.id)
            .unwrap()
            .delivery_days,
        Some(6)
    );
    assert_eq!(
        admin
            .post(
                &format!("/admin/places/{}/promise", village.id),
                &[("days", "99")]
            )
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    buyer.get("/").await;
    let (s, _) = buyer
        .post(
            &format!("/admin/places/{}/promise", village.id),
            &[("days", "1")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_official_imports_the_registry_and_a_buyer_checks_out_to_their_property() {
    for app in apps(true).await {
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        admin.get("/admin").await;
        let csv = "name,owner_phone,latitude,longitude\nRancho La Joya,+520000002006,17.0501,-96.6012\nBroken,+520000002006,x,y\n";
        let form = reqwest::multipart::Form::new()
            .text("csrf", admin.csrf.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("r.csv"),
            );
        let r = admin
            .c
            .post(format!("{}/admin/registry", app.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Imported 1")
                && html.contains("Line 3")
                && html.contains("must be numbers"),
            "{html}"
        );
        // Officials import listings for any seller; a bad line is reported, not written.
        let cat = app.db.categories().await.unwrap()[0].slug.clone();
        let listings = format!(
            "seller_phone,sku,category,name_en,price,stock\n+520000001000,ADM-1,{cat},Cedar chest,900,1\n+520000001000,ADM-2,{cat},Broken chest,lots,1\n"
        );
        let (s, page) = admin
            .post_multipart("/catalogue/import", &[], &[("file", listings.into_bytes())])
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(
            page.contains("2 lines: 1 imported (1 new)") && page.contains("Line 3"),
            "{page}"
        );
        let registered = app
            .db
            .registered_addresses("+520000002006")
            .await
            .unwrap()
            .remove(0);
        let mut buyer = Browser::login(&app.base, "+520000002006").await;
        buyer
            .post("/cart/add", &[("product_id", "3"), ("quantity", "1")])
            .await;
        let (_, html) = buyer.get("/checkout").await;
        assert!(
            html.contains("Rancho La Joya") && html.contains(&registered.plus_code),
            "{html}"
        );
        let key = checkout_key(&html);
        // Someone else's registered property cannot be chosen.
        let (s, _) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", "other"),
                    ("registered", "999999"),
                    ("phone", "+520000002006"),
                    ("method", "cash"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", &key),
                    ("registered", &registered.id.to_string()),
                    ("address", ""),
                    ("phone", "+520000002006"),
                    ("method", "cash"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let (_, page) = buyer.get(&loc).await;
        let order = app
            .db
            .order(first_link(&page, "href=\"/orders/"))
            .await
            .unwrap();
        assert_eq!(
            order.plus_code.as_deref(),
            Some(registered.plus_code.as_str())
        );
        assert!(order.address.contains("Rancho La Joya"));
        // Only an admin may import.
        let form = reqwest::multipart::Form::new()
            .text("csrf", buyer.csrf.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("r.csv"),
            );
        let r = buyer
            .c
            .post(format!("{}/admin/registry", app.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parcel_goes_to_a_pickup_point_is_checked_in_and_handed_over() {
    for app in apps(true).await {
        let points = app.db.pickup_points().await.unwrap();
        assert_eq!(
            points.len(),
            4,
            "demo pickup points (two of them digital centres)"
        );
        let mut buyer = Browser::login(&app.base, "+520000002000").await; // lives in Santa Ana
        buyer
            .post("/cart/add", &[("product_id", "5"), ("quantity", "1")])
            .await;
        let (_, html) = buyer.get("/checkout").await;
        let first = html.find("Centro Digital Santa Ana").unwrap();
        assert!(
            first < html.find("Casillero Mercado Central").unwrap(),
            "nearest first"
        );
        assert!(
            html.contains("km,") && html.contains("digital centre"),
            "{html}"
        );
        let centre = points
            .iter()
            .find(|p| p.name == "Centro Digital Santa Ana")
            .unwrap();
        let key = checkout_key(&html);
        let (s, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", &key),
                    ("pickup", &centre.id.to_string()),
                    ("address", ""),
                    ("phone", "+520000002000"),
                    ("method", "mobile_money"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let payment: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        wait_paid(&app.db, payment).await;
        let (_, page) = buyer.get(&loc).await;
        let order = first_link(&page, "href=\"/orders/");
        let o = app.db.order(order).await.unwrap();
        assert_eq!(
            (o.pickup_point_id, o.delivery.minor),
            (Some(centre.id), centre.fee_minor)
        );
        let mut seller = Browser::login(&app.base, &seller_phone_of(&app.db, 5).await).await;
        seller.get("/shop").await;
        for step in ["accept", "pack", "ship"] {
            assert_eq!(
                seller.post(&format!("/orders/{order}/{step}"), &[]).await.0,
                StatusCode::SEE_OTHER
            );
        }
        // Only operators (and admins) have a counter page.
        assert_eq!(buyer.get("/pickup").await.0, StatusCode::FORBIDDEN);
        let mut op = Browser::login(&app.base, tianguis_demo::DEMO_OPERATOR_PHONE).await;
        let (_, counter) = op.get("/pickup").await;
        assert!(
            counter.contains(&format!("/pickup/orders/{order}/check-in")),
            "{counter}"
        );
        assert_eq!(
            op.post(&format!("/pickup/orders/{order}/check-in"), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        let (_, counter) = op.get("/pickup").await;
        assert!(counter.contains(&format!("/orders/{order}/deliver")));
        let code = app.db.order(order).await.unwrap().delivery_code.unwrap();
        assert_eq!(
            op.post(&format!("/orders/{order}/deliver"), &[("code", &code)])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        let o = app.db.order(order).await.unwrap();
        assert_eq!(o.state.as_str(), "delivered");
        let last = app.db.order_events(order).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.transition.as_str()),
            ("collector", "deliver_with_code")
        );
        // A seller cannot check parcels in at someone's counter.
        assert!(
            seller
                .post(&format!("/pickup/orders/{order}/check-in"), &[])
                .await
                .0
                .is_client_error()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_courier_takes_a_job_fails_once_delivers_with_the_code_and_prints_the_route() {
    use tianguis_demo::DEMO_COURIER_PHONE;
    use tianguis_domain::delivery::JobState;
    for app in apps(true).await {
        let db = &app.db;
        let mut rider = Browser::login(&app.base, DEMO_COURIER_PHONE).await;
        let me = db
            .carrier_of(db.user_by_phone(DEMO_COURIER_PHONE).await.unwrap().id)
            .await
            .unwrap()
            .unwrap();
        let (s, page) = rider.get("/courier").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("My jobs") && page.contains("plus.codes/"),
            "{page}"
        );
        // Take an offered job, pick it up (ships the order), go out.
        let offer = db.delivery_offers(&me).await.unwrap().remove(0);
        assert!(page.contains(&format!("/courier/jobs/{}/accept", offer.id)));
        for step in ["accept", "pick_up", "depart"] {
            let (s, loc) = rider
                .post(&format!("/courier/jobs/{}/{step}", offer.id), &[])
                .await;
            assert_eq!(
                (s, loc.as_str()),
                (StatusCode::SEE_OTHER, "/courier"),
                "{step}"
            );
        }
        assert_eq!(
            db.order(offer.order_id).await.unwrap().state.as_str(),
            "shipped"
        );
        // A failed attempt needs a reason; with one it is recorded; then the second attempt.
        let (s, body) = rider
            .post(&format!("/courier/jobs/{}/fail", offer.id), &[])
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("Say why the delivery failed."), "{body}");
        let (s, _) = rider
            .post(
                &format!("/courier/jobs/{}/fail", offer.id),
                &[("reason", "not_home")],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, page) = rider.get("/courier").await;
        assert!(page.contains("nobody at home") && page.contains("Try again"));
        rider
            .post(&format!("/courier/jobs/{}/retry", offer.id), &[])
            .await;
        // The wrong code is refused with a message; the buyer's code delivers.
        let code = db
            .order(offer.order_id)
            .await
            .unwrap()
            .delivery_code
            .unwrap();
        let wrong = if code == "111111" { "222222" } else { "111111" };
        let (s, body) = rider
            .post(
                &format!("/courier/jobs/{}/deliver", offer.id),
                &[("code", wrong)],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (s, _) = rider
            .post(
                &format!("/courier/jobs/{}/deliver", offer.id),
                &[("code", &code)],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(
            db.order(offer.order_id).await.unwrap().state.as_str(),
            "delivered"
        );
        let job = db.delivery_job(offer.id).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Delivered, 1));
        let last = db
            .order_events(offer.order_id)
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(last.actor, "courier");

        assert!(
            denied(rider.get("/metrics").await.0, ""),
            "riders do not read metrics"
        );
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("tianguis_delivery_jobs{state=\"delivered\"}"),
            "{metrics}"
        );
        // Plan my route: the page shows progress without JavaScript, then the route sheet.
        let (s, loc) = rider.post("/courier/plans", &[]).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(loc.starts_with("/courier/plans/"), "{loc}");
        let mut sheet = String::new();
        for _ in 0..300 {
            let (s, page) = rider.get(&loc).await;
            assert_eq!(s, StatusCode::OK);
            if page.contains("http-equiv=\"refresh\"") {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            sheet = page;
            break;
        }
        assert!(sheet.contains("ready"), "the plan was solved: {sheet}");
        let held = db.carrier_jobs(me.id).await.unwrap().0;
        for j in &held {
            assert!(
                sheet.contains(&format!("#{}", j.order_id)),
                "job {} on the sheet",
                j.id
            );
        }
        assert!(sheet.contains("Collect") && sheet.contains("Deliver"));
        assert!(sheet.contains("cash to collect") && sheet.contains("plus.codes/"));
        assert!(sheet.contains("@media print"), "printable");
        let gz = rider
            .c
            .get(format!("{}{loc}", app.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
        assert!(gz < 14 * 1024, "route sheet {gz} bytes compressed");
        // Someone else's route sheet is not theirs to read.
        let mut buyer = Browser::login(&app.base, "+520000002000").await;
        assert_eq!(buyer.get(&loc).await.0, StatusCode::NOT_FOUND);

        // A buyer registers as a carrier: bad hours are a message, good ones a courier.
        let form = |start: &'static str| {
            vec![
                ("name", "Bici Pedro"),
                ("kind", "bicycle"),
                ("capacity", "3"),
                ("base", ""),
                ("radius_km", "5"),
                ("shift_start", start),
                ("shift_end", "17:00"),
                ("speed_kmh", "12"),
            ]
        };
        let (s, body) = buyer.post("/courier/register", &form("nine")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("is not a time"), "{body}");
        let (s, _) = buyer.post("/courier/register", &form("09:00")).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let u = db.user_by_phone("+520000002000").await.unwrap();
        assert!(u.has_role("courier"));
        let (_, page) = buyer.get("/courier").await;
        assert!(
            page.contains("Bici Pedro") && page.contains("09:00–17:00"),
            "{page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_orders_for_a_walk_in_buyer_who_gets_a_text_and_the_cash_is_reconciled() {
    use tianguis_demo::DEMO_AGENT_PHONE;
    for app in apps(true).await {
        let db = &app.db;
        let mut agent = Browser::login(&app.base, DEMO_AGENT_PHONE).await;
        let (s, page) = agent.get("/agent").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("Centro Digital Santa Ana") && page.contains("Add what the person wants"),
            "{page}"
        );
        agent
            .post("/cart/add", &[("product_id", "7"), ("quantity", "2")])
            .await;
        let (_, page) = agent.get("/agent").await;
        // The total to collect, fees included, before placing: two of product 7 and the
        // centre's own fee (collected here), or the delivery fee (to an address).
        let en = tianguis_web::i18n::Tr::new("en");
        let price = db.product(7).await.unwrap().price;
        let centre = db
            .pickup_point(
                db.user_by_phone(DEMO_AGENT_PHONE)
                    .await
                    .unwrap()
                    .centre_id
                    .unwrap(),
            )
            .await
            .unwrap();
        let here =
            tianguis_domain::money::Money::new(price.minor * 2 + centre.fee_minor, price.currency);
        assert!(
            page.contains(&format!("collected at this centre: {}", en.money(&here))),
            "{page}"
        );
        let key = page
            .split("name=\"idempotency_key\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        // A bad phone comes back as the filled-in form with the reason.
        let (s, body) = agent
            .post(
                "/agent/checkout",
                &[
                    ("idempotency_key", &key),
                    ("buyer_name", "Doña Inés"),
                    ("buyer_phone", "abc"),
                    ("method", "cash"),
                    ("delivery", "centre"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("Doña Inés") && body.contains("class=\"err\""),
            "{body}"
        );
        let (s, loc) = agent
            .post(
                "/agent/checkout",
                &[
                    ("idempotency_key", &key),
                    ("buyer_name", "Doña Inés"),
                    ("buyer_phone", "+529510007777"),
                    ("buyer_lang", "es"),
                    ("method", "cash"),
                    ("delivery", "centre"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let code = loc.trim_start_matches("/agent?placed=").to_string();
        assert_eq!(code.len(), 8, "{loc}");
        let (_, page) = agent.get(&loc).await;
        assert!(page.contains(&code));
        let placed_total: i64 = db
            .order_by_tracking(&code)
            .await
            .unwrap()
            .iter()
            .map(|o| o.total.minor)
            .sum();
        assert_eq!(placed_total, here.minor, "charged what the desk said");
        assert!(
            page.contains(&format!("You collected {} from the buyer", en.money(&here))),
            "{page}"
        );
        // The buyer follows it without an account: what, by when, where, and how the code
        // reaches them.
        let mut anon = Browser::new(&app.base).await;
        let (s, page) = anon.get(&format!("/track/{}", code.to_lowercase())).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Paid, waiting for the seller"), "{page}");
        assert!(page.contains("× 2"), "{page}");
        assert!(page.contains("Expected by "), "{page}");
        assert!(
            page.contains(&format!("Collect it at {}", centre.name)),
            "{page}"
        );
        assert!(page.contains("phone ending 777"), "{page}");
        assert!(!page.contains("+529510007777"), "nothing personal");
        assert_eq!(anon.get("/track/NOPE1234").await.0, StatusCode::NOT_FOUND);
        let order = db.order_by_tracking(&code).await.unwrap().remove(0);
        assert_eq!(
            order.agent_id,
            Some(db.user_by_phone(DEMO_AGENT_PHONE).await.unwrap().id)
        );
        // Another centre's agent cannot see it.
        let mut marta = Browser::login(&app.base, "+520000005001").await;
        assert_eq!(
            marta.get(&format!("/orders/{}", order.id)).await.0,
            StatusCode::NOT_FOUND
        );
        // The text reaches the buyer's phone through the outbox and the gateway (simulator), in
        // the language the agent asked for.
        let text = app
            .text_to("+529510007777", |m| m.contains("/track/"))
            .await;
        assert!(text.contains("pedido"), "{text}");
        // What the simulator received is for admins only.
        assert!(
            denied(anon.get("/sim/sms/messages").await.0, ""),
            "the simulator's inbox is not public"
        );
        assert!(denied(agent.get("/sim/sms/messages").await.0, ""));
        let mut official = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (s, inbox) = official.get("/sim/sms/messages").await;
        assert_eq!(s, StatusCode::OK);
        let texts: Vec<serde_json::Value> = serde_json::from_str(&inbox).unwrap();
        // Placed, and the cash received: two texts.
        app.text_to("+529510007777", |m| m.contains("recibimos el pago"))
            .await;
        assert!(
            texts.iter().filter(|m| m["to"] == "+529510007777").count() <= 2,
            "{texts:?}"
        );
        assert!(text.contains(&code) && text.contains("/track/"), "{text}");
        assert!(
            db.outbox(50)
                .await
                .unwrap()
                .iter()
                .any(|m| m.to_phone == "+529510007777" && m.status == "sent")
        );
        // The seller sends it to the centre: the buyer gets the delivery code by text (they have
        // no account to read it on), then word that it waits at the centre; the agent hands it
        // over with the code the buyer read out.
        let seller = db
            .user(db.seller(order.seller_id).await.unwrap().user_id)
            .await
            .unwrap();
        for tr in [
            tianguis_domain::process::Transition::Accept,
            tianguis_domain::process::Transition::Pack,
            tianguis_domain::process::Transition::Ship,
        ] {
            tianguis_app::orders::act(db, &seller, order.id, tr, "", None)
                .await
                .unwrap();
        }
        let shipped = app
            .text_to("+529510007777", |m| m.contains("codigo de entrega"))
            .await;
        let delivery_code = db.order(order.id).await.unwrap().delivery_code.unwrap();
        assert!(shipped.contains(&delivery_code), "{shipped}");
        assert!(
            !shipped.contains('á') && !shipped.contains('ó'),
            "sent in the SMS alphabet: {shipped}"
        );
        let rosa = db.user_by_phone(DEMO_AGENT_PHONE).await.unwrap();
        tianguis_app::logistics::check_in(db, &rosa, order.id)
            .await
            .unwrap();
        app.text_to("+529510007777", |m| m.contains("listo en"))
            .await;
        let said = app
            .text_to("+529510007777", |m| m.contains("codigo de entrega es"))
            .await;
        let read_out: String = said
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_string();
        assert_eq!(
            tianguis_app::orders::deliver_with_code(db, &rosa, order.id, &read_out)
                .await
                .unwrap(),
            tianguis_domain::process::OrderState::Delivered
        );
        // The outbox records what each text cost, in parts and as the gateway charged.
        for _ in 0..50 {
            if db
                .order_texts(order.id)
                .await
                .unwrap()
                .iter()
                .all(|m| m.status == "sent")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sent = db.order_texts(order.id).await.unwrap();
        assert!(sent.len() >= 4, "{sent:?}");
        for m in sent.iter().filter(|m| m.status == "sent") {
            assert!(matches!(m.parts, Some(1..=2)), "{m:?}");
            assert!(
                m.cost.as_deref().is_some_and(|c| c.starts_with("USD")),
                "{m:?}"
            );
        }
        // The order page shows the texts, the code masked.
        let (_, page) = agent.get(&format!("/orders/{}", order.id)).await;
        assert!(
            page.contains("listo en") && !page.contains(&delivery_code),
            "{page}"
        );

        // Cash: hand over less than held; the official sees the shortfall.
        let held = db.cash_on_hand(order.agent_id.unwrap()).await.unwrap();
        let (_, page) = agent.get("/cash").await;
        assert!(page.contains(&held.to_decimal()), "{page}");
        let declared =
            tianguis_domain::money::Money::new(held.minor - 1000, held.currency).to_decimal();
        let (s, body) = agent
            .post(
                "/cash/handover",
                &[
                    ("amount", "999999"),
                    ("channel", "bank"),
                    ("reference", "DEP-9"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (s, _) = agent
            .post(
                "/cash/handover",
                &[
                    ("amount", &declared),
                    ("channel", "bank"),
                    ("reference", "DEP-9"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (_, page) = admin.get("/admin/cash").await;
        assert!(
            page.contains("DEP-9") && page.contains("short by $10.00"),
            "{page}"
        );
        // Commission statement and rules.
        let (s, page) = agent.get("/agent/commissions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("owed to you"), "{page}");
        assert!(
            agent
                .get("/agent/commissions?month=2026-13")
                .await
                .0
                .is_client_error()
        );
        let (s, _) = admin
            .post(
                "/admin/commissions",
                &[
                    ("basis", "percent"),
                    ("value", "2.5"),
                    ("source", "platform_fee"),
                    ("centre_id", ""),
                    ("category_id", ""),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(
            db.commission_rules()
                .await
                .unwrap()
                .iter()
                .any(|r| r.basis == tianguis_domain::commission::Basis::Percent(250))
        );
        let (s, _) = admin
            .post(
                "/admin/commissions",
                &[
                    ("basis", "percent"),
                    ("value", "250"),
                    ("source", "platform_fee"),
                ],
            )
            .await;
        assert!(s.is_client_error(), "more than 100% is refused");
        let (_, page) = admin.get("/admin/centres").await;
        assert!(page.contains("Rosa Agente") && page.contains("Marta Agente"));
        // Pages stay within the 2G budget.
        for path in [
            "/agent",
            "/cash",
            "/agent/commissions",
            &format!("/track/{code}"),
        ] {
            let gz = agent
                .c
                .get(format!("{}{path}", app.base))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len();
            assert!(gz < 14 * 1024, "{path}: {gz} bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_brings_a_seller_online_with_consent_lists_for_them_and_the_seller_revokes() {
    use tianguis_demo::DEMO_AGENT_PHONE;
    for app in apps(true).await {
        let db = &app.db;
        let mut agent = Browser::login(&app.base, DEMO_AGENT_PHONE).await;
        let (s, page) = agent.get("/agent/sellers").await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Bring a seller online"));
        let place = db.places().await.unwrap()[0].id.to_string();
        let fields = |code: &str| {
            vec![
                ("name", "Doña Lucha".to_string()),
                ("phone", "+529510008888".to_string()),
                ("shop_name", "Barro Negro Lucha".to_string()),
                ("place_id", place.clone()),
                ("scope_listings", "1".to_string()),
                ("consent", "code".to_string()),
                ("code", code.to_string()),
            ]
        };
        let as_refs = |v: &Vec<(&'static str, String)>| {
            v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
        };
        // Send the code; the form comes back filled in.
        let f = as_refs(&fields(""));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, page) = agent.post_multipart("/agent/sellers/code", &f, &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("A code was sent") && page.contains("Barro Negro Lucha"),
            "{page}"
        );
        let code = app.code_texted_to("+529510008888").await;
        let f = as_refs(&fields("999999x"));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, page) = agent.post_multipart("/agent/sellers", &f, &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        // Paper cannot stand in for the code of a phone that has an account (the demo buyer's).
        let (s, page) = agent
            .post_multipart(
                "/agent/sellers",
                &[
                    ("name", "Someone"),
                    ("phone", "+520000002000"),
                    ("shop_name", "Taken Over"),
                    ("place_id", &place),
                    ("scope_listings", "1"),
                    ("scope_orders", "1"),
                    ("consent", "paper"),
                    ("paper_ref", "FORM-X"),
                ],
                &[("paper_photo", big_png())],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("already has an account"), "{page}");
        assert!(
            db.user_by_phone("+520000002000")
                .await
                .unwrap()
                .seller_id
                .is_none(),
            "no shop was opened on the buyer's account"
        );
        // A new person on paper: the signed form's photo is required, then kept private.
        let paper = |photo: bool| {
            let mut files = Vec::new();
            if photo {
                files.push(("paper_photo", big_png()));
            }
            files
        };
        let paper_fields = [
            ("name", "Don Paco"),
            ("phone", "+529510008877"),
            ("shop_name", "Petates Paco"),
            ("place_id", place.as_str()),
            ("scope_listings", "1"),
            ("consent", "paper"),
            ("paper_ref", "FORM-PACO"),
        ];
        let (s, page) = agent
            .post_multipart("/agent/sellers", &paper_fields, &paper(false))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("photo of the signed form"), "{page}");
        let (s, loc) = agent
            .post_multipart("/agent/sellers", &paper_fields, &paper(true))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let paco = db.user_by_phone("+529510008877").await.unwrap();
        let m = db
            .mandates_of_seller(paco.seller_id.unwrap())
            .await
            .unwrap()
            .remove(0);
        assert!(m.consent_form_id.is_some());
        let form_url = format!("/mandates/{}/consent-form", m.id);
        let (s, _) = agent.get(&form_url).await;
        assert_eq!(s, StatusCode::OK, "the agent sees the form");
        let mut nosy = Browser::login(&app.base, "+520000005001").await;
        assert_eq!(nosy.get(&form_url).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            Browser::new(&app.base).await.get(&form_url).await.0,
            StatusCode::UNAUTHORIZED
        );
        let f = as_refs(&fields(&code));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, loc) = agent.post_multipart("/agent/sellers", &f, &[]).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        assert!(
            loc.starts_with("/agent/sellers/") && loc.ends_with("/products/new"),
            "{loc}"
        );
        // A listing made at the centre, sent twice (a retry): one listing.
        let (_, form) = agent.get(&loc).await;
        let key = form
            .split("name=\"idempotency_key\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let category = db.categories().await.unwrap()[0].id.to_string();
        let mut made = Vec::new();
        for _ in 0..2 {
            let mp = reqwest::multipart::Form::new()
                .text("csrf", agent.csrf.clone())
                .text("idempotency_key", key.clone())
                .text("name_en", "Black clay pot")
                .text("category_id", category.clone())
                .text("price", "250")
                .text("stock", "4");
            let r = agent
                .c
                .post(format!("{}{loc}", app.base))
                .multipart(mp)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            made.push(r.headers()["location"].to_str().unwrap().to_string());
        }
        assert_eq!(made[0], made[1], "one listing");
        // A catalogue file from the centre: only the mandated seller's lines are written.
        let slug = db.categories().await.unwrap()[0].slug.clone();
        let csv = format!(
            "seller_phone,sku,category,name_es,price,stock\n\
             951 000 8888,LU-1,{slug},Cántaro de barro negro,\"1,200\",2\n\
             +520000001000,X-1,{slug},Ajeno,10,1\n"
        );
        let (s, page) = agent
            .post_multipart("/catalogue/import", &[], &[("file", csv.into_bytes())])
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(
            page.contains("2 lines: 1 imported (1 new)")
                && page.contains("Line 3")
                && page.contains("no mandate from this seller"),
            "{page}"
        );
        let found = db
            .search(&tianguis_store::catalog::SearchQuery {
                text: "cantaro".into(),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.products.len(), 1);
        assert_eq!(found.products[0].price.minor, 120_000);
        assert_eq!(
            db.search(&tianguis_store::catalog::SearchQuery {
                text: "ajeno".into(),
                exact: true,
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .total,
            0
        );
        // The seller claims the account, sees the mandate and its audit trail, and revokes it.
        let mut seller = Browser::new(&app.base).await;
        seller.get("/claim").await;
        let (s, page) = seller.post("/claim", &[("phone", "+529510008888")]).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("a code is on its way"), "{page}");
        let code = app
            .text_to("+529510008888", |m| {
                m.contains("password") || m.contains("contraseña")
            })
            .await
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_string();
        let (s, loc) = seller
            .post(
                "/claim",
                &[
                    ("phone", "+529510008888"),
                    ("code", &code),
                    ("password", "barro-negro-1"),
                ],
            )
            .await;
        assert_eq!(
            (s, loc.as_str()),
            (StatusCode::SEE_OTHER, "/login?claimed=1")
        );
        seller.get("/login").await;
        let (s, _) = seller
            .post(
                "/login",
                &[("phone", "+529510008888"), ("password", "barro-negro-1")],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, page) = seller.get("/shop/mandates").await;
        assert!(
            page.contains("Rosa Agente") && page.contains("listing"),
            "{page}"
        );
        let mid = page
            .split("/shop/mandates/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let (s, _) = seller
            .post(&format!("/shop/mandates/{mid}/revoke"), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(
            agent.get(&made[0]).await.0,
            StatusCode::OK,
            "the listing is public"
        );
        let (s, _) = agent
            .get(&format!(
                "/agent/sellers/{}/products/new",
                db.user_by_phone("+529510008888")
                    .await
                    .unwrap()
                    .seller_id
                    .unwrap()
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "the mandate ended");
    }
}

/// A TCP proxy in front of the app: the network between browser and server, which the test
/// can cut (open connections are dropped, new ones refused) and restore.
pub struct Network {
    pub base: String,
    online: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Network {
    pub async fn start(target: &str) -> Network {
        let target: std::net::SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let online = Arc::new(AtomicBool::new(true));
        let (cut, rx) = tokio::sync::watch::channel(0u64);
        let on = online.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if !on.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut rx = rx.clone();
                rx.borrow_and_update(); // only a cut after this connection ends it
                tokio::spawn(async move {
                    let Ok(mut out) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Network { base, online, cut }
    }
    pub fn cut(&self) {
        self.online.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
    pub fn restore(&self) {
        self.online.store(true, Ordering::SeqCst);
    }
}

/// Real Chromium through chromedriver (Debian's `chromium` and `chromium-driver`). Missing
/// browser: skipped with a reason on a laptop, a failure under `CI=true`.
mod chromium {
    use super::*;
    use fantoccini::{Client, ClientBuilder, Locator};

    pub fn available() -> bool {
        let ok = std::path::Path::new("/usr/bin/chromium").exists()
            && std::path::Path::new("/usr/bin/chromedriver").exists();
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI needs Debian's chromium and chromium-driver"
            );
            eprintln!("SKIP browser test: install Debian's chromium and chromium-driver to run it");
        }
        ok
    }

    pub struct Browser {
        pub c: Client,
        driver: std::process::Child,
        _profile: tempdir_like::Dir,
    }

    mod tempdir_like {
        pub struct Dir(pub std::path::PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    impl Browser {
        pub async fn start() -> Browser {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let driver = std::process::Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let profile = std::env::temp_dir().join(format!(
                "tianguis-chromium-{}",
                tianguis_store::random_token(6)
            ));
            let mut caps = serde_json::Map::new();
            caps.insert(
                "goog:chromeOptions".into(),
                serde_json::json!({
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--disable-background-networking", "--disable-component-update", "--no-first-run",
                             "--disable-sync", "--disable-extensions", format!("--user-data-dir={}", profile.display())]
                }),
            );
            let url = format!("http://127.0.0.1:{port}");
            let mut last = None;
            for _ in 0..100 {
                match ClientBuilder::rustls()
                    .unwrap()
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await
                {
                    Ok(c) => {
                        return Browser {
                            c,
                            driver,
                            _profile: tempdir_like::Dir(profile),
                        };
                    }
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("chromedriver did not start: {last:?}");
        }
        pub async fn fill(&self, css: &str, text: &str) {
            self.c
                .find(Locator::Css(css))
                .await
                .unwrap()
                .send_keys(text)
                .await
                .unwrap();
        }
        pub async fn click(&self, css: &str) {
            self.c
                .find(Locator::Css(css))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        /// Click a form's button and wait for the page it leads to.
        pub async fn submit_and_wait(&self, css: &str) {
            let before = self.c.current_url().await.unwrap();
            self.click(css).await;
            for _ in 0..100 {
                if self.c.current_url().await.unwrap() != before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no page after clicking {css}");
        }
        pub async fn drafts(&self) -> serde_json::Value {
            self.c
                .execute(
                    "return JSON.parse(localStorage.getItem('tianguis-drafts') || '[]');",
                    vec![],
                )
                .await
                .unwrap()
        }
        pub async fn stop(mut self) {
            let _ = self.c.clone().close().await;
            let _ = self.driver.kill();
            let _ = self.driver.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_an_agents_order_and_listing_wait_on_the_device_and_arrive_exactly_once() {
    use chromium::Browser;
    use tianguis_demo::DEMO_AGENT_PHONE;
    use tianguis_domain::mandate::{Consent, Scope};
    if !chromium::available() {
        return;
    }
    for app in apps(true).await {
        let db = &app.db;
        let agent = db.user_by_phone(DEMO_AGENT_PHONE).await.unwrap();
        let place = db.places().await.unwrap()[0].id;
        let (sid, _) = db
            .onboard_seller(
                &agent,
                &tianguis_store::mandates::Onboarding {
                    name: "Don Beto".into(),
                    phone: "+529510006666".into(),
                    shop_name: "Palma Beto".into(),
                    place_id: place,
                    women_led: false,
                    scope: Scope {
                        listings: true,
                        orders: false,
                    },
                    consent: Consent::Paper("FORM-B1".into()),
                    paper_form: Some(tianguis_demo::photo::demo_photo(3)),
                },
            )
            .await
            .unwrap();
        let pid = db
            .search(&tianguis_store::catalog::SearchQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .products
            .into_iter()
            .find(|p| p.stock >= 5)
            .unwrap()
            .id;
        let net = Network::start(&app.base).await;
        let b = Browser::start().await;
        let base = net.base.clone();
        // Sign in and fill the cart while online (no JavaScript involved).
        b.c.goto(&format!("{base}/login")).await.unwrap();
        b.fill("input[name=phone]", DEMO_AGENT_PHONE).await;
        b.fill("input[name=password]", tianguis_demo::DEMO_PASSWORD)
            .await;
        b.submit_and_wait("main form button").await;
        b.c.goto(&format!("{base}/products/{pid}")).await.unwrap();
        b.submit_and_wait("form[action='/cart/add'] button").await;
        // Two tabs: the order form and the listing form, both loaded while online.
        b.c.goto(&format!("{base}/agent")).await.unwrap();
        let order_tab = b.c.window().await.unwrap();
        b.c.find(fantoccini::Locator::Css(
            "form[data-offline] input[name=buyer_name]",
        ))
        .await
        .unwrap();
        let listing_tab = b.c.new_window(true).await.unwrap().handle;
        b.c.switch_to_window(listing_tab.clone()).await.unwrap();
        b.c.goto(&format!("{base}/agent/sellers/{sid}/products/new"))
            .await
            .unwrap();
        b.c.find(fantoccini::Locator::Css(
            "form[data-offline] input[name=name_en]",
        ))
        .await
        .unwrap();

        // The network drops. The agent takes an order and a listing anyway.
        net.cut();
        b.c.switch_to_window(order_tab.clone()).await.unwrap();
        b.fill("input[name=buyer_name]", "Doña Offline").await;
        b.fill("input[name=buyer_phone]", "+529510004444").await;
        b.click("form[data-offline] > button").await;
        let mut n = 0;
        for _ in 0..100 {
            n = b.drafts().await.as_array().map(Vec::len).unwrap_or(0);
            if n == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(n, 1, "the order waits on the device");
        let status =
            b.c.find(fantoccini::Locator::Css("[data-offline-status]"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        assert!(status.contains("waiting for the connection: 1"), "{status}");
        b.c.switch_to_window(listing_tab.clone()).await.unwrap();
        b.fill("input[name=name_en]", "Offline palm basket").await;
        b.fill("input[name=price]", "120").await;
        b.c.find(fantoccini::Locator::Css("input[name=stock]"))
            .await
            .unwrap()
            .clear()
            .await
            .unwrap();
        b.fill("input[name=stock]", "2").await;
        b.click("form[data-offline] > button").await;
        for _ in 0..100 {
            n = b.drafts().await.as_array().map(Vec::len).unwrap_or(0);
            if n == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(n, 2, "and so does the listing");
        tokio::time::sleep(Duration::from_secs(4)).await; // retries fail while offline
        let count = |phone: &'static str| async move {
            db.all_orders(None, 10_000)
                .await
                .unwrap()
                .iter()
                .filter(|o| o.phone == phone)
                .count()
        };
        let listed = || async move {
            db.search(&tianguis_store::catalog::SearchQuery {
                seller_id: Some(sid),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap()
            .products
            .iter()
            .filter(|p| p.name_en == "Offline palm basket")
            .count()
        };
        assert_eq!(
            (count("+529510004444").await, listed().await),
            (0, 0),
            "nothing arrived while offline"
        );

        // The network is back: both drafts go out (two tabs try at once), once each.
        net.restore();
        for _ in 0..150 {
            n = b.drafts().await.as_array().map(Vec::len).unwrap_or(9);
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(n, 0, "every draft was sent: {}", b.drafts().await);
        b.c.goto(&format!("{base}/agent")).await.unwrap(); // one more flush on load: nothing to send
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            count("+529510004444").await,
            1,
            "the order arrived exactly once"
        );
        assert_eq!(listed().await, 1, "the listing arrived exactly once");

        // A conflict: the price changes while a draft waits; it is shown to resolve, not placed.
        b.c.goto(&format!("{base}/products/{pid}")).await.unwrap();
        b.submit_and_wait("form[action='/cart/add'] button").await;
        b.c.goto(&format!("{base}/agent")).await.unwrap();
        b.c.find(fantoccini::Locator::Css(
            "form[data-offline] input[name=buyer_name]",
        ))
        .await
        .unwrap();
        net.cut();
        b.fill("input[name=buyer_name]", "Don Conflicto").await;
        b.fill("input[name=buyer_phone]", "+529510004445").await;
        b.click("form[data-offline] > button").await;
        for _ in 0..100 {
            if b.drafts().await.as_array().map(Vec::len).unwrap_or(0) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let p = db.product(pid).await.unwrap();
        db.update_product(
            p.seller_id,
            pid,
            &tianguis_store::catalog::ProductInput {
                category_id: p.category_id,
                name_en: p.name_en.clone(),
                name_es: p.name_es.clone(),
                name_bn: p.name_bn.clone(),
                name_sw: p.name_sw.clone(),
                description: p.description.clone(),
                price_minor: p.price.minor + 500,
                stock: p.stock,
            },
            Some(p.stock),
        )
        .await
        .unwrap();
        net.restore();
        let mut shown = String::new();
        for _ in 0..150 {
            shown =
                b.c.find(fantoccini::Locator::Css("[data-offline-status]"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
            if shown.contains("Prices changed") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            shown.contains("Prices changed") && shown.contains("Discard"),
            "{shown}"
        );
        assert_eq!(
            count("+529510004445").await,
            0,
            "a conflicting draft is not placed"
        );
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mobile_money_request_lost_on_the_way_is_asked_again_and_paid_once() {
    // The provider (the simulator on its own port) sits behind a network the test can cut.
    let sim = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = format!("http://{}", sim.local_addr().unwrap());
    let net = Network::start(&sim_addr).await;
    let momo_url = net.base.clone();
    let app = spawn_on(testdb::sqlite().await, true, move |c| {
        c.momo_base_url = momo_url;
        c.momo_api_key = "sim-key".into();
        c.momo_secret = "sim-secret".into();
    })
    .await;
    let router = tianguis_web::payments::simulator(
        b"sim-secret",
        "sim-key",
        Some(Duration::from_millis(50)),
        &tianguis_web::api::callback_url(&app.base),
    );
    tokio::spawn(async move { axum::serve(sim, router).await.unwrap() });
    net.cut();
    let mut buyer = Browser::login(&app.base, "+520000002000").await;
    buyer
        .post("/cart/add", &[("product_id", "5"), ("quantity", "1")])
        .await;
    let (_, html) = buyer.get("/checkout").await;
    let key = checkout_key(&html);
    let (s, loc) = buyer
        .post(
            "/checkout",
            &[
                ("idempotency_key", &key),
                ("address", "X722+FQ Santa Ana"),
                ("phone", "+520000002000"),
                ("method", "mobile_money"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
    let pay: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
    let p = app.db.payment(pay).await.unwrap();
    assert_eq!(
        (p.status.as_str(), p.provider_ref.is_none()),
        ("pending", true),
        "the request did not get through"
    );
    net.restore();
    for _ in 0..150 {
        if app.db.payment(pay).await.unwrap().status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = app.db.payment(pay).await.unwrap();
    assert_eq!(
        p.status, "succeeded",
        "asked again when the provider could be reached"
    );
    assert!(p.provider_ref.is_some());
    let totals = app
        .db
        .ledger_totals(app.db.currency().await.unwrap())
        .await
        .unwrap();
    assert!(totals.holds(), "{totals:?}");
    let paid = app.db.checkout_orders(p.checkout_id).await.unwrap();
    assert!(paid.iter().all(|o| o.state.as_str() == "paid"), "paid once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn texted_codes_and_tracking_lookups_are_rate_limited() {
    let app = spawn_on(testdb::sqlite().await, false, |c| c.codes_per_minute = 3).await;
    let mut anon = Browser::new(&app.base).await;
    for _ in 0..3 {
        assert_eq!(anon.get("/track/ABCDEFGH").await.0, StatusCode::NOT_FOUND);
    }
    let (s, body) = anon.get("/track/ABCDEFGH").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    anon.get("/claim").await;
    let (s, _) = anon.post("/claim", &[("phone", "+529510001234")]).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the same bucket for texted codes"
    );
    assert!(
        app.db.outbox(10).await.unwrap().is_empty(),
        "no text was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn officials_assign_businesses_to_a_champion_and_pay_a_reached_milestone_once() {
    use tianguis_demo::DEMO_CHAMPION_PHONE;
    for app in apps(true).await {
        let db = &app.db;
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (s, page) = admin.get("/admin/champions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("Sofía Campeona") && page.contains("paid"),
            "{page}"
        );
        // A fourth business (every demo shop has listings, so "listed" is reached at once).
        let taken: Vec<i64> = db
            .champion_board(None)
            .await
            .unwrap()
            .iter()
            .map(|a| a.seller_id)
            .collect();
        let shop = db
            .seller_names()
            .await
            .unwrap()
            .into_iter()
            .find(|(id, _)| !taken.contains(id))
            .unwrap()
            .0;
        let (s, loc) = admin
            .post(
                "/admin/champions",
                &[
                    ("phone", DEMO_CHAMPION_PHONE),
                    ("seller_id", &shop.to_string()),
                    ("milestone", "listed"),
                    ("bounty", "500"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let a = db
            .champion_board(None)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.seller_id == shop)
            .unwrap();
        assert!(a.reached && a.paid_at.is_none());
        assert_eq!(a.bounty.minor, 50_000);
        // A fifth is refused: a champion takes at most four.
        let other = db
            .seller_names()
            .await
            .unwrap()
            .into_iter()
            .find(|(id, _)| !taken.contains(id) && *id != shop)
            .unwrap()
            .0;
        let (s, body) = admin
            .post(
                "/admin/champions",
                &[
                    ("phone", DEMO_CHAMPION_PHONE),
                    ("seller_id", &other.to_string()),
                    ("milestone", "listed"),
                    ("bounty", "500"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        let before = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap()
            .payouts;
        assert_eq!(
            admin
                .post(&format!("/admin/champions/{}/pay", a.id), &[])
                .await
                .0,
            StatusCode::SEE_OTHER
        );
        assert!(
            admin
                .post(&format!("/admin/champions/{}/pay", a.id), &[])
                .await
                .0
                .is_client_error(),
            "paid once"
        );
        let totals = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap();
        assert_eq!(totals.payouts, before, "awarded, not yet paid out");
        assert!(totals.holds(), "{totals:?}");
        let champion = db.user_by_phone(DEMO_CHAMPION_PHONE).await.unwrap();
        assert!(
            db.payee_owed(
                tianguis_domain::payout::Payee::Champion(champion.id),
                db.currency().await.unwrap()
            )
            .await
            .unwrap()
            .minor
                >= 50_000,
            "owed to the champion: it leaves with the next payout batch"
        );
        // The champion sees their businesses and how far each has come.
        let mut champ = Browser::login(&app.base, DEMO_CHAMPION_PHONE).await;
        let (s, page) = champ.get("/champion").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("first sale")
                && page.contains("went up a journey level")
                && page.contains("paid"),
            "{page}"
        );
        assert_eq!(champ.get("/admin/champions").await.0, StatusCode::FORBIDDEN);
    }
}

/// Trust holes of a default install, each closed on both databases: the SMS simulator's
/// inbox, codes texted to accounts that have a password, the mobile-money simulator's callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulators_are_not_a_way_in_and_claiming_never_resets_a_password() {
    for app in apps(true).await {
        let db = &app.db;
        // The simulator's inbox is for admins only.
        let mut anon = Browser::new(&app.base).await;
        assert!(denied(anon.get("/sim/sms/messages").await.0, ""));
        // /claim on the admin's phone texts nothing: the admin has a password.
        anon.get("/claim").await;
        let before = db.outbox(500).await.unwrap().len();
        let (s, page) = anon.post("/claim", &[("phone", DEMO_ADMIN_PHONE)]).await;
        assert_eq!(s, StatusCode::OK, "the same answer either way: {page}");
        assert_eq!(
            db.outbox(500).await.unwrap().len(),
            before,
            "no code texted"
        );
        // Guessing a code for it gets nowhere either.
        let (s, _) = anon
            .post(
                "/claim",
                &[
                    ("phone", DEMO_ADMIN_PHONE),
                    ("code", "123456"),
                    ("password", "taken-over-1"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            tianguis_app::people::authenticate(db, DEMO_ADMIN_PHONE, DEMO_PASSWORD)
                .await
                .unwrap()
                .is_some(),
            "the admin's password stands"
        );
        // "Forgot password" is the way for an account with a password: it texts a code, the
        // new password works, every old session ends.
        let mut seller = Browser::login(&app.base, "+520000001001").await;
        let mut someone = Browser::new(&app.base).await;
        someone.get("/password/forgot").await;
        let (s, _) = someone
            .post("/password/forgot", &[("phone", "+520000001001")])
            .await;
        assert_eq!(s, StatusCode::OK);
        let code = app.code_texted_to("+520000001001").await;
        let (s, loc) = someone
            .post(
                "/password/forgot",
                &[
                    ("phone", "+520000001001"),
                    ("code", &code),
                    ("password", "nueva-clave-9"),
                ],
            )
            .await;
        assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/login?reset=1"));
        assert_eq!(seller.get("/shop").await.0, StatusCode::UNAUTHORIZED);
        assert!(
            tianguis_app::people::authenticate(db, "+520000001001", "nueva-clave-9")
                .await
                .unwrap()
                .is_some()
        );
        // "Forgot password" is not a way to claim an account made at a centre.
        let walk_in = db
            .create_unclaimed_user("+529510004321", "Doña Rosa", None)
            .await
            .unwrap();
        assert!(!walk_in.has_password);
        let before = db.outbox(500).await.unwrap().len();
        someone
            .post("/password/forgot", &[("phone", "+529510004321")])
            .await;
        assert_eq!(db.outbox(500).await.unwrap().len(), before);
        // The mobile-money simulator calls back this server only.
        let sim_key = reqwest::Client::new()
            .post(format!("{}/sim/momo/v1/payments", app.base))
            .json(&serde_json::json!({"reference": "x", "amount_minor": 100, "currency": "MXN", "payer_phone": "+529510000001", "callback_url": "http://127.0.0.1:9/steal"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sim_key.status(), StatusCode::UNAUTHORIZED, "needs its key");
    }
}

/// A checkout is validated before the write lock: too many lines, quantities hidden in a
/// merge, a key reused for another request, a huge body; and the API is rate limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_are_checked_before_the_write_lock_and_keys_mean_one_request() {
    for app in apps(true).await {
        let c = reqwest::Client::new();
        let buyer = app.db.user_by_phone("+520000002000").await.unwrap();
        let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
        let items = app
            .db
            .search(&tianguis_store::catalog::SearchQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .products;
        let ids: Vec<i64> = items.iter().filter(|p| p.stock > 5).map(|p| p.id).collect();
        let post = |key: &str, body: serde_json::Value| {
            c.post(format!("{}/api/v1/checkout", app.base))
                .bearer_auth(&token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
        };
        let body = |lines: Vec<(i64, i64)>, address: &str| {
            serde_json::json!({
                "lines": lines.iter().map(|(p, q)| serde_json::json!({"product_id": p, "quantity": q})).collect::<Vec<_>>(),
                "method": "cash", "address": address, "phone": "+529510000001"
            })
        };
        // 101 different products: refused, nothing taken.
        let many: Vec<(i64, i64)> = (0..101).map(|i| (100_000 + i, 1)).collect();
        let r = post("too-many", body(many, "Santa Ana")).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CONFLICT,
            "as every checkout refusal"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("100"), "{v}");
        // A negative line cannot hide in a positive sum.
        let r = post(
            "negative",
            body(vec![(ids[0], 3), (ids[0], -2)], "Santa Ana"),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        // 256,000 lines in a 10 MB body are refused without reaching the database.
        let flood = format!(
            "{{\"lines\":[{}],\"method\":\"cash\",\"address\":\"x\",\"phone\":\"+529510000001\"}}",
            vec![format!("{{\"product_id\":{},\"quantity\":1}}", ids[0]); 256_000].join(",")
        );
        let started = std::time::Instant::now();
        let r = c
            .post(format!("{}/api/v1/checkout", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", "flood")
            .header("content-type", "application/json")
            .body(flood)
            .send()
            .await;
        match r {
            Ok(r) => assert!(matches!(r.status().as_u16(), 409 | 413), "{}", r.status()),
            // The server answered 413 and closed before the client finished writing.
            Err(e) => assert!(e.is_request(), "{e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        // The same key with another request: 422, and the first result is untouched.
        let r = post("key-1", body(vec![(ids[1], 1)], "Santa Ana"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let first: serde_json::Value = r.json().await.unwrap();
        let r = post("key-1", body(vec![(ids[2], 2)], "Santa Ana"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains("already used"),
            "{v}"
        );
        let r = post("key-1", body(vec![(ids[1], 1)], "Santa Ana"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the same request replays");
        assert_eq!(r.json::<serde_json::Value>().await.unwrap(), first);
    }
    // The API checkout is rate limited per account (limits kept in the database).
    let app = spawn_on(testdb::sqlite().await, true, |c| c.checkout_per_minute = 2).await;
    let buyer = app.db.user_by_phone("+520000002000").await.unwrap();
    let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
    let c = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = c
            .post(format!("{}/api/v1/checkout", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", format!("rl-{i}"))
            .json(&serde_json::json!({"lines": [{"product_id": 5, "quantity": 1}], "method": "cash", "address": "Santa Ana", "phone": "+529510000001"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![201, 201, 429]);
}

/// Control characters are refused with the field named, the same on both databases: in
/// forms, queries, paths and JSON; never a 500, never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_characters_are_refused_everywhere_the_same_way() {
    for app in apps(true).await {
        let mut b = Browser::new(&app.base).await;
        b.get("/signup").await;
        let (s, page) = b
            .post(
                "/signup",
                &[
                    ("name", "Ana\0Nul"),
                    ("phone", "+529510001111"),
                    ("password", "segura-123"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(
            page.contains("&#34;name&#34;") && page.contains("control character"),
            "{page}"
        );
        assert!(
            app.db.user_by_phone("+529510001111").await.is_err(),
            "not stored"
        );
        // However the form's media type is spelled, and a body that is not a form at all is
        // not read as one.
        b.get("/signup").await;
        let body = format!(
            "name=Ana%00Nul&phone=%2B529510001111&password=segura-123&csrf={}",
            b.csrf
        );
        for (ct, want) in [
            (
                "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ] {
            let r =
                b.c.post(format!("{}/signup", app.base))
                    .header("content-type", ct)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
            assert_eq!(r.status(), want, "{ct}");
        }
        assert!(app.db.user_by_phone("+529510001111").await.is_err());
        for path in ["/search?q=caf%00e", "/track/AB%00CDEFG", "/products/%00"] {
            let (s, page) = b.get(path).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {page}");
        }
        let buyer = app.db.user_by_phone("+520000002000").await.unwrap();
        let token = app.db.create_api_token(buyer.id, "t").await.unwrap();
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/checkout", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", "nul")
            .header("content-type", "application/json")
            .body(r#"{"lines":[{"product_id":5,"quantity":1}],"method":"cash","address":"casa\u0000azul","phone":"+529510000001"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("address"), "{v}");
        // A seller's listing (multipart) too.
        let mut seller = Browser::login(&app.base, "+520000001000").await;
        seller.get("/shop/products/new").await;
        let category = app.db.categories().await.unwrap()[0].id.to_string();
        let (s, page) = seller
            .post_multipart(
                "/shop/products/new",
                &[
                    ("name_en", "Mole"),
                    ("category_id", &category),
                    ("price", "10"),
                    ("stock", "1"),
                    ("description", "rich\u{0}mole"),
                ],
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("description"), "{page}");
    }
}

/// The edit form never sells units twice: it saves only if stock is still what it showed.
/// Amounts keep the currency's decimals, and a currency without decimals edits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_edit_form_keeps_sold_stock_and_exact_amounts() {
    for app in apps(true).await {
        let db = &app.db;
        let seller_user = db.user_by_phone("+520000001000").await.unwrap();
        let sid = seller_user.seller_id.unwrap();
        let p = db
            .search(&tianguis_store::catalog::SearchQuery {
                seller_id: Some(sid),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .products
            .remove(0);
        // Ten in stock; the seller opens the edit form.
        let input = |stock: i64, price: i64| tianguis_store::catalog::ProductInput {
            category_id: p.category_id,
            name_en: p.name_en.clone(),
            name_es: p.name_es.clone(),
            name_bn: p.name_bn.clone(),
            name_sw: p.name_sw.clone(),
            description: p.description.clone(),
            price_minor: price,
            stock,
        };
        db.update_product(sid, p.id, &input(10, p.price.minor), None)
            .await
            .unwrap();
        let mut seller = Browser::login(&app.base, "+520000001000").await;
        let (_, form) = seller.get(&format!("/shop/products/{}/edit", p.id)).await;
        assert!(form.contains("name=\"stock_seen\" value=\"10\""), "{form}");
        // Meanwhile a buyer takes 4.
        tianguis_app::orders::checkout(
            db,
            &tianguis_store::orders::CheckoutRequest {
                buyer_id: db.user_by_phone("+520000002000").await.unwrap().id,
                lines: vec![(p.id, 4)],
                session_id: None,
                idempotency_key: "stock-race".into(),
                method: tianguis_store::orders::PaymentMethod::Cash,
                address: "Santa Ana".into(),
                phone: "+529510000001".into(),
                pickup_point_id: None,
                on_behalf: None,
                limits: Vec::new(),
            },
        )
        .await
        .unwrap();
        let category = p.category_id.to_string();
        let fields = |price: &'static str, stock: &'static str, seen: &'static str| {
            vec![
                ("name_en", "Renamed"),
                (
                    "category_id",
                    Box::leak(category.clone().into_boxed_str()) as &str,
                ),
                ("price", price),
                ("stock", stock),
                ("stock_seen", seen),
            ]
        };
        let (s, page) = seller
            .post_multipart(
                &format!("/shop/products/{}/edit", p.id),
                &fields("12.50", "10", "10"),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{page}");
        assert!(page.contains("from 10 to 6"), "{page}");
        let now = db.product(p.id).await.unwrap();
        assert_eq!(now.stock, 6, "the sale stands");
        assert_eq!(now.name_en, p.name_en, "nothing saved");
        // More decimals than the currency has: refused, not read as thousands.
        let (s, page) = seller
            .post_multipart(
                &format!("/shop/products/{}/edit", p.id),
                &fields("12.345", "6", "6"),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert_ne!(db.product(p.id).await.unwrap().price.minor, 1_234_500);
        let (s, _) = seller
            .post_multipart(
                &format!("/shop/products/{}/edit", p.id),
                &fields("12.50", "8", "6"),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let now = db.product(p.id).await.unwrap();
        assert_eq!((now.stock, now.price.minor), (8, 1250));
    }
    // A marketplace in Uganda shillings (no decimals): the form shows 1500 and saves it back.
    let app = spawn_on(testdb::sqlite().await, false, |_| {}).await;
    let db = &app.db;
    db.set_setting("currency", "UGX").await.unwrap();
    let place = db.create_place("Gulu", "town", None).await.unwrap();
    let cat = db
        .create_category("food", "Food", "Comida", None)
        .await
        .unwrap();
    let u = tianguis_app::people::create_user(
        db,
        tianguis_app::people::NewUser {
            phone: "+256700000001",
            email: None,
            name: "Akello",
            password: DEMO_PASSWORD,
            role: tianguis_store::users::Role::Buyer,
            place_id: Some(place),
        },
    )
    .await
    .unwrap();
    let sid = db
        .create_seller(u.id, "Akello Foods", place, 1, true)
        .await
        .unwrap();
    let pid = db
        .create_product(
            sid,
            &tianguis_store::catalog::ProductInput {
                category_id: cat,
                name_en: "Matoke".into(),
                price_minor: 1500,
                stock: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut seller = Browser::login(&app.base, "+256700000001").await;
    let (_, form) = seller.get(&format!("/shop/products/{pid}/edit")).await;
    assert!(form.contains("value=\"1500\""), "{form}");
    let cat = cat.to_string();
    let (s, page) = seller
        .post_multipart(
            &format!("/shop/products/{pid}/edit"),
            &[
                ("name_en", "Matoke"),
                ("category_id", &cat),
                ("price", "1500"),
                ("stock", "3"),
                ("stock_seen", "3"),
            ],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(db.product(pid).await.unwrap().price.minor, 1500);
}

/// Visitors cost no session row until something must be kept; limits live in the database
/// (every server sees them), are keyed per phone as well as per address, and believe a proxy's
/// header only from a trusted proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_are_made_when_needed_and_limits_are_shared_and_fair() {
    for app in apps(true).await {
        let before = app.db.session_count().await.unwrap();
        let c = reqwest::Client::new();
        for i in 0..100 {
            let path = if i % 2 == 0 {
                "/".to_string()
            } else {
                format!("/photos/{}", i / 2 + 1)
            };
            let r = c.get(format!("{}{path}", app.base)).send().await.unwrap();
            assert!(r.status().as_u16() < 500);
        }
        assert_eq!(
            app.db.session_count().await.unwrap(),
            before,
            "200 cookieless requests made no session"
        );
        // A cart is kept: now there is a session.
        let mut b = Browser::new(&app.base).await;
        b.get("/products/5").await;
        b.post("/cart/add", &[("product_id", "5"), ("quantity", "1")])
            .await;
        assert_eq!(app.db.session_count().await.unwrap(), before + 1);
        let (_, cart) = b.get("/cart").await;
        assert!(cart.contains("name=\"quantity\""), "the cart kept the line");
    }
    // Two servers on one database count one set of failures: three wrong passwords across them
    // lock that phone, not another person's right password from the same address.
    let t = testdb::sqlite().await;
    let url = t.url.clone();
    let one = spawn_on(t, true, |c| c.login_per_minute = 3).await;
    let other_db = Db::connect(&url).await.unwrap();
    let two = spawn_on_db(other_db, |c| c.login_per_minute = 3).await;
    let mut statuses = Vec::new();
    for (i, base) in [&one.base, &two.base, &one.base, &two.base]
        .iter()
        .enumerate()
    {
        let mut b = Browser::new(base).await;
        b.get("/login").await;
        let (s, _) = b
            .post(
                "/login",
                &[
                    ("phone", "+520000002000"),
                    ("password", &format!("wrong-{i}")),
                ],
            )
            .await;
        statuses.push(s.as_u16());
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 429],
        "one count across servers"
    );
    // Someone else at the same digital centre (same address) still signs in.
    let mut neighbour = Browser::new(&two.base).await;
    neighbour.get("/login").await;
    let (s, _) = neighbour
        .post(
            "/login",
            &[("phone", "+520000001000"), ("password", DEMO_PASSWORD)],
        )
        .await;
    assert_eq!(
        s,
        StatusCode::SEE_OTHER,
        "the right password of another phone works"
    );
    // Behind a trusted proxy, each client is counted by its own address; an untrusted peer's
    // header is ignored.
    let proxied = spawn_on(testdb::sqlite().await, false, |c| {
        c.codes_per_minute = 2;
        c.client_ip_header = Some("x-forwarded-for".into());
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let look = |ip: &'static str| {
        let base = proxied.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/track/ZZZZZZZZ"))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let a: Vec<u16> = vec![
        look("198.51.100.1").await,
        look("198.51.100.1").await,
        look("198.51.100.1").await,
    ];
    assert_eq!(a, vec![404, 404, 429]);
    assert_eq!(
        look("198.51.100.2").await,
        404,
        "another client behind the proxy"
    );
    let direct = spawn_on(testdb::sqlite().await, false, |c| {
        c.codes_per_minute = 2;
        c.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let mut seen = Vec::new();
    for ip in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        seen.push(
            reqwest::Client::new()
                .get(format!("{}/track/ZZZZZZZZ", direct.base))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        seen,
        vec![404, 404, 429],
        "a header from an untrusted peer changes nothing"
    );
}

/// A job that cannot succeed is given up and shown to officials, who can send it round again;
/// timers run in their own lane whatever the providers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_the_gateway_refuses_is_given_up_and_officials_see_it() {
    for app in apps(true).await {
        // The gateway refuses numbers ending in 0000 (invalid): the walk-in's code text.
        app.db
            .create_unclaimed_user("+529510070000", "Don Refu", None)
            .await
            .unwrap();
        let mut b = Browser::new(&app.base).await;
        b.get("/claim").await;
        b.post("/claim", &[("phone", "+529510070000")]).await;
        let mut dead = Vec::new();
        for _ in 0..100 {
            dead = app.db.jobs_in("dead", 10).await.unwrap();
            if !dead.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            dead.len(),
            1,
            "given up at once: an invalid number stays invalid: {dead:#?}"
        );
        assert_eq!(dead[0].kind, "sms");
        assert!(
            app.db
                .outbox(5)
                .await
                .unwrap()
                .iter()
                .any(|m| m.to_phone == "+529510070000" && m.status == "failed"),
            "the message is marked failed for officials"
        );
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (s, page) = admin.get("/admin/jobs").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("Given up") && page.contains("recipient refused"),
            "{page}"
        );
        assert!(denied(b.get("/admin/jobs").await.0, ""));
        let (s, _) = admin
            .post(&format!("/admin/jobs/{}/retry", dead[0].id), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        // Sent round again with fresh attempts: it runs once more, and (the number is still
        // invalid) is given up again after that one attempt.
        let first_attempts = dead[0].attempts;
        let mut again = None;
        for _ in 0..100 {
            again = app
                .db
                .jobs_in("dead", 10)
                .await
                .unwrap()
                .into_iter()
                .find(|j| j.id == dead[0].id && j.finished_at > dead[0].finished_at);
            if again.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let again = again.expect("the job ran again");
        assert_eq!((first_attempts, again.attempts), (1, 1));
        let metrics = app.metrics().await;
        assert!(metrics.contains("tianguis_jobs{"), "{metrics}");
    }
}

/// Payouts reach wallets exactly once through the disbursement API: a second official approves
/// (the one who prepared is refused), transfers are asked while the network is cut and again
/// when it is back, an answer lost on the way is not paid twice (the same reference), a wallet
/// that does not exist fails and the money goes back to the seller's balance; the ledger holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payouts_reach_wallets_once_through_a_cut_network() {
    use tianguis_domain::kinds::{BatchStatus, LineStatus, PayoutChannel};
    use tianguis_domain::payout::Payee;
    for t in testdb::all().await {
        let sim = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_addr = format!("http://{}", sim.local_addr().unwrap());
        let net = Network::start(&sim_addr).await;
        let ledger = tianguis_web::disburse::SimLedger::default();
        let router =
            tianguis_web::disburse::simulator("api-user", "api-key", "sub-key", ledger.clone());
        tokio::spawn(async move { axum::serve(sim, router).await.unwrap() });
        let url = net.base.clone();
        let app = spawn_on(t, true, move |c| {
            c.payout_base_url = url;
            c.payout_api_user = "api-user".into();
            c.payout_api_key = "api-key".into();
            c.payout_subscription_key = "sub-key".into();
            c.payout_simulator = false;
        })
        .await;
        let db = &app.db;
        let cur = db.currency().await.unwrap();
        let admin = db.user_by_phone(DEMO_ADMIN_PHONE).await.unwrap();
        // Two shops that are owed: one wallet does not exist, one answer gets lost.
        let mut owed = Vec::new();
        for (sid, _) in db.seller_names().await.unwrap() {
            let m = db.payee_owed(Payee::Seller(sid), cur).await.unwrap();
            let owner = db
                .user(db.seller(sid).await.unwrap().user_id)
                .await
                .unwrap();
            if m.minor >= 1000 && owner.has_password {
                owed.push(sid);
            }
        }
        assert!(owed.len() >= 3, "the demo's shops are owed money");
        for (sid, wallet) in [(owed[0], "+529511100000"), (owed[1], "+529511100001")] {
            tianguis_app::payouts::set_method(
                db,
                &admin,
                Payee::Seller(sid),
                PayoutChannel::MobileMoney,
                wallet,
            )
            .await
            .unwrap();
        }
        let failing_owed = db.payee_owed(Payee::Seller(owed[0]), cur).await.unwrap();
        tianguis_app::people::create_user(
            db,
            tianguis_app::people::NewUser {
                phone: "+520000000077",
                email: None,
                name: "Second official",
                password: DEMO_PASSWORD,
                role: tianguis_store::users::Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let mut ana = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let mut beto = Browser::login(&app.base, "+520000000077").await;
        ana.get("/admin/payouts").await;
        let (s, loc) = ana.post("/admin/payouts", &[]).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let batch: i64 = loc.trim_start_matches("/admin/payouts/").parse().unwrap();
        let (s, page) = ana.get(&loc).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("+529511100000"), "{page}");
        let (s, page) = ana
            .post(&format!("/admin/payouts/{batch}/approve"), &[])
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "four eyes: {page}");
        assert!(page.contains("Another official"), "{page}");
        net.cut();
        beto.get(&loc).await;
        let (s, _) = beto
            .post(&format!("/admin/payouts/{batch}/approve"), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let mobile = db
            .payout_lines(batch)
            .await
            .unwrap()
            .iter()
            .filter(|l| l.channel == PayoutChannel::MobileMoney)
            .count();
        assert!(mobile >= 3);
        // The queue keeps asking (its clock moved past each backoff); the network comes back.
        let mut settled = false;
        for round in 0..120 {
            if round == 6 {
                assert!(ledger.transfers().is_empty(), "nothing got through the cut");
                net.restore();
            }
            db.clock.advance(Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(250)).await;
            if db.payout_batch(batch).await.unwrap().status == BatchStatus::Done {
                settled = true;
                break;
            }
        }
        assert!(settled, "the batch finished");
        let lines = db.payout_lines(batch).await.unwrap();
        let sent = ledger.transfers();
        assert_eq!(sent.len(), mobile, "one transfer per line: {sent:#?}");
        for l in &lines {
            let n = sent.iter().filter(|x| x.reference == l.reference).count();
            assert_eq!(n, 1, "line {} asked of the provider once", l.id);
            if l.payee == Payee::Seller(owed[0]) {
                assert_eq!(l.status, LineStatus::Failed);
                assert_eq!(l.failure.as_deref(), Some("PAYEE_NOT_FOUND"));
            } else {
                assert_eq!(l.status, LineStatus::Paid, "line {}", l.id);
            }
        }
        assert_eq!(
            db.payee_owed(Payee::Seller(owed[0]), cur).await.unwrap(),
            failing_owed,
            "the failed transfer's money is back"
        );
        assert!(db.ledger_totals(cur).await.unwrap().holds());
        // The seller sees it on their page.
        let lost = db.seller(owed[1]).await.unwrap();
        let phone = db.user(lost.user_id).await.unwrap().phone;
        let mut seller = Browser::login(&app.base, &phone).await;
        let (s, page) = seller.get("/payouts").await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("+529511100001"), "{page}");
    }
}

/// Replies to our texts: the gateway forwards STOP and START to the inbound endpoint (only
/// with its token); STOP leaves only the texts a person needs, START brings the rest back, and
/// each is confirmed by text. A person can choose the same on their orders page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_to_texts_stop_and_start_them() {
    for t in testdb::all().await {
        let app = spawn_on(t, true, |c| c.sms_inbound_token = "inbound-tok-123".into()).await;
        let db = &app.db;
        let http = reqwest::Client::new();
        let post = |token: &'static str, from: &'static str, text: &'static str| {
            let (http, base) = (http.clone(), app.base.clone());
            async move {
                http.post(format!("{base}/api/v1/sms/inbound/{token}"))
                    .form(&[
                        ("from", from),
                        ("to", "12345"),
                        ("text", text),
                        ("id", "x"),
                        ("date", "2026-12-02"),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        let r = post("wrong", "+520000002000", "STOP").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(
            !db.user_by_phone("+520000002000")
                .await
                .unwrap()
                .texts_stopped
        );
        assert_eq!(
            post("inbound-tok-123", "+520000002000", "Stop")
                .await
                .status(),
            StatusCode::OK
        );
        assert!(
            db.user_by_phone("+520000002000")
                .await
                .unwrap()
                .texts_stopped
        );
        assert!(
            db.outbox(5)
                .await
                .unwrap()
                .iter()
                .any(|m| m.to_phone == "+520000002000" && m.template == "sms-stopped"),
            "the confirmation is on its way"
        );
        // Not a command, or nobody's phone: nothing changes, the gateway still gets its 200.
        assert_eq!(
            post("inbound-tok-123", "+520000002000", "gracias")
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            post("inbound-tok-123", "not a phone", "STOP")
                .await
                .status(),
            StatusCode::OK
        );
        assert!(
            db.user_by_phone("+520000002000")
                .await
                .unwrap()
                .texts_stopped
        );
        // On the page: all texts again.
        let mut b = Browser::login(&app.base, "+520000002000").await;
        // The buyer sees the texts about their order, sent to the phone they gave at checkout.
        let me = db.user_by_phone("+520000002000").await.unwrap();
        let mut told = None;
        for o in db.orders_for(&me, false, None, 50).await.unwrap() {
            let t = db.order_texts(o.id).await.unwrap();
            if let Some(m) = t
                .iter()
                .find(|m| m.to_phone == o.phone && m.to_phone != me.phone)
            {
                told = Some((o.id, m.template.clone()));
                break;
            }
        }
        let (oid, _) = told.expect("a demo order texted to its checkout phone");
        let (_, page) = b.get(&format!("/orders/{oid}")).await;
        assert!(page.contains("— tianguis:"), "{page}");
        let (_, page) = b.get("/orders").await;
        assert!(page.contains("name=\"stop\" value=\"1\" checked"), "{page}");
        let (s, _) = b.post("/texts", &[]).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(
            !db.user_by_phone("+520000002000")
                .await
                .unwrap()
                .texts_stopped
        );
    }
}

/// Signing in with a code texted to the phone (no password needed): the same answer for a phone
/// with no account, a wrong code refused with a clear message, and `next` followed once signed
/// in (a path on this site only).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_signs_in_with_a_texted_code_and_lands_where_they_were_going() {
    for app in apps(true).await {
        let mut b = Browser::new(&app.base).await;
        let (_, page) = b.get("/login?next=/orders").await;
        assert!(page.contains("name=\"next\" value=\"/orders\""), "{page}");
        let (_, evil) = b.get("/login?next=//evil.example").await;
        assert!(!evil.contains("evil.example"), "only paths on this site");
        // A phone with no account: the same page, and no text.
        let (s, page) = b.post("/login/code", &[("phone", "+529510055555")]).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("name=\"code\""), "{page}");
        assert!(
            !app.db
                .outbox(50)
                .await
                .unwrap()
                .iter()
                .any(|m| m.to_phone == "+529510055555")
        );
        let phone = "+520000002001";
        let (s, _) = b
            .post("/login/code", &[("phone", phone), ("next", "/orders")])
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, page) = b
            .post(
                "/login/code",
                &[("phone", phone), ("code", "000000"), ("next", "/orders")],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("class=\"err\""), "{page}");
        let text = app
            .text_to(phone, |m| m.contains("sign in") || m.contains("entrar"))
            .await;
        let code: String = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_string();
        let (s, loc) = b
            .post(
                "/login/code",
                &[("phone", phone), ("code", &code), ("next", "/orders")],
            )
            .await;
        assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/orders"));
        let (s, _) = b.get("/orders").await;
        assert_eq!(s, StatusCode::OK, "signed in");
        // The code is spent.
        let mut other = Browser::new(&app.base).await;
        other.get("/login").await;
        let (s, _) = other
            .post("/login/code", &[("phone", phone), ("code", &code)])
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// The cart is the person's once signed in: what they put in it on one device is there when
/// they sign in on another, together with what they chose there as a guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cart_follows_the_person_to_another_device() {
    for app in apps(true).await {
        let mut phone_a = Browser::login(&app.base, "+520000002003").await;
        phone_a
            .post("/cart/add", &[("product_id", "2"), ("quantity", "1")])
            .await;
        let mut centre_pc = Browser::new(&app.base).await;
        centre_pc.get("/products/3").await;
        let (s, loc) = centre_pc
            .post("/cart/add", &[("product_id", "3"), ("quantity", "2")])
            .await;
        assert_eq!((s, loc.as_str()), (StatusCode::SEE_OTHER, "/cart"));
        centre_pc.get("/login").await;
        let (s, loc) = centre_pc
            .post(
                "/login",
                &[("phone", "+520000002003"), ("password", DEMO_PASSWORD)],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let (_, cart) = centre_pc.get("/cart").await;
        let p2 = app.db.product(2).await.unwrap();
        let p3 = app.db.product(3).await.unwrap();
        assert!(
            cart.contains(&p2.name_en) && cart.contains(&p3.name_en),
            "both devices' choices: {cart}"
        );
    }
}

/// One phone, one person: however a number is typed (with or without the country code,
/// spaces, brackets), it is the same account at signup, sign-in, the officials' search and the
/// API's checkout phone; numbers stored before normalisation that turn out to be one are
/// reported to an official, who gives the newer account its own number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phone_variants_are_one_person_and_old_duplicates_are_reported() {
    for app in apps(true).await {
        let db = &app.db;
        assert_eq!(db.setting("country").await.unwrap().as_deref(), Some("MX"));
        let mut b = Browser::new(&app.base).await;
        b.get("/signup").await;
        let (s, loc) = b
            .post(
                "/signup",
                &[
                    ("name", "Lupe Ruiz"),
                    ("phone", "951 765 4321"),
                    ("password", DEMO_PASSWORD),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let lupe = db.user_by_phone("+529517654321").await.unwrap();
        assert_eq!(lupe.phone, "+529517654321");
        for typed in ["+52 (951) 765-4321", "9517654321", "0052 951 765 4321"] {
            let mut b = Browser::new(&app.base).await;
            b.get("/login").await;
            let (s, loc) = b
                .post("/login", &[("phone", typed), ("password", DEMO_PASSWORD)])
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{typed}: {loc}");
            assert_eq!(db.user_by_phone(typed).await.unwrap().id, lupe.id);
        }
        let mut again = Browser::new(&app.base).await;
        again.get("/signup").await;
        let (s, page) = again
            .post(
                "/signup",
                &[
                    ("name", "Lupe otra vez"),
                    ("phone", "+52 951 765 4321"),
                    ("password", DEMO_PASSWORD),
                ],
            )
            .await;
        assert!(s.is_client_error(), "{s}");
        assert!(
            page.contains("already exists") || page.contains("Ya existe"),
            "{page}"
        );
        // The checkout phone given to the API is stored the same way.
        let token = db.create_api_token(lupe.id, "t").await.unwrap();
        let c = reqwest::Client::new();
        let products: serde_json::Value = c
            .get(format!("{}/api/v1/products?q=cafe&limit=1", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let product = products["items"][0]["id"].as_i64().unwrap();
        let r = c
            .post(format!("{}/api/v1/checkout", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", "phone-variants-1")
            .json(&serde_json::json!({
                "lines": [{"product_id": product, "quantity": 1}],
                "method": "mobile_money",
                "address": "X722+FQ Santa Ana",
                "phone": "(951) 765 4321"
            }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        let order = db.orders_for(&lupe, false, None, 10).await.unwrap()[0].clone();
        assert_eq!(order.phone, "+529517654321");
        // An official finds her by any spelling of the number.
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (s, page) = admin.get("/admin/users?q=951%20765%204321").await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Lupe Ruiz"), "{page}");
        let (_, page) = admin.get("/admin/users?q=lupe&role=seller").await;
        assert!(!page.contains("Lupe Ruiz"), "she does not sell");
        // Sellers: filtered in the database, biggest sales first, paged.
        use tianguis_store::directory::{PAGE_SIZE, SellerFilter};
        let all = db.find_sellers(&SellerFilter::default()).await.unwrap();
        assert!(!all.rows.is_empty() && all.rows.len() as i64 <= PAGE_SIZE);
        assert!(
            all.rows
                .windows(2)
                .all(|w| w[0].sales_minor >= w[1].sales_minor)
        );
        let women = db
            .find_sellers(&SellerFilter {
                women_led: true,
                with_sales: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(women.rows.iter().all(|r| r.women_led && r.sales > 0));
        let first = &all.rows[0];
        let by_name = db
            .find_sellers(&SellerFilter {
                text: first.shop_name.to_uppercase(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(by_name.rows.iter().any(|r| r.seller_id == first.seller_id));
        let (s, page) = admin
            .get(&format!(
                "/admin/sellers?q={}&sales=1",
                tianguis_web::caps::views::urlencode(&first.shop_name)
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains(&first.shop_name), "{page}");
        let far = db
            .find_sellers(&SellerFilter {
                page: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(far.rows.is_empty() && !far.more);
        // Rows from before normalisation: one national spelling of Lupe's number, one of a
        // number nobody else has, and one that is no number at all.
        let now = db.now_ms();
        db.raw_execute(&format!(
            "INSERT INTO users (phone, name, password_hash, role, created_at) VALUES \
             ('951 765 4321', 'Lupe vieja', '', 'buyer', {now}), \
             ('951-000-1234', 'Toño', '', 'buyer', {now}), \
             ('tel', 'Nadie', '', 'buyer', {now})"
        ))
        .await
        .unwrap();
        db.set_setting("phones_normalised_for", "").await.unwrap();
        assert_eq!(db.normalise_phones().await.unwrap(), 2);
        assert_eq!(db.normalise_phones().await.unwrap(), 0, "done once");
        let tono = db.user_by_phone("9510001234").await.unwrap();
        assert_eq!(
            (tono.name.as_str(), tono.phone.as_str()),
            ("Toño", "+529510001234")
        );
        assert_eq!(
            db.user_by_phone("9517654321").await.unwrap().id,
            lupe.id,
            "the older account keeps the number"
        );
        let reports = db.phone_reports().await.unwrap();
        assert_eq!(reports.len(), 2);
        let dup = reports.iter().find(|r| r.reason == "duplicate").unwrap();
        assert_eq!(dup.other_user_id, Some(lupe.id));
        assert_eq!(dup.e164.as_deref(), Some("+529517654321"));
        let (_, page) = admin.get("/admin").await;
        assert!(page.contains("2 accounts share a phone number"), "{page}");
        let (_, page) = admin.get("/admin/users").await;
        assert!(page.contains("Lupe vieja"), "{page}");
        assert!(page.contains("same number as another account"), "{page}");
        // Giving it a number already held is refused; its own number is taken.
        let path = format!("/admin/users/{}/phone", dup.user_id);
        let (s, page) = admin.post(&path, &[("phone", "951 765 4321")]).await;
        assert_eq!(s, StatusCode::CONFLICT, "{page}");
        let (s, _) = admin.post(&path, &[("phone", "951 765 0000")]).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(db.user(dup.user_id).await.unwrap().phone, "+529517650000");
        let (s, _) = admin
            .post(&format!("/admin/phone-reports/{}/settle", dup.id), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(db.phone_reports().await.unwrap().len(), 1);
        // A marketplace with no country yet asks for the country code.
        db.raw_execute("DELETE FROM settings WHERE key = 'country'")
            .await
            .unwrap();
        let mut c = Browser::new(&app.base).await;
        c.get("/signup").await;
        let (s, page) = c
            .post(
                "/signup",
                &[
                    ("name", "Sin país"),
                    ("phone", "951 111 2222"),
                    ("password", DEMO_PASSWORD),
                ],
            )
            .await;
        assert!(s.is_client_error(), "{s}");
        assert!(
            page.contains("country code") || page.contains("clave del país"),
            "{page}"
        );
    }
}

/// Cancelling an order asks first, on a second page; only the confirmation cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_an_order_asks_first() {
    for app in apps(true).await {
        let db = &app.db;
        let mut found = None;
        for o in db
            .all_orders(Some(tianguis_domain::process::OrderState::Paid), 100)
            .await
            .unwrap()
        {
            let buyer = db.user(o.buyer_id).await.unwrap();
            if buyer.has_password {
                found = Some((o, buyer));
                break;
            }
        }
        let (o, buyer) = found.expect("a paid order of a buyer with a password");
        let mut b = Browser::login(&app.base, &buyer.phone).await;
        let path = format!("/orders/{}/cancel", o.id);
        let (s, page) = b.post(&path, &[("reason", "changed my mind")]).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("value=\"changed my mind\""), "{page}");
        assert!(
            page.contains(&format!("href=\"/orders/{}\"", o.id)),
            "{page}"
        );
        assert_eq!(db.order(o.id).await.unwrap().state.as_str(), "paid");
        let (s, _) = b
            .post(&path, &[("reason", "changed my mind"), ("confirm", "1")])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(db.order(o.id).await.unwrap().state.as_str(), "cancelled");
    }
}

/// A declined mobile-money payment is tried again from another wallet, and then switched to
/// cash on delivery, from the order page: the order, its stock and its lines stay; only one
/// payment is ever open; the pages refresh themselves while the provider has not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_payment_is_tried_again_or_paid_another_way_without_losing_the_order() {
    for app in apps(true).await {
        let db = &app.db;
        let mut buyer = Browser::login(&app.base, "+520000002000").await;
        let (_, html) = buyer.get("/search?q=miel").await;
        let p = first_link(&html, "href=\"/products/");
        buyer.get(&format!("/products/{p}")).await;
        buyer
            .post(
                "/cart/add",
                &[("product_id", &p.to_string()), ("quantity", "1")],
            )
            .await;
        let stock = db.product(p).await.unwrap().stock;
        let (_, html) = buyer.get("/checkout").await;
        let key = checkout_key(&html);
        // The simulator declines wallets ending 999.
        let (s, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", key.as_str()),
                    ("address", "X722+FQ Santa Ana"),
                    ("phone", "+529510000999"),
                    ("method", "mobile_money"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let first: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        let mut failed = false;
        for _ in 0..100 {
            if db.payment(first).await.unwrap().status == "failed" {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(failed, "the simulator declined payment {first}");
        let order = db
            .checkout_orders(db.payment(first).await.unwrap().checkout_id)
            .await
            .unwrap()[0]
            .clone();
        let (_, page) = buyer.get(&format!("/orders/{}", order.id)).await;
        assert!(page.contains("did not go through"), "{page}");
        assert!(
            page.contains(&format!("/orders/{}/pay-again", order.id)),
            "{page}"
        );
        assert!(
            !page.contains("http-equiv=\"refresh\""),
            "nothing to wait for"
        );
        // Nobody else can choose for the buyer.
        let seller = db
            .user(db.seller(order.seller_id).await.unwrap().user_id)
            .await
            .unwrap();
        let mut other = Browser::login(&app.base, &seller.phone).await;
        let (s, _) = other
            .post(
                &format!("/orders/{}/pay-again", order.id),
                &[("method", "cash")],
            )
            .await;
        assert!(denied(s, ""), "{s}");
        // Again, from a wallet that pays.
        let (s, loc) = buyer
            .post(
                &format!("/orders/{}/pay-again", order.id),
                &[("method", "mobile_money"), ("phone", "951 000 0111")],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let second: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        assert_ne!(second, first);
        assert_eq!(db.payment(first).await.unwrap().status, "replaced");
        assert_eq!(
            db.payment(second).await.unwrap().payer_phone.as_deref(),
            Some("+529510000111")
        );
        // While it waits, the pages refresh themselves (no JavaScript).
        let (_, page) = buyer.get(&format!("/payments/{second}")).await;
        if db.payment(second).await.unwrap().status == "pending" {
            assert!(page.contains("http-equiv=\"refresh\""), "{page}");
        }
        wait_paid(db, second).await;
        let (_, page) = buyer.get(&format!("/orders/{}", order.id)).await;
        assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
        assert!(!page.contains("/pay-again"), "paid: nothing to choose");
        assert_eq!(db.order(order.id).await.unwrap().state.as_str(), "paid");
        assert_eq!(
            db.product(p).await.unwrap().stock,
            stock - 1,
            "stock taken once"
        );
        // Paid already: choosing again is refused with a message, not a second payment.
        let (s, page) = buyer
            .post(
                &format!("/orders/{}/pay-again", order.id),
                &[("method", "cash")],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains("has not failed"), "{page}");

        // A second checkout, declined, then switched to cash on delivery: the seller hears of
        // it and it is fulfilled unpaid.
        buyer.get(&format!("/products/{p}")).await;
        buyer
            .post(
                "/cart/add",
                &[("product_id", &p.to_string()), ("quantity", "1")],
            )
            .await;
        let (_, html) = buyer.get("/checkout").await;
        let key = checkout_key(&html);
        let (_, loc) = buyer
            .post(
                "/checkout",
                &[
                    ("idempotency_key", key.as_str()),
                    ("address", "X722+FQ Santa Ana"),
                    ("phone", "+529510000999"),
                    ("method", "mobile_money"),
                ],
            )
            .await;
        let pay: i64 = loc.trim_start_matches("/payments/").parse().unwrap();
        for _ in 0..100 {
            if db.payment(pay).await.unwrap().status == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let o2 = db
            .checkout_orders(db.payment(pay).await.unwrap().checkout_id)
            .await
            .unwrap()[0]
            .clone();
        let (_, page) = buyer.get(&format!("/payments/{pay}")).await;
        assert!(page.contains("/pay-again"), "{page}");
        let (s, loc) = buyer
            .post(
                &format!("/orders/{}/pay-again", o2.id),
                &[("method", "cash_on_delivery")],
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
        let o2 = db.order(o2.id).await.unwrap();
        assert_eq!(
            o2.method,
            tianguis_store::orders::PaymentMethod::CashOnDelivery
        );
        assert_eq!(
            o2.payment_status,
            Some(tianguis_store::orders::PaymentStatus::OnDelivery)
        );
        let told = db
            .outbox(500)
            .await
            .unwrap()
            .into_iter()
            .any(|m| m.to_phone == seller.phone && m.template == "sms-seller-new-order-cod");
        assert!(told, "the seller hears of the cash-on-delivery order");
        let (s, _) = other
            .post(&format!("/orders/{}/accept_on_delivery", o2.id), &[])
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "the seller sends it unpaid");
        assert!(
            db.ledger_totals(db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

/// The README's demo seller can walk every state of an order from their own shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_readme_demo_seller_has_orders_in_every_state() {
    use tianguis_domain::process::OrderState as S;
    for app in apps(true).await {
        let seller = app
            .db
            .user_by_phone(tianguis_demo::DEMO_SELLER_PHONE)
            .await
            .unwrap();
        let states: std::collections::HashSet<S> = app
            .db
            .orders_for(&seller, true, None, 1000)
            .await
            .unwrap()
            .iter()
            .map(|o| o.state)
            .collect();
        for s in [
            S::Placed,
            S::Paid,
            S::Accepted,
            S::Packed,
            S::Shipped,
            S::Delivered,
            S::Completed,
            S::Cancelled,
            S::ReturnRequested,
            S::Disputed,
            S::Resolved,
        ] {
            assert!(states.contains(&s), "no {s:?} order: {states:?}");
        }
        // A returned order is refunded as soon as the server's workers run.
        assert!(states.contains(&S::Returned) || states.contains(&S::Refunded));
    }
}

/// A provider's answer is believed only about the payment we asked for. References are random
/// (a restored backup hands out payment ids again, never references); a status answer or a
/// callback about another amount or reference is refused, shown to officials, never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_answer_about_another_payment_is_refused_and_shown_to_officials() {
    use axum::routing::{get, post};
    for t in testdb::all().await {
        // A provider that takes requests as asked but, asked later, describes its old payment
        // of another amount under the same reference (what a restored database met).
        let provider = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider_url = format!("http://{}", provider.local_addr().unwrap());
        let asked: std::sync::Arc<std::sync::Mutex<Vec<tianguis_web::payments::PaymentRequest>>> =
            Default::default();
        let seen = asked.clone();
        let router = axum::Router::new()
            .route(
                "/v1/payments",
                post(
                    move |axum::Json(r): axum::Json<tianguis_web::payments::PaymentRequest>| {
                        let seen = seen.clone();
                        async move {
                            seen.lock().unwrap().push(r.clone());
                            axum::Json(serde_json::json!({
                                "provider_ref": format!("OLD-{}", r.reference),
                                "status": "pending",
                                "reference": r.reference,
                                "amount_minor": r.amount_minor,
                                "currency": r.currency,
                            }))
                        }
                    },
                ),
            )
            .route(
                "/v1/payments/{r}",
                get(
                    |axum::extract::Path(r): axum::extract::Path<String>| async move {
                        axum::Json(serde_json::json!({
                            "provider_ref": r,
                            "status": "succeeded",
                            "reference": r.trim_start_matches("OLD-"),
                            "amount_minor": 363000,
                            "currency": "MXN",
                        }))
                    },
                ),
            );
        tokio::spawn(async move { axum::serve(provider, router).await.unwrap() });
        let app = spawn_on(t, true, move |c| {
            c.momo_base_url = provider_url;
            c.momo_api_key = "k".into();
            c.momo_secret = "provider-secret".into();
        })
        .await;
        let db = &app.db;
        let mut buyer = Browser::login(&app.base, "+520000002000").await;
        let mut pays = Vec::new();
        for _ in 0..2 {
            buyer
                .post("/cart/add", &[("product_id", "5"), ("quantity", "1")])
                .await;
            let (_, html) = buyer.get("/checkout").await;
            let key = checkout_key(&html);
            let (s, loc) = buyer
                .post(
                    "/checkout",
                    &[
                        ("idempotency_key", &key),
                        ("address", "X722+FQ Santa Ana"),
                        ("phone", "+520000002000"),
                        ("method", "mobile_money"),
                    ],
                )
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{loc}");
            pays.push(loc.trim_start_matches("/payments/").parse::<i64>().unwrap());
        }
        let (a, b) = (
            db.payment(pays[0]).await.unwrap(),
            db.payment(pays[1]).await.unwrap(),
        );
        assert!(
            a.reference.starts_with("tianguis-") && a.reference.len() == 41,
            "{a:?}"
        );
        assert_ne!(a.reference, b.reference);
        assert!(
            !a.reference.contains(&format!("-{}", a.id)),
            "not made from the id"
        );
        // The provider took both requests, under our references.
        for _ in 0..100 {
            if db.payment(pays[1]).await.unwrap().provider_ref.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sent: Vec<String> = asked
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.reference.clone())
            .collect();
        assert!(
            sent.contains(&a.reference) && sent.contains(&b.reference),
            "{sent:?}"
        );
        // Later, the status check meets the provider's old payment: refused, not applied.
        db.clock.advance(Duration::from_secs(120));
        // (The demo's own unpaid mobile-money orders meet the same provider: only ours count.)
        let ours = |v: Vec<tianguis_store::orders::RefusedAnswer>| {
            v.into_iter()
                .filter(|r| r.0 == Some(a.id) || r.0 == Some(b.id))
                .collect::<Vec<_>>()
        };
        let mut refused = Vec::new();
        for _ in 0..100 {
            refused = ours(db.provider_mismatches(500).await.unwrap());
            if refused.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|r| r.1 == "status" && r.2.field == "amount" && r.2.theirs == "363000")
        );
        for p in &pays {
            assert_eq!(
                db.payment(*p).await.unwrap().status.as_str(),
                "pending",
                "never applied"
            );
        }
        // While a payment waits, its pages refresh themselves (no JavaScript).
        let (_, page) = buyer.get(&format!("/payments/{}", pays[0])).await;
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
        let oid = db.checkout_orders(a.checkout_id).await.unwrap()[0].id;
        let (_, page) = buyer.get(&format!("/orders/{oid}")).await;
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
        // A signed callback about another amount or another reference is refused the same way.
        let provider_ref = db.payment(pays[0]).await.unwrap().provider_ref.unwrap();
        for (reference, amount) in [
            (a.reference.clone(), a.amount.minor + 1),
            ("tianguis-other".to_string(), a.amount.minor),
        ] {
            let body = serde_json::to_vec(&serde_json::json!({
                "provider_ref": provider_ref,
                "reference": reference,
                "status": "succeeded",
                "amount_minor": amount,
                "currency": "MXN",
            }))
            .unwrap();
            let r = reqwest::Client::new()
                .post(format!(
                    "{}/api/v1/payments/mobile-money/callback",
                    app.base
                ))
                .header("content-type", "application/json")
                .header(
                    "x-signature",
                    tianguis_web::payments::sign(b"provider-secret", &body),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        assert_eq!(
            db.payment(pays[0]).await.unwrap().status.as_str(),
            "pending"
        );
        assert_eq!(ours(db.provider_mismatches(500).await.unwrap()).len(), 4);
        let mut admin = Browser::login(&app.base, DEMO_ADMIN_PHONE).await;
        let (_, page) = admin.get("/admin").await;
        assert!(page.contains("Provider answers refused"), "{page}");
        assert!(page.contains("363000"), "{page}");
        // The given-up status checks are on the jobs page with the reason.
        let (_, jobs) = admin.get("/admin/jobs").await;
        assert!(jobs.contains("another payment"), "{jobs}");
    }
}

/// The database out of reach (the network to PostgreSQL cut, as when it restarts): pages and
/// the API answer 503 with a clear message and Retry-After, never a 500, and the server comes
/// back by itself when the database does, with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_a_clear_503_and_the_server_recovers_by_itself() {
    let Some(t) = testdb::postgres().await else {
        return;
    };
    tianguis_demo::seed(&t.db, false).await.unwrap();
    let pg = t
        .url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let pg_addr = if pg.contains(':') {
        pg.clone()
    } else {
        format!("{pg}:5432")
    };
    let pg_addr = pg_addr.replace("localhost", "127.0.0.1");
    let net = Network::start(&format!("http://{pg_addr}")).await;
    let via = t.url.replace(&pg, net.base.trim_start_matches("http://"));
    let db = Db::connect(&via).await.unwrap();
    let server = spawn_on_db(db, |_| {}).await;
    let c = reqwest::Client::new();
    let get = |path: &str| c.get(format!("{}{path}", server.base)).send();
    assert_eq!(
        get("/api/v1/products?limit=1").await.unwrap().status(),
        StatusCode::OK
    );
    let token =
        t.db.create_api_token(t.db.user_by_phone("+520000002000").await.unwrap().id, "t")
            .await
            .unwrap();
    let checkout = |key: &'static str| {
        c.post(format!("{}/api/v1/checkout", server.base))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&serde_json::json!({"lines": [{"product_id": 5, "quantity": 1}], "method": "cash", "address": "X722+FQ Santa Ana", "phone": "+520000002000"}))
            .send()
    };
    let before = checkout("outage-before").await.unwrap();
    assert_eq!(before.status(), StatusCode::CREATED);
    net.cut();
    let r = get("/api/v1/products?limit=1").await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach its data"),
        "{body}"
    );
    let r = c
        .get(format!("{}/", server.base))
        .header("accept-language", "es")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no puede llegar a sus datos")
    );
    assert_eq!(
        get("/healthz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let during = checkout("outage-during").await.unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    net.restore();
    // Back by itself: no restart.
    let mut back = false;
    for _ in 0..60 {
        if get("/healthz").await.unwrap().status() == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back, "the server came back when the database did");
    assert_eq!(
        get("/api/v1/products?limit=1").await.unwrap().status(),
        StatusCode::OK
    );
    // The checkout refused during the outage goes through when sent again, once; the one
    // before is intact.
    let again = checkout("outage-during").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let replay = checkout("outage-during").await.unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::OK,
        "a replay, not a second order"
    );
    let first: serde_json::Value = before.json().await.unwrap();
    let p =
        t.db.payment(first["payment_id"].as_i64().unwrap())
            .await
            .unwrap();
    assert_eq!(p.status.as_str(), "awaiting_cash");
    assert!(
        t.db.ledger_totals(t.db.currency().await.unwrap())
            .await
            .unwrap()
            .holds()
    );
}

/// The marketplace's public keys at the well-known address: each key, the retired one still
/// an assertion method (what it signed counts), a revoked one listed but not trusted; and a
/// credential signed with the key in use checks against that document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_signing_keys_are_published_as_a_did_document() {
    for app in apps(false).await {
        let get = || async {
            let r = reqwest::get(format!("{}/.well-known/did.json", app.base))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["content-type"], "application/did+json");
            r.json::<serde_json::Value>().await.unwrap()
        };
        let empty = get().await;
        assert_eq!(empty["verificationMethod"], serde_json::json!([]));
        let did = empty["id"].as_str().unwrap().to_string();
        assert!(did.starts_with("did:web:127.0.0.1%3A"), "{did}");
        let old = tianguis_app::credentials::new_key(&app.db, false)
            .await
            .unwrap();
        let cert = serde_json::json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"],
            "issuer": did,
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"name": "Ana"},
        });
        let signed = tianguis_app::credentials::issue(&app.db, &cert)
            .await
            .unwrap();
        let new = tianguis_app::credentials::new_key(&app.db, true)
            .await
            .unwrap();
        let doc = get().await;
        assert_eq!(doc["assertionMethod"].as_array().unwrap().len(), 2, "{doc}");
        assert_eq!(
            doc["verificationMethod"][1]["publicKeyMultibase"],
            new.public_multibase.as_str()
        );
        let now = app.db.now_ms();
        assert_eq!(tianguis_app::credentials::check(&signed, &doc, now), Ok(()));
        app.db
            .revoke_signing_key(&old.public_multibase)
            .await
            .unwrap();
        let doc = get().await;
        assert_eq!(doc["assertionMethod"].as_array().unwrap().len(), 1, "{doc}");
        assert!(matches!(
            tianguis_app::credentials::check(&signed, &doc, now),
            Err(tianguis_app::credentials::Invalid::Revoked(..))
        ));
    }
}

/// The diagnostic as a seller and a walk-in meet it, without JavaScript: the questionnaire in
/// the reader's language, the outcome with its next steps, a seller's take kept and the change
/// shown the next time; a form left half done is asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_diagnostic_scores_a_firm_and_shows_its_progress() {
    for t in testdb::all().await {
        let q = tianguis_app::diagnostic::load(
            include_str!("../../app/tests/data/questionnaire.toml"),
            &tianguis_web::i18n::lang_codes(),
        )
        .unwrap();
        let app = spawn_on(t, true, |c| {
            c.questionnaire = Some(std::sync::Arc::new(q));
        })
        .await;
        // A walk-in, in Spanish: the outcome, not kept.
        let mut walk_in = Browser::new(&app.base).await;
        walk_in.get("/lang/es").await;
        let (status, page) = walk_in.get("/diagnostic").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("¿Su negocio tiene una página en una red social?"),
            "{page}"
        );
        assert!(page.contains("Lo uso a diario"), "{page}");
        let half = [("social-page", "1")];
        let (_, page) = walk_in.post("/diagnostic", &half).await;
        assert!(page.contains("Responda todas las preguntas"), "{page}");
        let answers = [
            ("social-page", "1"),
            ("analytics", "3"),
            ("channels.marketplace", "1"),
            ("women-led", "yes"),
        ];
        let (status, page) = walk_in.post("/diagnostic", &answers).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Puntaje general: 39 de 100"), "{page}");
        assert!(
            page.contains("Nivel del camino 4: Vendedor en mercados"),
            "{page}"
        );
        assert!(
            page.contains("Publique sus productos en el mercado."),
            "{page}"
        );
        assert!(page.contains("No se guardó"), "{page}");
        // A seller: kept, and the second take shows the first.
        let mut seller = Browser::login(&app.base, tianguis_demo::DEMO_SELLER_PHONE).await;
        seller.get("/diagnostic").await;
        let (_, page) = seller.post("/diagnostic", &answers).await;
        assert!(page.contains("Overall score: 39 of 100"), "{page}");
        assert!(page.contains("Kept with your shop"), "{page}");
        assert!(!page.contains("Last time"), "{page}");
        let better = [
            ("social-page", "2"),
            ("analytics", "5"),
            ("channels.marketplace", "1"),
            ("channels.own-store", "1"),
        ];
        seller.get("/diagnostic").await;
        let (_, page) = seller.post("/diagnostic", &better).await;
        assert!(page.contains("Last time: 39 of 100"), "{page}");
        let sid = app
            .db
            .user_by_phone(tianguis_demo::DEMO_SELLER_PHONE)
            .await
            .unwrap()
            .seller_id
            .unwrap();
        let takes = app.db.takes_of(sid).await.unwrap();
        assert_eq!(takes.len(), 2);
        assert_eq!((takes[0].overall, takes[0].level), (75, 4), "{takes:?}");
        assert_eq!(takes[1].overall, 39);
        assert!(
            takes[1].answers.contains("\"channels\":[\"marketplace\"]"),
            "{}",
            takes[1].answers
        );
        // Officials count the progress: one firm, retaken, 39 then 75 (+36), at level 4 now.
        let s = app.db.diagnostic_summary().await.unwrap();
        assert_eq!(
            (
                s.firms,
                s.retaken,
                s.mean_first(),
                s.mean_latest(),
                s.mean_change()
            ),
            (1, 1, 39, 75, 36)
        );
        assert_eq!(s.by_level, [0, 0, 0, 0, 1, 0]);
        let mut admin = Browser::login(&app.base, tianguis_demo::DEMO_ADMIN_PHONE).await;
        let (status, page) = admin.get("/admin/diagnostics").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("<td>36</td>"), "{page}");
        assert!(
            page.contains("4 · Marketplace seller</th><td>1</td>"),
            "{page}"
        );
    }
}
