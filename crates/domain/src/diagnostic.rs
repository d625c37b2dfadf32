//! The readiness diagnostic: a questionnaire a programme officer edits as data (areas, items,
//! answer scales, weights, bands, and which answers place a firm on the journey), checked
//! whole before use, and the scoring of one firm's answers. The areas are the report's
//! (digital marketing, ecommerce, operations, digital culture); the scoring follows the EU/JRC
//! Digital Maturity Assessment: each item is worth 0 to 1 (a checklist the share ticked, the
//! 0-5 adoption scale a fifth a step, no/partly/yes 0, 0.5, 1), an area is the weighted mean
//! times 100, the overall score the plain mean of the areas. Better than a band's canned text,
//! the outcome names the weakest items, each with its own next step.
//!
//! Pure: the file is read elsewhere (`tianguis_app::diagnostic`), answers come in as values.

use std::collections::{BTreeMap, BTreeSet};

/// Text in each of the product's languages (language code -> text).
pub type Texts = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: String,
    pub text: Texts,
}

/// How an item is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scale {
    /// Tick the ones that apply; worth the share ticked.
    Checklist(Vec<Choice>),
    /// 0 not used, 1 considering, 2 trying, 3 testing, 4 putting in place, 5 in daily use.
    Adoption,
    /// No, partly, yes: 0, 0.5, 1.
    NoPartlyYes,
    /// A fact about the firm (sector, size band, ...): one choice, not scored.
    Fact(Vec<Choice>),
}

impl Scale {
    pub fn choices(&self) -> &[Choice] {
        match self {
            Scale::Checklist(c) | Scale::Fact(c) => c,
            _ => &[],
        }
    }
    pub fn scored(&self) -> bool {
        !matches!(self, Scale::Fact(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    /// The area it scores in (facts too: it is where the page shows them).
    pub area: String,
    pub question: Texts,
    pub scale: Scale,
    /// How much it counts in its area (scored items: at least 1).
    pub weight: u32,
    /// What to do about a gap here, in words a seller understands.
    pub next_step: Texts,
    /// Links a gap to trainings on this topic, grants tagged so, providers of this category.
    pub training_topic: Option<String>,
    pub grant_tag: Option<String>,
    pub provider_category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub id: String,
    pub name: Texts,
}

/// A band of the overall score: from `from` (0-100) up to the next band's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub from: u32,
    pub name: Texts,
}

/// Which answers place a firm on the journey (levels 0-5 of the report's figure 3): the
/// highest level among the choices ticked or chosen on `item`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journey {
    pub item: String,
    pub levels: BTreeMap<String, u8>,
    /// The archetype of each level 0-5 ("social seller", ...).
    pub archetypes: Vec<Texts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Questionnaire {
    pub id: String,
    pub version: u32,
    pub areas: Vec<Area>,
    pub items: Vec<Item>,
    pub bands: Vec<Band>,
    pub journey: Journey,
}

/// One thing wrong with a questionnaire: where (an item, area or section id) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: String,
    pub why: String,
}

fn problem(at: &str, why: impl Into<String>) -> Problem {
    Problem {
        at: at.to_string(),
        why: why.into(),
    }
}

fn texts_complete(at: &str, what: &str, t: &Texts, langs: &[&str], out: &mut Vec<Problem>) {
    for l in langs {
        if t.get(*l).is_none_or(|s| s.trim().is_empty()) {
            out.push(problem(at, format!("{what} has no text in {l}")));
        }
    }
}

impl Questionnaire {
    /// Everything wrong with it, in file order; empty when it can be used. `langs`: the
    /// languages every text must have.
    pub fn problems(&self, langs: &[&str]) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.id.trim().is_empty() {
            out.push(problem("id", "the questionnaire has no id"));
        }
        if self.version == 0 {
            out.push(problem("version", "the version must be 1 or more"));
        }
        if self.areas.is_empty() {
            out.push(problem("areas", "there are no areas"));
        }
        let mut seen = BTreeSet::new();
        for a in &self.areas {
            if !seen.insert(a.id.as_str()) {
                out.push(problem(&a.id, format!("area {} is named twice", a.id)));
            }
            texts_complete(&a.id, "the area's name", &a.name, langs, &mut out);
        }
        let mut ids = BTreeSet::new();
        for i in &self.items {
            if !ids.insert(i.id.as_str()) {
                out.push(problem(&i.id, format!("item {} is named twice", i.id)));
            }
            if !self.areas.iter().any(|a| a.id == i.area) {
                out.push(problem(&i.id, format!("unknown area {}", i.area)));
            }
            if i.scale.scored() && i.weight == 0 {
                out.push(problem(&i.id, "a scored item needs a weight of 1 or more"));
            }
            texts_complete(&i.id, "the question", &i.question, langs, &mut out);
            if i.scale.scored() {
                texts_complete(&i.id, "the next step", &i.next_step, langs, &mut out);
            }
            if matches!(i.scale, Scale::Checklist(_) | Scale::Fact(_)) {
                if i.scale.choices().is_empty() {
                    out.push(problem(&i.id, "a checklist or fact needs choices"));
                }
                let mut cs = BTreeSet::new();
                for c in i.scale.choices() {
                    if !cs.insert(c.id.as_str()) {
                        out.push(problem(&i.id, format!("choice {} is named twice", c.id)));
                    }
                    texts_complete(&i.id, &format!("choice {}", c.id), &c.text, langs, &mut out);
                }
            }
        }
        for a in &self.areas {
            if !self
                .items
                .iter()
                .any(|i| i.area == a.id && i.scale.scored())
            {
                out.push(problem(&a.id, format!("area {} has no scored item", a.id)));
            }
        }
        if self.bands.first().is_none_or(|b| b.from != 0) {
            out.push(problem("bands", "the first band must start at 0"));
        }
        for w in self.bands.windows(2) {
            if w[1].from <= w[0].from {
                out.push(problem("bands", "bands must start at rising scores"));
            }
        }
        for b in &self.bands {
            if b.from > 100 {
                out.push(problem("bands", "a band starts above 100"));
            }
            texts_complete("bands", "a band's name", &b.name, langs, &mut out);
        }
        let j = &self.journey;
        match self.items.iter().find(|i| i.id == j.item) {
            None => out.push(problem("journey", format!("unknown item {}", j.item))),
            Some(i) if i.scale.choices().is_empty() => out.push(problem(
                "journey",
                format!("item {} has no choices to place a firm by", j.item),
            )),
            Some(i) => {
                for (c, level) in &j.levels {
                    if !i.scale.choices().iter().any(|x| &x.id == c) {
                        out.push(problem("journey", format!("{} has no choice {c}", i.id)));
                    }
                    if *level > 5 {
                        out.push(problem(
                            "journey",
                            format!("level {level} of {c} is above 5"),
                        ));
                    }
                }
            }
        }
        if j.archetypes.len() != 6 {
            out.push(problem(
                "journey",
                "name the archetype of each level 0 to 5",
            ));
        }
        for a in &j.archetypes {
            texts_complete("journey", "an archetype", a, langs, &mut out);
        }
        out
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Checked(BTreeSet<String>),
    /// 0-5.
    Adoption(u8),
    /// 0 no, 1 partly, 2 yes.
    NoPartlyYes(u8),
    Chosen(String),
}

/// Why answers cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("{0} is not answered")]
    Missing(String),
    #[error("{0} is not answered on its scale")]
    Wrong(String),
    #[error("{0} is not a question of this questionnaire")]
    Unknown(String),
}

/// A weak item: its id and how much its gap costs its area (weight x (1 - value)).
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub item: String,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// 0-100 per area, in the questionnaire's order.
    pub areas: Vec<(String, u32)>,
    pub overall: u32,
    /// Index into the questionnaire's bands.
    pub band: usize,
    /// 0-5.
    pub level: u8,
    /// The scored items with a gap, the costliest first.
    pub weakest: Vec<Gap>,
}

/// An item's value, 0 to 1.
fn value(item: &Item, a: &Answer) -> Result<Option<f64>, AnswerError> {
    let wrong = || AnswerError::Wrong(item.id.clone());
    Ok(match (&item.scale, a) {
        (Scale::Checklist(cs), Answer::Checked(ticked)) => {
            if ticked.iter().any(|t| !cs.iter().any(|c| &c.id == t)) {
                return Err(wrong());
            }
            Some(ticked.len() as f64 / cs.len().max(1) as f64)
        }
        (Scale::Adoption, Answer::Adoption(v)) if *v <= 5 => Some(f64::from(*v) / 5.0),
        (Scale::NoPartlyYes, Answer::NoPartlyYes(v)) if *v <= 2 => Some(f64::from(*v) / 2.0),
        (Scale::Fact(cs), Answer::Chosen(c)) if cs.iter().any(|x| &x.id == c) => None,
        _ => return Err(wrong()),
    })
}

/// Score one firm's answers (every scored item answered; facts optional).
pub fn score(
    q: &Questionnaire,
    answers: &BTreeMap<String, Answer>,
) -> Result<Outcome, AnswerError> {
    if let Some(k) = answers
        .keys()
        .find(|k| !q.items.iter().any(|i| &i.id == *k))
    {
        return Err(AnswerError::Unknown(k.clone()));
    }
    let mut per_area: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut weakest = Vec::new();
    for i in &q.items {
        let v = match answers.get(&i.id) {
            Some(a) => value(i, a)?,
            None if i.scale.scored() => return Err(AnswerError::Missing(i.id.clone())),
            None => None,
        };
        if let Some(v) = v {
            let w = f64::from(i.weight);
            let e = per_area.entry(i.area.as_str()).or_default();
            e.0 += w * v;
            e.1 += w;
            if v < 1.0 {
                weakest.push(Gap {
                    item: i.id.clone(),
                    cost: w * (1.0 - v),
                });
            }
        }
    }
    let areas: Vec<(String, u32)> = q
        .areas
        .iter()
        .map(|a| {
            let (got, of) = per_area.get(a.id.as_str()).copied().unwrap_or((0.0, 1.0));
            (
                a.id.clone(),
                (100.0 * got / of.max(f64::MIN_POSITIVE)).round() as u32,
            )
        })
        .collect();
    let overall = if areas.is_empty() {
        0
    } else {
        (areas.iter().map(|(_, s)| f64::from(*s)).sum::<f64>() / areas.len() as f64).round() as u32
    };
    let band = q.bands.iter().rposition(|b| b.from <= overall).unwrap_or(0);
    let chosen: Vec<&String> = match answers.get(&q.journey.item) {
        Some(Answer::Checked(t)) => t.iter().collect(),
        Some(Answer::Chosen(c)) => vec![c],
        _ => Vec::new(),
    };
    let level = chosen
        .iter()
        .filter_map(|c| q.journey.levels.get(*c))
        .max()
        .copied()
        .unwrap_or(0);
    weakest.sort_by(|a, b| b.cost.total_cmp(&a.cost).then_with(|| a.item.cmp(&b.item)));
    Ok(Outcome {
        areas,
        overall,
        band,
        level,
        weakest,
    })
}
