//! Demo data: one district (a first-tier city, a second-tier town, rural villages), sellers at
//! every journey level, 300+ products named in English and Spanish (some in Bangla), buyers, and
//! orders in every state, all made through the same code paths the product uses.

use crate::photo::demo_photo;
use indicatif::{ProgressBar, ProgressStyle};
use tianguis_domain::process::{Actor, OrderState, Transition};
use tianguis_store::catalog::ProductInput;
use tianguis_store::orders::{CheckoutRequest, PaymentMethod};
use tianguis_store::users::Role;
use tianguis_store::{Db, Result};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "tianguis-demo";
pub const DEMO_ADMIN_PHONE: &str = "+520000000001";
pub const DEMO_SELLER_PHONE: &str = "+520000001000";
pub const DEMO_BUYER_PHONE: &str = "+520000002000";
pub const DEMO_OPERATOR_PHONE: &str = "+520000003000";
/// Rides the demo motorbike of the courier pool.
pub const DEMO_COURIER_PHONE: &str = "+520000004000";
/// Agent at the demo's Centro Digital Santa Ana.
pub const DEMO_AGENT_PHONE: &str = "+520000005000";
/// A digital champion with three businesses.
pub const DEMO_CHAMPION_PHONE: &str = "+520000006000";
/// A second official (payout batches need two: one prepares, the other approves).
pub const DEMO_TREASURER_PHONE: &str = "+520000000002";

const CATEGORIES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "food",
        "Food and produce",
        "Alimentos y productos del campo",
        Some("খাদ্য ও কৃষিপণ্য"),
    ),
    ("coffee", "Coffee and cacao", "Café y cacao", None),
    (
        "textiles",
        "Textiles and clothing",
        "Textiles y ropa",
        Some("বস্ত্র ও পোশাক"),
    ),
    (
        "crafts",
        "Crafts and pottery",
        "Artesanías y alfarería",
        Some("হস্তশিল্প"),
    ),
    ("household", "Household", "Hogar", None),
    (
        "beauty",
        "Soap and care",
        "Jabones y cuidado personal",
        None,
    ),
];

/// (category slug, English, Spanish, Bangla, base price in pesos)
const ITEMS: &[(&str, &str, &str, Option<&str>, i64)] = &[
    (
        "food",
        "Wildflower honey",
        "Miel de flores silvestres",
        Some("বুনো ফুলের মধু"),
        120,
    ),
    (
        "food",
        "Blue corn tortillas",
        "Tortillas de maíz azul",
        None,
        35,
    ),
    ("food", "Black beans", "Frijol negro", None, 40),
    ("food", "Dried chiles", "Chiles secos", None, 55),
    (
        "food",
        "Mango preserve",
        "Conserva de mango",
        Some("আমের মোরব্বা"),
        70,
    ),
    (
        "food",
        "Aromatic rice",
        "Arroz aromático",
        Some("সুগন্ধি চাল"),
        60,
    ),
    ("food", "Goat cheese", "Queso de cabra", None, 140),
    (
        "coffee",
        "Highland coffee beans",
        "Café de altura en grano",
        None,
        180,
    ),
    ("coffee", "Ground coffee", "Café molido", None, 150),
    (
        "coffee",
        "Drinking chocolate",
        "Chocolate de mesa",
        None,
        95,
    ),
    ("coffee", "Cacao nibs", "Nibs de cacao", None, 110),
    ("textiles", "Embroidered blouse", "Blusa bordada", None, 450),
    ("textiles", "Woven shawl", "Rebozo tejido", None, 620),
    (
        "textiles",
        "Nakshi kantha quilt",
        "Colcha nakshi kantha",
        Some("নকশি কাঁথা"),
        900,
    ),
    (
        "textiles",
        "Cotton scarf",
        "Bufanda de algodón",
        Some("সুতির ওড়না"),
        210,
    ),
    (
        "textiles",
        "Jamdani sari",
        "Sari jamdani",
        Some("জামদানি শাড়ি"),
        1500,
    ),
    ("crafts", "Black clay pot", "Olla de barro negro", None, 260),
    ("crafts", "Palm basket", "Canasta de palma", None, 180),
    (
        "crafts",
        "Painted wooden figure",
        "Alebrije de madera",
        None,
        380,
    ),
    (
        "crafts",
        "Clay cup set",
        "Juego de jarritos de barro",
        None,
        240,
    ),
    ("crafts", "Jute bag", "Bolsa de yute", Some("পাটের ব্যাগ"), 150),
    ("household", "Wool rug", "Tapete de lana", None, 1200),
    (
        "household",
        "Beeswax candles",
        "Velas de cera de abeja",
        None,
        90,
    ),
    ("household", "Hammock", "Hamaca", None, 700),
    (
        "beauty",
        "Goat milk soap",
        "Jabón de leche de cabra",
        None,
        60,
    ),
    ("beauty", "Aloe cream", "Crema de sábila", None, 85),
    (
        "beauty",
        "Coconut oil",
        "Aceite de coco",
        Some("নারকেল তেল"),
        75,
    ),
];

const VARIANTS: &[(&str, &str, i64)] = &[
    ("", "", 100),
    ("small", "chico", 70),
    ("large", "grande", 160),
    ("gift box", "caja de regalo", 220),
    ("family pack", "paquete familiar", 300),
    ("organic", "orgánico", 130),
    ("traditional", "tradicional", 115),
    ("from the village", "del pueblo", 105),
    ("premium", "selecto", 180),
    ("sample", "muestra", 40),
    ("wholesale", "mayoreo", 900),
    ("seasonal", "de temporada", 120),
];

const SHOP_WORDS: &[&str] = &[
    "Doña Lupe",
    "Los Álamos",
    "Tejidos Mixtecos",
    "Café La Cumbre",
    "Miel del Valle",
    "Barro Vivo",
    "Rosa's Kitchen",
    "Hilos de Colores",
    "El Comal",
    "Palma Real",
    "Cacao Santo",
    "La Colmena",
    "Artesanías Zapotecas",
    "Jabones Doña María",
    "Rebozos Santa Ana",
    "Tierra Fértil",
    "El Molino",
    "Manos de Mujer",
    "Cerámica del Río",
    "Don Chema",
    "Verde Campo",
    "Sabor de Pueblo",
    "La Huerta",
    "Telar Antiguo",
    "Cera y Flor",
    "Nakshi Collective",
    "Jute & Co.",
    "Abuela Chuy",
    "El Rosario Crafts",
    "Café Tres Ríos",
    "Dulces Típicos",
    "Bordados Lupita",
];

/// Transitions and who takes them.
type Steps = &'static [(Transition, Actor)];

/// Fill an empty database with the demo district. Refuses to run twice.
pub async fn seed(db: &Db, progress: bool) -> Result<()> {
    if !db.places().await?.is_empty() {
        return Ok(());
    }
    db.set_setting("currency", "MXN").await?;
    db.set_country("MX").await?;
    db.set_setting("marketplace_name", "Tianguis Valle Verde")
        .await?;
    let district = db
        .create_place("Valle Verde District", "district", None)
        .await?;
    let city = db
        .create_place("Ciudad Verde", "city", Some(district))
        .await?;
    let town = db.create_place("San Mateo", "town", Some(district)).await?;
    let mut villages = Vec::new();
    for (v, lat, lng) in [
        ("Santa Ana", 16.9512, -96.7481),
        ("El Rosario", 17.0501, -96.6012),
        ("Tres Ríos", 17.1013, -96.9022),
        ("San Pedro Cholula", 16.9034, -96.6517),
        ("La Esperanza", 17.1498, -96.5539),
    ] {
        let id = db.create_place(v, "village", Some(district)).await?;
        db.set_place_location(id, lat, lng).await?;
        villages.push(id);
    }
    // Reference points so short plus codes ("X722+FQ Santa Ana") can be recovered.
    for (id, lat, lng) in [
        (district, 17.06, -96.72),
        (city, 17.0654, -96.7236),
        (town, 17.2009, -96.8017),
    ] {
        db.set_place_location(id, lat, lng).await?;
    }
    let mut cats = std::collections::HashMap::new();
    for (slug, en, es, bn) in CATEGORIES {
        cats.insert(*slug, db.create_category(slug, en, es, *bn).await?);
    }

    let total_steps = (SHOP_WORDS.len() + 24 + 60) as u64;
    let bar = if progress {
        ProgressBar::new(total_steps)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("photos");
    let mut photos = Vec::new();
    for i in 0..24u64 {
        photos.push(demo_photo(i + 1));
        bar.inc(1);
    }

    let hash = tianguis_app::people::hash_password(DEMO_PASSWORD)?;
    insert_user(
        db,
        DEMO_ADMIN_PHONE,
        "Ana Admin",
        &hash,
        Role::Admin,
        Some(district),
    )
    .await?;
    bar.set_message("sellers");
    let mut seller_ids = Vec::new();
    let mut product_count = 0usize;
    for (i, shop) in SHOP_WORDS.iter().enumerate() {
        let place = match i % 4 {
            0 => city,
            1 => town,
            _ => villages[i % villages.len()],
        };
        let phone = format!("+52000000{:04}", 1000 + i);
        let uid = insert_user(
            db,
            &phone,
            &format!("Seller {}", i + 1),
            &hash,
            Role::Seller,
            Some(place),
        )
        .await?;
        let level = (i % 6) as i64;
        let sid = db.create_seller(uid, shop, place, level, i % 5 < 3).await?;
        seller_ids.push(sid);
        // 10 products per seller, cycling through items and variants.
        for k in 0..10 {
            let item = &ITEMS[(i * 7 + k * 3) % ITEMS.len()];
            let var = &VARIANTS[(i + k) % VARIANTS.len()];
            let (name_en, name_es) = if var.0.is_empty() {
                (item.1.to_string(), item.2.to_string())
            } else {
                (
                    format!("{} ({})", item.1, var.0),
                    format!("{} ({})", item.2, var.1),
                )
            };
            let price = item.4 * var.2; // pesos * percent = centavos
            let pid = db
                .create_product(
                    sid,
                    &ProductInput {
                        category_id: cats[item.0],
                        name_en,
                        name_es: Some(name_es),
                        name_bn: item.3.map(str::to_string),
                        name_sw: None,
                        description: format!("{} — {}. Made in {}.", item.1, item.2, shop),
                        price_minor: price,
                        stock: 5 + ((i * 13 + k * 7) % 40) as i64,
                    },
                )
                .await?;
            let photo = &photos[(i + k) % photos.len()];
            if k % 4 != 3 {
                db.set_product_photo(sid, pid, photo).await?;
            }
            product_count += 1;
        }
        bar.inc(1);
    }
    tracing::info!(
        products = product_count,
        sellers = seller_ids.len(),
        "demo catalogue"
    );

    bar.set_message("orders");
    let mut buyers = Vec::new();
    for i in 0..20 {
        let place = if i % 2 == 0 {
            villages[i % villages.len()]
        } else {
            town
        };
        let phone = format!("+52000000{:04}", 2000 + i);
        let name = [
            "María",
            "José",
            "Guadalupe",
            "Juan",
            "Rahima",
            "Karim",
            "Fatema",
            "Pedro",
            "Lucía",
            "Amina",
        ][i % 10];
        buyers.push(
            insert_user(
                db,
                &phone,
                &format!("{name} {}", i + 1),
                &hash,
                Role::Buyer,
                Some(place),
            )
            .await?,
        );
    }

    // Orders in every state, each reached by real transitions: a prefix of the happy path,
    // then a branch.
    use Actor::{Admin, Buyer, Seller, System};
    use Transition as T;
    const HAPPY: [(Transition, Actor); 6] = [
        (T::Pay, System),
        (T::Accept, Seller),
        (T::Pack, Seller),
        (T::Ship, Seller),
        (T::ConfirmDelivery, Buyer),
        (T::ConfirmReceipt, Buyer),
    ];
    let script: &[(OrderState, usize, Steps)] = &[
        (OrderState::Placed, 0, &[]),
        (OrderState::Paid, 1, &[]),
        (OrderState::Accepted, 2, &[]),
        (OrderState::Packed, 3, &[]),
        (OrderState::Shipped, 4, &[]),
        (OrderState::Delivered, 5, &[]),
        (OrderState::Completed, 6, &[]),
        (OrderState::Cancelled, 1, &[(T::Cancel, Seller)]),
        (OrderState::ReturnRequested, 5, &[(T::RequestReturn, Buyer)]),
        (
            OrderState::Returned,
            5,
            &[(T::RequestReturn, Buyer), (T::MarkReturned, Seller)],
        ),
        (OrderState::Disputed, 5, &[(T::Dispute, Buyer)]),
        (
            OrderState::Resolved,
            5,
            &[(T::Dispute, Buyer), (T::Resolve, Admin)],
        ),
    ];
    // Cash is counted by the district office (an official's hand); mobile money by the provider.
    let office = db.user_by_phone(DEMO_ADMIN_PHONE).await?.id;
    let products = db
        .search(&tianguis_store::catalog::SearchQuery {
            limit: 100,
            ..Default::default()
        })
        .await?
        .products;
    // The README's demo seller gets one order in every state of their own (round 6).
    let demo_seller = db.user_by_phone(DEMO_SELLER_PHONE).await?.seller_id;
    let own = db
        .search(&tianguis_store::catalog::SearchQuery {
            seller_id: demo_seller,
            limit: 20,
            ..Default::default()
        })
        .await?
        .products;
    let mut n = 0usize;
    for round in 0..7 {
        if round == 5 {
            // Returns refund at once through the jobs table: run it, then leave one order
            // "returned" (its refund runs when the server starts).
            tianguis_app::queue::Runner::new("demo-seed")
                .drain(db, tianguis_store::queue::Lane::Timers, 10)
                .await?;
        }
        for (target, prefix, branch) in script {
            if round == 5 && *target != OrderState::Returned {
                continue;
            }
            let buyer = buyers[n % buyers.len()];
            let p1 = if round == 6 && !own.is_empty() {
                &own[n % own.len()]
            } else {
                &products[(n * 7) % products.len()]
            };
            let p2 = &products[(n * 11 + 3) % products.len()];
            let mut lines = vec![(p1.id, 1)];
            if round < 6 && n.is_multiple_of(3) && p2.seller_id != p1.seller_id {
                lines.push((p2.id, 2));
            }
            let method = if (n + round).is_multiple_of(2) {
                PaymentMethod::MobileMoney
            } else {
                PaymentMethod::Cash
            };
            let collector = (method == PaymentMethod::Cash).then_some(office);
            let (res, _) = tianguis_app::orders::checkout(db, &CheckoutRequest {
                    buyer_id: buyer,
                    lines,
                    session_id: None,
                    idempotency_key: format!("demo-{round}-{n}"),
                    method,
                    address: "X722+FQ Santa Ana — blue house next to the church / casa azul junto a la iglesia".into(),
                    phone: "+529510000011".into(),
                    pickup_point_id: None,
                    on_behalf: None,
                    limits: Vec::new(),
                })
                .await?;
            n += 1;
            for oid in &res.order_ids {
                for (t, a) in HAPPY[..*prefix].iter().chain(branch.iter()) {
                    if *t == Transition::Pay {
                        tianguis_app::orders::payment_succeeded(db, res.payment_id, collector)
                            .await?;
                    } else {
                        let refund = (*t == Transition::Resolve).then_some(1000);
                        tianguis_app::orders::transition(db, *oid, *t, *a, None, "demo", refund)
                            .await?;
                    }
                }
            }
            bar.inc(1);
        }
    }
    // Pickup points: a digital centre, a neighbourhood store and a locker, one operator.
    insert_user(
        db,
        DEMO_OPERATOR_PHONE,
        "Pepe Operador",
        &hash,
        Role::Operator,
        Some(villages[0]),
    )
    .await?;
    for (name, kind, place, loc, slots, fee) in [
        (
            "Centro Digital Santa Ana",
            "centre",
            villages[0],
            (16.9515, -96.7478),
            40,
            1000,
        ),
        (
            "Tienda Don Pepe",
            "store",
            villages[1],
            (17.0503, -96.6010),
            15,
            1500,
        ),
        (
            "Casillero Mercado Central",
            "locker",
            city,
            (17.0660, -96.7240),
            24,
            2000,
        ),
    ] {
        db.create_pickup_point(&tianguis_store::pickup::NewPickupPoint {
            name: name.into(),
            kind: kind.into(),
            place_id: place,
            location: loc,
            slots,
            hours: "Lun-Sáb 8:00-20:00".into(),
            hold_days: 5,
            fee_minor: fee,
            operator_phone: Some(DEMO_OPERATOR_PHONE.into()),
            contact: "+529510001111".into(),
        })
        .await?;
    }
    // Cash on delivery: one waiting for its seller, one delivered with the cash collected.
    for (k, steps) in [
        (0, &[][..]),
        (
            1,
            &[T::AcceptOnDelivery, T::Pack, T::Ship, T::CollectOnDelivery][..],
        ),
    ] {
        let p = &products[(k * 13 + 5) % products.len()];
        let (res, _) = tianguis_app::orders::checkout(
            db,
            &CheckoutRequest {
                buyer_id: buyers[k + 3],
                lines: vec![(p.id, 1)],
                session_id: None,
                idempotency_key: format!("demo-cod-{k}"),
                method: PaymentMethod::CashOnDelivery,
                address: "392X+2G El Rosario — tienda de Don Pepe / next to Don Pepe's shop".into(),
                phone: "+529510000003".into(),
                pickup_point_id: None,
                on_behalf: None,
                limits: Vec::new(),
            },
        )
        .await?;
        for t in steps {
            tianguis_app::orders::transition(db, res.order_ids[0], *t, Seller, None, "demo", None)
                .await?;
        }
    }
    courier_pool(db, &hash, villages[0], &buyers, &products).await?;
    assisted_commerce(db, &hash, villages[1], &products).await?;
    payouts(db, &hash, &seller_ids).await?;
    bar.finish_and_clear();
    Ok(())
}

/// Payouts in every state, for the three shops owed the most (the others stay owed, for the
/// officials to try): a batch thrown away; a batch approved by the second official, its wallet
/// transfers answered (one wallet does not exist: its money went back) and a cash line waiting
/// at the centre; and the returned money in a batch waiting for approval.
async fn payouts(db: &Db, hash: &str, seller_ids: &[i64]) -> Result<()> {
    use tianguis_domain::kinds::{LineStatus, PayoutChannel};
    use tianguis_domain::payout::{Payee, Run};
    insert_user(
        db,
        DEMO_TREASURER_PHONE,
        "Tesorería",
        hash,
        Role::Admin,
        None,
    )
    .await?;
    let office = db.user_by_phone(DEMO_ADMIN_PHONE).await?;
    let treasurer = db.user_by_phone(DEMO_TREASURER_PHONE).await?;
    let mut owed = Vec::new();
    for sid in seller_ids {
        owed.push((db.seller_statement(*sid).await?.owed, *sid));
    }
    owed.sort();
    owed.reverse();
    if owed.len() < 3 || owed[2].0 < 1000 {
        return Ok(());
    }
    // Only the top three this time: everyone at least the third's balance.
    let before = db.settings().await?.payout_schedule();
    let floor = owed[2].0;
    db.set_settings(&[
        ("payout_minimum_minor", floor.to_string()),
        (
            "payout_threshold_minor",
            floor.max(before.threshold_minor).to_string(),
        ),
    ])
    .await?;
    if let Some(x) = tianguis_app::payouts::prepare(db, Some(&office), Run::Manual).await? {
        tianguis_app::payouts::cancel(db, &office, x).await?;
    }
    let (failing, cash) = (owed[0].1, owed[1].1);
    tianguis_app::payouts::set_method(
        db,
        &office,
        Payee::Seller(failing),
        PayoutChannel::MobileMoney,
        "+529511100000",
    )
    .await?;
    tianguis_app::payouts::set_method(
        db,
        &office,
        Payee::Seller(cash),
        PayoutChannel::Cash,
        "Centro Santa Ana",
    )
    .await?;
    if let Some(a) = tianguis_app::payouts::prepare(db, Some(&office), Run::Manual).await? {
        tianguis_app::payouts::approve(db, &treasurer, a).await?;
        // The provider's answers (the queue's jobs for these lines then find them settled).
        for (n, l) in db.payout_lines(a).await?.iter().enumerate() {
            if l.channel != PayoutChannel::MobileMoney || l.status != LineStatus::Sending {
                continue;
            }
            if l.payee == Payee::Seller(failing) {
                tianguis_app::payouts::line_failed(db, l.id, "PAYEE_NOT_FOUND").await?;
            } else {
                tianguis_app::payouts::line_paid(db, l.id, &format!("DEMO-TX-{n}")).await?;
            }
        }
    }
    // The failed shop gives its own phone as the wallet: its money waits in the next batch.
    let owner = db.user(db.seller(failing).await?.user_id).await?;
    tianguis_app::payouts::set_method(
        db,
        &owner,
        Payee::Seller(failing),
        PayoutChannel::MobileMoney,
        &owner.phone,
    )
    .await?;
    tianguis_app::payouts::prepare(db, Some(&treasurer), Run::Manual).await?;
    db.set_settings(&[
        ("payout_minimum_minor", before.minimum_minor.to_string()),
        ("payout_threshold_minor", before.threshold_minor.to_string()),
    ])
    .await?;
    Ok(())
}

/// The courier pool: the post office, a motorbike and a bicycle; delivery jobs in every state,
/// failed attempts (one redirected to a pickup point), cash to collect at a door, and today's
/// route plans (queued here; `tianguis serve --demo` solves them before it listens).
async fn courier_pool(
    db: &Db,
    hash: &str,
    home: i64,
    buyers: &[i64],
    products: &[tianguis_store::catalog::Product],
) -> Result<()> {
    use tianguis_domain::calendar::local_day;
    use tianguis_domain::delivery::{FailReason, JobAction as J};
    use tianguis_store::delivery::NewCarrier;
    db.set_setting("utc_offset_minutes", "-360").await?;
    db.set_setting("route_plan_seconds", "2").await?;
    let code = |lat: f64, lng: f64| {
        tianguis_geo::PlusCode::encode(lat, lng, 10)
            .map(|c| c.to_string())
            .unwrap_or_default()
    };
    let mut riders = Vec::new();
    for (phone, name, kind, capacity, base, radius, shift, speed) in [
        (
            DEMO_COURIER_PHONE,
            "Juan Moto",
            "motorbike",
            8,
            code(16.9512, -96.7481),
            35,
            (7 * 60, 19 * 60),
            35,
        ),
        (
            "+520000004001",
            "Correos Ciudad Verde",
            "post_office",
            60,
            code(17.0654, -96.7236),
            60,
            (8 * 60, 17 * 60),
            40,
        ),
        (
            "+520000004002",
            "Rosa en bici",
            "bicycle",
            4,
            code(17.0654, -96.7236),
            8,
            (8 * 60, 16 * 60),
            12,
        ),
    ] {
        let uid = insert_user(db, phone, name, hash, Role::Courier, Some(home)).await?;
        let user = db.user(uid).await?;
        db.register_carrier(
            &user,
            &NewCarrier {
                name: name.into(),
                kind: kind.into(),
                capacity,
                base,
                radius_km: radius,
                shift_start_min: shift.0,
                shift_end_min: shift.1,
                speed_kmh: speed,
            },
        )
        .await?;
        riders.push(user);
    }
    let (moto, post) = (&riders[0], &riders[1]);
    // Homes around Santa Ana and the city, each with the landmark a rider asks for.
    let drops: [(f64, f64, &str); 10] = [
        (
            16.9601,
            -96.7402,
            "tienda roja en la esquina / red shop on the corner",
        ),
        (16.9437, -96.7555, "junto al pozo / next to the well"),
        (
            16.9688,
            -96.7290,
            "casa azul junto a la iglesia / blue house by the church",
        ),
        (16.9350, -96.7391, "portón verde / green gate"),
        (
            16.9802,
            -96.7133,
            "frente a la escuela / opposite the school",
        ),
        (17.0120, -96.7301, "molino de nixtamal / the maize mill"),
        (17.0701, -96.7180, "mercado, puesto 14 / market stall 14"),
        (17.0455, -96.6880, "taller de bicicletas / bicycle workshop"),
        (
            16.9555,
            -96.7650,
            "casa con bugambilia / house with the bougainvillea",
        ),
        (
            17.0598,
            -96.7402,
            "detrás de la gasolinera / behind the fuel station",
        ),
    ];
    // (who, moves, failure reason for the fail move)
    type Script<'a> = (Option<&'a tianguis_store::users::User>, &'a [J]);
    let script: [Script; 10] = [
        (None, &[]),
        (None, &[]),
        (Some(moto), &[J::Accept]),
        (Some(moto), &[J::Accept, J::PickUp]),
        (Some(moto), &[J::Accept, J::PickUp, J::Depart]),
        (Some(moto), &[J::Accept, J::PickUp, J::Depart, J::Fail]),
        (Some(post), &[J::Accept, J::PickUp, J::Depart, J::Deliver]),
        (
            Some(post),
            &[J::Accept, J::PickUp, J::Depart, J::Fail, J::Redirect],
        ),
        (None, &[J::Cancel]),
        (Some(post), &[J::Accept]),
    ];
    for (k, (who, moves)) in script.iter().enumerate() {
        let cod = k == 4;
        let p = &products[(k * 5 + 2) % products.len()];
        let (res, _) = tianguis_app::orders::checkout(
            db,
            &CheckoutRequest {
                buyer_id: buyers[(k + 5) % buyers.len()],
                lines: vec![(p.id, 1)],
                session_id: None,
                idempotency_key: format!("demo-courier-{k}"),
                method: if cod {
                    PaymentMethod::CashOnDelivery
                } else {
                    PaymentMethod::MobileMoney
                },
                address: format!("{} — {}", code(drops[k].0, drops[k].1), drops[k].2),
                phone: format!("+5295100001{k:02}"),
                pickup_point_id: None,
                on_behalf: None,
                limits: Vec::new(),
            },
        )
        .await?;
        let oid = res.order_ids[0];
        if cod {
            tianguis_app::orders::transition(
                db,
                oid,
                Transition::AcceptOnDelivery,
                Actor::Seller,
                None,
                "demo",
                None,
            )
            .await?;
        } else {
            tianguis_app::orders::payment_succeeded(db, res.payment_id, None).await?;
            tianguis_app::orders::transition(
                db,
                oid,
                Transition::Accept,
                Actor::Seller,
                None,
                "demo",
                None,
            )
            .await?;
        }
        tianguis_app::orders::transition(
            db,
            oid,
            Transition::Pack,
            Actor::Seller,
            None,
            "demo",
            None,
        )
        .await?;
        let job = db
            .delivery_job_of_order(oid)
            .await?
            .ok_or(tianguis_store::StoreError::NotFound("delivery job"))?;
        for m in *moves {
            match (m, who) {
                (J::Cancel, _) => {
                    tianguis_app::orders::transition(
                        db,
                        oid,
                        Transition::AutoCancelUnshipped,
                        Actor::System,
                        None,
                        "demo",
                        None,
                    )
                    .await?;
                }
                (J::Deliver, Some(u)) => {
                    let code = db.order(oid).await?.delivery_code.unwrap_or_default();
                    tianguis_app::logistics::deliver_job(db, u, job.id, &code).await?;
                }
                (J::Fail, Some(u)) => {
                    let reason = if k == 5 {
                        FailReason::NotHome
                    } else {
                        FailReason::WrongAddress
                    };
                    tianguis_app::logistics::job_act(db, u, job.id, J::Fail, Some(reason)).await?;
                }
                (m, Some(u)) => {
                    tianguis_app::logistics::job_act(db, u, job.id, *m, None).await?;
                }
                (_, None) => {}
            }
        }
    }
    let settings = db.settings().await?;
    let (day, _) = local_day(db.now_ms(), settings.utc_offset_minutes());
    db.queue_morning_plans(&day, settings.route_plan_ms())
        .await?;
    Ok(())
}

/// Digital centres with agents, commission rules, orders placed for walk-in buyers (cash to the
/// agent, collected at the centre, some completed so commissions accrued), and cash hand-overs,
/// one of them short.
async fn assisted_commerce(
    db: &Db,
    hash: &str,
    village: i64,
    products: &[tianguis_store::catalog::Product],
) -> Result<()> {
    use tianguis_domain::commission::{Basis, Rule, Source};
    use tianguis_store::pickup::NewPickupPoint;
    let admin = db.user_by_phone(DEMO_ADMIN_PHONE).await?;
    let santa_ana = db
        .pickup_points()
        .await?
        .into_iter()
        .find(|p| p.kind == "centre")
        .ok_or(tianguis_store::StoreError::NotFound("centre"))?;
    let rosario = db
        .create_pickup_point(&NewPickupPoint {
            name: "Centro Digital El Rosario".into(),
            kind: "centre".into(),
            place_id: village,
            location: (17.0498, -96.6020),
            slots: 30,
            hours: "Lun-Vie 9:00-18:00".into(),
            hold_days: 5,
            fee_minor: 1000,
            operator_phone: None,
            contact: "+529510002222 (Marta)".into(),
        })
        .await?;
    let mut agents = Vec::new();
    for (phone, name, centre) in [
        (DEMO_AGENT_PHONE, "Rosa Agente", santa_ana.id),
        ("+520000005001", "Marta Agente", rosario),
    ] {
        insert_user(db, phone, name, hash, Role::Buyer, Some(village)).await?;
        agents.push(db.attach_agent(&admin, centre, phone).await?);
    }
    // 2% of what sellers keep, from the platform fee; 3% (at most $50) at Santa Ana.
    for (centre, bps, cap) in [(None, 200, None), (Some(santa_ana.id), 300, Some(5000))] {
        db.create_commission_rule(&Rule {
            id: 0,
            centre_id: centre,
            category_id: None,
            basis: Basis::Percent(bps),
            cap_minor: cap,
            source: Source::PlatformFee,
        })
        .await?;
    }
    let walk_ins = [
        ("Doña Carmen", "+529510003001"),
        ("Don Efraín", "+529510003002"),
        ("Juana López", "+529510003003"),
        ("Pablo Ruiz", "+529510003004"),
    ];
    for (k, (name, phone)) in walk_ins.iter().enumerate() {
        let agent = &agents[k % 2];
        let p = &products[(k * 9 + 4) % products.len()];
        let (res, _) = tianguis_app::assisted::assisted_checkout(
            db,
            agent,
            tianguis_app::assisted::AssistedCheckout {
                buyer_name: name,
                buyer_phone: phone,
                lines: vec![(p.id, 1)],
                method: PaymentMethod::Cash,
                address: "",
                at_centre: true,
                idempotency_key: &format!("demo-assisted-{k}"),
                session_id: None,
                limits: Vec::new(),
                buyer_lang: None,
            },
        )
        .await?;
        let oid = res.order_ids[0];
        if k < 3 {
            for t in [Transition::Accept, Transition::Pack, Transition::Ship] {
                tianguis_app::orders::transition(db, oid, t, Actor::Seller, None, "demo", None)
                    .await?;
            }
            tianguis_app::logistics::check_in(db, agent, oid).await?;
        }
        if k < 2 {
            let code = db.order(oid).await?.delivery_code.unwrap_or_default();
            tianguis_app::orders::deliver_with_code(db, agent, oid, &code).await?;
            tianguis_app::orders::transition(
                db,
                oid,
                Transition::ConfirmReceipt,
                Actor::Buyer,
                None,
                "demo",
                None,
            )
            .await?;
        }
    }
    // A digital champion with three businesses: one listed (paid), one first sale, one level up.
    insert_user(
        db,
        DEMO_CHAMPION_PHONE,
        "Sofía Campeona",
        hash,
        Role::Buyer,
        Some(village),
    )
    .await?;
    let shops = db.seller_names().await?;
    let mut assigned = Vec::new();
    for (k, m) in [
        tianguis_domain::champion::Milestone::Listed,
        tianguis_domain::champion::Milestone::FirstSale,
        tianguis_domain::champion::Milestone::LevelUp,
    ]
    .into_iter()
    .enumerate()
    {
        assigned.push(
            db.assign_champion(&admin, DEMO_CHAMPION_PHONE, shops[k * 5].0, m, 50_000)
                .await?,
        );
    }
    db.pay_champion(&admin, assigned[0]).await?;
    // Rosa hands over all but $20 (a shortfall on record); Marta hands over everything.
    for (agent, short) in [(&agents[0], 2000), (&agents[1], 0)] {
        let held = db.cash_on_hand(agent.id).await?.minor;
        if held > short {
            db.record_handover(
                agent,
                held - short,
                "bank",
                &format!("DEP-{}-001", agent.id),
            )
            .await?;
        }
    }
    Ok(())
}

async fn insert_user(
    db: &Db,
    phone: &str,
    name: &str,
    hash: &str,
    role: Role,
    place: Option<i64>,
) -> Result<i64> {
    db.insert_user_hashed(phone, name, hash, role, place).await
}
