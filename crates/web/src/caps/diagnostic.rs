//! The readiness diagnostic as pages: the questionnaire in the reader's language (no
//! JavaScript), the outcome (a score per area and overall, the band, the journey level and its
//! archetype, the weakest items each with its next step), and for a seller the take is kept and
//! the change since the last one shown. Anyone may take it; only a signed-in seller's take is
//! kept (a walk-in firm at a centre sees its outcome and is not recorded).

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::html;
use crate::ctx::Ctx;
use crate::error::AppError;
use crate::forms::CsrfForm;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tianguis_domain::diagnostic::{Answer, Questionnaire, Scale, Texts};

type R = Result<Response, AppError>;

/// The weakest items an outcome lists.
const GAPS_SHOWN: usize = 5;

pub fn routes() -> Table {
    Table::new("diagnostic")
        .get_post("/diagnostic", form_page, submit)
        .get("/admin/diagnostics", summary)
}

fn text(c: &Ctx, t: &Texts) -> String {
    t.get(c.t.lang)
        .or_else(|| t.get("en"))
        .cloned()
        .unwrap_or_default()
}

struct ItemView {
    id: String,
    question: String,
    /// checklist, adoption, npy or fact.
    kind: &'static str,
    choices: Vec<(String, String)>,
}

struct AreaView {
    name: String,
    items: Vec<ItemView>,
}

struct GapView {
    question: String,
    next_step: String,
}

struct OutcomeView {
    overall: u32,
    band: String,
    level: u8,
    archetype: String,
    areas: Vec<(String, u32)>,
    gaps: Vec<GapView>,
    /// The overall score of the take before, for a seller.
    before: Option<i64>,
    kept: bool,
}

#[derive(Template)]
#[template(path = "diagnostic.html")]
struct DiagnosticPage<'a> {
    c: &'a Ctx,
    title: String,
    areas: Vec<AreaView>,
    error: Option<String>,
    outcome: Option<OutcomeView>,
}

fn questionnaire(s: &AppState) -> Result<&Questionnaire, AppError> {
    s.config
        .questionnaire
        .as_deref()
        .ok_or_else(|| AppError::user(StatusCode::SERVICE_UNAVAILABLE, "err-no-questionnaire"))
}

fn areas(c: &Ctx, q: &Questionnaire) -> Vec<AreaView> {
    q.areas
        .iter()
        .map(|a| AreaView {
            name: text(c, &a.name),
            items: q
                .items
                .iter()
                .filter(|i| i.area == a.id)
                .map(|i| ItemView {
                    id: i.id.clone(),
                    question: text(c, &i.question),
                    kind: match i.scale {
                        Scale::Checklist(_) => "checklist",
                        Scale::Adoption => "adoption",
                        Scale::NoPartlyYes => "npy",
                        Scale::Fact(_) => "fact",
                    },
                    choices: i
                        .scale
                        .choices()
                        .iter()
                        .map(|ch| (ch.id.clone(), text(c, &ch.text)))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

async fn form_page(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    let q = questionnaire(&s)?;
    html(DiagnosticPage {
        title: c.t.t("diagnostic-title"),
        areas: areas(&c, q),
        c: &c,
        error: None,
        outcome: None,
    })
}

/// The form's fields as answers: `ITEM` holds a scale's step or a fact's choice, `ITEM.CHOICE`
/// a ticked box (an empty checklist is an answer too: nothing ticked).
fn answers(q: &Questionnaire, f: &HashMap<String, String>) -> BTreeMap<String, Answer> {
    let mut out = BTreeMap::new();
    for i in &q.items {
        let v = f.get(&i.id).map(|v| v.trim().to_string());
        let a = match &i.scale {
            Scale::Checklist(cs) => Some(Answer::Checked(
                cs.iter()
                    .filter(|c| f.contains_key(&format!("{}.{}", i.id, c.id)))
                    .map(|c| c.id.clone())
                    .collect::<BTreeSet<_>>(),
            )),
            Scale::Adoption => v.and_then(|v| v.parse().ok()).map(Answer::Adoption),
            Scale::NoPartlyYes => v.and_then(|v| v.parse().ok()).map(Answer::NoPartlyYes),
            Scale::Fact(_) => v.filter(|v| !v.is_empty()).map(Answer::Chosen),
        };
        if let Some(a) = a {
            out.insert(i.id.clone(), a);
        }
    }
    out
}

async fn submit(
    State(s): State<AppState>,
    Extension(c): Extension<Ctx>,
    CsrfForm(f): CsrfForm<HashMap<String, String>>,
) -> R {
    let q = questionnaire(&s)?;
    let given = answers(q, &f);
    let seller = c
        .user
        .as_ref()
        .and_then(|u| u.seller_id.map(|sid| (sid, u.id)));
    let page = |error: Option<String>, outcome: Option<OutcomeView>| {
        html(DiagnosticPage {
            title: c.t.t("diagnostic-title"),
            areas: areas(&c, q),
            c: &c,
            error,
            outcome,
        })
    };
    match tianguis_app::diagnostic::take(&s.db, q, seller, &given).await {
        Ok((o, before)) => {
            let name = |id: &str| {
                q.areas
                    .iter()
                    .find(|a| a.id == id)
                    .map(|a| text(&c, &a.name))
                    .unwrap_or_default()
            };
            let gaps = o
                .weakest
                .iter()
                .take(GAPS_SHOWN)
                .filter_map(|g| q.items.iter().find(|i| i.id == g.item))
                .map(|i| GapView {
                    question: text(&c, &i.question),
                    next_step: text(&c, &i.next_step),
                })
                .collect();
            let view = OutcomeView {
                overall: o.overall,
                band: q
                    .bands
                    .get(o.band)
                    .map(|b| text(&c, &b.name))
                    .unwrap_or_default(),
                level: o.level,
                archetype: q
                    .journey
                    .archetypes
                    .get(usize::from(o.level))
                    .map(|a| text(&c, a))
                    .unwrap_or_default(),
                areas: o.areas.iter().map(|(a, v)| (name(a), *v)).collect(),
                gaps,
                before: before.map(|t| t.overall),
                kept: seller.is_some(),
            };
            page(None, Some(view))
        }
        Err(tianguis_store::StoreError::Invalid(_)) => {
            page(Some(c.t.t("diagnostic-incomplete")), None)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "diagnostic_summary.html")]
struct SummaryPage<'a> {
    c: &'a Ctx,
    title: String,
    s: tianguis_store::diagnostics::Summary,
    /// Each journey level with its archetype, and the firms there.
    levels: Vec<(String, i64)>,
}

/// For officials: firms diagnosed, retaken, their mean first and latest scores, the mean change
/// among those who took it again, and firms by journey level now.
async fn summary(State(s): State<AppState>, Extension(c): Extension<Ctx>) -> R {
    crate::who::may(&c, tianguis_domain::policy::Duty::ReadOfficialPages)?;
    let summary = s.db.diagnostic_summary().await?;
    let q = s.config.questionnaire.as_deref();
    let levels = summary
        .by_level
        .iter()
        .enumerate()
        .map(|(level, n)| {
            let name = q
                .and_then(|q| q.journey.archetypes.get(level))
                .map(|a| format!("{level} · {}", text(&c, a)))
                .unwrap_or_else(|| level.to_string());
            (name, *n)
        })
        .collect();
    html(SummaryPage {
        title: c.t.t("diagnostic-summary-title"),
        s: summary,
        levels,
        c: &c,
    })
}
