//! Contract tests of the use cases over the storage layer, each run on a fresh SQLite file and
//! a fresh PostgreSQL database. PostgreSQL comes from `TIANGUIS_TEST_PG` (default: the local server); where none
//! is reachable the PG half is skipped with a reason, except under `CI=true`, where it fails.

use std::time::Duration;
use tianguis_app::people::NewUser;
use tianguis_domain::process::{Actor, OrderState, Transition};
use tianguis_store::catalog::{ProductInput, SearchQuery};
use tianguis_store::orders::{CheckoutRequest, PaymentMethod};
use tianguis_store::users::Role;
use tianguis_store::{Db, StoreError};

mod support {
    use super::*;
    pub use tianguis_testkit::all;

    /// Run the order timers that are due, as a worker named `worker` would.
    pub async fn run_due_jobs(
        db: &Db,
        worker: &str,
        max: i64,
    ) -> tianguis_store::Result<tianguis_app::queue::LaneRun> {
        tianguis_app::queue::Runner::new(worker)
            .run_lane(db, tianguis_store::queue::Lane::Timers, max)
            .await
    }

    pub async fn small_shop(db: &Db) -> (i64, i64, i64) {
        db.set_setting("currency", "MXN").await.unwrap();
        let place = db.create_place("Santa Ana", "village", None).await.unwrap();
        let cat = db
            .create_category("food", "Food", "Alimentos", None)
            .await
            .unwrap();
        let u = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52111111111",
                email: None,
                name: "Lupe",
                password: "password1",
                role: Role::Seller,
                place_id: Some(place),
            },
        )
        .await
        .unwrap();
        let seller = db
            .create_seller(u.id, "Doña Lupe", place, 2, true)
            .await
            .unwrap();
        (place, cat, seller)
    }

    pub async fn buyer(db: &Db, n: usize) -> i64 {
        tianguis_app::people::create_user(
            db,
            NewUser {
                phone: &format!("+5222{:07}", n),
                email: None,
                name: "Buyer",
                password: "password1",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await
        .unwrap()
        .id
    }

    pub fn req(buyer: i64, lines: Vec<(i64, i64)>, key: &str) -> CheckoutRequest {
        CheckoutRequest {
            buyer_id: buyer,
            lines,
            session_id: None,
            idempotency_key: key.into(),
            method: PaymentMethod::MobileMoney,
            address: "7685X722+FQ Santa Ana, blue house".into(),
            phone: "+529510000000".into(),
            pickup_point_id: None,
            on_behalf: None,
            limits: Vec::new(),
        }
    }
}

use support::*;

/// Everything owed goes out the one way the product pays: a batch one official prepares and
/// another approves, each line confirmed (a wallet's by the provider's reference, cash by a
/// receipt). Nothing is paid below one minor unit.
async fn pay_out_all(db: &Db) {
    use tianguis_domain::kinds::LineStatus;
    let official = |phone: &'static str| async move {
        match db.user_by_phone(phone).await {
            Ok(u) => u,
            Err(_) => tianguis_app::people::create_user(
                db,
                NewUser {
                    phone,
                    email: None,
                    name: "Treasurer",
                    password: "password1",
                    role: Role::Admin,
                    place_id: None,
                },
            )
            .await
            .unwrap(),
        }
    };
    let (a, b) = (
        official("+52333999001").await,
        official("+52333999002").await,
    );
    db.set_setting("payout_minimum_minor", "1").await.unwrap();
    let Some(batch) =
        tianguis_app::payouts::prepare(db, Some(&a), tianguis_domain::payout::Run::Manual)
            .await
            .unwrap()
    else {
        return;
    };
    tianguis_app::payouts::approve(db, &b, batch).await.unwrap();
    for l in db.payout_lines(batch).await.unwrap() {
        if l.status == LineStatus::Sending {
            assert!(
                tianguis_app::payouts::line_paid(db, l.id, &format!("ref-{}", l.id))
                    .await
                    .unwrap()
            );
        } else {
            assert!(
                tianguis_app::payouts::settle_by_hand(db, &b, l.id, true, "R-1")
                    .await
                    .unwrap()
            );
        }
    }
}

/// An official, a digital centre and its agent (for tests of assisted commerce).
async fn agent_at_centre(db: &Db, phone: &str) -> (tianguis_store::users::User, i64) {
    let place = db.places().await.unwrap()[0].id;
    let admin = tianguis_app::people::create_user(
        db,
        NewUser {
            phone: "+52777900000",
            email: None,
            name: "Admin",
            password: "password1",
            role: Role::Admin,
            place_id: None,
        },
    )
    .await
    .unwrap();
    let centre = db
        .create_pickup_point(&tianguis_store::pickup::NewPickupPoint {
            name: "Centro".into(),
            kind: "centre".into(),
            place_id: place,
            location: (16.9515, -96.7478),
            slots: 1000,
            hours: "8:00-20:00".into(),
            hold_days: 5,
            fee_minor: 1000,
            operator_phone: None,
            contact: String::new(),
        })
        .await
        .unwrap();
    let u = tianguis_app::people::create_user(
        db,
        NewUser {
            phone,
            email: None,
            name: "Agente",
            password: "password1",
            role: Role::Buyer,
            place_id: None,
        },
    )
    .await
    .unwrap();
    (
        db.attach_agent(&admin, centre, &u.phone).await.unwrap(),
        centre,
    )
}

fn product(cat: i64, name: &str, price: i64, stock: i64) -> ProductInput {
    ProductInput {
        category_id: cat,
        name_en: name.into(),
        price_minor: price,
        stock,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_data_covers_the_district_and_keeps_the_ledger_balanced() {
    for t in all().await {
        tianguis_demo::seed(&t.db, false).await.unwrap();
        let page =
            t.db.search(&SearchQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let (products, total) = (page.products, page.total);
        assert!(total >= 300, "{total} products on {}", t.url);
        assert_eq!(products.len(), 10);
        let places = t.db.places().await.unwrap();
        for kind in ["city", "town", "village"] {
            assert!(places.iter().any(|p| p.kind == kind));
        }
        let states = t.db.orders_by_state().await.unwrap();
        for s in OrderState::ALL {
            assert!(
                states.iter().any(|(st, n)| st == s.as_str() && *n > 0),
                "no {s} order on {}",
                t.url
            );
        }
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert!(totals.holds(), "{totals:?}");
        assert!(
            totals.paid_in > 0 && totals.fees > 0 && totals.refunds > 0 && totals.payouts > 0,
            "{totals:?}"
        );
        // Payouts in every state a batch and a line can wait in.
        {
            use tianguis_domain::kinds::{BatchStatus, LineStatus};
            let batches = t.db.payout_batches(10).await.unwrap();
            let mut statuses: Vec<BatchStatus> = batches.iter().map(|b| b.status).collect();
            statuses.sort();
            assert_eq!(
                statuses,
                vec![
                    BatchStatus::Prepared,
                    BatchStatus::Approved,
                    BatchStatus::Cancelled
                ]
            );
            let mut lines = Vec::new();
            for b in &batches {
                lines.extend(
                    t.db.payout_lines(b.id)
                        .await
                        .unwrap()
                        .iter()
                        .map(|l| l.status),
                );
            }
            for st in LineStatus::ALL {
                assert!(lines.contains(st), "a line {st:?}: {lines:?}");
            }
        }
        // The courier pool: jobs in every state, failed attempts (one sent to a pickup point),
        // cash to collect, and today's plans queued for the carriers holding jobs.
        for st in tianguis_domain::delivery::JobState::ALL {
            assert!(
                !t.db.delivery_jobs(st, 5).await.unwrap().is_empty(),
                "no {st:?} job on {}",
                t.url
            );
        }
        let failed =
            t.db.delivery_jobs(tianguis_domain::delivery::JobState::Failed, 5)
                .await
                .unwrap();
        assert_eq!(failed[0].last_failure.as_deref(), Some("not_home"));
        let out =
            t.db.delivery_jobs(tianguis_domain::delivery::JobState::OutForDelivery, 10)
                .await
                .unwrap();
        assert!(
            out.iter()
                .any(|j| j.pickup_point_id.is_some() && j.attempts == 1),
            "a redirect"
        );
        assert!(
            out.iter().any(|j| j.cash_minor > 0),
            "cash to collect at a door"
        );
        let carriers = t.db.carriers().await.unwrap();
        assert_eq!(carriers.len(), 3);
        let mut planned = 0;
        for c in &carriers {
            planned += t.db.route_plans_of(c.id, 5).await.unwrap().len();
        }
        assert_eq!(
            planned, 2,
            "the motorbike and the post office hold jobs today"
        );
        // Seeding twice changes nothing.
        tianguis_demo::seed(&t.db, false).await.unwrap();
        assert_eq!(
            t.db.search(&SearchQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .total,
            total
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_buyers_for_ten_units_make_exactly_ten_orders() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Last honey jars", 12000, 10))
                .await
                .unwrap();
        let mut buyers = Vec::new();
        for i in 0..50 {
            buyers.push(buyer(&t.db, i).await);
        }
        let mut handles = Vec::new();
        for (i, b) in buyers.into_iter().enumerate() {
            let db = t.db.clone();
            handles.push(tokio::spawn(async move {
                tianguis_app::orders::checkout(&db, &req(b, vec![(pid, 1)], &format!("k{i}"))).await
            }));
        }
        let mut ok = 0;
        let mut sold_out = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Checkout(_)) => sold_out += 1,
                Err(e) => panic!("unexpected error on {}: {e}", t.url),
            }
        }
        assert_eq!((ok, sold_out), (10, 40), "on {}", t.url);
        assert_eq!(t.db.product(pid).await.unwrap().stock, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_checkout_returns_the_first_result_and_creates_nothing() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Coffee", 15000, 100))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let mut handles = Vec::new();
        for _ in 0..8 {
            let db = t.db.clone();
            handles.push(tokio::spawn(async move {
                tianguis_app::orders::checkout(&db, &req(b, vec![(pid, 2)], "same-key")).await
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                Ok((r, _)) => results.push(r),
                Err(StoreError::Conflict(_)) => {} // still in flight elsewhere: the client retries
                Err(e) => panic!("{e}"),
            }
        }
        let first = results[0].clone();
        assert!(results.iter().all(|r| *r == first));
        let (again, replay) =
            tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 2)], "same-key"))
                .await
                .unwrap();
        assert!(replay);
        assert_eq!(again, first);
        assert_eq!(
            t.db.product(pid).await.unwrap().stock,
            98,
            "stock taken once on {}",
            t.url
        );
        // Payment callbacks are idempotent too.
        assert!(
            tianguis_app::orders::payment_succeeded(&t.db, first.payment_id, None)
                .await
                .unwrap()
        );
        assert!(
            !tianguis_app::orders::payment_succeeded(&t.db, first.payment_id, None)
                .await
                .unwrap()
        );
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert_eq!(totals.held, first.total_minor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timers_fire_exactly_once_across_two_servers() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Basket", 5000, 20))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let mut orders = Vec::new();
        for i in 0..6 {
            orders.push(
                tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 1)], &format!("t{i}")))
                    .await
                    .unwrap()
                    .0,
            );
        }
        // Pay half of them; the rest stay unpaid.
        for r in orders.iter().take(3) {
            tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
                .await
                .unwrap();
        }
        assert_eq!(
            run_due_jobs(&t.db, "a", 100).await.unwrap().done,
            0,
            "nothing is due yet"
        );
        // A second server on the same database with the same clock.
        let mut other = Db::connect(&t.url).await.unwrap();
        other.clock = t.db.clock.clone();
        t.db.clock.advance(Duration::from_secs(2 * 3600));
        let (a, b2) = tokio::join!(
            run_due_jobs(&t.db, "a", 100),
            run_due_jobs(&other, "b", 100)
        );
        let (a, b2) = (a.unwrap(), b2.unwrap());
        assert_eq!(
            a.done + b2.done,
            3,
            "three unpaid orders expire exactly once: {a:?} {b2:?} on {}",
            t.url
        );
        assert_eq!(
            a.skipped + b2.skipped,
            3,
            "the paid orders' expiry timers find nothing to do"
        );
        for r in orders.iter().skip(3) {
            assert_eq!(
                t.db.order(r.order_ids[0]).await.unwrap().state,
                OrderState::Cancelled
            );
        }
        assert_eq!(
            t.db.product(pid).await.unwrap().stock,
            17,
            "unpaid stock is back on the shelf"
        );
        // Paid but never shipped: after the ship deadline they cancel with a full refund.
        t.db.clock.advance(Duration::from_secs(5 * 86_400));
        let (a, b2) = tokio::join!(
            run_due_jobs(&t.db, "a", 100),
            run_due_jobs(&other, "b", 100)
        );
        assert_eq!(a.unwrap().done + b2.unwrap().done, 3);
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert!(totals.holds());
        assert_eq!(totals.held, 0);
        assert_eq!(totals.refunds, totals.paid_in);
        assert_eq!(
            t.db.jobs_pending_in(tianguis_store::queue::Lane::Timers)
                .await
                .unwrap(),
            0,
            "no order timer left"
        );
        assert_eq!(
            run_due_jobs(&t.db, "a", 100).await.unwrap(),
            Default::default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_releases_escrow_to_the_seller_less_the_fee() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Rebozo", 62000, 3))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let (r, _) = tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 1)], "x"))
            .await
            .unwrap();
        let oid = r.order_ids[0];
        tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
            .await
            .unwrap();
        for (tr, a) in [
            (Transition::Accept, Actor::Seller),
            (Transition::Pack, Actor::Seller),
            (Transition::Ship, Actor::Seller),
            (Transition::ConfirmDelivery, Actor::Buyer),
        ] {
            tianguis_app::orders::transition(&t.db, oid, tr, a, None, "", None)
                .await
                .unwrap();
        }
        let st = t.db.seller_statement(seller).await.unwrap();
        assert_eq!(
            (st.held, st.earned),
            (65000, 0),
            "held until the dispute window passes"
        );
        // Nobody disputes: the timer completes the order.
        t.db.clock.advance(Duration::from_secs(8 * 86_400));
        run_due_jobs(&t.db, "w", 100).await.unwrap();
        assert_eq!(t.db.order(oid).await.unwrap().state, OrderState::Completed);
        let st = t.db.seller_statement(seller).await.unwrap();
        // 5% of 650.00 = 32.50 fee.
        assert_eq!((st.held, st.earned, st.fees), (0, 65000 - 3250, 3250));
        pay_out_all(&t.db).await;
        let st = t.db.seller_statement(seller).await.unwrap();
        assert_eq!((st.owed, st.paid_out), (0, 65000 - 3250));
        let events = t.db.order_events(oid).await.unwrap();
        assert_eq!(events.last().unwrap().transition, "auto_complete");
        assert_eq!(events.last().unwrap().actor, "system");
        assert!(
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_ranks_by_field_corrects_typos_filters_and_pages_by_key() {
    use tianguis_domain::search::{Cursor, Sort};
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        let town =
            t.db.create_place("San Blas", "village", Some(place))
                .await
                .unwrap();
        let u = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52111111199",
                email: None,
                name: "Ana",
                password: "password1",
                role: Role::Seller,
                place_id: Some(town),
            },
        )
        .await
        .unwrap();
        // The shop's name holds "cafe": its scarf must come after listings named so.
        let cafe_shop =
            t.db.create_seller(u.id, "Café Tres Ríos", town, 1, true)
                .await
                .unwrap();
        let textiles =
            t.db.create_category("textiles", "Textiles", "Textiles", None)
                .await
                .unwrap();
        let mk = |name: &str, price: i64, stock: i64| product(cat, name, price, stock);
        let scarf =
            t.db.create_product(
                cafe_shop,
                &ProductInput {
                    category_id: textiles,
                    ..mk("Wool scarf", 30000, 2)
                },
            )
            .await
            .unwrap();
        let mut d = mk("Mug", 8000, 4);
        d.description = "For your cafe de olla".into();
        let mug = t.db.create_product(seller, &d).await.unwrap();
        let molido =
            t.db.create_product(seller, &mk("Café molido", 12000, 5))
                .await
                .unwrap();
        let mut tor = mk("Corn tortillas", 2500, 0);
        tor.name_es = Some("Tortillas de maíz".into());
        let tortillas = t.db.create_product(seller, &tor).await.unwrap();
        let mango =
            t.db.create_product(seller, &mk("Mango", 1500, 9))
                .await
                .unwrap();
        let mut k = mk("Nakshi kantha quilt", 90000, 1);
        k.name_bn = Some("নকশি কাঁথা".into());
        let kantha = t.db.create_product(seller, &k).await.unwrap();
        let mut c = mk("Drinking chocolate", 9500, 3);
        c.name_es = Some("Chocolate de mesa OAXAQUEÑO".into());
        t.db.create_product(seller, &c).await.unwrap();
        let q = |text: &str| SearchQuery {
            text: text.into(),
            limit: 10,
            ..Default::default()
        };
        let ids = |p: &tianguis_store::catalog::SearchPage| {
            p.products.iter().map(|p| p.id).collect::<Vec<_>>()
        };
        let find = |q: SearchQuery| {
            let db = t.db.clone();
            async move { db.search(&q).await.unwrap() }
        };
        // Relevance: the name, then the description, then the shop's name.
        let page = find(q("cafe")).await;
        assert_eq!(ids(&page), vec![molido, mug, scarf], "{}", t.url);
        assert_eq!(
            (page.total, page.capped, page.corrected.clone()),
            (3, false, None)
        );
        // Accents, case, prefixes, every word must match.
        assert_eq!(ids(&find(q("CAFÉ Mol")).await), vec![molido]);
        assert_eq!(find(q("oaxaqueno")).await.total, 1);
        assert_eq!(
            find(q("quilt chocolate")).await.total,
            0,
            "every word must match"
        );
        assert_eq!(find(q("'; DROP TABLE products; --")).await.total, 0);
        // Bangla words are whole words, by prefix too.
        assert_eq!(ids(&find(q("কাঁথা")).await), vec![kantha]);
        assert_eq!(ids(&find(q("নক")).await), vec![kantha]);
        assert_eq!(find(q("কাথা")).await.corrected.as_deref(), Some("কাঁথা"));
        // Typos are corrected, and the page says what was searched.
        for (typed, meant, id) in [
            ("tortilas", "tortillas", tortillas),
            ("mnago", "mango", mango),
            ("cafee molido", "cafe molido", molido),
        ] {
            let p = find(q(typed)).await;
            assert_eq!(p.corrected.as_deref(), Some(meant), "{typed} on {}", t.url);
            assert_eq!(ids(&p), vec![id], "{typed}");
        }
        let exact = find(SearchQuery {
            exact: true,
            ..q("mnago")
        })
        .await;
        assert_eq!((exact.total, exact.corrected), (0, None));
        assert_eq!(
            find(q("xqzwv")).await.corrected,
            None,
            "nothing close: no guess"
        );
        // Filters: place and its children, category, price, stock.
        let f = |f: SearchQuery| find(f);
        assert_eq!(
            ids(&f(SearchQuery {
                place_id: Some(town),
                ..q("")
            })
            .await),
            vec![scarf]
        );
        assert_eq!(
            f(SearchQuery {
                place_id: Some(place),
                ..q("")
            })
            .await
            .total,
            7,
            "a place includes its villages"
        );
        assert_eq!(
            ids(&f(SearchQuery {
                category_id: Some(textiles),
                ..q("")
            })
            .await),
            vec![scarf]
        );
        assert_eq!(
            ids(&f(SearchQuery {
                min_price: Some(8000),
                max_price: Some(12000),
                ..q("cafe")
            })
            .await),
            vec![molido, mug]
        );
        let stocked = f(SearchQuery {
            in_stock: true,
            ..q("tortillas")
        })
        .await;
        assert_eq!(stocked.total, 0, "sold out tortillas are left out");
        // Orders: price both ways and newest.
        let cheap = f(SearchQuery {
            sort: Sort::PriceLow,
            limit: 3,
            ..q("")
        })
        .await;
        assert_eq!(ids(&cheap), vec![mango, tortillas, mug]);
        let dear = f(SearchQuery {
            sort: Sort::PriceHigh,
            limit: 2,
            ..q("")
        })
        .await;
        assert_eq!(ids(&dear), vec![kantha, scarf]);
        // Keyset paging: every listing once, in order, whatever the page size.
        for sort in [
            Sort::Relevance,
            Sort::Newest,
            Sort::PriceLow,
            Sort::PriceHigh,
        ] {
            for text in ["", "cafe"] {
                let mut seen = Vec::new();
                let mut after: Option<Cursor> = None;
                loop {
                    let p = f(SearchQuery {
                        sort,
                        after,
                        limit: 2,
                        ..q(text)
                    })
                    .await;
                    seen.extend(ids(&p));
                    match p.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                let all = f(SearchQuery {
                    sort,
                    limit: 100,
                    ..q(text)
                })
                .await;
                assert_eq!(seen, ids(&all), "{sort:?} {text:?} on {}", t.url);
                assert_eq!(seen.len() as i64, all.total);
            }
        }
        // An edit is found at once, through another connection to the same database (a second
        // server), and the old words are gone.
        let other = Db::connect(&t.url).await.unwrap();
        let mut m = mk("Ripe mango", 1500, 9);
        m.description = "Ataulfo".into();
        t.db.update_product(seller, mango, &m, None).await.unwrap();
        let seen = other.search(&q("ataulfo")).await.unwrap();
        assert_eq!(ids(&seen), vec![mango]);
        assert_eq!(other.search(&q("ripe")).await.unwrap().total, 1);
        other.close().await;
        // A whole word in the name comes before a newer name the word only begins.
        let cafetera =
            t.db.create_product(seller, &mk("Cafetera de barro", 20000, 1))
                .await
                .unwrap();
        assert_eq!(
            ids(&find(q("cafe")).await),
            vec![molido, cafetera, mug, scarf],
            "{}",
            t.url
        );
    }
}

/// A counted page says "more than" past the cap instead of counting every match.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_stop_at_the_cap() {
    for t in all().await {
        small_shop(&t.db).await;
        let csv: String =
            std::iter::once("seller_phone,sku,category,name_en,price,stock\n".to_string())
                .chain((0..1005).map(|i| format!("+52111111111,S{i},food,Honey jar {i},10,1\n")))
                .collect();
        let r = tianguis_app::import::import(
            &t.db,
            tianguis_app::import::Importer::Operator,
            csv.as_bytes(),
            None::<&mut tianguis_app::import::Photos<std::io::Cursor<Vec<u8>>>>,
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!((r.imported, r.refused_count), (1005, 0));
        let import = |csv: String| {
            let db = t.db.clone();
            async move {
                let r = tianguis_app::import::import(
                    &db,
                    tianguis_app::import::Importer::Operator,
                    csv.as_bytes(),
                    None::<&mut tianguis_app::import::Photos<std::io::Cursor<Vec<u8>>>>,
                    |_, _| {},
                )
                .await
                .unwrap();
                assert_eq!(r.refused_count, 0);
            }
        };
        // Unfiltered, the vocabulary's exact counts decide; filtered, the matches are counted.
        let honey = |in_stock: bool| {
            let db = t.db.clone();
            async move {
                let p = db
                    .search(&SearchQuery {
                        text: "honey".into(),
                        limit: 5,
                        in_stock,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                (p.total, p.capped)
            }
        };
        let cap = tianguis_domain::search::COUNT_CAP;
        assert_eq!(honey(false).await, (cap, true), "{}", t.url);
        assert_eq!(honey(true).await, (cap, true), "{}", t.url);
        // A re-import takes the word from five listings: exactly the cap is left.
        import(
            std::iter::once("seller_phone,sku,category,name_en,price,stock\n".to_string())
                .chain((0..5).map(|i| format!("+52111111111,S{i},food,Clay jar {i},10,1\n")))
                .collect(),
        )
        .await;
        assert_eq!(honey(false).await, (cap, false), "{}", t.url);
        assert_eq!(honey(true).await, (cap, false), "{}", t.url);
        assert_eq!(t.db.vocabulary_drift().await.unwrap(), vec![], "{}", t.url);
        // A seller's edit puts it back in one.
        let jar =
            t.db.search(&SearchQuery {
                text: "clay".into(),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .products[0]
                .clone();
        let edit = ProductInput {
            category_id: jar.category_id,
            name_en: "Clay honey jar".into(),
            price_minor: 10,
            stock: 1,
            ..Default::default()
        };
        t.db.update_product(jar.seller_id, jar.id, &edit, None)
            .await
            .unwrap();
        assert_eq!(honey(false).await, (cap, true), "{}", t.url);
        assert_eq!(t.db.vocabulary_drift().await.unwrap(), vec![], "{}", t.url);
        // Counted again from the catalogue (an upgrade's recount), nothing changes.
        t.db.raw_execute("UPDATE settings SET value = '' WHERE key = 'search_counted'")
            .await
            .unwrap();
        assert!(t.db.recount_vocabulary().await.unwrap());
        assert!(!t.db.recount_vocabulary().await.unwrap());
        assert_eq!(t.db.vocabulary_drift().await.unwrap(), vec![], "{}", t.url);
        assert_eq!(honey(false).await, (cap, true), "{}", t.url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalogue_import_updates_on_a_second_run_and_refuses_bad_lines_whole() {
    for t in all().await {
        let (_, _, seller) = small_shop(&t.db).await;
        t.db.set_country("MX").await.unwrap();
        let photo = {
            let mut png = Vec::new();
            image::DynamicImage::new_rgb8(8, 8)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            zip.start_file("jar.png", zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut zip, &png).unwrap();
            zip.start_file("junk.png", zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut zip, b"not an image").unwrap();
            zip.finish().unwrap().into_inner()
        };
        // Columns in another order; the phone as people write it; a price with a comma.
        let first = "stock,price,sku,name_es,category,seller_phone,description,photo\n\
            5,\"1,250.50\",MIEL-1,Miel de abeja,food,111 111 111,Of the sierra,jar.png\n\
            3,80,CAFE-1,Café de olla,food,+52111111111,,\n\
            1,80,BAD-1,Sin vendedor,food,+529999999999,,\n\
            1,80,BAD-2,Otra categoría,toys,+52111111111,,\n\
            1,12.345,BAD-3,Precio raro,food,+52111111111,,\n\
            -1,80,BAD-4,Sin existencias,food,+52111111111,,\n\
            1,80,BAD-5,,food,+52111111111,,\n\
            1,80,BAD-6,Foto que falta,food,+52111111111,,missing.png\n\
            1,80,BAD-7,Foto rota,food,+52111111111,,junk.png\n";
        let run = |csv: &'static str| {
            let db = t.db.clone();
            let zip = photo.clone();
            async move {
                let mut photos =
                    tianguis_app::import::Photos::open(std::io::Cursor::new(zip)).unwrap();
                tianguis_app::import::import(
                    &db,
                    tianguis_app::import::Importer::Operator,
                    csv.as_bytes(),
                    Some(&mut photos),
                    |_, _| {},
                )
                .await
                .unwrap()
            }
        };
        let r = run(first).await;
        assert_eq!(
            (r.lines, r.imported, r.added, r.photos),
            (9, 2, 2, 1),
            "{:?}",
            r.refused
        );
        let why: Vec<(u64, &str)> = r.refused.iter().map(|(l, m)| (*l, m.key)).collect();
        assert_eq!(
            why,
            vec![
                (4, "err-import-no-seller"),
                (5, "err-import-category"),
                (6, "err-amount-decimals"),
                (7, "err-stock"),
                (8, "err-import-no-name"),
                (9, "err-import-photo-missing"),
                (10, "err-photo-format"),
            ],
            "{}",
            t.url
        );
        let honey =
            t.db.search(&SearchQuery {
                text: "miel".into(),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(honey.products.len(), 1);
        let h = &honey.products[0];
        assert_eq!(
            (h.price.minor, h.stock, h.seller_id, h.name_en.as_str()),
            (125_050, 5, seller, "Miel de abeja")
        );
        assert!(h.photo_id.is_some());
        for bad in ["sin vendedor", "otra", "precio raro", "rota"] {
            let p =
                t.db.search(&SearchQuery {
                    text: bad.into(),
                    exact: true,
                    limit: 5,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(p.total, 0, "nothing of a refused line: {bad}");
        }
        // The same SKUs again: updated, not duplicated; the old words leave the index.
        let second = "seller_phone,sku,category,name_en,price,stock\n\
            +52111111111,MIEL-1,food,Mountain honey,99,7\n\
            +52111111111,CAFE-1,food,Pot coffee,80,3\n";
        let r = run(second).await;
        assert_eq!((r.imported, r.added, r.refused_count), (2, 0, 0));
        assert_eq!(t.db.product_count().await.unwrap(), 2);
        let p =
            t.db.search(&SearchQuery {
                text: "mountain honey".into(),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (
                p.products.len(),
                p.products[0].price.minor,
                p.products[0].stock
            ),
            (1, 9900, 7)
        );
        assert_eq!(
            t.db.search(&SearchQuery {
                text: "sierra".into(),
                exact: true,
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .total,
            0
        );
        // A file whose header is wrong is refused as a whole.
        let e = tianguis_app::import::import(
            &t.db,
            tianguis_app::import::Importer::Operator,
            "sku,prize\n1,2\n".as_bytes(),
            None::<&mut tianguis_app::import::Photos<std::io::Cursor<Vec<u8>>>>,
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert_eq!(e.msg().unwrap().key, "err-import-column");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seller_cannot_touch_another_sellers_listing_or_order() {
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        let other_user = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52333333333",
                email: None,
                name: "Other",
                password: "password1",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let other =
            t.db.create_seller(other_user.id, "Other shop", place, 1, false)
                .await
                .unwrap();
        let pid =
            t.db.create_product(seller, &product(cat, "Soap", 6000, 5))
                .await
                .unwrap();
        assert!(matches!(
            t.db.update_product(other, pid, &product(cat, "Mine now", 1, 1), None)
                .await,
            Err(StoreError::NotFound(_))
        ));
        let b = buyer(&t.db, 9).await;
        let (r, _) = tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 1)], "o"))
            .await
            .unwrap();
        tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
            .await
            .unwrap();
        let other_user = t.db.user(other_user.id).await.unwrap();
        assert!(
            tianguis_app::orders::act(
                &t.db,
                &other_user,
                r.order_ids[0],
                Transition::Accept,
                "",
                None
            )
            .await
            .is_err()
        );
        let owner =
            t.db.user(t.db.seller(seller).await.unwrap().user_id)
                .await
                .unwrap();
        assert_eq!(
            tianguis_app::orders::act(&t.db, &owner, r.order_ids[0], Transition::Accept, "", None)
                .await
                .unwrap(),
            OrderState::Accepted
        );
        // The buyer cannot ship.
        let buyer_user = t.db.user(b).await.unwrap();
        assert!(matches!(
            tianguis_app::orders::act(
                &t.db,
                &buyer_user,
                r.order_ids[0],
                Transition::Pack,
                "",
                None
            )
            .await,
            Err(StoreError::Forbidden(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_order_journeys_keep_the_ledger_invariants() {
    use tianguis_domain::commission::{Basis, Rule, Source};
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Honey", 12345, 1000))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        // Half the orders are placed by an agent at a centre (cash into the agent's hands), with
        // commissions from the fee or from the seller's proceeds, and random hand-overs and
        // commission payouts in between.
        let (agent, centre) = agent_at_centre(&t.db, "+52777900001").await;
        for (centre_id, source) in [
            (None, Source::SellerProceeds),
            (Some(centre), Source::PlatformFee),
        ] {
            t.db.create_commission_rule(&Rule {
                id: 0,
                centre_id,
                category_id: None,
                basis: Basis::Percent(700),
                cap_minor: Some(3000),
                source,
            })
            .await
            .unwrap();
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15u64; // fixed seed: a failure replays the same way
        let moves = [
            (Transition::Accept, Actor::Seller),
            (Transition::Pack, Actor::Seller),
            (Transition::Ship, Actor::Seller),
            (Transition::Cancel, Actor::Buyer),
            (Transition::ConfirmDelivery, Actor::Buyer),
            (Transition::ConfirmReceipt, Actor::Buyer),
            (Transition::RequestReturn, Actor::Buyer),
            (Transition::MarkReturned, Actor::Seller),
            (Transition::Dispute, Actor::Seller),
            (Transition::Resolve, Actor::Admin),
        ];
        for i in 0..25 {
            let r = if i % 2 == 1 {
                let at_centre = pick(&mut rng, 2) == 0;
                tianguis_app::assisted::assisted_checkout(
                    &t.db,
                    &agent,
                    tianguis_app::assisted::AssistedCheckout {
                        buyer_name: "Walk-in",
                        buyer_phone: "+52777900099",
                        lines: vec![(pid, 1 + (i % 3))],
                        method: PaymentMethod::Cash,
                        address: "Casa azul",
                        at_centre,
                        idempotency_key: &format!("a{i}"),
                        session_id: None,
                        limits: Vec::new(),
                        buyer_lang: None,
                    },
                )
                .await
                .unwrap()
                .0
            } else {
                let (r, _) = tianguis_app::orders::checkout(
                    &t.db,
                    &req(b, vec![(pid, 1 + (i % 3))], &format!("r{i}")),
                )
                .await
                .unwrap();
                if pick(&mut rng, 5) > 0 {
                    tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
                        .await
                        .unwrap();
                }
                r
            };
            if i % 2 == 1 && pick(&mut rng, 3) > 0 {
                // Most agent orders get as far as delivery; what follows is random.
                for (tr, a) in [
                    (Transition::Accept, Actor::Seller),
                    (Transition::Pack, Actor::Seller),
                    (Transition::Ship, Actor::Seller),
                    (Transition::ConfirmDelivery, Actor::Buyer),
                ] {
                    let _ = tianguis_app::orders::transition(
                        &t.db,
                        r.order_ids[0],
                        tr,
                        a,
                        None,
                        "",
                        None,
                    )
                    .await;
                }
            }
            for _ in 0..8 {
                let (tr, a) = moves[pick(&mut rng, moves.len() as u32) as usize];
                let refund = Some(pick(&mut rng, 20000) as i64);
                let _ = tianguis_app::orders::transition(
                    &t.db,
                    r.order_ids[0],
                    tr,
                    a,
                    None,
                    "",
                    refund,
                )
                .await; // refused moves must change nothing
            }
            if pick(&mut rng, 3) == 0 {
                t.db.clock
                    .advance(Duration::from_secs(86_400 * pick(&mut rng, 9) as u64));
                run_due_jobs(&t.db, "w", 100).await.unwrap();
            }
            let held = t.db.cash_on_hand(agent.id).await.unwrap().minor;
            if held > 0 && pick(&mut rng, 3) == 0 {
                let declared = 1 + pick(&mut rng, u32::try_from(held).unwrap_or(u32::MAX)) as i64;
                t.db.record_handover(&agent, declared.min(held), "bank", &format!("D{i}"))
                    .await
                    .unwrap();
            }
            let owed =
                t.db.agent_statement(agent.id, 0, i64::MAX)
                    .await
                    .unwrap()
                    .owed;
            if owed > 0 && pick(&mut rng, 4) == 0 {
                pay_out_all(&t.db).await;
            }
            let totals =
                t.db.ledger_totals(t.db.currency().await.unwrap())
                    .await
                    .unwrap();
            assert!(totals.holds(), "after order {i} on {}: {totals:?}", t.url);
        }
        let agent_st = t.db.agent_statement(agent.id, 0, i64::MAX).await.unwrap();
        assert!(
            agent_st.earned_in_period > 0
                && !t.db.handovers(Some(agent.id), 5).await.unwrap().is_empty(),
            "the journeys exercised commissions and hand-overs: {agent_st:?}"
        );
        let st = t.db.seller_statement(seller).await.unwrap();
        if st.owed > 0 {
            pay_out_all(&t.db).await;
        }
        assert!(
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

/// xorshift64: a fixed, reproducible sequence of choices.
fn pick(state: &mut u64, n: u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % n.max(1) as u64) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_that_arrives_after_the_order_expired_goes_straight_back() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Chiles", 5500, 5))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let (r, _) = tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 2)], "late"))
            .await
            .unwrap();
        t.db.clock.advance(Duration::from_secs(3 * 3600));
        run_due_jobs(&t.db, "w", 10).await.unwrap();
        assert_eq!(
            t.db.order(r.order_ids[0]).await.unwrap().state,
            OrderState::Cancelled
        );
        // The provider's callback comes late: the money is recorded and refunded, never lost.
        assert!(
            tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
                .await
                .unwrap()
        );
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert!(totals.holds(), "{totals:?}");
        assert_eq!(
            (totals.paid_in, totals.refunds, totals.held),
            (r.total_minor, r.total_minor, 0)
        );
        assert_eq!(t.db.product(pid).await.unwrap().stock, 5);
        // Reported: on the order's history, in the officials' list, and to the buyer by text.
        let oid = r.order_ids[0];
        let events = t.db.order_events(oid).await.unwrap();
        assert_eq!(
            events.last().unwrap().transition,
            tianguis_app::orders::LATE_REFUND
        );
        let late = t.db.late_refunds(10).await.unwrap();
        assert_eq!(
            late.iter().map(|l| (l.0, l.1.minor)).collect::<Vec<_>>(),
            vec![(oid, r.total_minor)]
        );
        let texts = t.db.order_texts(oid).await.unwrap();
        assert!(
            texts
                .iter()
                .any(|m| m.template == "sms-late-refund" && m.to_phone == "+529510000000"),
            "{texts:?}"
        );
        // A second word from the provider changes nothing.
        assert!(
            !tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
                .await
                .unwrap()
        );
        assert_eq!(t.db.late_refunds(10).await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cash_on_delivery_ships_unpaid_and_the_door_is_the_payment() {
    for t in all().await {
        let (_, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Comal", 18000, 4))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let mut rq = req(b, vec![(pid, 1)], "cod");
        rq.method = PaymentMethod::CashOnDelivery;
        let (r, _) = tianguis_app::orders::checkout(&t.db, &rq).await.unwrap();
        let oid = r.order_ids[0];
        assert_eq!(
            t.db.payment(r.payment_id).await.unwrap().status,
            "on_delivery"
        );
        // Not paid, yet not expired as unpaid after hours: it waits for the seller.
        t.db.clock.advance(Duration::from_secs(3 * 3600));
        run_due_jobs(&t.db, "w", 10).await.unwrap();
        assert_eq!(t.db.order(oid).await.unwrap().state, OrderState::Placed);
        assert!(matches!(
            tianguis_app::orders::transition(
                &t.db,
                oid,
                Transition::Accept,
                Actor::Seller,
                None,
                "",
                None
            )
            .await,
            Err(StoreError::Process(_))
        ));
        for tr in [
            Transition::AcceptOnDelivery,
            Transition::Pack,
            Transition::Ship,
        ] {
            tianguis_app::orders::transition(&t.db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert_eq!(totals.paid_in, 0, "nothing is paid before the door");
        assert!(matches!(
            tianguis_app::orders::transition(
                &t.db,
                oid,
                Transition::ConfirmDelivery,
                Actor::Buyer,
                None,
                "",
                None
            )
            .await,
            Err(StoreError::Process(_))
        ));
        let courier =
            t.db.user(t.db.seller(seller).await.unwrap().user_id)
                .await
                .unwrap();
        assert!(
            matches!(
                tianguis_app::orders::act(
                    &t.db,
                    &courier,
                    oid,
                    Transition::CollectOnDelivery,
                    "",
                    None
                )
                .await,
                Err(StoreError::Forbidden(_))
            ),
            "only with the code"
        );
        let code =
            t.db.order(oid)
                .await
                .unwrap()
                .delivery_code
                .expect("a code is issued when it ships");
        assert_eq!(
            tianguis_app::orders::deliver_with_code(&t.db, &courier, oid, &code)
                .await
                .unwrap(),
            OrderState::Delivered
        );
        let st = t.db.seller_statement(seller).await.unwrap();
        assert_eq!(
            (st.held, st.earned),
            (21000, 0),
            "the cash is held until the dispute window passes"
        );
        let ev = t.db.order_events(oid).await.unwrap();
        let last = ev.last().unwrap();
        assert_eq!(
            (
                last.transition.as_str(),
                last.actor.as_str(),
                last.actor_user_id
            ),
            ("collect_on_delivery", "seller", Some(courier.id))
        );
        t.db.clock.advance(Duration::from_secs(8 * 86_400));
        run_due_jobs(&t.db, "w", 10).await.unwrap();
        assert_eq!(t.db.order(oid).await.unwrap().state, OrderState::Completed);
        assert_eq!(
            t.db.seller_statement(seller).await.unwrap().earned,
            21000 - 1050
        );
        assert!(
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
        // A COD order nobody ships is cancelled at the ship deadline, with nothing to refund.
        let mut rq = req(b, vec![(pid, 1)], "cod-2");
        rq.method = PaymentMethod::CashOnDelivery;
        let (r2, _) = tianguis_app::orders::checkout(&t.db, &rq).await.unwrap();
        t.db.clock.advance(Duration::from_secs(5 * 86_400));
        run_due_jobs(&t.db, "w", 10).await.unwrap();
        assert_eq!(
            t.db.order(r2.order_ids[0]).await.unwrap().state,
            OrderState::Cancelled
        );
        assert_eq!(t.db.product(pid).await.unwrap().stock, 3);
        assert!(
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_is_proven_by_the_buyers_one_time_code() {
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Hamaca", 70000, 3))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let (r, _) = tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 1)], "pod"))
            .await
            .unwrap();
        let oid = r.order_ids[0];
        tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack] {
            tianguis_app::orders::transition(&t.db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        assert_eq!(
            t.db.order(oid).await.unwrap().delivery_code,
            None,
            "no code before it ships"
        );
        tianguis_app::orders::transition(
            &t.db,
            oid,
            Transition::Ship,
            Actor::Seller,
            None,
            "",
            None,
        )
        .await
        .unwrap();
        let code = t.db.order(oid).await.unwrap().delivery_code.unwrap();
        assert_eq!(code.len(), 6);
        let owner =
            t.db.user(t.db.seller(seller).await.unwrap().user_id)
                .await
                .unwrap();
        // The seller can no longer just say it arrived.
        assert!(
            tianguis_app::orders::act(&t.db, &owner, oid, Transition::ConfirmDelivery, "", None)
                .await
                .is_err()
        );
        assert!(
            tianguis_app::orders::act(&t.db, &owner, oid, Transition::DeliverWithCode, "", None)
                .await
                .is_err()
        );
        // Another seller cannot use a right code on someone else's order.
        let other_user = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52444444444",
                email: None,
                name: "Other",
                password: "password1",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await
        .unwrap();
        t.db.create_seller(other_user.id, "Other shop", place, 1, false)
            .await
            .unwrap();
        let other_user = t.db.user(other_user.id).await.unwrap();
        assert!(
            tianguis_app::orders::deliver_with_code(&t.db, &other_user, oid, &code)
                .await
                .is_err()
        );
        // Wrong codes are counted; the fifth locks the order.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for left in (0..5).rev() {
            match tianguis_app::orders::deliver_with_code(&t.db, &owner, oid, wrong).await {
                Err(StoreError::Invalid(m)) => assert_eq!(m.args, vec![("left", left.to_string())]),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(
                tianguis_app::orders::deliver_with_code(&t.db, &owner, oid, &code).await,
                Err(StoreError::Conflict(_))
            ),
            "locked even for the right code"
        );
        assert_eq!(t.db.order(oid).await.unwrap().state, OrderState::Shipped);
        // The buyer can still confirm it themselves.
        let buyer_user = t.db.user(b).await.unwrap();
        assert_eq!(
            tianguis_app::orders::act(
                &t.db,
                &buyer_user,
                oid,
                Transition::ConfirmDelivery,
                "",
                None
            )
            .await
            .unwrap(),
            OrderState::Delivered
        );

        // A fresh order: the right code, typed with a space, proves delivery.
        let (r, _) = tianguis_app::orders::checkout(&t.db, &req(b, vec![(pid, 1)], "pod-2"))
            .await
            .unwrap();
        let oid = r.order_ids[0];
        tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(&t.db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        let code = t.db.order(oid).await.unwrap().delivery_code.unwrap();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(
            tianguis_app::orders::deliver_with_code(&t.db, &owner, oid, &spaced)
                .await
                .unwrap(),
            OrderState::Delivered
        );
        let last = t.db.order_events(oid).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.transition.as_str(), last.actor_user_id),
            ("deliver_with_code", Some(owner.id))
        );
        assert!(
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delivery_promise_sets_due_dates_and_flags_late_orders() {
    use tianguis_domain::promise::{DAY_MS, Promise, status};
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        let pid =
            t.db.create_product(seller, &product(cat, "Miel", 12000, 50))
                .await
                .unwrap();
        // A buyer in a remote village promised 6 days; another with no place gets the default 4.
        let far =
            t.db.create_place("Cerro Alto", "village", Some(place))
                .await
                .unwrap();
        t.db.set_place_delivery_days(far, Some(6)).await.unwrap();
        assert!(t.db.set_place_delivery_days(far, Some(0)).await.is_err());
        let remote = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52555000111",
                email: None,
                name: "R",
                password: "password1",
                role: Role::Buyer,
                place_id: Some(far),
            },
        )
        .await
        .unwrap()
        .id;
        let near = buyer(&t.db, 2).await;
        let now = t.db.now_ms();
        let (a, _) = tianguis_app::orders::checkout(&t.db, &req(remote, vec![(pid, 1)], "far"))
            .await
            .unwrap();
        let (b, _) = tianguis_app::orders::checkout(&t.db, &req(near, vec![(pid, 1)], "near"))
            .await
            .unwrap();
        let (oa, ob) = (a.order_ids[0], b.order_ids[0]);
        let due_a = t.db.order(oa).await.unwrap().due_at.unwrap();
        let due_b = t.db.order(ob).await.unwrap().due_at.unwrap();
        assert!(
            (due_a - now - 6 * DAY_MS).abs() < 60_000 && (due_b - now - 4 * DAY_MS).abs() < 60_000
        );
        for r in [&a, &b] {
            tianguis_app::orders::payment_succeeded(&t.db, r.payment_id, None)
                .await
                .unwrap();
            tianguis_app::orders::transition(
                &t.db,
                r.order_ids[0],
                Transition::Accept,
                Actor::Seller,
                None,
                "",
                None,
            )
            .await
            .unwrap();
        }
        assert_eq!(
            t.db.promise_watch().await.unwrap().0.len()
                + t.db.promise_watch().await.unwrap().1.len(),
            0
        );
        // Day 3.5: the near order is at risk (due in half a day, not shipped).
        t.db.clock
            .advance(Duration::from_millis((3.5 * DAY_MS as f64) as u64));
        let (late, risk) = t.db.promise_watch().await.unwrap();
        assert_eq!(
            (late.len(), risk.iter().map(|o| o.id).collect::<Vec<_>>()),
            (0, vec![ob])
        );
        // Day 4.5: late. Shipping does not help; delivering takes it off the list, as broken.
        t.db.clock.advance(Duration::from_millis(DAY_MS as u64));
        tianguis_app::orders::transition(
            &t.db,
            ob,
            Transition::Pack,
            Actor::Seller,
            None,
            "",
            None,
        )
        .await
        .unwrap();
        tianguis_app::orders::transition(
            &t.db,
            ob,
            Transition::Ship,
            Actor::Seller,
            None,
            "",
            None,
        )
        .await
        .unwrap();
        let (late, _) = t.db.promise_watch().await.unwrap();
        assert_eq!(late.iter().map(|o| o.id).collect::<Vec<_>>(), vec![ob]);
        tianguis_app::orders::transition(
            &t.db,
            ob,
            Transition::ConfirmDelivery,
            Actor::Buyer,
            None,
            "",
            None,
        )
        .await
        .unwrap();
        let o = t.db.order(ob).await.unwrap();
        assert_eq!(
            status(o.state, t.db.now_ms(), o.due_at, o.delivered_at, DAY_MS),
            Promise::Broken
        );
        assert!(t.db.promise_watch().await.unwrap().0.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plus_code_addresses_are_checked_and_short_codes_recovered() {
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        t.db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        assert!(t.db.set_place_location(place, 91.0, 0.0).await.is_err());
        let pid =
            t.db.create_product(seller, &product(cat, "Tejate", 3000, 50))
                .await
                .unwrap();
        let b = buyer(&t.db, 1).await;
        let cases = [
            ("X722+FQ Santa Ana, casa azul", Some("7685X722+FQ")),
            ("7685x722+fq", Some("7685X722+FQ")),
            ("junto a la iglesia, tel +52 951 000 0000", None),
        ];
        for (i, (address, want)) in cases.iter().enumerate() {
            let mut r = req(b, vec![(pid, 1)], &format!("pc{i}"));
            r.address = address.to_string();
            let (res, _) = tianguis_app::orders::checkout(&t.db, &r).await.unwrap();
            assert_eq!(
                t.db.order(res.order_ids[0])
                    .await
                    .unwrap()
                    .plus_code
                    .as_deref(),
                *want,
                "{address}"
            );
        }
        for (i, (address, key)) in [
            ("X722+F Santa Ana", "err-plus-code"),
            ("X722+FQ somewhere unknown", "err-plus-code-place"),
        ]
        .iter()
        .enumerate()
        {
            let mut r = req(b, vec![(pid, 1)], &format!("bad{i}"));
            r.address = address.to_string();
            match tianguis_app::orders::checkout(&t.db, &r).await {
                Err(StoreError::Invalid(m)) => assert_eq!(m.key, *key, "{address}"),
                other => panic!("{address}: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_address_registry_imports_good_rows_and_reports_the_rest() {
    for t in all().await {
        let csv = "latitude,longitude,name,owner_phone\n\
                   16.9512,-96.7481,Rancho El Mezquite,+52 951 100 0001\n\
                   17.0501,-96.6012,\"Parcela 12, Lote B\",+529511000002\n\
                   91,-96.6,Too far north,+529511000003\n\
                   17.1,-96.9,,+529511000004\n\
                   17.1,abc,Bad number,+529511000005\n\
                   17.1,-96.9,Bad phone,12\n\
                   16.9512,-96.7481,Rancho El Mezquite,+529511000001\n";
        let mut seen = Vec::new();
        let report = t.db.import_registry(csv, |n| seen.push(n)).await.unwrap();
        assert_eq!((report.imported, report.duplicates), (2, 1));
        let lines: Vec<(u64, &str)> = report.rejected.iter().map(|(l, m)| (*l, m.key)).collect();
        assert_eq!(
            lines,
            vec![
                (4, "err-coordinates"),
                (5, "err-registry-name"),
                (6, "err-registry-coordinates"),
                (7, "err-phone")
            ]
        );
        assert_eq!(seen.last(), Some(&7));
        let mine = t.db.registered_addresses("+52 951 100 0001").await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (mine[0].name.as_str(), mine[0].plus_code.as_str()),
            ("Rancho El Mezquite", "7685X722+FQJ")
        );
        assert!(
            matches!(t.db.import_registry("a,b\n1,2\n", |_| {}).await, Err(StoreError::Invalid(m)) if m.key == "err-registry-header")
        );
        // A larger file goes in batches.
        let mut big = String::from("name,phone,lat,lng\n");
        for i in 0..1200 {
            big.push_str(&format!(
                "Casa {i},+5295120{:05},{},{}\n",
                i,
                16.9 + i as f64 * 0.0001,
                -96.7
            ));
        }
        let report = t.db.import_registry(&big, |_| {}).await.unwrap();
        assert_eq!((report.imported, report.rejected.len()), (1200, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pickup_points_offer_free_slots_hand_over_with_the_code_and_send_back_the_uncollected() {
    use tianguis_store::pickup::NewPickupPoint;
    for t in all().await {
        let (place, cat, seller) = small_shop(&t.db).await;
        t.db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        let pid =
            t.db.create_product(seller, &product(cat, "Mezcal", 45000, 20))
                .await
                .unwrap();
        let op = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52666000111",
                email: None,
                name: "Don Pepe",
                password: "password1",
                role: Role::Buyer,
                place_id: Some(place),
            },
        )
        .await
        .unwrap();
        let point = |name: &str, loc: (f64, f64), slots: i64, op: Option<&str>| NewPickupPoint {
            name: name.into(),
            kind: "store".into(),
            place_id: place,
            location: loc,
            slots,
            hours: "Mon-Sat 8-20".into(),
            hold_days: 5,
            fee_minor: 1500,
            operator_phone: op.map(str::to_string),
            contact: String::new(),
        };
        let near =
            t.db.create_pickup_point(&point(
                "Tienda Don Pepe",
                (16.9520, -96.7470),
                1,
                Some("+52666000111"),
            ))
            .await
            .unwrap();
        let far =
            t.db.create_pickup_point(&point("Gasolinera Norte", (17.2, -96.8), 10, None))
                .await
                .unwrap();
        assert!(
            t.db.create_pickup_point(&NewPickupPoint {
                kind: "castle".into(),
                ..point("X", (0.0, 0.0), 1, None)
            })
            .await
            .is_err()
        );
        assert!(
            t.db.user(op.id).await.unwrap().is(Role::Operator),
            "the operator's role is granted"
        );
        // The buyer lives in Santa Ana: the nearest point first.
        let b = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52666000222",
                email: None,
                name: "B",
                password: "password1",
                role: Role::Buyer,
                place_id: Some(place),
            },
        )
        .await
        .unwrap()
        .id;
        let offered: Vec<i64> =
            t.db.pickup_points_for(b)
                .await
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect();
        assert_eq!(offered, vec![near, far]);
        let mut r = req(b, vec![(pid, 1)], "pick-1");
        r.pickup_point_id = Some(near);
        r.address = String::new();
        let (res, _) = tianguis_app::orders::checkout(&t.db, &r).await.unwrap();
        let oid = res.order_ids[0];
        let o = t.db.order(oid).await.unwrap();
        assert_eq!(
            (o.delivery.minor, o.pickup_point_id, o.plus_code.is_some()),
            (1500, Some(near), true),
            "handling fee instead of delivery"
        );
        // Its only slot is taken: no longer offered, and a second booking is refused.
        assert_eq!(
            t.db.pickup_points_for(b)
                .await
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect::<Vec<_>>(),
            vec![far]
        );
        let mut r2 = req(b, vec![(pid, 1)], "pick-2");
        r2.pickup_point_id = Some(near);
        assert!(
            matches!(tianguis_app::orders::checkout(&t.db, &r2).await, Err(StoreError::Conflict(m)) if m.key == "err-pickup-full")
        );
        tianguis_app::orders::payment_succeeded(&t.db, res.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(&t.db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        let operator = t.db.user(op.id).await.unwrap();
        let code = t.db.order(oid).await.unwrap().delivery_code.unwrap();
        assert!(
            matches!(tianguis_app::orders::deliver_with_code(&t.db, &operator, oid, &code).await, Err(StoreError::Conflict(m)) if m.key == "err-pickup-not-checked-in")
        );
        let stranger = t.db.user(b).await.unwrap();
        assert!(
            tianguis_app::logistics::check_in(&t.db, &stranger, oid)
                .await
                .is_err(),
            "only its operator checks parcels in"
        );
        // Who runs the point is a matter of grants: a second operator granted there serves it,
        // and the grant taken back stops them at once.
        let admin = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52666000999",
                email: None,
                name: "Official",
                password: "password1",
                role: Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let helper = tianguis_app::people::create_user(
            &t.db,
            NewUser {
                phone: "+52666000333",
                email: None,
                name: "Doña Rosa",
                password: "password1",
                role: Role::Buyer,
                place_id: Some(place),
            },
        )
        .await
        .unwrap();
        let g =
            t.db.grant_role(
                admin.id,
                helper.id,
                tianguis_store::users::Grant::new(
                    Role::Operator,
                    tianguis_store::users::GrantScope::Point(tianguis_domain::ids::PointId(near)),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        let helper = t.db.user(helper.id).await.unwrap();
        assert_eq!(t.db.pickup_parcels(&helper).await.unwrap().0.len(), 1);
        t.db.revoke_grant(admin.id, g).await.unwrap();
        let helper = t.db.user(helper.id).await.unwrap();
        assert!(
            tianguis_app::logistics::check_in(&t.db, &helper, oid)
                .await
                .is_err(),
            "the grant taken back, the counter is closed to them"
        );
        tianguis_app::logistics::check_in(&t.db, &operator, oid)
            .await
            .unwrap();
        assert!(
            tianguis_app::logistics::check_in(&t.db, &operator, oid)
                .await
                .is_err(),
            "once"
        );
        let (expected, held) = t.db.pickup_parcels(&operator).await.unwrap();
        assert_eq!(
            (
                expected.len(),
                held.iter().map(|o| o.id).collect::<Vec<_>>()
            ),
            (0, vec![oid])
        );
        assert_eq!(
            tianguis_app::orders::deliver_with_code(&t.db, &operator, oid, &code)
                .await
                .unwrap(),
            OrderState::Delivered,
            "the hand-over is the proof"
        );
        // The hold-period timer then finds nothing to do.
        t.db.clock.advance(Duration::from_secs(6 * 86_400));
        run_due_jobs(&t.db, "w", 50).await.unwrap();
        assert_eq!(
            t.db.order(oid).await.unwrap().state,
            OrderState::Delivered,
            "collected: the return timer was skipped"
        );
        assert!(
            t.db.order_events(oid)
                .await
                .unwrap()
                .iter()
                .all(|e| e.transition != "return_uncollected")
        );

        // A parcel nobody collects goes back with a refund after the hold period.
        let mut r3 = req(b, vec![(pid, 1)], "pick-3");
        r3.pickup_point_id = Some(near);
        let (res3, _) = tianguis_app::orders::checkout(&t.db, &r3).await.unwrap();
        let o3 = res3.order_ids[0];
        tianguis_app::orders::payment_succeeded(&t.db, res3.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(&t.db, o3, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        tianguis_app::logistics::check_in(&t.db, &operator, o3)
            .await
            .unwrap();
        let stock = t.db.product(pid).await.unwrap().stock;
        t.db.clock.advance(Duration::from_secs(5 * 86_400 + 60));
        run_due_jobs(&t.db, "w", 50).await.unwrap();
        assert_eq!(t.db.order(o3).await.unwrap().state, OrderState::Refunded);
        assert_eq!(t.db.product(pid).await.unwrap().stock, stock + 1);
        let totals =
            t.db.ledger_totals(t.db.currency().await.unwrap())
                .await
                .unwrap();
        assert!(totals.holds(), "{totals:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_courier_pool_offers_fitting_jobs_and_follows_them_to_the_door_or_a_point() {
    use tianguis_domain::delivery::{FailReason, JobAction, JobState};
    use tianguis_store::delivery::{NewCarrier, SolvedStop};
    use tianguis_store::pickup::NewPickupPoint;
    for t in all().await {
        let db = &t.db;
        let (place, cat, seller) = small_shop(db).await;
        db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        let pid = db
            .create_product(seller, &product(cat, "Mezcal", 45000, 50))
            .await
            .unwrap();
        let person = |phone: &'static str, role: Role| NewUser {
            phone,
            email: None,
            name: "Rider",
            password: "password1",
            role,
            place_id: Some(place),
        };
        let rider = tianguis_app::people::create_user(db, person("+52777000001", Role::Buyer))
            .await
            .unwrap();
        let far_rider = tianguis_app::people::create_user(db, person("+52777000002", Role::Buyer))
            .await
            .unwrap();
        let admin = tianguis_app::people::create_user(db, person("+52777000003", Role::Admin))
            .await
            .unwrap();
        let operator = tianguis_app::people::create_user(db, person("+52777000004", Role::Buyer))
            .await
            .unwrap();
        let bike = NewCarrier {
            name: "Moto Juan".into(),
            kind: "motorbike".into(),
            capacity: 3,
            base: String::new(),
            radius_km: 15,
            shift_start_min: 8 * 60,
            shift_end_min: 18 * 60,
            speed_kmh: 30,
        };
        let c1 = db.register_carrier(&rider, &bike).await.unwrap();
        assert!(
            matches!(
                db.register_carrier(&rider, &bike).await,
                Err(StoreError::Conflict(_))
            ),
            "one carrier per person"
        );
        assert!(
            db.register_carrier(
                &far_rider,
                &NewCarrier {
                    kind: "spaceship".into(),
                    ..bike.clone()
                }
            )
            .await
            .is_err()
        );
        assert!(
            db.register_carrier(
                &far_rider,
                &NewCarrier {
                    shift_start_min: 900,
                    shift_end_min: 600,
                    ..bike.clone()
                }
            )
            .await
            .is_err()
        );
        // Far away: Puerto Escondido, 5 km around it.
        let c2 = db
            .register_carrier(
                &far_rider,
                &NewCarrier {
                    base: "7674VWCJ+22".into(),
                    radius_km: 5,
                    ..bike.clone()
                },
            )
            .await
            .unwrap();
        let rider = db.user(rider.id).await.unwrap();
        let far_rider = db.user(far_rider.id).await.unwrap();
        assert!(rider.is(Role::Courier));
        let me = db.carrier(c1).await.unwrap();
        let far = db.carrier(c2).await.unwrap();

        // Two paid orders of two parcels each, packed: two open jobs.
        let b = buyer(db, 1).await;
        let mut orders = Vec::new();
        for k in 0..2 {
            let (res, _) = tianguis_app::orders::checkout(
                db,
                &req(b, vec![(pid, 2)], &format!("courier-{k}")),
            )
            .await
            .unwrap();
            tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
                .await
                .unwrap();
            for tr in [Transition::Accept, Transition::Pack] {
                tianguis_app::orders::transition(
                    db,
                    res.order_ids[0],
                    tr,
                    Actor::Seller,
                    None,
                    "",
                    None,
                )
                .await
                .unwrap();
            }
            orders.push(res.order_ids[0]);
        }
        let jobs: Vec<i64> = {
            let mut v = Vec::new();
            for o in &orders {
                v.push(db.delivery_job_of_order(*o).await.unwrap().unwrap().id);
            }
            v
        };
        let job = db.delivery_job(jobs[0]).await.unwrap();
        assert_eq!(
            (job.state, job.parcels, job.cash_minor),
            (JobState::Open, 2, 0)
        );
        assert_eq!(
            db.delivery_offers(&me).await.unwrap().len(),
            2,
            "both fit an empty bike"
        );
        assert!(
            db.delivery_offers(&far).await.unwrap().is_empty(),
            "outside the far rider's area"
        );
        assert!(
            tianguis_app::logistics::job_act(db, &far_rider, jobs[0], JobAction::Accept, None)
                .await
                .is_err(),
            "a carrier cannot take a job outside their area"
        );
        assert_eq!(
            tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Accept, None)
                .await
                .unwrap(),
            JobState::Accepted
        );
        let me = db.carrier(c1).await.unwrap();
        assert_eq!(me.held, 2);
        assert!(
            db.delivery_offers(&me).await.unwrap().is_empty(),
            "2 + 2 parcels exceed a capacity of 3"
        );
        assert!(
            matches!(tianguis_app::logistics::job_act(db, &rider, jobs[1], JobAction::Accept, None).await, Err(StoreError::Conflict(m)) if m.key == "err-job-does-not-fit")
        );
        assert!(
            matches!(
                tianguis_app::logistics::job_act(db, &far_rider, jobs[0], JobAction::PickUp, None)
                    .await,
                Err(StoreError::NotFound(_))
            ),
            "only the holder moves a job"
        );
        assert!(
            tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Depart, None)
                .await
                .is_err(),
            "pick up first"
        );

        // Picking up ships the order; the courier may now see it.
        tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::PickUp, None)
            .await
            .unwrap();
        let o = db.order(orders[0]).await.unwrap();
        assert_eq!(
            (o.state, o.courier_user_id),
            (OrderState::Shipped, Some(rider.id))
        );
        let code = o.delivery_code.unwrap();
        tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Depart, None)
            .await
            .unwrap();
        assert!(
            matches!(tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Fail, None).await, Err(StoreError::Invalid(m)) if m.key == "err-job-reason"),
            "a failed attempt needs a reason"
        );
        tianguis_app::logistics::job_act(
            db,
            &rider,
            jobs[0],
            JobAction::Fail,
            Some(FailReason::NotHome),
        )
        .await
        .unwrap();
        tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Retry, None)
            .await
            .unwrap();
        tianguis_app::logistics::job_act(
            db,
            &rider,
            jobs[0],
            JobAction::Fail,
            Some(FailReason::WrongAddress),
        )
        .await
        .unwrap();
        let j = db.delivery_job(jobs[0]).await.unwrap();
        assert_eq!(
            (j.state, j.attempts, j.last_failure.as_deref()),
            (JobState::Failed, 2, Some("wrong_address"))
        );
        assert!(
            matches!(tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Retry, None).await, Err(StoreError::Conflict(m)) if m.key == "err-job-no-attempts")
        );
        // No point has room yet: the redirect is refused, nothing changes.
        assert!(
            matches!(tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Redirect, None).await, Err(StoreError::Conflict(m)) if m.key == "err-no-point-room")
        );
        let point = db
            .create_pickup_point(&NewPickupPoint {
                name: "Tienda Don Pepe".into(),
                kind: "store".into(),
                place_id: place,
                location: (16.9520, -96.7470),
                slots: 5,
                hours: "Lun-Sáb 8:00-20:00".into(),
                hold_days: 5,
                fee_minor: 1500,
                operator_phone: Some("+52777000004".into()),
                contact: "+52777000004".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            tianguis_app::logistics::job_act(db, &rider, jobs[0], JobAction::Redirect, None)
                .await
                .unwrap(),
            JobState::OutForDelivery
        );
        let j = db.delivery_job(jobs[0]).await.unwrap();
        assert_eq!(
            (j.pickup_point_id, j.drop),
            (Some(point), (16.9520, -96.7470))
        );
        assert!(
            matches!(tianguis_app::logistics::deliver_job(db, &rider, jobs[0], &code).await, Err(StoreError::Conflict(m)) if m.key == "err-job-at-point"),
            "at a point the check-in is the hand-over"
        );
        let operator = db.user(operator.id).await.unwrap();
        tianguis_app::logistics::check_in(db, &operator, orders[0])
            .await
            .unwrap();
        assert_eq!(
            db.delivery_job(jobs[0]).await.unwrap().state,
            JobState::Delivered
        );
        assert_eq!(
            tianguis_app::orders::deliver_with_code(db, &operator, orders[0], &code)
                .await
                .unwrap(),
            OrderState::Delivered
        );
        let actions: Vec<String> = db
            .job_events(jobs[0])
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                "accept", "pick_up", "depart", "fail", "retry", "fail", "redirect", "deliver"
            ]
        );

        // Cash on delivery at the door: the courier collects with the buyer's code.
        let mut r = req(b, vec![(pid, 1)], "courier-cod");
        r.method = PaymentMethod::CashOnDelivery;
        let (res, _) = tianguis_app::orders::checkout(db, &r).await.unwrap();
        let cod = res.order_ids[0];
        for tr in [Transition::AcceptOnDelivery, Transition::Pack] {
            tianguis_app::orders::transition(db, cod, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        let cj = db.delivery_job_of_order(cod).await.unwrap().unwrap();
        assert_eq!(
            cj.cash_minor,
            db.order(cod).await.unwrap().total.minor,
            "cash to collect"
        );
        tianguis_app::logistics::job_act(db, &rider, cj.id, JobAction::Accept, None)
            .await
            .unwrap();
        tianguis_app::logistics::job_act(db, &rider, cj.id, JobAction::PickUp, None)
            .await
            .unwrap();
        assert!(
            tianguis_app::logistics::deliver_job(db, &rider, cj.id, "000000")
                .await
                .is_err(),
            "not out for delivery yet"
        );
        tianguis_app::logistics::job_act(db, &rider, cj.id, JobAction::Depart, None)
            .await
            .unwrap();
        let code = db.order(cod).await.unwrap().delivery_code.unwrap();
        let wrong = if code == "111111" { "222222" } else { "111111" };
        assert!(
            matches!(tianguis_app::logistics::deliver_job(db, &rider, cj.id, wrong).await, Err(StoreError::Invalid(m)) if m.key == "err-code-wrong")
        );
        assert_eq!(
            tianguis_app::logistics::deliver_job(db, &rider, cj.id, &code)
                .await
                .unwrap(),
            OrderState::Delivered
        );
        assert_eq!(
            db.delivery_job(cj.id).await.unwrap().state,
            JobState::Delivered
        );
        let totals = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap();
        assert!(totals.holds(), "{totals:?}");

        // The second job: an order that is never shipped is cancelled, and so is its job.
        db.clock.advance(Duration::from_secs(30 * 86_400));
        run_due_jobs(db, "w", 50).await.unwrap();
        assert_eq!(
            db.order(orders[1]).await.unwrap().state,
            OrderState::Cancelled
        );
        assert_eq!(
            db.delivery_job(jobs[1]).await.unwrap().state,
            JobState::Cancelled
        );
        // The delivered order completed: its delivery fee is the courier's, not the seller's.
        let done = db
            .order(db.delivery_job(cj.id).await.unwrap().order_id)
            .await
            .unwrap();
        assert_eq!(done.state, OrderState::Completed);
        assert!(done.delivery.minor > 0);
        let cur = db.currency().await.unwrap();
        let courier_owed = db
            .payee_owed(tianguis_domain::payout::Payee::Courier(rider.id), cur)
            .await
            .unwrap()
            .minor;
        assert!(
            courier_owed >= done.delivery.minor,
            "{courier_owed} owed to the courier"
        );
        let release = db
            .order_postings(done.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|(kind, _, _)| kind == "release")
            .collect::<Vec<_>>();
        assert!(
            release.iter().any(
                |(_, acct, amt)| acct == &format!("courier:{}:payable", rider.id)
                    && *amt == done.delivery.minor
            ),
            "{release:?}"
        );
        assert!(db.ledger_totals(cur).await.unwrap().holds());
        let _ = admin;

        // Route plans: one morning plan per carrier and day; claimed once; stops kept in order.
        let again = {
            let (res, _) =
                tianguis_app::orders::checkout(db, &req(b, vec![(pid, 1)], "courier-plan"))
                    .await
                    .unwrap();
            tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
                .await
                .unwrap();
            for tr in [Transition::Accept, Transition::Pack] {
                tianguis_app::orders::transition(
                    db,
                    res.order_ids[0],
                    tr,
                    Actor::Seller,
                    None,
                    "",
                    None,
                )
                .await
                .unwrap();
            }
            db.delivery_job_of_order(res.order_ids[0])
                .await
                .unwrap()
                .unwrap()
                .id
        };
        tianguis_app::logistics::job_act(db, &rider, again, JobAction::Accept, None)
            .await
            .unwrap();
        assert_eq!(db.queue_morning_plans("2026-11-23", 500).await.unwrap(), 1);
        assert_eq!(
            db.queue_morning_plans("2026-11-23", 500).await.unwrap(),
            0,
            "once a day"
        );
        // The plan is a job of the planner's lane: claimed once, across workers.
        use tianguis_store::queue::Lane;
        let jobs = db
            .claim_jobs(Lane::Planner, "p1", 10, 60_000)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
        assert!(
            db.claim_jobs(Lane::Planner, "p2", 10, 60_000)
                .await
                .unwrap()
                .is_empty(),
            "claimed once"
        );
        let plan_id = jobs[0].id_in("plan_id").unwrap();
        let (plan, carrier, todo) = db.start_route_plan(plan_id, 60_000).await.unwrap().unwrap();
        assert!(
            db.start_route_plan(plan_id, 60_000)
                .await
                .unwrap()
                .is_none(),
            "started once"
        );
        assert_eq!(
            (carrier.id, todo.iter().map(|j| j.id).collect::<Vec<_>>()),
            (c1, vec![again])
        );
        db.finish_route_plan(
            plan.id,
            &[
                SolvedStop {
                    job_id: again,
                    pickup: true,
                    arrival_min: 490,
                    departure_min: 495,
                },
                SolvedStop {
                    job_id: again,
                    pickup: false,
                    arrival_min: 520,
                    departure_min: 525,
                },
            ],
            12_345,
            560,
            &[],
        )
        .await
        .unwrap();
        assert!(
            db.finish_route_plan(plan.id, &[], 0, 0, &[]).await.is_err(),
            "finished once"
        );
        let stops = db.route_stops(plan.id).await.unwrap();
        assert_eq!(
            stops
                .iter()
                .map(|s| (s.seq, s.kind.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "pickup"), (2, "drop")]
        );
        assert_eq!(stops[1].job.buyer_phone, "+529510000000");
        let p = db.route_plan(plan.id).await.unwrap();
        assert_eq!((p.status.as_str(), p.distance_m), ("done", Some(12_345)));
        assert_eq!(db.route_plans_on("2026-11-23").await.unwrap().len(), 1);
        // A seller who ships themselves withdraws the job nobody took; it is offered no more.
        let (res, _) = tianguis_app::orders::checkout(db, &req(b, vec![(pid, 1)], "courier-self"))
            .await
            .unwrap();
        tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(
                db,
                res.order_ids[0],
                tr,
                Actor::Seller,
                None,
                "",
                None,
            )
            .await
            .unwrap();
        }
        let own = db
            .delivery_job_of_order(res.order_ids[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(own.state, JobState::Cancelled);
        // On demand: another plan the same day, queued behind.
        assert!(
            db.queue_route_plan(c1, "2026-11-23", 500, false)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_orders_for_a_walk_in_buyer_holds_the_cash_hands_it_over_and_earns_a_commission() {
    use tianguis_domain::commission::{Basis, Rule, Source};
    use tianguis_store::pickup::NewPickupPoint;
    for t in all().await {
        let db = &t.db;
        let (place, cat, seller) = small_shop(db).await;
        db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        let pid = db
            .create_product(seller, &product(cat, "Mezcal", 45000, 50))
            .await
            .unwrap();
        let person = |phone: &'static str, role: Role| NewUser {
            phone,
            email: None,
            name: "Agente",
            password: "password1",
            role,
            place_id: Some(place),
        };
        let admin = tianguis_app::people::create_user(db, person("+52888000001", Role::Admin))
            .await
            .unwrap();
        let agent = tianguis_app::people::create_user(db, person("+52888000002", Role::Buyer))
            .await
            .unwrap();
        let other = tianguis_app::people::create_user(db, person("+52888000003", Role::Buyer))
            .await
            .unwrap();
        let centre = |name: &str| NewPickupPoint {
            name: name.into(),
            kind: "centre".into(),
            place_id: place,
            location: (16.9515, -96.7478),
            slots: 20,
            hours: "Lun-Sáb 8:00-20:00".into(),
            hold_days: 5,
            fee_minor: 1000,
            operator_phone: None,
            contact: "+52888000009".into(),
        };
        let c1 = db
            .create_pickup_point(&centre("Centro Digital Santa Ana"))
            .await
            .unwrap();
        let c2 = db
            .create_pickup_point(&centre("Centro Digital El Rosario"))
            .await
            .unwrap();
        let store_point = db
            .create_pickup_point(&NewPickupPoint {
                kind: "store".into(),
                ..centre("Tienda")
            })
            .await
            .unwrap();
        assert!(
            db.attach_agent(&admin, store_point, "+52888000002")
                .await
                .is_err(),
            "only centres have agents"
        );
        assert!(
            db.attach_agent(&agent, c1, "+52888000002").await.is_err(),
            "only officials attach agents"
        );
        let agent = db.attach_agent(&admin, c1, "+52888000002").await.unwrap();
        let other = db.attach_agent(&admin, c2, &other.phone).await.unwrap();
        assert_eq!((agent.is(Role::Agent), agent.centre_id), (true, Some(c1)));
        assert_eq!(db.agents_of(c1).await.unwrap().len(), 1);
        // Commissions: 2% of what is released, from the platform fee, at this centre; a general
        // fixed rule elsewhere.
        db.create_commission_rule(&Rule {
            id: 0,
            centre_id: None,
            category_id: None,
            basis: Basis::Fixed(500),
            cap_minor: None,
            source: Source::SellerProceeds,
        })
        .await
        .unwrap();
        db.create_commission_rule(&Rule {
            id: 0,
            centre_id: Some(c1),
            category_id: None,
            basis: Basis::Percent(200),
            cap_minor: Some(100_000),
            source: Source::PlatformFee,
        })
        .await
        .unwrap();
        assert!(
            db.create_commission_rule(&Rule {
                id: 0,
                centre_id: None,
                category_id: None,
                basis: Basis::Percent(20_000),
                cap_minor: None,
                source: Source::PlatformFee
            })
            .await
            .is_err()
        );

        // A walk-in buyer, cash to the agent, collect at the centre.
        let (res, replay) = tianguis_app::assisted::assisted_checkout(
            db,
            &agent,
            tianguis_app::assisted::AssistedCheckout {
                buyer_name: "Doña Rosa",
                buyer_phone: "+52999000111",
                lines: vec![(pid, 2)],
                method: PaymentMethod::Cash,
                address: "",
                at_centre: true,
                idempotency_key: "walk-in-1",
                session_id: None,
                limits: Vec::new(),
                buyer_lang: None,
            },
        )
        .await
        .unwrap();
        assert!(!replay);
        let again = tianguis_app::assisted::assisted_checkout(
            db,
            &agent,
            tianguis_app::assisted::AssistedCheckout {
                buyer_name: "Doña Rosa",
                buyer_phone: "+52999000111",
                lines: vec![(pid, 2)],
                method: PaymentMethod::Cash,
                address: "",
                at_centre: true,
                idempotency_key: "walk-in-1",
                session_id: None,
                limits: Vec::new(),
                buyer_lang: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (again.0.clone(), again.1),
            (res.clone(), true),
            "a replay creates nothing"
        );
        let oid = res.order_ids[0];
        let o = db.order(oid).await.unwrap();
        assert_eq!(
            (o.agent_id, o.centre_id, o.pickup_point_id),
            (Some(agent.id), Some(c1), Some(c1))
        );
        assert_eq!(o.state, OrderState::Paid, "the agent took the cash");
        assert_eq!(res.tracking_code.len(), 8);
        assert_eq!(
            db.order_by_tracking(&res.tracking_code.to_lowercase())
                .await
                .unwrap()[0]
                .id,
            oid
        );
        assert_eq!(
            db.cash_on_hand(agent.id).await.unwrap().minor,
            res.total_minor
        );
        let mut sms = db.outbox(10).await.unwrap();
        sms.reverse();
        // The walk-in buyer hears the order is placed and the cash received; the seller hears of
        // a paid order. Each once, even after the replay.
        let seller_phone = "+52111111111";
        assert_eq!(
            sms.iter()
                .map(|m| (m.to_phone.as_str(), m.template.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("+52999000111", "sms-order-placed"),
                ("+52999000111", "sms-paid"),
                (seller_phone, "sms-seller-new-order"),
            ]
        );
        assert!(
            sms[0]
                .args
                .contains(&("code".to_string(), res.tracking_code.clone()))
        );
        assert!(sms.iter().all(|m| m.order_id == Some(oid)));
        let buyer = db.user(o.buyer_id).await.unwrap();
        assert_eq!(
            (buyer.name.as_str(), buyer.primary_role()),
            ("Doña Rosa", Role::Buyer)
        );
        // Agents see their centre's orders only.
        let orders = db.centre_orders(c1, 50).await.unwrap();
        assert_eq!(orders.iter().map(|o| o.id).collect::<Vec<_>>(), vec![oid]);
        assert!(tianguis_store::orders::may_view(&agent, &o));
        assert!(!tianguis_store::orders::may_view(&other, &o));
        assert!(
            tianguis_app::logistics::check_in(db, &other, oid)
                .await
                .is_err()
        );

        // Fulfilled to the centre; the agent checks it in and hands it over with the code.
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        tianguis_app::logistics::check_in(db, &agent, oid)
            .await
            .unwrap();
        let code = db.order(oid).await.unwrap().delivery_code.unwrap();
        assert_eq!(
            tianguis_app::orders::deliver_with_code(db, &agent, oid, &code)
                .await
                .unwrap(),
            OrderState::Delivered
        );
        // Released after the dispute window: the commission accrues.
        db.clock.advance(Duration::from_secs(8 * 86_400));
        run_due_jobs(db, "w", 50).await.unwrap();
        assert_eq!(db.order(oid).await.unwrap().state, OrderState::Completed);
        let st = db.agent_statement(agent.id, 0, i64::MAX).await.unwrap();
        assert_eq!(st.lines.len(), 1);
        assert_eq!(st.earned_in_period, res.total_minor * 200 / 10_000);
        assert_eq!(st.owed, st.earned_in_period);

        // An order cancelled before release earns nothing.
        let (res2, _) = tianguis_app::assisted::assisted_checkout(
            db,
            &agent,
            tianguis_app::assisted::AssistedCheckout {
                buyer_name: "Doña Rosa",
                buyer_phone: "+52999000111",
                lines: vec![(pid, 1)],
                method: PaymentMethod::Cash,
                address: "Casa azul, Santa Ana",
                at_centre: false,
                idempotency_key: "walk-in-2",
                session_id: None,
                limits: Vec::new(),
                buyer_lang: None,
            },
        )
        .await
        .unwrap();
        tianguis_app::orders::transition(
            db,
            res2.order_ids[0],
            Transition::Cancel,
            Actor::Seller,
            None,
            "no stock",
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            db.agent_statement(agent.id, 0, i64::MAX)
                .await
                .unwrap()
                .lines
                .len(),
            1
        );
        // Mobile money from the buyer's phone: nothing in the agent's hands.
        let (res3, _) = tianguis_app::assisted::assisted_checkout(
            db,
            &agent,
            tianguis_app::assisted::AssistedCheckout {
                buyer_name: "Doña Rosa",
                buyer_phone: "+52999000111",
                lines: vec![(pid, 1)],
                method: PaymentMethod::MobileMoney,
                address: "",
                at_centre: true,
                idempotency_key: "walk-in-3",
                session_id: None,
                limits: Vec::new(),
                buyer_lang: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(db.payment(res3.payment_id).await.unwrap().status, "pending");
        // Nobody records a mobile-money payment as cash in hand: only its provider settles it.
        assert!(matches!(
            tianguis_app::assisted::collect_cash(db, &agent, res3.payment_id).await,
            Err(StoreError::Invalid(m)) if m.key == "err-cash-only"
        ));
        assert_eq!(db.payment(res3.payment_id).await.unwrap().status, "pending");
        // Cash already taken is not taken twice.
        assert!(
            !tianguis_app::assisted::collect_cash(db, &agent, res.payment_id)
                .await
                .unwrap()
        );
        let on_hand = db.cash_on_hand(agent.id).await.unwrap().minor;
        assert_eq!(
            on_hand,
            res.total_minor + res2.total_minor,
            "cash stays with the agent even when the order is refunded"
        );

        // Hand-over: more than held is refused; declaring less leaves a shortfall on record.
        assert!(
            db.record_handover(&agent, on_hand + 1, "bank", "DEP-1")
                .await
                .is_err()
        );
        assert!(
            db.record_handover(&agent, 100, "under the mattress", "x")
                .await
                .is_err()
        );
        assert!(db.record_handover(&agent, 100, "bank", "  ").await.is_err());
        let h = db
            .record_handover(&agent, on_hand - 5000, "bank", "DEP-0042")
            .await
            .unwrap();
        assert_eq!(
            (h.expected_minor, h.declared_minor, h.shortfall()),
            (on_hand, on_hand - 5000, 5000)
        );
        let holders = db.cash_holders().await.unwrap();
        let me = holders.iter().find(|h| h.user_id == agent.id).unwrap();
        assert_eq!(
            (me.on_hand, me.last_shortfall, me.collected),
            (5000, 5000, on_hand)
        );
        assert_eq!(db.cash_on_hand(agent.id).await.unwrap().minor, 5000);

        // Commissions are paid out by batch like everyone's.
        pay_out_all(db).await;
        let st = db.agent_statement(agent.id, 0, i64::MAX).await.unwrap();
        assert_eq!((st.owed, st.paid_out_total), (0, st.earned_in_period));
        let totals = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap();
        assert!(totals.holds(), "{totals:?}");
        // A suspended agent can no longer order.
        db.set_user_active(admin.id, agent.id, false).await.unwrap();
        let suspended = db.user(agent.id).await.unwrap();
        assert!(
            tianguis_app::assisted::assisted_checkout(
                db,
                &suspended,
                tianguis_app::assisted::AssistedCheckout {
                    buyer_name: "X",
                    buyer_phone: "+52999000112",
                    lines: vec![(pid, 1)],
                    method: PaymentMethod::Cash,
                    address: "",
                    at_centre: true,
                    idempotency_key: "walk-in-4",
                    session_id: None,
                    limits: Vec::new(),
                    buyer_lang: None,
                }
            )
            .await
            .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_onboards_sellers_only_with_consent_and_within_the_mandate() {
    use tianguis_domain::mandate::{Consent, Scope};
    use tianguis_store::mandates::Onboarding;
    use tianguis_store::pickup::NewPickupPoint;
    for t in all().await {
        let db = &t.db;
        let (place, cat, _) = small_shop(db).await;
        db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        let admin = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52888100001",
                email: None,
                name: "Admin",
                password: "password1",
                role: Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let agent = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52888100002",
                email: None,
                name: "Rosa",
                password: "password1",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let centre = db
            .create_pickup_point(&NewPickupPoint {
                name: "Centro".into(),
                kind: "centre".into(),
                place_id: place,
                location: (16.9515, -96.7478),
                slots: 20,
                hours: "8:00-20:00".into(),
                hold_days: 5,
                fee_minor: 1000,
                operator_phone: None,
                contact: String::new(),
            })
            .await
            .unwrap();
        let agent = db.attach_agent(&admin, centre, &agent.phone).await.unwrap();
        let onboarding = |phone: &str, consent: Consent, scope: Scope| Onboarding {
            name: "Don Chema".into(),
            phone: phone.into(),
            shop_name: "Quesos Chema".into(),
            place_id: place,
            women_led: false,
            scope,
            // A paper consent comes with the signed form photographed.
            paper_form: matches!(consent, Consent::Paper(_))
                .then(|| tianguis_demo::photo::demo_photo(7)),
            consent,
        };
        let listings = Scope {
            listings: true,
            orders: false,
        };
        // Consent by a code texted to the seller.
        assert!(
            matches!(
                db.onboard_seller(&agent, &onboarding("+52999200001", Consent::Code("123456".into()), listings)).await,
                Err(StoreError::Invalid(m)) if m.key == "err-otp-expired"
            ),
            "no code sent yet"
        );
        tianguis_app::notify::send_phone_code(db, "consent", "+52999200001", Some(agent.id), "es")
            .await
            .unwrap();
        let sms = db.outbox(1).await.unwrap().remove(0);
        assert_eq!(
            (sms.to_phone.as_str(), sms.template.as_str()),
            ("+52999200001", "sms-code-consent")
        );
        // The code is made as the text goes out (the sender's part); the outbox holds none.
        assert!(sms.args.is_empty(), "{:?}", sms.args);
        let code = db
            .issue_phone_code(sms.code_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matches!(
            db.onboard_seller(&agent, &onboarding("+52999200001", Consent::Code(wrong.into()), listings)).await,
            Err(StoreError::Invalid(m)) if m.key == "err-otp-wrong"
        ));
        assert!(
            db.onboard_seller(
                &agent,
                &onboarding(
                    "+52999200001",
                    Consent::Code(code.clone()),
                    Scope::default()
                )
            )
            .await
            .is_err(),
            "a scope is needed"
        );
        let (sid, m) = db
            .onboard_seller(
                &agent,
                &onboarding("+52999200001", Consent::Code(code.clone()), listings),
            )
            .await
            .unwrap();
        assert_eq!(
            (m.consent_method.as_str(), m.consent_ref.as_str(), m.scope),
            ("code", "+52999200001", listings)
        );
        assert!(m.consented_by.contains("Don Chema"));
        assert!(
            db.onboard_seller(
                &agent,
                &onboarding("+52999200001", Consent::Code(code), listings)
            )
            .await
            .is_err(),
            "a code works once"
        );
        let seller_user = db.user_by_phone("+52999200001").await.unwrap();
        assert_eq!(
            (seller_user.primary_role(), seller_user.seller_id),
            (Role::Seller, Some(sid))
        );
        // Listings within the mandate, once per key.
        assert!(
            db.mandate_for(&agent, sid, |s| s.listings)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            db.mandate_for(&agent, sid, |s| s.orders)
                .await
                .unwrap()
                .is_none(),
            "no orders scope"
        );
        let input = product(cat, "Queso fresco", 9000, 5);
        let p1 = db
            .create_product_once(sid, &input, "offline-1")
            .await
            .unwrap();
        let p2 = db
            .create_product_once(sid, &input, "offline-1")
            .await
            .unwrap();
        assert_eq!(p1, p2, "a listing sent twice is one listing");
        assert!(
            db.create_product_once(sid, &product(cat, "", 9000, 5), "offline-2")
                .await
                .is_err()
        );
        assert!(
            db.create_product_once(sid, &input, "offline-2")
                .await
                .is_ok(),
            "a refused form frees its key"
        );
        // Orders: refused without the scope.
        let b = buyer(db, 7).await;
        let (res, _) = tianguis_app::orders::checkout(db, &req(b, vec![(p1, 1)], "mandate-order"))
            .await
            .unwrap();
        tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
            .await
            .unwrap();
        let oid = res.order_ids[0];
        assert!(
            tianguis_app::orders::act(db, &agent, oid, Transition::Accept, "", None)
                .await
                .is_err()
        );
        // A second seller consents on paper, for orders too: the agent accepts for them.
        let both = Scope {
            listings: true,
            orders: true,
        };
        assert!(
            db.onboard_seller(
                &agent,
                &onboarding("+52999200002", Consent::Paper(" ".into()), both)
            )
            .await
            .is_err()
        );
        // Paper without the photographed form is refused.
        let mut no_photo = onboarding("+52999200002", Consent::Paper("FORM-0007".into()), both);
        no_photo.paper_form = None;
        assert!(matches!(
            db.onboard_seller(&agent, &no_photo).await,
            Err(StoreError::Invalid(m)) if m.key == "err-mandate-paper-photo"
        ));
        // Paper cannot hand over an account that exists (the first seller's, or a buyer's):
        // only a code texted to that phone can.
        assert!(matches!(
            db.onboard_seller(&agent, &onboarding("+52999200001", Consent::Paper("FORM-0008".into()), both)).await,
            Err(StoreError::Invalid(m)) if m.key == "err-mandate-paper-existing"
        ));
        let buyer_phone = db.user(b).await.unwrap().phone;
        assert!(matches!(
            db.onboard_seller(&agent, &onboarding(&buyer_phone, Consent::Paper("FORM-0009".into()), both)).await,
            Err(StoreError::Invalid(m)) if m.key == "err-mandate-paper-existing"
        ));
        assert!(
            db.user(b).await.unwrap().seller_id.is_none(),
            "the buyer got no shop"
        );
        let (sid2, m2) = db
            .onboard_seller(
                &agent,
                &onboarding("+52999200002", Consent::Paper("FORM-0007".into()), both),
            )
            .await
            .unwrap();
        // The form is kept, shown to the agent, the seller and officials only.
        assert!(db.consent_form(&agent, m2.id).await.is_ok());
        let stranger = db.user(b).await.unwrap();
        assert!(matches!(
            db.consent_form(&stranger, m2.id).await,
            Err(StoreError::NotFound(_))
        ));
        let p3 = db
            .create_product(sid2, &product(cat, "Tlayudas", 5000, 5))
            .await
            .unwrap();
        let (res, _) =
            tianguis_app::orders::checkout(db, &req(b, vec![(p3, 1)], "mandate-order-2"))
                .await
                .unwrap();
        tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
            .await
            .unwrap();
        let oid2 = res.order_ids[0];
        assert_eq!(
            tianguis_app::orders::act(db, &agent, oid2, Transition::Accept, "", None)
                .await
                .unwrap(),
            OrderState::Accepted
        );
        // An orders mandate moves orders along; it does not refund them.
        assert!(matches!(
            tianguis_app::orders::act(db, &agent, oid2, Transition::Cancel, "", None).await,
            Err(StoreError::Forbidden(m)) if m.key == "err-mandate-action"
        ));
        assert_eq!(
            db.order(oid2).await.unwrap().state,
            OrderState::Accepted,
            "nothing changed"
        );
        let audit: Vec<String> = db
            .mandate_events(m2.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(audit, ["granted", "accept"]);
        // The seller revokes: the agent's rights stop at once.
        let seller2 = db.user_by_phone("+52999200002").await.unwrap();
        assert!(
            db.revoke_mandate(&agent, m2.id).await.is_err(),
            "only the seller (or an official) revokes"
        );
        db.revoke_mandate(&seller2, m2.id).await.unwrap();
        assert!(db.revoke_mandate(&seller2, m2.id).await.is_err(), "once");
        assert!(
            tianguis_app::orders::act(db, &agent, oid2, Transition::Pack, "", None)
                .await
                .is_err()
        );
        assert!(
            db.mandate_for(&agent, sid2, |s| s.listings)
                .await
                .unwrap()
                .is_none()
        );
        // The seller claims the account made for them.
        assert!(
            tianguis_app::people::authenticate(db, "+52999200002", "mi-clave-nueva")
                .await
                .unwrap()
                .is_none()
        );
        tianguis_app::notify::send_phone_code(db, "claim", "+52999200002", None, "es")
            .await
            .unwrap();
        let code_id = db.outbox(1).await.unwrap().remove(0).code_id.unwrap();
        let code = db.issue_phone_code(code_id).await.unwrap().unwrap();
        assert!(
            tianguis_app::people::claim_account(db, "+52999200002", &code, "short")
                .await
                .is_err()
        );
        // A phone with no account gets the answer a wrong code gets: nothing to learn.
        let (ghost, known) = (
            tianguis_app::people::reset_password(db, "+52999299999", "123456", "mi-clave-nueva")
                .await,
            tianguis_app::people::reset_password(db, "+52999200002", "123456", "mi-clave-nueva")
                .await,
        );
        assert!(
            matches!((&ghost, &known), (Err(StoreError::Invalid(a)), Err(StoreError::Invalid(b))) if a.key == b.key),
            "{ghost:?} / {known:?}"
        );
        tianguis_app::people::claim_account(db, "+52999200002", &code, "mi-clave-nueva")
            .await
            .unwrap();
        assert!(
            tianguis_app::people::authenticate(db, "+52999200002", "mi-clave-nueva")
                .await
                .unwrap()
                .is_some()
        );
        let _ = oid;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn champions_bring_two_to_four_businesses_online_and_are_paid_per_milestone() {
    use tianguis_domain::champion::Milestone;
    for t in all().await {
        let db = &t.db;
        let (place, cat, first) = small_shop(db).await;
        let admin = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52888300001",
                email: None,
                name: "Admin",
                password: "password1",
                role: Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let champ = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52888300002",
                email: None,
                name: "Sofía",
                password: "password1",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let mut sellers = vec![first];
        for k in 0..4 {
            let u = tianguis_app::people::create_user(
                db,
                NewUser {
                    phone: &format!("+5288830010{k}"),
                    email: None,
                    name: "S",
                    password: "password1",
                    role: Role::Buyer,
                    place_id: Some(place),
                },
            )
            .await
            .unwrap();
            sellers.push(
                db.create_seller(u.id, &format!("Tienda {k}"), place, 1, k % 2 == 0)
                    .await
                    .unwrap(),
            );
        }
        let milestones = [
            Milestone::Listed,
            Milestone::FirstSale,
            Milestone::Listed,
            Milestone::LevelUp,
        ];
        let mut ids = Vec::new();
        for (s, m) in sellers.iter().zip(milestones) {
            ids.push(
                db.assign_champion(&admin, &champ.phone, *s, m, 50_000)
                    .await
                    .unwrap(),
            );
        }
        assert!(matches!(
            db.assign_champion(&admin, &champ.phone, sellers[4], Milestone::Listed, 50_000).await,
            Err(StoreError::Conflict(m)) if m.key == "err-champion-full"
        ));
        assert!(
            db.assign_champion(&champ, "+52888300002", sellers[4], Milestone::Listed, 1)
                .await
                .is_err(),
            "officials assign"
        );
        assert!(db.user(champ.id).await.unwrap().is(Role::Champion));
        // Progress: the first business lists a product; the others have done nothing yet.
        db.create_product(sellers[0], &product(cat, "Miel", 12000, 3))
            .await
            .unwrap();
        let board = db.champion_board(Some(champ.id)).await.unwrap();
        assert_eq!(
            board.iter().map(|a| a.reached).collect::<Vec<_>>(),
            vec![true, false, false, false]
        );
        assert!(
            matches!(db.pay_champion(&admin, ids[1]).await, Err(StoreError::Conflict(m)) if m.key == "err-champion-not-reached")
        );
        db.pay_champion(&admin, ids[0]).await.unwrap();
        assert!(db.pay_champion(&admin, ids[0]).await.is_err(), "paid once");
        let board = db.champion_board(None).await.unwrap();
        assert!(board[0].paid_at.is_some());
        let totals = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap();
        assert!(totals.holds(), "{totals:?}");
        assert_eq!(totals.payouts, 0, "awarded: owed to the champion");
        assert_eq!(
            db.payee_owed(
                tianguis_domain::payout::Payee::Champion(champ.id),
                db.currency().await.unwrap()
            )
            .await
            .unwrap()
            .minor,
            50_000
        );
        // It leaves with the next payout batch, like everyone's money.
        db.set_setting("payout_four_eyes", "0").await.unwrap();
        let b =
            tianguis_app::payouts::prepare(db, Some(&admin), tianguis_domain::payout::Run::Manual)
                .await
                .unwrap()
                .unwrap();
        tianguis_app::payouts::approve(db, &admin, b).await.unwrap();
        let line = db.payout_lines(b).await.unwrap().remove(0);
        assert_eq!(
            line.payee,
            tianguis_domain::payout::Payee::Champion(champ.id)
        );
        tianguis_app::payouts::line_paid(db, line.id, "TX-1")
            .await
            .unwrap();
        let totals = db
            .ledger_totals(db.currency().await.unwrap())
            .await
            .unwrap();
        assert!(totals.holds(), "{totals:?}");
        assert_eq!(totals.payouts, 50_000, "the bounty left through the ledger");
    }
}

/// Roles are grants: one person holds several (a seller who is also an agent), officials give
/// and take them back with a record of who did it, and nobody takes their own admin grant or
/// suspends themselves. Decisions use the grants as they are inside the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn people_hold_several_roles_given_and_taken_back_on_the_record() {
    use tianguis_store::users::{Grant, GrantScope};
    for t in all().await {
        let db = &t.db;
        let (_, _, seller) = small_shop(db).await;
        let (agent, centre) = agent_at_centre(db, "+52777800001").await;
        let admin = db.user_by_phone("+52777900000").await.unwrap();
        // The shop's owner becomes an agent at the centre too: both roles at once.
        let lupe = db.user_by_phone("+52111111111").await.unwrap();
        assert_eq!(lupe.seller_id, Some(seller));
        let g = db
            .grant_role(
                admin.id,
                lupe.id,
                Grant::new(
                    Role::Agent,
                    GrantScope::Point(tianguis_domain::ids::PointId(centre)),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        let lupe = db.user(lupe.id).await.unwrap();
        assert!(lupe.is(Role::Agent) && lupe.seller_id == Some(seller));
        assert_eq!(lupe.centre_id, Some(centre));
        assert_eq!(db.agents_of(centre).await.unwrap().len(), 2);
        // Granting the same again changes nothing; a grant that makes no sense is refused.
        assert_eq!(
            db.grant_role(
                admin.id,
                lupe.id,
                Grant::new(
                    Role::Agent,
                    GrantScope::Point(tianguis_domain::ids::PointId(centre))
                )
                .unwrap()
            )
            .await
            .unwrap(),
            g
        );
        assert!(Grant::new(Role::Agent, GrantScope::Everywhere).is_err());
        assert!(matches!(
            db.grant_role(
                admin.id,
                lupe.id,
                Grant::new(
                    Role::Operator,
                    GrantScope::Point(tianguis_domain::ids::PointId(424242))
                )
                .unwrap()
            )
            .await,
            Err(StoreError::NotFound(_))
        ));
        // Only admins give roles (an agent cannot make themselves one).
        assert!(matches!(
            db.grant_role(
                agent.id,
                agent.id,
                Grant::new(Role::Admin, GrantScope::Everywhere).unwrap()
            )
            .await,
            Err(StoreError::Forbidden(_))
        ));
        // Taken back: on the record, with who and when.
        db.revoke_grant(admin.id, g).await.unwrap();
        let lupe = db.user(lupe.id).await.unwrap();
        assert!(!lupe.is(Role::Agent) && lupe.seller_id == Some(seller));
        let records = db.grant_records(lupe.id).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].granted_by, records[0].revoked_by),
            (Some(admin.id), Some(admin.id))
        );
        assert!(records[0].revoked_at.is_some());
        assert!(db.revoke_grant(admin.id, g).await.is_err(), "once");
        // Nobody takes their own admin grant or suspends themselves.
        let own = db.grant_records(admin.id).await.unwrap()[0].id;
        assert!(matches!(
            db.revoke_grant(admin.id, own).await,
            Err(StoreError::Invalid(m)) if m.key == "err-self-demote"
        ));
        assert!(db.set_user_active(admin.id, admin.id, false).await.is_err());
        // A second admin can; then the first one's power is gone at once.
        let other = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52777900009",
                email: None,
                name: "Otra",
                password: "password1",
                role: Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        db.revoke_grant(other.id, own).await.unwrap();
        assert!(matches!(
            db.set_user_active(admin.id, agent.id, false).await,
            Err(StoreError::Forbidden(_))
        ));
    }
}

/// A carrier decides on the job as it is inside the transaction: while one carrier accepts,
/// another who saw it open cannot pick it up (round after round, on both databases).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_another_carrier_took_cannot_be_moved_by_whoever_saw_it_open() {
    use tianguis_domain::delivery::JobAction;
    use tianguis_store::delivery::NewCarrier;
    for t in all().await {
        let db = &t.db;
        let (place, cat, seller) = small_shop(db).await;
        db.set_place_location(place, 16.9512, -96.7481)
            .await
            .unwrap();
        let pid = db
            .create_product(seller, &product(cat, "Pan", 1000, 500))
            .await
            .unwrap();
        let mut riders = Vec::new();
        for n in 0..2 {
            let u = tianguis_app::people::create_user(
                db,
                NewUser {
                    phone: &format!("+5277710000{n}"),
                    email: None,
                    name: "Rider",
                    password: "password1",
                    role: Role::Buyer,
                    place_id: Some(place),
                },
            )
            .await
            .unwrap();
            db.register_carrier(
                &u,
                &NewCarrier {
                    name: format!("Moto {n}"),
                    kind: "motorbike".into(),
                    capacity: 100,
                    base: String::new(),
                    radius_km: 15,
                    shift_start_min: 0,
                    shift_end_min: 1439,
                    speed_kmh: 30,
                },
            )
            .await
            .unwrap();
            riders.push(db.user(u.id).await.unwrap());
        }
        let b = buyer(db, 7).await;
        for round in 0..8 {
            let (res, _) = tianguis_app::orders::checkout(
                db,
                &req(b, vec![(pid, 1)], &format!("race-{round}")),
            )
            .await
            .unwrap();
            tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
                .await
                .unwrap();
            for tr in [Transition::Accept, Transition::Pack] {
                tianguis_app::orders::transition(
                    db,
                    res.order_ids[0],
                    tr,
                    Actor::Seller,
                    None,
                    "",
                    None,
                )
                .await
                .unwrap();
            }
            let job = db
                .delivery_job_of_order(res.order_ids[0])
                .await
                .unwrap()
                .unwrap()
                .id;
            let (a, b2) = (riders[0].clone(), riders[1].clone());
            let (da, db2) = (db.clone(), db.clone());
            let accept = tokio::spawn(async move {
                tianguis_app::logistics::job_act(&da, &a, job, JobAction::Accept, None).await
            });
            let pick = tokio::spawn(async move {
                let mut took = false;
                for _ in 0..20 {
                    took |=
                        tianguis_app::logistics::job_act(&db2, &b2, job, JobAction::PickUp, None)
                            .await
                            .is_ok();
                }
                took
            });
            assert!(accept.await.unwrap().is_ok());
            assert!(
                !pick.await.unwrap(),
                "round {round}: picked up another's job"
            );
            let j = db.delivery_job(job).await.unwrap();
            let mine = db.carrier_of(riders[0].id).await.unwrap().unwrap().id;
            assert_eq!(j.carrier_id, Some(mine));
            assert_eq!(j.state.as_str(), "accepted");
        }
    }
}

/// Payouts go out in batches: preparing one sets each payee's money aside (nobody is paid more
/// than they hold, nothing is in two batches, and the schedule's run prepares one batch however
/// often it ticks); a second official approves (four eyes, unless relaxed); a failed transfer
/// goes back to the payee's balance and is paid by a later batch; cash is counted out by hand;
/// the payee hears by text; the ledger holds throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payouts_go_out_in_batches_a_second_official_approves() {
    use tianguis_domain::kinds::{BatchStatus, LineStatus, PayoutChannel};
    use tianguis_domain::payout::{Payee, Run};
    use tianguis_store::queue::Kind;
    for t in all().await {
        let db = &t.db;
        let (_, cat, seller) = small_shop(db).await;
        let pid = db
            .create_product(seller, &product(cat, "Rebozo", 62000, 3))
            .await
            .unwrap();
        let b = buyer(db, 1).await;
        let (r, _) = tianguis_app::orders::checkout(db, &req(b, vec![(pid, 1)], "x"))
            .await
            .unwrap();
        tianguis_app::orders::payment_succeeded(db, r.payment_id, None)
            .await
            .unwrap();
        for (tr, a) in [
            (Transition::Accept, Actor::Seller),
            (Transition::Pack, Actor::Seller),
            (Transition::Ship, Actor::Seller),
            (Transition::ConfirmDelivery, Actor::Buyer),
        ] {
            tianguis_app::orders::transition(db, r.order_ids[0], tr, a, None, "", None)
                .await
                .unwrap();
        }
        db.clock.advance(Duration::from_secs(8 * 86_400));
        run_due_jobs(db, "w", 100).await.unwrap();
        let owed = db.seller_statement(seller).await.unwrap().owed;
        assert_eq!(owed, 65000 - 3250);
        let official = |phone: &'static str| async move {
            tianguis_app::people::create_user(
                db,
                NewUser {
                    phone,
                    email: None,
                    name: "Official",
                    password: "password1",
                    role: Role::Admin,
                    place_id: None,
                },
            )
            .await
            .unwrap()
        };
        let (ana, beto) = (
            official("+52333000001").await,
            official("+52333000002").await,
        );
        let holds = || async {
            assert!(
                db.ledger_totals(db.currency().await.unwrap())
                    .await
                    .unwrap()
                    .holds()
            )
        };

        // The schedule's run: one batch, however often the timer ticks.
        let b1 = tianguis_app::payouts::tick(db).await.unwrap();
        assert_eq!(b1.len(), 1);
        assert!(tianguis_app::payouts::tick(db).await.unwrap().is_empty());
        let lines = db.payout_lines(b1[0]).await.unwrap();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(
            (
                l.payee,
                l.amount.minor,
                l.channel,
                l.destination.as_str(),
                l.status
            ),
            (
                Payee::Seller(seller),
                owed,
                PayoutChannel::MobileMoney,
                "+52111111111",
                LineStatus::Proposed
            ),
            "the whole balance, to the owner's own wallet when none is on file"
        );
        let st = db.seller_statement(seller).await.unwrap();
        assert_eq!((st.owed, st.on_the_way), (0, owed), "set aside at once");
        holds().await;
        // Nothing is left to put in a second batch.
        assert_eq!(
            tianguis_app::payouts::prepare(db, Some(&ana), Run::Manual)
                .await
                .unwrap(),
            None
        );
        // A seller approves nothing; an official does.
        let lupe = db.user_by_phone("+52111111111").await.unwrap();
        assert!(
            tianguis_app::payouts::approve(db, &lupe, b1[0])
                .await
                .is_err()
        );
        tianguis_app::payouts::approve(db, &ana, b1[0])
            .await
            .unwrap();
        assert!(
            tianguis_app::payouts::approve(db, &beto, b1[0])
                .await
                .is_err(),
            "once"
        );
        assert_eq!(
            db.payout_line(l.id).await.unwrap().status,
            LineStatus::Sending
        );
        let jobs = db.jobs_in("pending", 50).await.unwrap();
        assert!(
            jobs.iter().any(|j| j.kind == Kind::Payout.as_str()
                && j.payload.contains(&format!("\"line_id\":{}", l.id))),
            "the transfer is a queued job"
        );
        // The provider says the wallet does not exist: the money goes back, once.
        assert!(
            tianguis_app::payouts::line_failed(db, l.id, "PAYEE_NOT_FOUND")
                .await
                .unwrap()
        );
        assert!(
            !tianguis_app::payouts::line_failed(db, l.id, "PAYEE_NOT_FOUND")
                .await
                .unwrap()
        );
        assert!(
            !tianguis_app::payouts::line_paid(db, l.id, "late")
                .await
                .unwrap(),
            "a late answer changes nothing"
        );
        let st = db.seller_statement(seller).await.unwrap();
        assert_eq!(
            (st.owed, st.on_the_way, st.failed, st.paid_out),
            (owed, 0, owed, 0)
        );
        assert_eq!(
            db.payout_batch(b1[0]).await.unwrap().status,
            BatchStatus::Done
        );
        holds().await;
        // The schedule's period is taken: the money waits for the next one (or an official).
        assert!(tianguis_app::payouts::tick(db).await.unwrap().is_empty());

        // Four eyes: who prepared a batch does not approve it.
        let b2 = tianguis_app::payouts::prepare(db, Some(&ana), Run::Manual)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            tianguis_app::payouts::approve(db, &ana, b2).await,
            Err(StoreError::Forbidden(m)) if m.key == "err-payout-four-eyes"
        ));
        // Thrown away instead: the money is back.
        tianguis_app::payouts::cancel(db, &ana, b2).await.unwrap();
        assert!(tianguis_app::payouts::cancel(db, &ana, b2).await.is_err());
        assert_eq!(db.seller_statement(seller).await.unwrap().owed, owed);
        holds().await;

        // The seller asks for cash at the centre; a one-person office relaxes four eyes.
        tianguis_app::payouts::set_method(
            db,
            &lupe,
            Payee::Seller(seller),
            PayoutChannel::Cash,
            "Centro Santa Ana",
        )
        .await
        .unwrap();
        let stranger = db.user(b).await.unwrap();
        assert!(
            tianguis_app::payouts::set_method(
                db,
                &stranger,
                Payee::Seller(seller),
                PayoutChannel::MobileMoney,
                "+52999999999"
            )
            .await
            .is_err(),
            "nobody redirects someone else's money"
        );
        db.set_setting("payout_four_eyes", "0").await.unwrap();
        let b3 = tianguis_app::payouts::prepare(db, Some(&ana), Run::Manual)
            .await
            .unwrap()
            .unwrap();
        tianguis_app::payouts::approve(db, &ana, b3).await.unwrap();
        let cash = db.payout_lines(b3).await.unwrap().remove(0);
        assert_eq!(
            (cash.channel, cash.destination.as_str()),
            (PayoutChannel::Cash, "Centro Santa Ana")
        );
        assert!(
            !db.jobs_in("pending", 50)
                .await
                .unwrap()
                .iter()
                .any(|j| j.payload.contains(&format!("\"line_id\":{}", cash.id))),
            "cash is not a transfer"
        );
        assert!(
            tianguis_app::payouts::settle_by_hand(db, &ana, cash.id, true, "  ")
                .await
                .is_err(),
            "the receipt's number is asked for"
        );
        assert!(
            tianguis_app::payouts::settle_by_hand(db, &ana, cash.id, true, "REC-0042")
                .await
                .unwrap()
        );
        assert!(
            tianguis_app::payouts::settle_by_hand(db, &ana, l.id, true, "REC-0043")
                .await
                .is_err(),
            "a transfer is settled by its provider only"
        );
        let st = db.seller_statement(seller).await.unwrap();
        assert_eq!(
            (st.owed, st.on_the_way, st.paid_out, st.failed),
            (0, 0, owed, owed)
        );
        holds().await;
        // The payee heard of each outcome.
        let texts: Vec<String> = db
            .outbox(20)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.to_phone == "+52111111111")
            .map(|m| m.template)
            .collect();
        assert!(
            texts.contains(&"sms-payout-failed".to_string()),
            "{texts:?}"
        );
        assert!(texts.contains(&"sms-payout-paid".to_string()), "{texts:?}");
    }
}

/// Every step that matters to someone is a text in their language, written with the move: the
/// buyer hears of the payment, the shipment (the delivery code is never stored in the outbox,
/// the sender reads it from the order) and the refund; the seller of a paid order and of a
/// dispute. After STOP only the texts one needs go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_party_hears_each_step_in_their_language_and_stop_keeps_only_what_they_need() {
    assert_eq!(
        tianguis_app::notify::reply_command(" stop please"),
        Some(true)
    );
    assert_eq!(tianguis_app::notify::reply_command("PARAR"), Some(true));
    assert_eq!(tianguis_app::notify::reply_command("বন্ধ"), Some(true));
    assert_eq!(tianguis_app::notify::reply_command("Start"), Some(false));
    assert_eq!(tianguis_app::notify::reply_command("hola"), None);
    for t in all().await {
        let db = &t.db;
        let (_, cat, seller) = small_shop(db).await;
        let pid = db
            .create_product(seller, &product(cat, "Rebozo", 62000, 3))
            .await
            .unwrap();
        let b = buyer(db, 7).await;
        db.set_user_lang(b, "bn").await.unwrap();
        assert!(db.set_user_lang(b, "x'); drop").await.is_err());
        let phone = db.user(b).await.unwrap().phone;
        let mut r = req(b, vec![(pid, 1)], "texts-1");
        r.phone = phone.clone();
        let (res, _) = tianguis_app::orders::checkout(db, &r).await.unwrap();
        let oid = res.order_ids[0];
        tianguis_app::orders::payment_succeeded(db, res.payment_id, None)
            .await
            .unwrap();
        for tr in [Transition::Accept, Transition::Pack, Transition::Ship] {
            tianguis_app::orders::transition(db, oid, tr, Actor::Seller, None, "", None)
                .await
                .unwrap();
        }
        let texts = db.order_texts(oid).await.unwrap();
        let said: Vec<(&str, &str, &str)> = texts
            .iter()
            .map(|m| (m.to_phone.as_str(), m.template.as_str(), m.lang.as_str()))
            .collect();
        assert!(
            said.contains(&(phone.as_str(), "sms-paid", "bn")),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|(p, t, _)| *p == "+52111111111" && *t == "sms-seller-new-order"),
            "{said:?}"
        );
        let shipped = texts.iter().find(|m| m.template == "sms-shipped").unwrap();
        assert!(shipped.essential);
        assert!(
            shipped
                .args
                .contains(&("code_of_order".to_string(), oid.to_string()))
        );
        let code = db.order(oid).await.unwrap().delivery_code.unwrap();
        assert!(
            shipped.args.iter().all(|(_, v)| *v != code),
            "the delivery code itself is not in the outbox"
        );
        // STOP: the confirmation goes; then only what the buyer needs.
        assert!(
            tianguis_app::notify::set_texts_stopped(db, &phone, true)
                .await
                .unwrap()
        );
        assert!(db.user(b).await.unwrap().texts_stopped);
        assert_eq!(db.outbox(1).await.unwrap()[0].template, "sms-stopped");
        tianguis_app::orders::transition(
            db,
            oid,
            Transition::ConfirmDelivery,
            Actor::Buyer,
            None,
            "",
            None,
        )
        .await
        .unwrap();
        tianguis_app::orders::transition(
            db,
            oid,
            Transition::Dispute,
            Actor::Buyer,
            None,
            "torn",
            None,
        )
        .await
        .unwrap();
        tianguis_app::orders::transition(
            db,
            oid,
            Transition::Resolve,
            Actor::Admin,
            None,
            "half back",
            Some(20_000),
        )
        .await
        .unwrap();
        let templates: Vec<String> = db
            .order_texts(oid)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.template)
            .collect();
        assert!(
            !templates.contains(&"sms-delivered".to_string()),
            "not needed after STOP: {templates:?}"
        );
        assert!(templates.contains(&"sms-seller-dispute".to_string()));
        let refund = db
            .order_texts(oid)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.template == "sms-refunded")
            .expect("money back is always told");
        assert!(
            refund
                .args
                .contains(&("total".to_string(), "20000".to_string()))
        );
        // An unknown phone changes nothing.
        assert!(
            !tianguis_app::notify::set_texts_stopped(db, "+529999999999", true)
                .await
                .unwrap()
        );
    }
}

/// A seller paid by bank transfer: the account is checked when given, the line waits for an
/// official who makes the transfer in the bank's system and records its reference; a wallet
/// line can never be settled that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bank_payout_is_made_by_an_official_and_recorded_with_its_reference() {
    use tianguis_domain::kinds::{LineStatus, PayoutChannel};
    use tianguis_domain::payout::{Payee, Run};
    for t in all().await {
        let db = &t.db;
        let (_, cat, seller) = small_shop(db).await;
        let pid = db
            .create_product(seller, &product(cat, "Rebozo", 62000, 3))
            .await
            .unwrap();
        let b = buyer(db, 1).await;
        let (r, _) = tianguis_app::orders::checkout(db, &req(b, vec![(pid, 1)], "bank"))
            .await
            .unwrap();
        tianguis_app::orders::payment_succeeded(db, r.payment_id, None)
            .await
            .unwrap();
        for (tr, a) in [
            (Transition::Accept, Actor::Seller),
            (Transition::Pack, Actor::Seller),
            (Transition::Ship, Actor::Seller),
            (Transition::ConfirmDelivery, Actor::Buyer),
        ] {
            tianguis_app::orders::transition(db, r.order_ids[0], tr, a, None, "", None)
                .await
                .unwrap();
        }
        db.clock.advance(Duration::from_secs(8 * 86_400));
        run_due_jobs(db, "w", 100).await.unwrap();
        let owner = db
            .user(db.seller(seller).await.unwrap().user_id)
            .await
            .unwrap();
        let payee = Payee::Seller(seller);
        let bad =
            tianguis_app::payouts::set_method(db, &owner, payee, PayoutChannel::Bank, "my bank")
                .await;
        assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
        tianguis_app::payouts::set_method(
            db,
            &owner,
            payee,
            PayoutChannel::Bank,
            "  BBVA  012180001234567891 ",
        )
        .await
        .unwrap();
        let official = |phone: &'static str| async move {
            tianguis_app::people::create_user(
                db,
                NewUser {
                    phone,
                    email: None,
                    name: "Official",
                    password: "password1",
                    role: Role::Admin,
                    place_id: None,
                },
            )
            .await
            .unwrap()
        };
        let (ana, beto) = (
            official("+52333000011").await,
            official("+52333000012").await,
        );
        let batch = tianguis_app::payouts::prepare(db, Some(&ana), Run::Manual)
            .await
            .unwrap()
            .unwrap();
        tianguis_app::payouts::approve(db, &beto, batch)
            .await
            .unwrap();
        let line = db.payout_lines(batch).await.unwrap().remove(0);
        assert_eq!(
            (line.channel, line.destination.as_str(), line.status),
            (
                PayoutChannel::Bank,
                "BBVA 012180001234567891",
                LineStatus::Sending
            ),
            "waits for the transfer, no provider asked"
        );
        assert!(
            tianguis_app::payouts::settle_by_hand(db, &beto, line.id, true, "SPEI 7781234")
                .await
                .unwrap()
        );
        let line = db.payout_lines(batch).await.unwrap().remove(0);
        assert_eq!(line.status, LineStatus::Paid);
        assert!(
            line.provider_ref
                .as_deref()
                .is_some_and(|r| r.starts_with("bank:SPEI 7781234")),
            "{line:?}"
        );
        let st = db.seller_statement(seller).await.unwrap();
        assert_eq!((st.owed, st.paid_out), (0, 65000 - 3250));
        assert!(
            db.ledger_totals(db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

/// Cash a buyer brings for an order that was cancelled meanwhile is still recorded (it is in
/// someone's hand) and given straight back through the ledger, never refused and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cash_brought_for_an_order_cancelled_meanwhile_is_recorded_and_given_back() {
    for t in all().await {
        let db = &t.db;
        let (_, cat, seller) = small_shop(db).await;
        let pid = db
            .create_product(seller, &product(cat, "Cesta", 25000, 3))
            .await
            .unwrap();
        let b = buyer(db, 1).await;
        let mut r = req(b, vec![(pid, 1)], "cash-late");
        r.method = PaymentMethod::Cash;
        let (res, _) = tianguis_app::orders::checkout(db, &r).await.unwrap();
        tianguis_app::orders::transition(
            db,
            res.order_ids[0],
            Transition::Cancel,
            Actor::Buyer,
            Some(b),
            "changed my mind",
            None,
        )
        .await
        .unwrap();
        let office = tianguis_app::people::create_user(
            db,
            NewUser {
                phone: "+52333000021",
                email: None,
                name: "Counter",
                password: "password1",
                role: Role::Admin,
                place_id: None,
            },
        )
        .await
        .unwrap();
        let taken = tianguis_app::assisted::collect_cash(db, &office, res.payment_id).await;
        assert!(matches!(taken, Ok(true)), "{taken:?}");
        assert_eq!(
            db.order(res.order_ids[0]).await.unwrap().state,
            OrderState::Cancelled
        );
        assert_eq!(
            db.cash_on_hand(office.id).await.unwrap().minor,
            res.total_minor,
            "the cash is on record with whoever holds it"
        );
        assert!(
            db.ledger_totals(db.currency().await.unwrap())
                .await
                .unwrap()
                .holds()
        );
    }
}

/// A database left by every earlier release, with data in it, migrates to this one on both
/// backends and keeps the product's rules: old phones are normalised (a shared number
/// reported, not merged), the pending mobile-money payment keeps the reference it was sent
/// with and is asked about, the books balance, and the upgraded database takes new checkouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_earlier_schema_with_data_upgrades_to_this_one() {
    let latest = Db::latest_migration();
    for version in 1..latest {
        for t in tianguis_testkit::all_empty().await {
            let db = &t.db;
            db.migrate_up_to(version).await.unwrap();
            // Data as the first release wrote it (only its columns; later ones add defaults).
            db.raw_execute(
                "INSERT INTO settings (key, value) VALUES ('currency', 'MXN'), ('country', 'MX');
                 INSERT INTO places (name, kind) VALUES ('Santa Ana', 'village');
                 INSERT INTO categories (slug, name_en, name_es) VALUES ('food', 'Food', 'Comida');
                 INSERT INTO users (phone, name, password_hash, role, created_at) VALUES
                   ('+529511234567', 'Ana', '', 'seller', 0),
                   ('951 123 4567', 'Ana otra vez', '', 'buyer', 1),
                   ('9510000003', 'Beto', '', 'buyer', 2);
                 INSERT INTO sellers (user_id, shop_name, place_id, created_at)
                   SELECT u.id, 'Tienda Ana', p.id, 0 FROM users u, places p WHERE u.phone = '+529511234567';
                 INSERT INTO products (seller_id, category_id, name_en, price_minor, currency, stock, created_at)
                   SELECT s.id, c.id, 'Honey', 5000, 'MXN', 3, 0 FROM sellers s, categories c;
                 INSERT INTO checkouts (buyer_id, total_minor, currency, method, address, phone, created_at)
                   SELECT id, 8000, 'MXN', 'mobile_money', 'X722+FQ Santa Ana', '951 000 0003', 0 FROM users WHERE phone = '9510000003';
                 INSERT INTO orders (checkout_id, buyer_id, seller_id, state, subtotal_minor, delivery_minor, total_minor, currency, fee_bps, created_at, updated_at)
                   SELECT c.id, c.buyer_id, s.id, 'placed', 5000, 3000, 8000, 'MXN', 500, 0, 0 FROM checkouts c, sellers s;
                 INSERT INTO order_lines (order_id, product_id, quantity, unit_price_minor)
                   SELECT o.id, p.id, 1, 5000 FROM orders o, products p;
                 INSERT INTO payments (checkout_id, method, status, amount_minor, currency, payer_phone, created_at, updated_at)
                   SELECT id, 'mobile_money', 'pending', 8000, 'MXN', '+529510000003', 0, 0 FROM checkouts;",
            )
            .await
            .unwrap_or_else(|e| panic!("data at version {version}: {e}"));
            // From 0019 on, a payment is written with the random reference it is sent with.
            if version >= 19 {
                db.raw_execute("UPDATE payments SET reference = 'sent-at-19'")
                    .await
                    .unwrap();
            }
            db.migrate()
                .await
                .unwrap_or_else(|e| panic!("upgrade from version {version}: {e}"));
            let ctx = format!("from version {version} on {}", t.url);
            // Phones: one person per number, the shared one reported.
            let ana = db.user_by_phone("9511234567").await.unwrap();
            assert_eq!(ana.name, "Ana", "{ctx}");
            let reports = db.phone_reports().await.unwrap();
            assert_eq!(reports.len(), 1, "{ctx}");
            assert_eq!(
                (reports[0].user_name.as_str(), reports[0].other_user_id),
                ("Ana otra vez", Some(ana.id)),
                "{ctx}"
            );
            let beto = db.user_by_phone("+529510000003").await.unwrap();
            // The order reads back whole, its checkout phone normalised.
            let o = db
                .orders_for(&beto, false, None, 10)
                .await
                .unwrap()
                .remove(0);
            let o = db.order(o.id).await.unwrap();
            assert_eq!(
                (o.state, o.phone.as_str(), o.lines.len()),
                (OrderState::Placed, "+529510000003", 1),
                "{ctx}"
            );
            // The payment in flight keeps the reference it was sent with.
            let p = db.payment(o.payment_id.unwrap()).await.unwrap();
            let sent = if version >= 19 {
                "sent-at-19".to_string()
            } else {
                format!("tianguis-payment-{}", p.id)
            };
            assert_eq!(p.reference, sent, "{ctx}");
            assert!(
                db.ledger_totals(db.currency().await.unwrap())
                    .await
                    .unwrap()
                    .holds(),
                "{ctx}"
            );
            // And the upgraded database does today's work.
            // The only product, the first row of a fresh database on both backends.
            let pid = o.lines[0].product_id;
            assert_eq!(db.product(pid).await.unwrap().stock, 3, "{ctx}");
            // The listing is found, and search's word counts are exact (the recount ran).
            let found = db
                .search(&SearchQuery {
                    text: "honey".into(),
                    limit: 5,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(found.products.len(), 1, "{ctx}");
            assert_eq!(db.vocabulary_drift().await.unwrap(), vec![], "{ctx}");
            let (r, _) = tianguis_app::orders::checkout(
                db,
                &req(beto.id, vec![(pid, 1)], &format!("after-upgrade-{version}")),
            )
            .await
            .unwrap_or_else(|e| panic!("checkout after the upgrade {ctx}: {e}"));
            assert!(db.payment(r.payment_id).await.unwrap().reference.len() == 41);
        }
    }
}

/// The audit the fault tests rely on sees each kind of damage (so a clean verdict means
/// something): a posting changed behind the ledger's back, stock moved without an order, a
/// timer gone, a mobile-money payment left without its job, an event taken twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_finds_every_kind_of_damage() {
    for t in all().await {
        let db = &t.db;
        let (_, cat, seller) = small_shop(db).await;
        let input = ProductInput {
            category_id: cat,
            name_en: "Mango".into(),
            price_minor: 2_000,
            stock: 50,
            ..Default::default()
        };
        let p = db.create_product(seller, &input).await.unwrap();
        let b = buyer(db, 1).await;
        let (paid, _) = tianguis_app::orders::checkout(db, &req(b, vec![(p, 2)], "a1"))
            .await
            .unwrap();
        let pid = db.checkout_orders(paid.checkout_id).await.unwrap()[0]
            .payment_id
            .unwrap();
        tianguis_app::orders::payment_succeeded(db, pid, None)
            .await
            .unwrap();
        // A second checkout waits for its payment (its request job queued).
        tianguis_app::orders::checkout(db, &req(b, vec![(p, 1)], "a2"))
            .await
            .unwrap();
        let baseline = [(p, 50)];
        let clean = db.audit(&baseline, 15_000).await.unwrap();
        assert!(clean.holds(), "{clean:?}");
        assert_eq!(clean.paid_in_minor, clean.payments_succeeded_minor);
        assert_eq!(clean.paid_in_minor, paid.total_minor);

        type Found = fn(&tianguis_store::audit::Audit) -> bool;
        let damage: [(&str, Found); 5] = [
            (
                "UPDATE postings SET amount_minor = amount_minor + 1 WHERE id = (SELECT MIN(id) FROM postings)",
                |a| a.unbalanced_transactions == 1 && a.drifted_accounts == 1 && a.totals_broken,
            ),
            ("UPDATE products SET stock = stock - 1", |a| {
                a.stock_off.len() == 1
            }),
            ("DELETE FROM queue WHERE kind = 'order_timer'", |a| {
                a.missing_timers.len() == 2
            }),
            ("DELETE FROM queue WHERE kind = 'momo_request'", |a| {
                a.stranded_payments.len() == 1
            }),
            (
                "INSERT INTO order_events (order_id, transition, from_state, to_state, actor, at) SELECT order_id, transition, from_state, to_state, actor, at FROM order_events WHERE transition = 'pay'",
                |a| a.repeated_events == 1,
            ),
        ];
        for (sql, found) in damage {
            db.raw_execute(sql).await.unwrap();
            let a = db.audit(&baseline, 15_000).await.unwrap();
            assert!(!a.holds() && found(&a), "{sql}: {a:?}");
        }
    }
}

/// A questionnaire is data: read and checked whole (each problem with its line), then one
/// firm's answers scored: per area, overall, band, journey level and the costliest gaps.
#[test]
fn a_questionnaire_file_is_checked_and_answers_are_scored() {
    use std::collections::{BTreeMap, BTreeSet};
    use tianguis_app::diagnostic::load;
    use tianguis_domain::diagnostic::{Answer, AnswerError, score};
    const LANGS: [&str; 3] = ["en", "es", "bn"];
    // The questionnaire the product ships is whole in every language.
    let shipped = tianguis_app::diagnostic::readiness(&LANGS).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((shipped.id.as_str(), shipped.areas.len()), ("readiness", 4));
    let text = include_str!("data/questionnaire.toml");
    let q = load(text, &LANGS).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((q.areas.len(), q.items.len(), q.bands.len()), (2, 4, 3));
    let answers = |social: u8, analytics: u8, channels: &[&str]| {
        let mut a = BTreeMap::new();
        a.insert("social-page".to_string(), Answer::NoPartlyYes(social));
        a.insert("analytics".to_string(), Answer::Adoption(analytics));
        a.insert(
            "channels".to_string(),
            Answer::Checked(
                channels
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>(),
            ),
        );
        a
    };
    // Partly on social (0.5 x 2), analytics 3 of 5 (0.6 x 1): marketing (1 + 0.6) / 3 = 53;
    // one channel of four: ecommerce 25; overall 39, "Average"; sells on a marketplace: 4.
    let o = score(&q, &answers(1, 3, &["marketplace"])).unwrap();
    assert_eq!(
        o.areas,
        vec![("marketing".to_string(), 53), ("ecommerce".to_string(), 25)]
    );
    assert_eq!((o.overall, o.band, o.level), (39, 1, 4));
    let gaps: Vec<&str> = o.weakest.iter().map(|g| g.item.as_str()).collect();
    assert_eq!(gaps, vec!["channels", "social-page", "analytics"]);
    let full = score(
        &q,
        &answers(2, 5, &["social", "own-store", "marketplace", "global"]),
    )
    .unwrap();
    assert_eq!(
        (full.overall, full.band, full.level, full.weakest.len()),
        (100, 2, 5, 0)
    );
    let none = score(&q, &answers(0, 0, &[])).unwrap();
    assert_eq!((none.overall, none.band, none.level), (0, 0, 0));
    // Answers that do not fit.
    let mut a = answers(1, 3, &[]);
    a.remove("analytics");
    assert_eq!(score(&q, &a), Err(AnswerError::Missing("analytics".into())));
    let mut a = answers(1, 3, &[]);
    a.insert("analytics".into(), Answer::Adoption(6));
    assert_eq!(score(&q, &a), Err(AnswerError::Wrong("analytics".into())));
    let mut a = answers(1, 3, &["amazon"]);
    assert_eq!(score(&q, &a), Err(AnswerError::Wrong("channels".into())));
    a = answers(1, 3, &[]);
    a.insert("shoe-size".into(), Answer::Adoption(1));
    assert_eq!(score(&q, &a), Err(AnswerError::Unknown("shoe-size".into())));
    // A bad file is refused with the line and the reason of each problem.
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let broken = text
        .replacen(
            "area = \"marketing\"\nscale = \"adoption\"",
            "area = \"marketting\"\nscale = \"adoption\"",
            1,
        )
        .replacen(", bn = \"কারা আপনার পাতা দেখে তা কি দেখেন?\"", "", 1)
        .replacen("from = 26", "from = 0", 1);
    let problems = load(&broken, &LANGS).unwrap_err();
    let said: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let analytics = line_of("id = \"analytics\"");
    assert!(
        said.contains(&format!("line {analytics}: unknown area marketting")),
        "{said:?}"
    );
    assert!(
        said.contains(&format!("line {analytics}: the question has no text in bn")),
        "{said:?}"
    );
    assert!(
        said.contains(&format!(
            "line {}: bands must start at rising scores",
            line_of("[[band]]")
        )),
        "{said:?}"
    );
    let typo = text.replacen("scale = \"adoption\"", "scale = \"adopton\"", 1);
    assert_eq!(
        load(&typo, &LANGS).unwrap_err()[0].to_string(),
        format!(
            "line {analytics}: unknown scale adopton (checklist, adoption, no-partly-yes or fact)"
        )
    );
    let syntax = load("id = \"x\"\nversion = \n", &LANGS).unwrap_err();
    assert_eq!(syntax[0].line, 2, "{syntax:?}");
    let unknown = load(&text.replacen("weight = 2", "wieght = 2", 1), &LANGS).unwrap_err();
    assert!(unknown[0].why.contains("wieght"), "{unknown:?}");
    assert_eq!(unknown[0].line, line_of("weight = 2"), "{unknown:?}");
}
