//! Text normalisation for search: case-folded, Latin accents removed, split into terms. Scripts
//! whose vowel signs are combining marks (Bangla, Devanagari) keep them: only the generic
//! combining diacritics block (U+0300..U+036F) is dropped after canonical decomposition.

use unicode_normalization::UnicodeNormalization;

/// Lowercase, strip Latin diacritics, recompose (NFC) so Bangla conjuncts compare equal.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .collect();
    stripped.nfc().collect::<String>().to_lowercase()
}

/// The distinct search terms of a text, at most 64 chars each.
pub fn terms(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut out: Vec<String> = Vec::new();
    for w in folded.split(|c: char| !(c.is_alphanumeric() || is_joining_mark(c))) {
        if w.is_empty() {
            continue;
        }
        let w: String = w.chars().take(64).collect();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Combining marks inside words (Bangla vowel signs, virama, ZWJ/ZWNJ) are part of the word.
fn is_joining_mark(c: char) -> bool {
    matches!(c, '\u{0980}'..='\u{09FF}' | '\u{0900}'..='\u{097F}' | '\u{200C}' | '\u{200D}')
}

/// The words one deletion away from `term` (the SymSpell neighbourhood of distance one), for
/// terms of three characters or more. Two words are within one edit (a substitution, an adjacent
/// transposition, an insertion or a deletion) only if their neighbourhoods, each word included,
/// share an entry; the index keeps these for every word it knows.
pub fn deletes(term: &str) -> Vec<String> {
    let chars: Vec<char> = term.chars().collect();
    if chars.len() < 3 {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(chars.len());
    for i in 0..chars.len() {
        let v: String = chars
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Edit distance with adjacent transpositions (optimal string alignment), over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// How many edits a correction may make: one for words up to seven characters, two beyond.
fn edits_allowed(term: &str) -> usize {
    if term.chars().count() >= 8 { 2 } else { 1 }
}

/// The index's words (found through the deletion neighbourhoods) close enough to a mistyped
/// query term to be what was meant, closest first, at most eight: the ones worth counting.
pub fn candidates(term: &str, words: &[String]) -> Vec<String> {
    if term.chars().count() < 3 {
        return Vec::new();
    }
    let most = edits_allowed(term);
    let mut near: Vec<(usize, &String)> = words
        .iter()
        .filter(|w| w.as_str() != term)
        .map(|w| (distance(term, w), w))
        .filter(|(d, _)| *d <= most)
        .collect();
    near.sort();
    near.dedup();
    near.into_iter().take(8).map(|(_, w)| w.clone()).collect()
}

/// The word a mistyped query term most likely meant, among candidates with how many listings
/// hold each: the fewest edits, then the same first letter, then the most listings (a word
/// nobody sells is never proposed), then the first in order.
pub fn correction(term: &str, counted: &[(String, i64)]) -> Option<String> {
    let most = edits_allowed(term);
    let first = term.chars().next();
    counted
        .iter()
        .filter(|(w, n)| *n > 0 && w.as_str() != term && term.chars().count() >= 3)
        .map(|(w, n)| (distance(term, w), w, *n))
        .filter(|(d, _, _)| *d <= most)
        .min_by_key(|(d, w, n)| (*d, w.chars().next() != first, -*n, w.as_str()))
        .map(|(_, w, _)| w.clone())
}

/// Where a product's words come from, in the order a match counts for relevance: its names,
/// then its description, then its shop's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Name,
    Description,
    Shop,
}

/// Relevance in tiers: every query word, whole, in the names; else every word (as the start
/// of a word, as people type) in the names; else in the names or the description; else
/// anywhere, the shop's name included. Within a tier the newest listing comes first. Tiers make
/// a common word cost a few rows, never a ranking of every match, and whole words first spare
/// the engines the long lists a common prefix unrolls into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Word = 1,
    Name = 2,
    NameOrDescription = 3,
    Anywhere = 4,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Word,
        Tier::Name,
        Tier::NameOrDescription,
        Tier::Anywhere,
    ];
    /// The fields a word may match in for this tier.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Tier::Word | Tier::Name => &[Field::Name],
            Tier::NameOrDescription => &[Field::Name, Field::Description],
            Tier::Anywhere => &[Field::Name, Field::Description, Field::Shop],
        }
    }
    /// Whether the words match whole (else as the start of a word).
    pub fn whole(self) -> bool {
        self == Tier::Word
    }
    /// The tier before, whose matches this tier leaves out.
    pub fn narrower(self) -> Option<Tier> {
        match self {
            Tier::Word => None,
            Tier::Name => Some(Tier::Word),
            Tier::NameOrDescription => Some(Tier::Name),
            Tier::Anywhere => Some(Tier::NameOrDescription),
        }
    }
    fn from_num(n: i64) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| *t as i64 == n)
    }
}

/// The orders a result list can be read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Tiers for a text query; newest first when there is no text.
    #[default]
    Relevance,
    Newest,
    PriceLow,
    PriceHigh,
}

impl Sort {
    pub const ALL: [Sort; 4] = [
        Sort::Relevance,
        Sort::Newest,
        Sort::PriceLow,
        Sort::PriceHigh,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Newest => "newest",
            Sort::PriceLow => "price",
            Sort::PriceHigh => "price-desc",
        }
    }
    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

/// Where the next page starts (keyset paging: the last row shown, never an offset). Printed as a
/// short token for links: `t2.8812` (tier and id), `n8812` (newest), `p1500.8812` (price, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Tier(Tier, i64),
    Newest(i64),
    Price(i64, i64),
}

impl Cursor {
    pub fn token(&self) -> String {
        match self {
            Cursor::Tier(t, id) => format!("t{}.{id}", *t as i64),
            Cursor::Newest(id) => format!("n{id}"),
            Cursor::Price(p, id) => format!("p{p}.{id}"),
        }
    }
    /// Read a token back, for the sort it was made for; anything else is None (the first page).
    pub fn parse(token: &str, sort: Sort, has_text: bool) -> Option<Cursor> {
        let num = |s: &str| s.parse::<i64>().ok().filter(|n| *n >= 0);
        let pair = |s: &str| {
            let (a, b) = s.split_once('.')?;
            Some((num(a)?, num(b)?))
        };
        let t = token.trim();
        let c = if let Some(rest) = t.strip_prefix('t') {
            let (tier, id) = pair(rest)?;
            Cursor::Tier(Tier::from_num(tier)?, id)
        } else if let Some(rest) = t.strip_prefix('n') {
            Cursor::Newest(num(rest)?)
        } else if let Some(rest) = t.strip_prefix('p') {
            let (p, id) = pair(rest)?;
            Cursor::Price(p, id)
        } else {
            return None;
        };
        let fits = match (c, sort) {
            (Cursor::Tier(..), Sort::Relevance) => has_text,
            (Cursor::Newest(_), Sort::Relevance) => !has_text,
            (Cursor::Newest(_), Sort::Newest) => true,
            (Cursor::Price(..), Sort::PriceLow | Sort::PriceHigh) => true,
            _ => false,
        };
        fits.then_some(c)
    }
}

/// How many matches are counted at most: beyond it a page says "1,000+", so a common word never
/// costs a full count.
pub const COUNT_CAP: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_word_one_edit_away_shares_a_deletion() {
        let share = |a: &str, b: &str| {
            let mut x = deletes(a);
            x.push(a.to_string());
            let mut y = deletes(b);
            y.push(b.to_string());
            x.iter().any(|v| y.contains(v))
        };
        assert!(share("mnago", "mango")); // transposition
        assert!(share("tortilas", "tortillas")); // a letter left out
        assert!(share("cafee", "cafe")); // a letter too many
        assert!(share("mamgo", "mango")); // a wrong letter
        assert!(!share("melon", "mango"));
        assert!(deletes("ab").is_empty());
        assert_eq!(deletes("aab"), vec!["ab", "aa"]);
    }
    #[test]
    fn distance_counts_transpositions_as_one() {
        assert_eq!(distance("mnago", "mango"), 1);
        assert_eq!(distance("tortilas", "tortillas"), 1);
        assert_eq!(distance("cafee", "cafe"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("কাঁথা", "কাথা"), 1);
    }
    #[test]
    fn the_correction_is_the_closest_word_most_sold() {
        let c = |t: &str, w: &[(&str, i64)]| {
            correction(
                t,
                &w.iter()
                    .map(|(s, n)| (s.to_string(), *n))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            c("mnago", &[("mango", 40), ("mago", 1)]),
            Some("mango".into())
        );
        assert_eq!(
            c("cafee", &[("cafe", 90), ("cafes", 3)]),
            Some("cafe".into())
        );
        assert_eq!(c("tortilas", &[("tortillas", 7)]), Some("tortillas".into()));
        // A word no listing holds any more is not proposed.
        assert_eq!(c("mnago", &[("mango", 0)]), None);
        // Two edits only for long words.
        assert_eq!(c("mngoo", &[("mango", 5)]), None);
        assert_eq!(c("tortlias", &[("tortillas", 5)]), Some("tortillas".into()));
        assert_eq!(c("ab", &[("abc", 5)]), None);
        assert_eq!(c("mango", &[("mango", 5)]), None);
        let words: Vec<String> = ["mango", "mago", "melon", "manga", "mnago"]
            .map(String::from)
            .to_vec();
        assert_eq!(candidates("mnago", &words), vec!["mago", "mango"]);
        assert!(candidates("ab", &words).is_empty());
    }
    #[test]
    fn cursors_read_back_only_for_their_sort() {
        for c in [
            Cursor::Tier(Tier::NameOrDescription, 8812),
            Cursor::Newest(5),
            Cursor::Price(1500, 7),
        ] {
            let sort = match c {
                Cursor::Tier(..) => Sort::Relevance,
                Cursor::Newest(_) => Sort::Newest,
                Cursor::Price(..) => Sort::PriceLow,
            };
            assert_eq!(Cursor::parse(&c.token(), sort, true), Some(c));
        }
        assert_eq!(Cursor::parse("t2.5", Sort::Relevance, false), None);
        assert_eq!(
            Cursor::parse("n5", Sort::Relevance, false),
            Some(Cursor::Newest(5))
        );
        assert_eq!(Cursor::parse("p1.2", Sort::Newest, false), None);
        for bad in [
            "",
            "t9.1",
            "t0.1",
            "t1",
            "p-1.2",
            "n",
            "x1",
            "t1.2.3",
            "n99999999999999999999",
        ] {
            assert_eq!(Cursor::parse(bad, Sort::Relevance, true), None, "{bad}");
        }
        assert_eq!(Sort::parse("price-desc"), Some(Sort::PriceHigh));
        assert_eq!(Sort::parse("cheap"), None);
    }
    #[test]
    fn accents_and_case() {
        assert_eq!(terms("Café de Olla, CAFÉ!"), vec!["cafe", "de", "olla"]);
        assert_eq!(fold("Jabón artesanal"), "jabon artesanal");
        assert_eq!(fold("ÑANDÚ"), "nandu");
    }
    #[test]
    fn bangla_keeps_vowel_signs() {
        // "নকশি কাঁথা" (nakshi kantha): the candrabindu and vowel signs must survive.
        let t = terms("নকশি কাঁথা");
        assert_eq!(t, vec!["নকশি", "কাঁথা"]);
        assert_eq!(terms("কাঁথা")[0], t[1]);
    }
}
