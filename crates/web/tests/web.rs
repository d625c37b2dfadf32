//! HTTP tests against a real server on 127.0.0.1, on a fresh SQLite file and a fresh PostgreSQL
//! database each. Pages are driven like a browser with JavaScript off: GET a form, read its CSRF
//! token, POST it, follow redirects.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::time::Duration;
use tianguis_store::Db;
use tianguis_store::demo::{DEMO_ADMIN_PHONE, DEMO_PASSWORD};
use tianguis_store::testdb::{self, TestDb};

struct App {
    base: String,
    db: Db,
    t: TestDb,
}

async fn spawn_on(t: TestDb, seed: bool, tweak: impl FnOnce(&mut tianguis_web::Config)) -> App {
    if seed {
        tianguis_store::demo::seed(&t.db, false).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = tianguis_web::Config::local(&base);
    config.login_per_minute = 10_000;
    config.checkout_per_minute = 10_000;
    config.worker_interval_ms = 100;
    config.sim_approve_after_ms = 50;
    tweak(&mut config);
    let state = tianguis_web::state(t.db.clone(), config);
    tokio::spawn(tianguis_web::serve(state, listener));
    App {
        base,
        db: t.db.clone(),
        t,
    }
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
        let key = html
            .split("name=\"idempotency_key\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let form = [
            ("idempotency_key", key.as_str()),
            ("address", "8C4X+2F Santa Ana, casa azul"),
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
            html.contains("confirm_receipt") && html.contains("Completed"),
            "history and state shown"
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
