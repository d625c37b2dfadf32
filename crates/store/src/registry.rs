//! The address registry: properties imported from CSV (name, owner phone, latitude,
//! longitude), each given a plus-code address, so a buyer with no street address can pick
//! theirs at checkout. Rows that cannot be used are reported with their line and reason;
//! the good rows are imported in batches.

use crate::{Db, Msg, Result, StoreError, row_i64, row_str};
use tianguis_domain::phone::PhoneNumber;

#[derive(Debug, Clone)]
pub struct Property {
    pub id: i64,
    pub name: String,
    pub owner_phone: String,
    pub plus_code: String,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub duplicates: usize,
    /// (line number in the file, why the row was refused)
    pub rejected: Vec<(u64, Msg)>,
}

/// A row ready to insert.
struct Row {
    name: String,
    phone: String,
    lat: f64,
    lng: f64,
    code: String,
}

fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.contains(&h.trim().to_lowercase().as_str()))
}

/// Check one record; the message says what is wrong with it.
fn check(
    rec: &csv::StringRecord,
    cols: (usize, usize, usize, usize),
    region: Option<tianguis_domain::phone::Region>,
) -> std::result::Result<Row, Msg> {
    let get = |i: usize| rec.get(i).unwrap_or("").trim();
    let name = get(cols.0);
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Msg::new("err-registry-name"));
    }
    let phone = PhoneNumber::parse(get(cols.1), region).map_err(|e| e.msg())?;
    let num = |i: usize| {
        get(i)
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    };
    let (Some(lat), Some(lng)) = (num(cols.2), num(cols.3)) else {
        return Err(Msg::new("err-registry-coordinates"));
    };
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
        return Err(Msg::new("err-coordinates"));
    }
    let code =
        tianguis_geo::PlusCode::encode(lat, lng, 11).map_err(|_| Msg::new("err-coordinates"))?;
    Ok(Row {
        name: name.to_string(),
        phone: phone.as_str().to_string(),
        lat,
        lng,
        code: code.to_string(),
    })
}

impl Db {
    /// Import a CSV with a header row naming `name`, `owner_phone` (or `phone`), `latitude`
    /// (or `lat`) and `longitude` (or `lng`/`lon`), in any order. `progress` is called with the
    /// number of rows read so far.
    pub async fn import_registry(
        &self,
        csv_text: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportReport> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(csv_text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|_| StoreError::invalid("err-registry-header"))?
            .clone();
        let cols = match (
            column(&headers, &["name", "property", "nombre"]),
            column(&headers, &["owner_phone", "phone", "telefono", "teléfono"]),
            column(&headers, &["latitude", "lat", "latitud"]),
            column(&headers, &["longitude", "lng", "lon", "longitud"]),
        ) {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err(StoreError::invalid("err-registry-header")),
        };
        let region = self.phone_region().await?;
        let mut report = ImportReport::default();
        let mut batch: Vec<Row> = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let line = i as u64 + 2; // the header is line 1
            match rec {
                Ok(rec) => match check(&rec, cols, region) {
                    Ok(row) => batch.push(row),
                    Err(m) => report.rejected.push((line, m)),
                },
                Err(_) => report
                    .rejected
                    .push((line, Msg::new("err-registry-unreadable"))),
            }
            if batch.len() >= 500 {
                self.insert_batch(&mut batch, &mut report).await?;
                progress(line - 1);
            }
        }
        self.insert_batch(&mut batch, &mut report).await?;
        progress(report.imported as u64 + report.duplicates as u64 + report.rejected.len() as u64);
        Ok(report)
    }

    async fn insert_batch(&self, batch: &mut Vec<Row>, report: &mut ImportReport) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        for r in batch.drain(..) {
            let n = sqlx::query("INSERT INTO address_registry (name, owner_phone, lat, lng, plus_code, created_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING")
                .bind(r.name)
                .bind(r.phone)
                .bind(r.lat)
                .bind(r.lng)
                .bind(r.code)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                report.imported += 1;
            } else {
                report.duplicates += 1;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Registered properties of a phone number (a buyer's own addresses).
    pub async fn registered_addresses(&self, phone: &str) -> Result<Vec<Property>> {
        let Ok(p) = PhoneNumber::parse(phone, self.phone_region().await?) else {
            return Ok(vec![]);
        };
        let rows = sqlx::query("SELECT id, name, owner_phone, plus_code FROM address_registry WHERE owner_phone = $1 ORDER BY id LIMIT 20")
            .bind(p.as_str().to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Property {
                    id: row_i64(r, "id")?,
                    name: row_str(r, "name")?,
                    owner_phone: row_str(r, "owner_phone")?,
                    plus_code: row_str(r, "plus_code")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("TIANGUIS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        /// A registry line of anything is a row or a reason, never a panic; a row's phone is
        /// E.164 and its plus code is a full one at the line's coordinates.
        #[test]
        fn any_line_is_a_row_or_a_reason(
            name in "\\PC{0,30}",
            phone in prop_oneof!["[+0-9 ]{0,16}", "\\PC{0,16}"],
            lat in prop_oneof!["-?[0-9]{1,3}([.,][0-9]{0,8})?", "\\PC{0,12}"],
            lng in prop_oneof!["-?[0-9]{1,3}([.,][0-9]{0,8})?", "\\PC{0,12}"],
        ) {
            let rec = csv::StringRecord::from(vec![name, phone, lat, lng]);
            let region = tianguis_domain::phone::Region::parse("MX").ok();
            match super::check(&rec, (0, 1, 2, 3), region) {
                Ok(row) => {
                    prop_assert!(row.phone.starts_with('+'));
                    let code = tianguis_geo::PlusCode::parse(&row.code).unwrap();
                    prop_assert!(code.is_full());
                    prop_assert!((-90.0..=90.0).contains(&row.lat) && (-180.0..=180.0).contains(&row.lng));
                }
                Err(m) => prop_assert!(m.key.starts_with("err-")),
            }
        }

        /// Whole files of anything: the CSV reader gives records or errors, never a panic.
        #[test]
        fn any_file_reads(text in "\\PC{0,300}") {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let _ = reader.headers().map(|h| h.len());
            for rec in reader.records() {
                let _ = rec.map(|r| r.len());
            }
        }
    }
}
