//! Questionnaires as files a programme officer edits (TOML, one per questionnaire and
//! version), read into `tianguis_domain::diagnostic` and checked whole: a file that cannot be
//! used is refused with each problem's line and reason, before anyone answers it.
//!
//! The shape: `id`, `version`; `[[area]]` (`id`, `name.LANG`); `[[item]]` (`id`, `area`,
//! `scale` = checklist | adoption | no-partly-yes | fact, `weight`, `question.LANG`,
//! `next_step.LANG`, optional `training_topic`, `grant_tag`, `provider_category`, and
//! `[[item.choice]]` with `id`, `text.LANG` for checklists and facts); `[[band]]` (`from`,
//! `name.LANG`); `[journey]` (`item`, `levels` = { choice = level }, six `[[journey.archetype]]`
//! tables of LANG = text).

use serde::Deserialize;
use std::collections::BTreeMap;
use tianguis_domain::diagnostic::{
    Answer, AnswerError, Area, Band, Choice, Item, Journey, Outcome, Problem, Questionnaire, Scale,
    Texts, score,
};
use tianguis_store::diagnostics::{NewTake, Take};
use tianguis_store::{Db, Msg, StoreError};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    id: String,
    version: u32,
    #[serde(default)]
    area: Vec<RawArea>,
    #[serde(default)]
    item: Vec<RawItem>,
    #[serde(default)]
    band: Vec<RawBand>,
    journey: RawJourney,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    id: Spanned<String>,
    name: Texts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Spanned<String>,
    area: String,
    scale: String,
    #[serde(default)]
    weight: u32,
    question: Texts,
    #[serde(default)]
    next_step: Texts,
    training_topic: Option<String>,
    grant_tag: Option<String>,
    provider_category: Option<String>,
    #[serde(default)]
    choice: Vec<RawChoice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChoice {
    id: String,
    text: Texts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    from: u32,
    name: Texts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJourney {
    item: String,
    levels: BTreeMap<String, u8>,
    #[serde(default)]
    archetype: Vec<Texts>,
}

/// A problem with a questionnaire file: the line (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line a problem's place names: an item's or area's id, or a section's header.
fn line_of(text: &str, at: &str, ids: &BTreeMap<String, usize>) -> usize {
    if let Some(l) = ids.get(at) {
        return *l;
    }
    let header = match at {
        "journey" => "[journey]",
        "bands" => "[[band]]",
        "areas" => "[[area]]",
        other => other,
    };
    text.lines()
        .position(|l| l.trim_start().starts_with(header))
        .map_or(1, |i| i + 1)
}

/// Read and check a questionnaire; every problem with its line, or the questionnaire.
pub fn load(text: &str, langs: &[&str]) -> Result<Questionnaire, Vec<FileProblem>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        vec![FileProblem {
            line: e.span().map_or(1, |s| line_at(text, s.start)),
            why: e.message().to_string(),
        }]
    })?;
    let mut ids = BTreeMap::new();
    let mut bad = Vec::new();
    for a in &raw.area {
        ids.entry(a.id.get_ref().clone())
            .or_insert(line_at(text, a.id.span().start));
    }
    let mut items = Vec::new();
    for i in raw.item {
        let line = line_at(text, i.id.span().start);
        ids.entry(i.id.get_ref().clone()).or_insert(line);
        let choices = || -> Vec<Choice> {
            i.choice
                .iter()
                .map(|c| Choice {
                    id: c.id.clone(),
                    text: c.text.clone(),
                })
                .collect()
        };
        let scale = match i.scale.as_str() {
            "checklist" => Scale::Checklist(choices()),
            "fact" => Scale::Fact(choices()),
            "adoption" => Scale::Adoption,
            "no-partly-yes" => Scale::NoPartlyYes,
            other => {
                bad.push(FileProblem {
                    line,
                    why: format!(
                        "unknown scale {other} (checklist, adoption, no-partly-yes or fact)"
                    ),
                });
                continue;
            }
        };
        if !matches!(scale, Scale::Checklist(_) | Scale::Fact(_)) && !i.choice.is_empty() {
            bad.push(FileProblem {
                line,
                why: format!("scale {} takes no choices", i.scale),
            });
        }
        items.push(Item {
            id: i.id.into_inner(),
            area: i.area,
            question: i.question,
            scale,
            weight: i.weight,
            next_step: i.next_step,
            training_topic: i.training_topic,
            grant_tag: i.grant_tag,
            provider_category: i.provider_category,
        });
    }
    let q = Questionnaire {
        id: raw.id,
        version: raw.version,
        areas: raw
            .area
            .into_iter()
            .map(|a| Area {
                id: a.id.into_inner(),
                name: a.name,
            })
            .collect(),
        items,
        bands: raw
            .band
            .into_iter()
            .map(|b| Band {
                from: b.from,
                name: b.name,
            })
            .collect(),
        journey: Journey {
            item: raw.journey.item,
            levels: raw.journey.levels,
            archetypes: raw.journey.archetype,
        },
    };
    bad.extend(
        q.problems(langs)
            .into_iter()
            .map(|Problem { at, why }| FileProblem {
                line: line_of(text, &at, &ids),
                why,
            }),
    );
    if bad.is_empty() {
        Ok(q)
    } else {
        bad.sort_by_key(|p| p.line);
        Err(bad)
    }
}

/// The questionnaire the product ships (`programmes/readiness.toml`), checked in `langs`.
pub fn readiness(langs: &[&str]) -> Result<Questionnaire, Vec<FileProblem>> {
    load(include_str!("../../../programmes/readiness.toml"), langs)
}

/// Answers as JSON: a checklist's ticks as a list, a scale's step as a number, a fact's choice
/// as text.
pub fn answers_json(answers: &BTreeMap<String, Answer>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (k, a) in answers {
        let v = match a {
            Answer::Checked(t) => serde_json::json!(t),
            Answer::Adoption(v) | Answer::NoPartlyYes(v) => serde_json::json!(v),
            Answer::Chosen(c) => serde_json::json!(c),
        };
        out.insert(k.clone(), v);
    }
    serde_json::Value::Object(out)
}

/// Score one firm's answers and, for a seller, keep the take. Returns the outcome and the
/// seller's take before this one (progress).
pub async fn take(
    db: &Db,
    q: &Questionnaire,
    seller: Option<(i64, i64)>,
    answers: &BTreeMap<String, Answer>,
) -> Result<(Outcome, Option<Take>), StoreError> {
    let outcome = score(q, answers).map_err(|e| {
        let item = match &e {
            AnswerError::Missing(i) | AnswerError::Wrong(i) | AnswerError::Unknown(i) => i,
        };
        StoreError::Invalid(Msg::new("err-diagnostic-incomplete").arg("item", item.clone()))
    })?;
    let Some((seller_id, by)) = seller else {
        return Ok((outcome, None));
    };
    let before = db.last_take(seller_id).await?;
    let scores = serde_json::json!(outcome.areas).to_string();
    db.record_take(&NewTake {
        seller_id,
        taken_by: by,
        questionnaire: &q.id,
        version: i64::from(q.version),
        answers: &answers_json(answers).to_string(),
        scores: &scores,
        overall: i64::from(outcome.overall),
        level: i64::from(outcome.level),
    })
    .await?;
    Ok((outcome, before))
}
