//! Catalogue uploads: officials (any seller) and agents (the sellers whose listings mandate
//! they hold) send a CSV of listings, with a zip of photos if they like, and read what was
//! imported and which lines were refused and why. The rules are `tianguis_app::import`'s; a
//! file too large for a page goes through `tianguis products import`.

use crate::AppState;
use crate::caps::Table;
use crate::caps::views::*;
use crate::ctx::Ctx;
use crate::error::AppError;
use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, State};
use tianguis_app::import::{Importer, Photos};
use tianguis_domain::Msg;
use tianguis_domain::policy::{self, Duty};
use tianguis_store::users::User;

pub fn routes() -> Table {
    Table::new("catalogue").get_post("/catalogue/import", form, upload)
}

/// Who may upload: an official of the directory, or an agent at a centre.
fn importer(c: &Ctx) -> Result<&User, AppError> {
    let u = c.require_user()?;
    let p = u.person();
    policy::may(&p, Duty::ManageDirectory)
        .or_else(|_| policy::may(&p, Duty::ServeAtCentre))
        .map_err(crate::who::refusal)?;
    Ok(u)
}

#[derive(Template)]
#[template(path = "catalogue_import.html")]
struct ImportPage<'a> {
    c: &'a Ctx,
    title: String,
    summary: Option<String>,
    refused: Vec<(u64, String)>,
    more: u64,
}

async fn form(Extension(c): Extension<Ctx>) -> R {
    importer(&c)?;
    html(ImportPage {
        title: c.t.t("catalogue-import"),
        summary: None,
        refused: Vec::new(),
        more: 0,
        c: &c,
    })
}

async fn upload(State(s): State<AppState>, Extension(c): Extension<Ctx>, mp: Multipart) -> R {
    let f = crate::forms::read_multipart(&c, mp, &["file", "photos"]).await?;
    let who = importer(&c)?;
    let csv = f.files.get("file").map(Vec::as_slice).unwrap_or(&[]);
    let mut photos = match f.files.get("photos").filter(|z| !z.is_empty()) {
        Some(z) => Some(Photos::open(std::io::Cursor::new(z.clone()))?),
        None => None,
    };
    let report = tianguis_app::import::import(
        &s.db,
        Importer::Person(who),
        csv,
        photos.as_mut(),
        |_, _| {},
    )
    .await?;
    html(ImportPage {
        title: c.t.t("catalogue-import"),
        summary: Some(
            c.t.msg(
                &Msg::new("catalogue-import-report")
                    .arg("lines", report.lines)
                    .arg("imported", report.imported)
                    .arg("added", report.added)
                    .arg("photos", report.photos)
                    .arg("refused", report.refused_count),
            ),
        ),
        more: report.refused_count - report.refused.len().min(200) as u64,
        refused: report
            .refused
            .iter()
            .take(200)
            .map(|(l, m)| (*l, c.t.msg(m)))
            .collect(),
        c: &c,
    })
}
