//! Translations (Fluent files in `locales/`) and locale formatting of money. Every string a
//! person reads comes through [`Tr`]. Fluent does no number formatting, so amounts are formatted
//! here (CLDR patterns: en and es-419 group by thousands, bn by lakh with Bangla digits).

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{Loader, static_loader};
use std::borrow::Cow;
use std::collections::HashMap;
use tianguis_domain::money::Money;
use unic_langid::LanguageIdentifier;

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

pub const LANGS: &[(&str, &str)] = &[("en", "English"), ("es", "Español"), ("bn", "বাংলা")];

/// The product's language codes: every text of a programme's data must have each.
pub fn lang_codes() -> Vec<&'static str> {
    LANGS.iter().map(|(l, _)| *l).collect()
}

/// The language of one request, with its lookups.
#[derive(Clone, Debug)]
pub struct Tr {
    pub lang: &'static str,
    id: LanguageIdentifier,
}

impl Tr {
    pub fn new(lang: &str) -> Tr {
        let lang = LANGS
            .iter()
            .map(|(l, _)| *l)
            .find(|l| *l == lang)
            .unwrap_or("en");
        Tr {
            lang,
            id: lang.parse().unwrap_or_default(),
        }
    }

    /// Pick from an `Accept-Language` header, e.g. "es-MX,es;q=0.9,en;q=0.8".
    pub fn from_accept_language(header: &str) -> Tr {
        let mut best: Option<(&'static str, f32)> = None;
        for part in header.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some((l, _)) = LANGS.iter().find(|(l, _)| *l == primary)
                && best.is_none_or(|(_, bq)| q > bq)
            {
                best = Some((l, q));
            }
        }
        Tr::new(best.map(|(l, _)| l).unwrap_or("en"))
    }

    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(&self.id, key)
    }

    pub fn t1(&self, key: &str, name: &str, value: impl ToString) -> String {
        let mut args: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        args.insert(
            Cow::Owned(name.to_string()),
            FluentValue::from(value.to_string()),
        );
        LOCALES.lookup_with_args(&self.id, key, &args)
    }

    pub fn count(&self, key: &str, n: &i64) -> String {
        let mut args: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        args.insert(Cow::Borrowed("count"), FluentValue::from(*n));
        LOCALES.lookup_with_args(&self.id, key, &args)
    }

    pub fn t2(&self, key: &str, a: &(&str, String), b: &(&str, String)) -> String {
        let mut args: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        args.insert(Cow::Owned(a.0.to_string()), FluentValue::from(a.1.clone()));
        args.insert(Cow::Owned(b.0.to_string()), FluentValue::from(b.1.clone()));
        LOCALES.lookup_with_args(&self.id, key, &args)
    }

    /// A message whose key and arguments come from stored data (the outbox).
    /// A stored text's arguments as they read: `total` (minor units, with `currency`) said as
    /// money in this language. The one place a text's amount is formatted, for the sender and
    /// the pages that show texts.
    pub fn text_args(&self, args: &[(String, String)]) -> Vec<(String, String)> {
        let currency = args
            .iter()
            .find(|(k, _)| k == "currency")
            .and_then(|(_, c)| tianguis_domain::money::Currency::parse(c).ok());
        args.iter()
            .map(|(k, v)| match (k.as_str(), currency, v.parse::<i64>()) {
                ("total", Some(cur), Ok(minor)) => (
                    k.clone(),
                    self.money(&tianguis_domain::money::Money::new(minor, cur)),
                ),
                _ => (k.clone(), v.clone()),
            })
            .collect()
    }

    pub fn render(&self, key: &str, args: &[(String, String)]) -> String {
        let mut a: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        for (k, v) in args {
            a.insert(Cow::Owned(k.clone()), FluentValue::from(v.clone()));
        }
        LOCALES.lookup_with_args(&self.id, key, &a)
    }

    /// A domain or storage message, in this language.
    pub fn msg(&self, m: &tianguis_domain::Msg) -> String {
        let mut args: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        for (k, v) in &m.args {
            args.insert(Cow::Borrowed(*k), FluentValue::from(v.clone()));
        }
        LOCALES.lookup_with_args(&self.id, m.key, &args)
    }

    pub fn money(&self, m: &Money) -> String {
        format_money(m, self.lang)
    }
    pub fn minor(&self, minor: &i64, m: &Money) -> String {
        format_money(&Money::new(*minor, m.currency), self.lang)
    }
}

/// "$1,234.50" (en, es-419), "৳১২,৩৪,৫৬৭.০০" (bn).
pub fn format_money(m: &Money, lang: &str) -> String {
    let exp = m.currency.exponent();
    let scale = 10i64.pow(exp);
    let neg = m.minor < 0;
    let abs = m.minor.unsigned_abs();
    let whole = (abs / scale as u64).to_string();
    let frac = format!("{:0width$}", abs % scale as u64, width = exp as usize);
    let grouped = if lang == "bn" {
        group_lakh(&whole)
    } else {
        group(&whole, 3)
    };
    let mut num = if exp > 0 {
        format!("{grouped}.{frac}")
    } else {
        grouped
    };
    if lang == "bn" {
        num = num
            .chars()
            .map(|c| {
                c.to_digit(10)
                    .map(|d| char::from_u32(0x09E6 + d).unwrap_or(c))
                    .unwrap_or(c)
            })
            .collect();
    }
    let sym = match m.currency.as_str() {
        "MXN" | "USD" | "ARS" | "COP" | "CLP" => "$",
        "BDT" => "৳",
        "KES" => "KSh ",
        "EUR" => "€",
        "INR" => "₹",
        _ => "",
    };
    let body = if sym.is_empty() {
        format!("{} {num}", m.currency)
    } else {
        format!("{sym}{num}")
    };
    if neg { format!("-{body}") } else { body }
}

fn group(d: &str, size: usize) -> String {
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(size) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn group_lakh(d: &str) -> String {
    if d.len() <= 3 {
        return d.to_string();
    }
    let (head, tail) = d.split_at(d.len() - 3);
    format!("{},{tail}", group(head, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tianguis_domain::money::Currency;
    #[test]
    fn money_per_locale() {
        let mxn = Currency::parse("MXN").unwrap();
        assert_eq!(
            format_money(&Money::new(123456789, mxn), "en"),
            "$1,234,567.89"
        );
        assert_eq!(format_money(&Money::new(5, mxn), "es"), "$0.05");
        let bdt = Currency::parse("BDT").unwrap();
        assert_eq!(
            format_money(&Money::new(123456700, bdt), "bn"),
            "৳১২,৩৪,৫৬৭.০০"
        );
        assert_eq!(
            format_money(&Money::new(-100, Currency::parse("XYZ").unwrap()), "en"),
            "-XYZ 1.00"
        );
    }
    #[test]
    fn accept_language_and_lookup() {
        assert_eq!(
            Tr::from_accept_language("es-MX,es;q=0.9,en;q=0.8").lang,
            "es"
        );
        assert_eq!(Tr::from_accept_language("fr, en;q=0.5").lang, "en");
        assert_eq!(Tr::from_accept_language("").lang, "en");
        assert_eq!(Tr::new("es").t("nav-cart"), "Carrito");
        assert_eq!(
            Tr::new("bn").t("nav-admin"),
            "Admin",
            "Bangla falls back to English"
        );
        // The agent's desk is in Bangla, the whole file still parses, and arguments fill in.
        assert_eq!(Tr::new("bn").t("agent-title"), "ডিজিটাল সেন্টার");
        assert!(
            Tr::new("bn")
                .t1("agent-placed", "code", "ABCD2345")
                .contains("ABCD2345")
        );
        assert!(Tr::new("bn").t("offline-waiting").ends_with("{n}"));
        // Texts carry a link: no invisible bidi isolation marks inside it.
        let sms = Tr::new("en").render(
            "sms-order-placed",
            &[
                ("code".into(), "ABCD2345".into()),
                ("total".into(), "$10.00".into()),
                ("site".into(), "http://x".into()),
            ],
        );
        assert!(sms.contains("http://x/track/ABCD2345"), "{sms:?}");
        assert_eq!(Tr::new("en").count("results-count", &1), "One product");
    }
    /// Every message key written in the code (`Msg::new("..")`, `invalid("..")`,
    /// `AppError::user(_, "..")`, `problem(_, "..")`, `t("..")`) exists in English and Spanish.
    #[test]
    fn every_key_used_in_code_is_translated() {
        let en = include_str!("../locales/en/main.ftl");
        let es = include_str!("../locales/es/main.ftl");
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut missing = Vec::new();
        let mut seen = 0;
        let mut files = Vec::new();
        let mut dirs: Vec<std::path::PathBuf> = [
            "domain/src",
            "store/src",
            "app/src",
            "web/src",
            "web/templates",
        ]
        .iter()
        .map(|d| std::path::Path::new(root).join(d))
        .collect();
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        {
            for path in files {
                let text = std::fs::read_to_string(&path).unwrap();
                for pat in [
                    "Msg::new(\"",
                    "invalid(\"",
                    ", \"err",
                    ", \"error-",
                    ".t(\"",
                    ".t1(\"",
                    ".t2(\"",
                    ".count(\"",
                ] {
                    for (i, _) in text.match_indices(pat) {
                        let start = i + pat.len()
                            - if pat.starts_with(", \"") {
                                pat.len() - 3
                            } else {
                                0
                            };
                        let key: String = text[start..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase()
                                    || *c == '-'
                                    || *c == '_'
                                    || c.is_ascii_digit()
                            })
                            .collect();
                        if key.len() < 3 || !key.contains('-') {
                            continue;
                        }
                        seen += 1;
                        for (lang, file) in [("en", en), ("es", es)] {
                            if !file.lines().any(|l| l.starts_with(&format!("{key} ="))) {
                                missing.push(format!("{lang}:{key}"));
                            }
                        }
                    }
                }
            }
        }
        missing.sort();
        missing.dedup();
        assert!(seen > 100, "the scan found only {seen} keys");
        assert!(missing.is_empty(), "untranslated: {missing:?}");
    }

    /// Every text the rules can send fits two SMS parts in every language, with long values
    /// in its placeholders (Bangla goes as UCS-2: 134 characters for two parts).
    #[test]
    fn every_text_fits_two_parts_in_every_language() {
        let args: Vec<(String, String)> = [
            ("code", "ABCD2345"),
            ("order", "123456"),
            ("shop", "Artesanías Doña Lupe"),
            ("total", "$12,345.50"),
            ("currency", "MXN"),
            ("by", "Tienda Don Pepe (8-20)"),
            ("due_day", "2026-12-09"),
            ("delivery_code", "123456"),
            ("point", "Tienda Don Pepe"),
            ("hours", "Mon-Sat 8-20"),
            ("site", "https://tianguis.example.org"),
            ("to", "+529511234567"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut too_long = Vec::new();
        for (lang, _) in LANGS {
            let tr = Tr::new(lang);
            for t in tianguis_domain::notify::TEMPLATES {
                let text = tr.render(t, &args);
                assert!(
                    !text.contains("{"),
                    "{lang} {t}: a placeholder left: {text}"
                );
                let p = tianguis_domain::sms::prepare(&text);
                if p.parts > tianguis_domain::sms::MAX_PARTS {
                    too_long.push(format!("{lang} {t}: {} parts ({:?})", p.parts, p.encoding));
                }
            }
        }
        assert!(too_long.is_empty(), "{too_long:#?}");
    }

    #[test]
    fn english_and_spanish_have_the_same_keys() {
        let keys = |s: &str| -> Vec<String> {
            s.lines()
                .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_string()))
                .filter(|k| !k.starts_with(' '))
                .collect()
        };
        let en = keys(include_str!("../locales/en/main.ftl"));
        let es = keys(include_str!("../locales/es/main.ftl"));
        assert_eq!(en, es);
    }
}
