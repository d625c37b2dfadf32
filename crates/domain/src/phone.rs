//! Phone numbers as people type them, normalised to E.164 with Google's libphonenumber rules
//! (the `phonenumber` crate and its metadata), the marketplace's country as the default region:
//! "951 123 4567", "9511234567" and "+52 951 123 4567" are one person in Mexico.
//!
//! Numbers are normalised, not validated against the numbering plan: a programme's test and
//! demo numbers (and ranges a country opens after the metadata was cut) must still work, so a
//! number is accepted when libphonenumber can read a country and a national number from it and
//! the result has 7 to 15 digits.

use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("'{0}' is not a phone number: use 7 to 15 digits, optionally starting with +")]
    Invalid(String),
    /// A national number where the marketplace has no country to read it in.
    #[error("'{0}' needs its country code: start it with + and the country code")]
    NeedsCountry(String),
}

impl PhoneError {
    pub fn msg(&self) -> crate::Msg {
        match self {
            PhoneError::Invalid(s) => crate::Msg::new("err-phone").arg("input", s),
            PhoneError::NeedsCountry(s) => crate::Msg::new("err-phone-country").arg("input", s),
        }
    }
}

/// The country whose national numbers people type without a country code (ISO 3166-1
/// alpha-2, as the `country` setting holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(phonenumber::country::Id);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a country code: use two letters, such as MX, BD or KE")]
pub struct RegionError(pub String);

impl RegionError {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new("err-country").arg("input", &self.0)
    }
}

impl Region {
    pub fn parse(code: &str) -> Result<Region, RegionError> {
        let c = code.trim().to_ascii_uppercase();
        if c.len() != 2 {
            return Err(RegionError(code.to_string()));
        }
        phonenumber::country::Id::from_str(&c)
            .map(Region)
            .map_err(|_| RegionError(code.to_string()))
    }
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
    /// The region's calling code ("52" for MX), shown next to the phone field.
    pub fn calling_code(&self) -> Option<u16> {
        let meta = phonenumber::metadata::DATABASE.by_id(self.code())?;
        Some(meta.country_code())
    }
}

impl PhoneNumber {
    /// Accepts spaces, dashes, dots and brackets and a leading `+` (or `00`); a number without
    /// a country code is read in `region`.
    pub fn parse(input: &str, region: Option<Region>) -> Result<Self, PhoneError> {
        let bad = || PhoneError::Invalid(input.to_string());
        let t = input.trim();
        let mut digits = 0usize;
        for (i, c) in t.chars().enumerate() {
            match c {
                '0'..='9' => digits += 1,
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad()),
            }
        }
        if !(7..=17).contains(&digits) {
            return Err(bad());
        }
        let international = t.starts_with('+') || t.starts_with("00");
        if !international && region.is_none() {
            return Err(PhoneError::NeedsCountry(input.to_string()));
        }
        // A number with its + carries its own country: the region is not consulted, so the
        // same text reads the same in every marketplace.
        let region = if t.starts_with('+') { None } else { region };
        let n = phonenumber::parse(region.map(|r| r.0), t).map_err(|_| bad())?;
        let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
        let len = e164.len() - 1;
        if !e164.starts_with('+') || !(7..=15).contains(&len) {
            return Err(bad());
        }
        // Kept only if it reads back as itself: a degenerate number ("0000001", "+31 0000001")
        // can come out as a country code with too little after it, which no one could type
        // again.
        let again = phonenumber::parse(None, &e164)
            .ok()
            .map(|n| n.format().mode(phonenumber::Mode::E164).to_string());
        if again.as_deref() != Some(e164.as_str()) {
            return Err(bad());
        }
        Ok(PhoneNumber(e164))
    }
    /// A number as the store keeps it (already E.164); anything else is an error.
    pub fn stored(s: &str) -> Result<Self, PhoneError> {
        let ok = s.len() > 7
            && s.len() <= 16
            && s.starts_with('+')
            && s[1..].bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(PhoneNumber(s.to_string()))
        } else {
            Err(PhoneError::Invalid(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What normalising the stored phones does to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Stored differently: becomes `e164`.
    Rewrite { user: i64, e164: String },
    /// Its number is `e164`, which an older account (`kept_by`) already holds or keeps: left
    /// as stored, for an official to settle.
    Duplicate {
        user: i64,
        kept_by: i64,
        e164: String,
    },
    /// Cannot be read as a phone number in this region: left as stored, reported.
    Unreadable { user: i64 },
}

/// Plan the normalisation of stored phones (`(account, stored)`): every number is read in
/// `region` (without one, national numbers are left for later); an account already stored in E.164 keeps its number, otherwise the oldest account
/// (smallest id) of those that share a number does; the others are reported, never merged.
pub fn normalise_plan(rows: &[(i64, String)], region: Option<Region>) -> Vec<Finding> {
    use std::collections::HashMap;
    let mut parsed: Vec<(i64, &str, Option<String>)> = rows
        .iter()
        .filter_map(|(id, stored)| match PhoneNumber::parse(stored, region) {
            Ok(p) => Some((*id, stored.as_str(), Some(p.as_str().to_string()))),
            // A national number waits until the marketplace has a country.
            Err(PhoneError::NeedsCountry(_)) => None,
            Err(PhoneError::Invalid(_)) => Some((*id, stored.as_str(), None)),
        })
        .collect();
    parsed.sort_by_key(|r| r.0);
    // Who keeps each number: the account already stored in that exact form, else the oldest.
    let mut keeper: HashMap<&str, i64> = HashMap::new();
    for (id, stored, e) in &parsed {
        if let Some(e) = e
            && stored == e
        {
            keeper.insert(e.as_str(), *id);
        }
    }
    for (id, _, e) in &parsed {
        if let Some(e) = e {
            keeper.entry(e.as_str()).or_insert(*id);
        }
    }
    let mut out = Vec::new();
    for (id, stored, e) in &parsed {
        match e {
            None => out.push(Finding::Unreadable { user: *id }),
            Some(e) => {
                let kept_by = keeper[e.as_str()];
                if kept_by != *id {
                    out.push(Finding::Duplicate {
                        user: *id,
                        kept_by,
                        e164: e.clone(),
                    });
                } else if stored != e {
                    out.push(Finding::Rewrite {
                        user: *id,
                        e164: e.clone(),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx() -> Option<Region> {
        Some(Region::parse("mx").unwrap())
    }

    #[test]
    fn one_person_however_typed() {
        for typed in [
            "951 123 4567",
            "9511234567",
            "+52 951 123 4567",
            "+52 (951) 123-4567",
            "0052 951 123 4567",
            " 951.123.4567 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(typed, mx()).unwrap().as_str(),
                "+529511234567",
                "{typed}"
            );
        }
        // Another country's number keeps its own code.
        assert_eq!(
            PhoneNumber::parse("+880 1711-000111", mx())
                .unwrap()
                .as_str(),
            "+8801711000111"
        );
        // A Bangladeshi mobile with its trunk zero, read in Bangladesh.
        let bd = Some(Region::parse("BD").unwrap());
        assert_eq!(
            PhoneNumber::parse("01711 000111", bd).unwrap().as_str(),
            "+8801711000111"
        );
        let ke = Some(Region::parse("KE").unwrap());
        assert_eq!(
            PhoneNumber::parse("0712 345678", ke).unwrap().as_str(),
            "+254712345678"
        );
    }

    #[test]
    fn test_numbers_are_kept() {
        // Demo and test ranges that the numbering plan does not list still normalise.
        assert_eq!(
            PhoneNumber::parse("+520000001000", None).unwrap().as_str(),
            "+520000001000"
        );
        assert_eq!(
            PhoneNumber::parse("+52 0000 001000", mx())
                .unwrap()
                .as_str(),
            "+520000001000"
        );
    }

    #[test]
    fn refuses() {
        assert!(PhoneNumber::parse("12ab5678", mx()).is_err());
        assert!(PhoneNumber::parse("123", mx()).is_err());
        assert!(PhoneNumber::parse("1+23456789", mx()).is_err());
        assert!(PhoneNumber::parse("+52 951 123 4567 8888 99", mx()).is_err());
        assert_eq!(
            PhoneNumber::parse("9511234567", None),
            Err(PhoneError::NeedsCountry("9511234567".into()))
        );
        assert!(Region::parse("XX").is_err());
        assert!(Region::parse("Mexico").is_err());
        assert_eq!(Region::parse(" ke ").unwrap().code(), "KE");
        assert_eq!(Region::parse("BD").unwrap().calling_code(), Some(880));
        assert!(PhoneNumber::stored("+529511234567").is_ok());
        assert!(PhoneNumber::stored("9511234567").is_err());
    }

    #[test]
    fn normalising_stored_numbers_reports_duplicates() {
        let rows = vec![
            (1, "+529511234567".to_string()),
            (2, "9511234567".to_string()),
            (3, "951 222 3333".to_string()),
            (4, "+52 951 222 3333".to_string()),
            (5, "not a phone".to_string()),
            (6, "+520000001000".to_string()),
        ];
        let plan = normalise_plan(&rows, mx());
        assert_eq!(
            plan,
            vec![
                Finding::Duplicate {
                    user: 2,
                    kept_by: 1,
                    e164: "+529511234567".into()
                },
                Finding::Rewrite {
                    user: 3,
                    e164: "+529512223333".into()
                },
                Finding::Duplicate {
                    user: 4,
                    kept_by: 3,
                    e164: "+529512223333".into()
                },
                Finding::Unreadable { user: 5 },
            ]
        );
        // Nothing left to do once applied; without a country national numbers wait.
        let rows = vec![(1, "+529511234567".to_string())];
        assert!(normalise_plan(&rows, mx()).is_empty());
        let rows = vec![(7, "9511234567".to_string())];
        assert!(normalise_plan(&rows, None).is_empty());
    }
}
