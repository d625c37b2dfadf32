//! The officials' directories: people and sellers, searched and paged (the store does the
//! searching), and the phones that normalisation found shared by two accounts, with what an
//! official does about them (give an account its own number, settle the report).

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::{R, html, parse_id, urlencode, utc_minute};
use crate::ctx::Ctx;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use std::collections::HashMap;
use tianguis_domain::money::Money;
use tianguis_domain::policy::Duty;
use tianguis_store::directory::{PeopleFilter, SellerFilter};
use tianguis_store::phones::PhoneReport;
use tianguis_store::users::User;

pub fn routes() -> Table {
    Table::new("directory")
        .get("/admin/users", people)
        .get("/admin/sellers", sellers)
        .post("/admin/users/{id}/phone", set_phone)
        .post("/admin/phone-reports/{id}/settle", settle_report)
}

/// The page number asked for (1 when missing or unreadable).
fn page_of(q: &HashMap<String, String>) -> i64 {
    q.get("page")
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=100_000).contains(p))
        .unwrap_or(1)
}

/// The query string of a list without its page, for the previous/next links.
fn query_without_page(q: &HashMap<String, String>) -> String {
    let mut keys: Vec<_> = q
        .iter()
        .filter(|(k, v)| k.as_str() != "page" && !v.is_empty())
        .collect();
    keys.sort();
    keys.iter()
        .map(|(k, v)| format!("{}={}&", urlencode(k), urlencode(v)))
        .collect()
}

pub struct ReportRow {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub other_user_id: Option<i64>,
    pub stored: String,
    pub e164: String,
    pub reason: String,
    pub found: String,
}

fn report_row(c: &Ctx, r: PhoneReport) -> ReportRow {
    ReportRow {
        id: r.id,
        user_id: r.user_id,
        user_name: r.user_name,
        other_user_id: r.other_user_id,
        stored: r.stored,
        e164: r.e164.unwrap_or_default(),
        reason: c.t.t(&format!("phone-report-{}", r.reason)),
        found: utc_minute(r.found_at),
    }
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage<'a> {
    c: &'a Ctx,
    title: String,
    text: String,
    role: String,
    suspended: bool,
    roles: Vec<(&'static str, String)>,
    people: Vec<(User, String)>,
    reports: Vec<ReportRow>,
    page: i64,
    more: bool,
    base: String,
}

async fn people(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    crate::who::may(&c, Duty::ReadOfficialPages)?;
    let filter = PeopleFilter {
        text: q.get("q").cloned().unwrap_or_default(),
        role: q.get("role").cloned().filter(|r| !r.is_empty()),
        suspended: q.get("suspended").is_some_and(|v| v == "1"),
        page: page_of(&q),
    };
    let found = s.db.find_people(&filter).await?;
    let mut roles = vec![("seller", c.t.t("role-seller"))];
    roles.extend(crate::caps::views::granted_roles(&c));
    let people = found
        .rows
        .into_iter()
        .map(|u| {
            let role = c.t.t(&format!("role-{}", u.primary_role().as_str()));
            (u, role)
        })
        .collect();
    let reports =
        s.db.phone_reports()
            .await?
            .into_iter()
            .map(|r| report_row(&c, r))
            .collect();
    html(PeoplePage {
        title: c.t.t("people-list"),
        text: filter.text,
        role: filter.role.unwrap_or_default(),
        suspended: filter.suspended,
        roles,
        people,
        reports,
        page: found.page,
        more: found.more,
        base: query_without_page(&q),
        c: &c,
    })
}

pub struct SellerView {
    pub row: tianguis_store::directory::SellerRow,
    pub sales: String,
}

#[derive(Template)]
#[template(path = "sellers.html")]
struct SellersPage<'a> {
    c: &'a Ctx,
    title: String,
    text: String,
    place_id: i64,
    level: String,
    women_led: bool,
    with_sales: bool,
    places: Vec<tianguis_store::catalog::Place>,
    sellers: Vec<SellerView>,
    page: i64,
    more: bool,
    base: String,
}

async fn sellers(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    crate::who::may(&c, Duty::ReadOfficialPages)?;
    let num = |k: &str| q.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let filter = SellerFilter {
        text: q.get("q").cloned().unwrap_or_default(),
        place_id: num("place").filter(|p| *p > 0),
        journey_level: num("level").filter(|l| (0..=10).contains(l)),
        women_led: q.get("women").is_some_and(|v| v == "1"),
        with_sales: q.get("sales").is_some_and(|v| v == "1"),
        page: page_of(&q),
    };
    let found = s.db.find_sellers(&filter).await?;
    let currency = s.db.currency().await?;
    let sellers = found
        .rows
        .into_iter()
        .map(|row| SellerView {
            sales: c.t.money(&Money::new(row.sales_minor, currency)),
            row,
        })
        .collect();
    html(SellersPage {
        title: c.t.t("sellers-list"),
        text: filter.text,
        place_id: filter.place_id.unwrap_or(0),
        level: filter
            .journey_level
            .map(|l| l.to_string())
            .unwrap_or_default(),
        women_led: filter.women_led,
        with_sales: filter.with_sales,
        places: s.db.places().await?,
        sellers,
        page: found.page,
        more: found.more,
        base: query_without_page(&q),
        c: &c,
    })
}

async fn set_phone(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let phone = f.get("phone").map(String::as_str).unwrap_or("");
    s.db.set_user_phone(admin.id, id, phone).await?;
    Ok(Redirect::to(&format!("/admin/users/{id}")).into_response())
}

async fn settle_report(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> R {
    let admin = crate::who::may(&c, Duty::ManagePeople)?;
    let id = parse_id(&id, "report")?;
    s.db.settle_phone_report(admin.id, id).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_links_keep_the_filter_not_the_page() {
        let q: std::collections::HashMap<String, String> = [
            ("page", "3"),
            ("q", "ana maría"),
            ("role", ""),
            ("women", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(super::query_without_page(&q), "q=ana%20mar%C3%ADa&women=1&");
        assert_eq!(super::page_of(&q), 3);
        let bad: std::collections::HashMap<String, String> =
            [("page".to_string(), "-2".to_string())].into();
        assert_eq!(super::page_of(&bad), 1);
    }
}
