//! Assisted commerce pages. An agent at a digital centre builds a cart in the catalogue like
//! anyone, then places it for a walk-in buyer (`/agent`), takes cash, serves the centre's
//! counter (`/pickup`), hands cash over (`/cash`, also for couriers and operators) and reads
//! their commission statement. Officials register centres, attach agents, set commission rules
//! and reconcile cash (`/admin/centres`, `/admin/cash`). Buyers without an account follow an
//! order with its code at `/track`.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::{CsrfOnly, admin_of, html, parse_id};
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tianguis_domain::calendar::{local_day, month_bounds};
use tianguis_domain::champion::Milestone;
use tianguis_domain::commission::{Basis, Rule, Source};
use tianguis_domain::money::Money;
use tianguis_store::Msg;
use tianguis_store::agents::{CashHolder, HANDOVER_CHANNELS, Handover};
use tianguis_store::catalog::CartLine;
use tianguis_store::champions::Assignment;
use tianguis_store::orders::Order;
use tianguis_store::pickup::PickupPoint;
use tianguis_store::users::User;

type R = Result<Response, AppError>;

pub fn routes() -> Table {
    Table::new("assisted")
        .get("/agent", agent_page)
        .post("/agent/checkout", agent_checkout)
        .post("/agent/payments/{id}/cash", agent_cash)
        .get("/agent/commissions", commissions)
        .get("/cash", cash_page)
        .post("/cash/handover", handover)
        .get("/track", track)
        .get("/track/{code}", track_code)
        .get("/admin/centres", admin_centres)
        .post("/admin/centres/agents", admin_attach_agent)
        .post("/admin/commissions", admin_commission_rule)
        .get("/admin/cash", admin_cash)
        .get("/champion", champion_page)
        .get_post("/admin/champions", admin_champions, admin_assign_champion)
        .post("/admin/champions/{id}/pay", admin_pay_champion)
}

fn agent_of(c: &Ctx) -> Result<(&User, i64), AppError> {
    let u = c.require_user()?;
    tianguis_domain::policy::may(&u.person(), tianguis_domain::policy::Duty::ServeAtCentre)
        .map_err(crate::who::refusal)?;
    match u.person().centre() {
        Some(centre) => Ok((u, centre.into())),
        None => Err(AppError::user(StatusCode::FORBIDDEN, "err-not-an-agent")),
    }
}

fn state_label(c: &Ctx, o: &Order) -> String {
    c.t.t(&format!("state-{}", o.state.as_str()))
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage<'a> {
    c: &'a Ctx,
    title: String,
    centre: PickupPoint,
    lines: Vec<CartLine>,
    /// The cart as "product:quantity,..." so a draft sent later carries its own lines.
    lines_field: String,
    /// The total the agent saw, in minor units: a draft sent later is refused if prices moved.
    expected_total: i64,
    key: String,
    placed: Option<String>,
    /// What the buyer pays for the order just placed, fees included, and how.
    placed_total: Option<String>,
    /// Before placing: the goods, and the whole (fees included) collected here or delivered.
    subtotal: String,
    total_here: String,
    total_address: String,
    orders: Vec<(Order, String, bool)>,
    on_hand: String,
    error: Option<String>,
    form: HashMap<String, String>,
}

async fn agent_page(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    render_agent(&s, &c, q.get("placed").cloned(), None, HashMap::new()).await
}

async fn render_agent(
    s: &AppState,
    c: &Ctx,
    placed: Option<String>,
    error: Option<String>,
    form: HashMap<String, String>,
) -> R {
    let (user, centre_id) = agent_of(c)?;
    let orders =
        s.db.centre_orders(centre_id, 30)
            .await?
            .into_iter()
            .map(|o| {
                let awaiting =
                    o.payment_status == Some(tianguis_store::orders::PaymentStatus::AwaitingCash);
                let label = state_label(c, &o);
                (o, label, awaiting)
            })
            .collect();
    let lines = c.cart(&s.db).await?;
    let centre = s.db.pickup_point(centre_id).await?;
    // The totals as checkout will charge them: one fee per shop, the centre's own fee when the
    // parcel is collected here, the delivery fee when it goes to an address.
    let currency = s.db.currency().await?;
    let mut shops: Vec<i64> = lines.iter().map(|l| l.product.seller_id).collect();
    shops.sort();
    shops.dedup();
    let goods: i64 = lines
        .iter()
        .map(|l| l.product.price.minor.saturating_mul(l.quantity))
        .sum();
    let n = shops.len() as i64;
    let fees = s.db.fees().await?;
    let m = |minor: i64| c.t.money(&Money::new(minor, currency));
    let placed_code = placed.map(|p| {
        p.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect::<String>()
    });
    let placed_total = match &placed_code {
        Some(code) => {
            let placed = s.db.order_by_tracking(code).await?;
            let total: i64 = placed.iter().map(|o| o.total.minor).sum();
            use tianguis_store::orders::{PaymentMethod, PaymentStatus};
            let key = match placed.first().map(|o| (o.method, o.payment_status)) {
                Some((_, Some(PaymentStatus::AwaitingCash))) => "agent-collect-now",
                Some((PaymentMethod::Cash, Some(PaymentStatus::Succeeded))) => "agent-collected",
                _ => "agent-placed-total",
            };
            (!placed.is_empty()).then(|| c.t.t1(key, "total", m(total)))
        }
        None => None,
    };
    html(AgentPage {
        title: c.t.t("agent-title"),
        subtotal: m(goods),
        total_here: m(goods + n * centre.fee_minor),
        total_address: m(goods + n * fees.delivery_per_order),
        placed_total,
        centre,
        lines_field: lines
            .iter()
            .map(|l| format!("{}:{}", l.product.id, l.quantity))
            .collect::<Vec<_>>()
            .join(","),
        expected_total: lines
            .iter()
            .map(|l| l.product.price.minor * l.quantity)
            .sum(),
        lines,
        key: tianguis_store::random_token(16),
        on_hand: c.t.money(&s.db.cash_on_hand(user.id).await?),
        c,
        placed: placed_code,
        orders,
        error,
        form,
    })
}

/// Place the agent's cart for a walk-in buyer.
async fn agent_checkout(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let (agent, _) = agent_of(&c)?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    // The lines the agent saw (a draft carries them), else the cart as it is now.
    let lines: Vec<(i64, i64)> = if get("lines").is_empty() {
        c.cart(&s.db)
            .await?
            .iter()
            .map(|l| (l.product.id, l.quantity))
            .collect()
    } else {
        parse_lines(&get("lines"))?
    };
    if let Ok(expected) = get("expected_total").parse::<i64>() {
        let mut now = 0;
        for (pid, qty) in &lines {
            now += s.db.product(*pid).await?.price.minor * qty;
        }
        if now != expected
            && s.db
                .assisted_replay(agent.id, &get("idempotency_key"))
                .await?
                .is_none()
        {
            return refuse(
                &s,
                &c,
                AppError::from(tianguis_store::StoreError::Conflict(Msg::new(
                    "err-price-changed",
                ))),
                f,
            )
            .await;
        }
    }
    let method = tianguis_store::orders::parse_method(&get("method"))?;
    let at_centre = get("delivery") != "address";
    let (name, phone, address, key) = (
        get("buyer_name"),
        get("buyer_phone"),
        get("address"),
        get("idempotency_key"),
    );
    // The buyer's texts go in the language they asked for (only the product's languages).
    let lang = get("buyer_lang");
    let buyer_lang = crate::i18n::LANGS
        .iter()
        .map(|(l, _)| *l)
        .find(|l| *l == lang.as_str());
    let r = tianguis_app::assisted::assisted_checkout(
        &s.db,
        agent,
        tianguis_app::assisted::AssistedCheckout {
            buyer_name: &name,
            buyer_phone: &phone,
            lines,
            method,
            address: &address,
            at_centre,
            idempotency_key: &key,
            session_id: c.session_id.clone(),
            limits: crate::abuse::checkouts(&s, ip, agent.id),
            buyer_lang,
        },
    )
    .await;
    match r {
        // Mobile money is asked of the buyer's phone by a job written with the checkout.
        Ok((res, _)) => {
            Ok(Redirect::to(&format!("/agent?placed={}", res.tracking_code)).into_response())
        }
        Err(e) => refuse(&s, &c, AppError::from(e), f).await,
    }
}

/// The form comes back filled in, with the reason.
async fn refuse(s: &AppState, c: &Ctx, e: AppError, f: HashMap<String, String>) -> R {
    let (status, msg) = e.for_form(&c.t)?;
    let mut resp = render_agent(s, c, None, Some(msg), f).await?;
    *resp.status_mut() = status;
    Ok(resp)
}

/// "12:2,15:1" to [(12, 2), (15, 1)].
fn parse_lines(v: &str) -> Result<Vec<(i64, i64)>, AppError> {
    v.split(',')
        .filter(|p| !p.trim().is_empty())
        .take(100)
        .map(|p| {
            let (a, b) = p
                .split_once(':')
                .ok_or_else(|| AppError::bad(Msg::new("err-cart-empty")))?;
            Ok((parse_id(a, "product")?, parse_id(b, "quantity")?))
        })
        .collect()
}

async fn agent_cash(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let (agent, _) = agent_of(&c)?;
    tianguis_app::assisted::collect_cash(&s.db, agent, id).await?;
    Ok(Redirect::to("/agent").into_response())
}

#[derive(Template)]
#[template(path = "commissions.html")]
struct CommissionsPage<'a> {
    c: &'a Ctx,
    title: String,
    month: String,
    lines: Vec<(i64, String, String)>,
    earned: String,
    owed: String,
    paid: String,
}

async fn commissions(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    // An agent reads their own; an official reads anyone's (?agent=ID).
    let agent_id: i64 = tianguis_domain::policy::commission_statement(
        &user.person(),
        q.get("agent")
            .and_then(|a| a.parse::<i64>().ok())
            .map(tianguis_domain::ids::UserId),
    )
    .map_err(crate::who::refusal)?
    .into();
    let offset = s.db.settings().await?.utc_offset_minutes();
    let month = q
        .get("month")
        .cloned()
        .unwrap_or_else(|| local_day(s.db.now_ms(), offset).0[..7].to_string());
    let (from, to) = month_bounds(&month, offset)
        .ok_or_else(|| AppError::bad(Msg::new("err-month").arg("value", month.as_str())))?;
    let st = s.db.agent_statement(agent_id, from, to).await?;
    let m = |minor: i64| c.t.money(&Money::new(minor, st.currency));
    html(CommissionsPage {
        title: c.t.t("commissions-title"),
        lines: st
            .lines
            .iter()
            .map(|l| (l.order_id, local_day(l.at, offset).0, m(l.amount_minor)))
            .collect(),
        earned: m(st.earned_in_period),
        owed: m(st.owed),
        paid: m(st.paid_out_total),
        c: &c,
        month,
    })
}

#[derive(Template)]
#[template(path = "cash.html")]
struct CashPage<'a> {
    c: &'a Ctx,
    title: String,
    on_hand: String,
    on_hand_decimal: String,
    channels: Vec<(&'static str, String)>,
    handovers: Vec<(Handover, String, String, String)>,
}

fn handover_row(
    c: &Ctx,
    h: Handover,
    currency: tianguis_domain::money::Currency,
) -> (Handover, String, String, String) {
    let m = |minor: i64| c.t.money(&Money::new(minor, currency));
    let (e, d, short) = (
        m(h.expected_minor),
        m(h.declared_minor),
        if h.shortfall() > 0 {
            m(h.shortfall())
        } else {
            String::new()
        },
    );
    (h, e, d, short)
}

/// Anyone who took cash (agents, couriers, operators, officials) hands it over here.
async fn cash_page(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let user = c.require_user()?;
    let on_hand = s.db.cash_on_hand(user.id).await?;
    let currency = on_hand.currency;
    html(CashPage {
        title: c.t.t("cash-title"),
        on_hand: c.t.money(&on_hand),
        on_hand_decimal: on_hand.to_decimal(),
        channels: HANDOVER_CHANNELS
            .iter()
            .map(|k| (*k, c.t.t(&format!("cash-channel-{k}"))))
            .collect(),
        handovers: s
            .db
            .handovers(Some(user.id), 30)
            .await?
            .into_iter()
            .map(|h| handover_row(&c, h, currency))
            .collect(),
        c: &c,
    })
}

async fn handover(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let user = c.require_user()?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let currency = s.db.currency().await?;
    let amount =
        Money::parse_decimal(&get("amount"), currency).map_err(|e| AppError::bad(e.msg()))?;
    s.db.record_handover(user, amount.minor, &get("channel"), &get("reference"))
        .await?;
    Ok(Redirect::to("/cash").into_response())
}

#[derive(Template)]
#[template(path = "track.html")]
struct TrackPage<'a> {
    c: &'a Ctx,
    title: String,
    code: String,
    orders: Vec<TrackView>,
}

/// One order as the public tracking page shows it: nothing personal beyond the last digits of
/// the phone its texts go to.
pub struct TrackView {
    pub o: Order,
    pub state: String,
    pub items: Vec<String>,
    pub due: String,
    /// The pickup point it goes to: (name, hours).
    pub pickup: Option<(String, String)>,
    pub code_how: String,
}

async fn track(Extension(c): Extension<Ctx>, Query(q): Query<HashMap<String, String>>) -> R {
    if let Some(code) = q.get("code").filter(|v| !v.trim().is_empty()) {
        let code: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        return Ok(Redirect::to(&format!("/track/{code}")).into_response());
    }
    html(TrackPage {
        title: c.t.t("track-title"),
        c: &c,
        code: String::new(),
        orders: Vec::new(),
    })
}

/// Public, by code: the order's state and where it goes, nothing personal.
async fn track_code(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    ip: crate::abuse::ClientIp,
    Path(code): Path<String>,
) -> R {
    crate::abuse::take(&s, &crate::abuse::lookups(&s, ip)).await?;
    let orders = s.db.order_by_tracking(&code).await?;
    let offset = s.db.settings().await?.utc_offset_minutes();
    let mut views = Vec::new();
    for o in orders {
        // With its lines (the lookup by code reads the orders alone).
        let o = s.db.order(o.id).await?;
        let pickup = match o.pickup_point_id {
            Some(id) => {
                let p = s.db.pickup_point(id).await?;
                Some((p.name, p.hours))
            }
            None => None,
        };
        let tail: String = o
            .phone
            .chars()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let code_how = if o.method == tianguis_store::orders::PaymentMethod::CashOnDelivery {
            c.t.t1("track-code-cod", "tail", &tail)
        } else if pickup.is_some() {
            c.t.t1("track-code-pickup", "tail", &tail)
        } else {
            c.t.t1("track-code-how", "tail", &tail)
        };
        views.push(TrackView {
            state: state_label(&c, &o),
            items: o
                .lines
                .iter()
                .map(|l| format!("{} × {}", l.name(c.t.lang), l.quantity))
                .collect(),
            due: o
                .due_at
                .filter(|_| o.delivered_at.is_none() && !o.state.is_final())
                .map(|d| tianguis_domain::calendar::local_day(d, offset).0)
                .unwrap_or_default(),
            pickup,
            code_how,
            o,
        });
    }
    html(TrackPage {
        title: c.t.t("track-title"),
        code: code.to_ascii_uppercase(),
        orders: views,
        c: &c,
    })
}

#[derive(Template)]
#[template(path = "centres.html")]
struct CentresPage<'a> {
    c: &'a Ctx,
    title: String,
    centres: Vec<(PickupPoint, Vec<(User, String)>)>,
    rules: Vec<(Rule, String)>,
    categories: Vec<tianguis_store::catalog::Category>,
}

/// Officials: centres with their agents (owed commission, suspend), commission rules.
async fn admin_centres(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    admin_of(&c)?;
    let currency = s.db.currency().await?;
    let mut centres = Vec::new();
    for p in
        s.db.pickup_points()
            .await?
            .into_iter()
            .filter(|p| p.kind == "centre")
    {
        let mut agents = Vec::new();
        for a in s.db.agents_of(p.id).await? {
            let owed = s.db.agent_statement(a.id, 0, 0).await?.owed;
            agents.push((a, c.t.money(&Money::new(owed, currency))));
        }
        centres.push((p, agents));
    }
    let rules =
        s.db.commission_rules()
            .await?
            .into_iter()
            .map(|r| {
                let what = match r.basis {
                    Basis::Percent(bps) => format!("{}.{:02}%", bps / 100, bps % 100),
                    Basis::Fixed(m) => c.t.money(&Money::new(m, currency)),
                };
                (r, what)
            })
            .collect();
    html(CentresPage {
        title: c.t.t("centres-title"),
        categories: s.db.categories().await?,
        c: &c,
        centres,
        rules,
    })
}

async fn admin_attach_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = admin_of(&c)?;
    let centre = parse_id(
        f.get("centre_id").map(String::as_str).unwrap_or(""),
        "centre_id",
    )?;
    s.db.attach_agent(
        &admin,
        centre,
        f.get("phone").map(String::as_str).unwrap_or(""),
    )
    .await?;
    Ok(Redirect::to("/admin/centres").into_response())
}

async fn admin_commission_rule(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    admin_of(&c)?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let opt_id = |k: &str| -> Result<Option<i64>, AppError> {
        let v = get(k);
        if v.is_empty() {
            Ok(None)
        } else {
            parse_id(&v, k).map(Some)
        }
    };
    let currency = s.db.currency().await?;
    let bad = || AppError::bad(Msg::new("err-commission-rule"));
    let basis = match get("basis").as_str() {
        "percent" => {
            // "2.5" percent is 250 basis points.
            let m = Money::parse_decimal(
                &get("value"),
                tianguis_domain::money::Currency::parse("USD").map_err(|_| bad())?,
            )
            .map_err(|_| bad())?;
            Basis::Percent(u32::try_from(m.minor).map_err(|_| bad())?)
        }
        "fixed" => Basis::Fixed(
            Money::parse_decimal(&get("value"), currency)
                .map_err(|e| AppError::bad(e.msg()))?
                .minor,
        ),
        _ => return Err(bad()),
    };
    let cap = match get("cap").as_str() {
        "" => None,
        v => Some(
            Money::parse_decimal(v, currency)
                .map_err(|e| AppError::bad(e.msg()))?
                .minor,
        ),
    };
    s.db.create_commission_rule(&Rule {
        id: 0,
        centre_id: opt_id("centre_id")?,
        category_id: opt_id("category_id")?,
        basis,
        cap_minor: cap,
        source: Source::parse(&get("source")).ok_or_else(bad)?,
    })
    .await?;
    Ok(Redirect::to("/admin/centres").into_response())
}

#[derive(Template)]
#[template(path = "admin_cash.html")]
struct AdminCashPage<'a> {
    c: &'a Ctx,
    title: String,
    holders: Vec<(CashHolder, String, String, String, String)>,
    handovers: Vec<(Handover, String, String, String)>,
}

/// Officials: expected against declared cash, shortfalls flagged.
async fn admin_cash(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    admin_of(&c)?;
    let currency = s.db.currency().await?;
    let m = |minor: i64| c.t.money(&Money::new(minor, currency));
    html(AdminCashPage {
        title: c.t.t("admin-cash-title"),
        holders: s
            .db
            .cash_holders()
            .await?
            .into_iter()
            .map(|h| {
                let short = if h.last_shortfall > 0 {
                    m(h.last_shortfall)
                } else {
                    String::new()
                };
                let (a, b, d) = (m(h.collected), m(h.handed_over), m(h.on_hand));
                (h, a, b, d, short)
            })
            .collect(),
        handovers: s
            .db
            .handovers(None, 100)
            .await?
            .into_iter()
            .map(|h| handover_row(&c, h, currency))
            .collect(),
        c: &c,
    })
}

#[derive(Template)]
#[template(path = "champions.html")]
struct ChampionsPage<'a> {
    c: &'a Ctx,
    title: String,
    admin: bool,
    board: Vec<(Assignment, String, String)>,
    sellers: Vec<(i64, String)>,
    milestones: Vec<(&'static str, String)>,
    /// Champions with fewer businesses than the programme asks for.
    few: String,
}

fn board_rows(c: &Ctx, board: Vec<Assignment>) -> Vec<(Assignment, String, String)> {
    board
        .into_iter()
        .map(|a| {
            let m = c.t.t(&format!("milestone-{}", a.milestone.as_str()));
            let b = c.t.money(&a.bounty);
            (a, m, b)
        })
        .collect()
}

/// A champion's businesses and how far each has come.
async fn champion_page(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let u = &crate::who::may(&c, tianguis_domain::policy::Duty::Champion)?;
    html(ChampionsPage {
        title: c.t.t("champions-title"),
        admin: false,
        board: board_rows(&c, s.db.champion_board(Some(u.id)).await?),
        sellers: Vec::new(),
        milestones: Vec::new(),
        few: String::new(),
        c: &c,
    })
}

async fn admin_champions(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    admin_of(&c)?;
    let board = s.db.champion_board(None).await?;
    html(ChampionsPage {
        title: c.t.t("champions-title"),
        admin: true,
        few: {
            let mut per: std::collections::BTreeMap<String, usize> =
                std::collections::BTreeMap::new();
            for a in &board {
                *per.entry(a.champion_name.clone()).or_default() += 1;
            }
            per.into_iter()
                .filter(|(_, n)| *n < tianguis_domain::champion::MIN_BUSINESSES)
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(", ")
        },
        board: board_rows(&c, board),
        sellers: s.db.seller_names().await?,
        milestones: Milestone::ALL
            .iter()
            .map(|m| (m.as_str(), c.t.t(&format!("milestone-{}", m.as_str()))))
            .collect(),
        c: &c,
    })
}

async fn admin_assign_champion(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = admin_of(&c)?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let milestone = Milestone::parse(&get("milestone"))
        .ok_or_else(|| AppError::bad(Msg::new("err-milestone")))?;
    let currency = s.db.currency().await?;
    let bounty =
        Money::parse_decimal(&get("bounty"), currency).map_err(|e| AppError::bad(e.msg()))?;
    s.db.assign_champion(
        &admin,
        &get("phone"),
        parse_id(&get("seller_id"), "seller")?,
        milestone,
        bounty.minor,
    )
    .await?;
    Ok(Redirect::to("/admin/champions").into_response())
}

async fn admin_pay_champion(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<CsrfOnly>,
) -> R {
    let admin = admin_of(&c)?;
    s.db.pay_champion(&admin, id).await?;
    Ok(Redirect::to("/admin/champions").into_response())
}
