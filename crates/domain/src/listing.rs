//! One line of a catalogue import, read and checked before anything is written: a line is
//! either a whole listing or refused with its reason, never half of one.
//!
//! Columns (any order, named in a header row): `seller_phone`, `sku`, `category` (a slug),
//! `name_en`, `name_es`, `name_bn`, `name_sw` (at least one name), `description`, `price` (as
//! people type it), `currency`, `stock`, and optional `photo` (a file name in the photos zip).

use crate::Msg;
use crate::money::{Currency, Money};
use crate::phone::{PhoneNumber, Region};

pub const COLUMNS: [&str; 12] = [
    "seller_phone",
    "sku",
    "category",
    "name_en",
    "name_es",
    "name_bn",
    "name_sw",
    "description",
    "price",
    "currency",
    "stock",
    "photo",
];
const REQUIRED: [&str; 5] = ["seller_phone", "sku", "category", "price", "stock"];
const NAMES: [&str; 4] = ["name_en", "name_es", "name_bn", "name_sw"];

/// Where each known column is in a file's rows.
#[derive(Debug, Clone)]
pub struct Header {
    at: [Option<usize>; 12],
}

impl Header {
    /// Read the header row: names are trimmed and case-insensitive; an unknown or repeated
    /// column, or a missing required one, refuses the whole file.
    pub fn read<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Header, Msg> {
        let mut at = [None; 12];
        for (i, raw) in names.into_iter().enumerate() {
            let name = raw.trim().trim_start_matches('\u{feff}').to_lowercase();
            let Some(k) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(Msg::new("err-import-column").arg("column", raw.trim()));
            };
            if at[k].is_some() {
                return Err(Msg::new("err-import-column-twice").arg("column", name));
            }
            at[k] = Some(i);
        }
        let h = Header { at };
        for r in REQUIRED {
            if h.col(r).is_none() {
                return Err(Msg::new("err-import-column-missing").arg("column", r));
            }
        }
        if NAMES.iter().all(|n| h.col(n).is_none()) {
            return Err(Msg::new("err-import-column-missing").arg("column", "name_en"));
        }
        Ok(h)
    }

    fn col(&self, name: &str) -> Option<usize> {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .and_then(|k| self.at[k])
    }

    fn get<'r>(&self, row: &[&'r str], name: &str) -> &'r str {
        self.col(name)
            .and_then(|i| row.get(i).copied())
            .unwrap_or("")
            .trim()
    }
}

/// A line that reads as a listing. The seller and category are still names: whether they
/// exist is for the store to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seller_phone: PhoneNumber,
    pub sku: String,
    pub category: String,
    /// The first name given when there is no English one (pages fall back to it).
    pub name_en: String,
    pub name_es: Option<String>,
    pub name_bn: Option<String>,
    pub name_sw: Option<String>,
    pub description: String,
    pub price: Money,
    pub stock: i64,
    pub photo: Option<String>,
}

/// Read one row. `currency` is the marketplace's: a row in another currency is refused.
pub fn read(
    h: &Header,
    row: &[&str],
    region: Option<Region>,
    currency: Currency,
) -> Result<Line, Msg> {
    let field = |name: &'static str, value: &str, max: usize| -> Result<String, Msg> {
        crate::text::line(value, name)?;
        if value.chars().count() > max {
            return Err(Msg::new("err-import-too-long")
                .arg("column", name)
                .arg("max", max));
        }
        Ok(value.to_string())
    };
    let phone = h.get(row, "seller_phone");
    let seller_phone = PhoneNumber::parse(phone, region).map_err(|e| e.msg())?;
    let sku = field("sku", h.get(row, "sku"), 64)?;
    if sku.is_empty() {
        return Err(Msg::new("err-import-empty").arg("column", "sku"));
    }
    let category = field("category", h.get(row, "category"), 64)?;
    if category.is_empty() {
        return Err(Msg::new("err-import-empty").arg("column", "category"));
    }
    let mut names: Vec<Option<String>> = Vec::with_capacity(4);
    for n in NAMES {
        let v = field(n, h.get(row, n), 120)?;
        names.push((!v.is_empty()).then_some(v));
    }
    let Some(first) = names.iter().flatten().next().cloned() else {
        return Err(Msg::new("err-import-no-name"));
    };
    let description = h.get(row, "description");
    crate::text::multiline(description, "description")?;
    if description.chars().count() > 4000 {
        return Err(Msg::new("err-description-long"));
    }
    let given = h.get(row, "currency");
    if !given.is_empty() && !given.eq_ignore_ascii_case(currency.as_str()) {
        return Err(Msg::new("err-import-currency")
            .arg("given", given)
            .arg("currency", currency.as_str()));
    }
    let price = Money::parse_decimal(h.get(row, "price"), currency).map_err(|e| e.msg())?;
    if !(0..=100_000_000_000).contains(&price.minor) {
        return Err(Msg::new("err-price"));
    }
    let stock_text = h.get(row, "stock");
    let stock = stock_text
        .parse::<i64>()
        .ok()
        .filter(|s| (0..=1_000_000).contains(s))
        .ok_or_else(|| Msg::new("err-stock"))?;
    let photo = h.get(row, "photo");
    Ok(Line {
        seller_phone,
        sku,
        category,
        name_en: names[0].clone().unwrap_or(first),
        name_es: names[1].clone(),
        name_bn: names[2].clone(),
        name_sw: names[3].clone(),
        description: description.to_string(),
        price,
        stock,
        photo: (!photo.is_empty()).then(|| photo.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mxn() -> Currency {
        Currency::parse("MXN").unwrap()
    }
    fn mx() -> Option<Region> {
        Region::parse("MX").ok()
    }

    #[test]
    fn columns_in_any_order_and_names_in_any_language() {
        let h = Header::read([
            "\u{feff}Stock",
            "price",
            "name_bn",
            "category",
            "sku",
            "seller_phone",
        ])
        .unwrap();
        let l = read(
            &h,
            &[
                "3",
                "1,250.50",
                "নকশি কাঁথা",
                "textiles",
                "K-1",
                "951 765 4321",
            ],
            mx(),
            mxn(),
        )
        .unwrap();
        assert_eq!(l.stock, 3);
        assert_eq!(l.price.minor, 125_050);
        assert_eq!(l.name_en, "নকশি কাঁথা");
        assert_eq!(l.name_bn.as_deref(), Some("নকশি কাঁথা"));
        assert_eq!(l.seller_phone.as_str(), "+529517654321");
        assert_eq!(l.photo, None);
    }

    #[test]
    fn a_bad_header_refuses_the_file() {
        let key = |r: Result<Header, Msg>| r.unwrap_err().key;
        assert_eq!(key(Header::read(["sku", "prize"])), "err-import-column");
        assert_eq!(key(Header::read(["sku", "sku"])), "err-import-column-twice");
        assert_eq!(
            key(Header::read([
                "seller_phone",
                "sku",
                "category",
                "price",
                "stock"
            ])),
            "err-import-column-missing"
        );
    }

    #[test]
    fn each_bad_line_says_why() {
        let h = Header::read(COLUMNS).unwrap();
        let ok = [
            "+529517654321",
            "A1",
            "food",
            "Coffee",
            "",
            "",
            "",
            "Ground",
            "120",
            "MXN",
            "5",
            "a.jpg",
        ];
        assert!(read(&h, &ok, mx(), mxn()).is_ok());
        let with = |i: usize, v: &'static str| {
            let mut r = ok;
            r[i] = v;
            read(&h, &r, mx(), mxn()).unwrap_err().key
        };
        assert!(with(0, "12").starts_with("err-"));
        assert_eq!(with(1, ""), "err-import-empty");
        assert_eq!(with(3, ""), "err-import-no-name");
        assert!(with(8, "12.345").starts_with("err-"));
        assert!(with(8, "").starts_with("err-"));
        assert_eq!(with(9, "USD"), "err-import-currency");
        assert_eq!(with(10, "-1"), "err-stock");
        assert_eq!(with(10, "2.5"), "err-stock");
        assert_eq!(with(3, "Caf\u{0}e"), "err-control-chars");
        // A short row reads its missing cells as empty.
        assert_eq!(
            read(&h, &ok[..4], mx(), mxn()).unwrap_err().key,
            "err-amount"
        );
    }
}
