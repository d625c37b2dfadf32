//! Bulk catalogue import: a CSV file (a header row naming the columns of
//! `tianguis_domain::listing`) and, optionally, a zip of photos. Streamed and written in
//! batches, so a million lines take bounded memory; each line is read and checked whole (its
//! seller, category and photo found) before it is written, so a refused line leaves nothing
//! behind, and the report says which lines were refused and why. A seller's SKU is one
//! listing: importing the file again updates instead of duplicating.

use std::collections::HashMap;
use std::io::{Read, Seek};
use tianguis_domain::Msg;
use tianguis_domain::listing::{self, Header, Line};
use tianguis_store::catalog::{Listing, ProductInput};
use tianguis_store::{Db, Result, StoreError};

/// Lines written per transaction.
pub const BATCH: usize = 4000;
/// Imports at least this large refresh the planner's statistics when they end.
const ANALYZE_AFTER: u64 = 10_000;
/// Refused lines kept for the report (the count goes on).
const MAX_REFUSALS_KEPT: usize = 10_000;

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Data lines read (the header not counted).
    pub lines: u64,
    /// Listings written (added or updated).
    pub imported: u64,
    /// Listings that did not exist before.
    pub added: u64,
    pub photos: u64,
    pub refused_count: u64,
    /// (line number in the file, why), the first ones.
    pub refused: Vec<(u64, Msg)>,
}

impl Report {
    fn refuse(&mut self, line: u64, why: Msg) {
        self.refused_count += 1;
        if self.refused.len() < MAX_REFUSALS_KEPT {
            self.refused.push((line, why));
        }
    }
}

/// Where the photos named in the file are.
pub struct Photos<R: Read + Seek>(zip::ZipArchive<R>);

impl<R: Read + Seek> Photos<R> {
    pub fn open(r: R) -> Result<Photos<R>> {
        zip::ZipArchive::new(r)
            .map(Photos)
            .map_err(|_| StoreError::invalid("err-import-zip"))
    }

    fn prepared(&mut self, name: &str) -> std::result::Result<tianguis_store::images::Photo, Msg> {
        let missing = || Msg::new("err-import-photo-missing").arg("photo", name);
        let mut f = self.0.by_name(name).map_err(|_| missing())?;
        if f.size() > 10 * 1024 * 1024 {
            return Err(Msg::new("err-photo-large"));
        }
        let mut bytes = Vec::with_capacity(f.size() as usize);
        f.by_ref()
            .take(10 * 1024 * 1024 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| missing())?;
        crate::images::prepare_photo(&bytes).map_err(|e| e.msg().unwrap_or_else(missing))
    }
}

/// Who imports, and so for which sellers.
#[derive(Clone, Copy)]
pub enum Importer<'a> {
    /// The operator at the command line: any seller.
    Operator,
    /// A person: an official who manages the directory (any seller), or an agent (only the
    /// sellers whose listings mandate they hold; each import is logged on the mandate).
    Person(&'a tianguis_store::users::User),
}

/// What an importer may do, decided once, with the agent's mandates found as sellers appear.
enum Authority<'a> {
    Any,
    Agent(&'a tianguis_store::users::User, HashMap<i64, Option<i64>>),
}

impl Authority<'_> {
    /// The mandate a line is written under (None for officials and the operator), or why not.
    async fn allows(
        &mut self,
        db: &Db,
        seller_id: i64,
    ) -> Result<std::result::Result<Option<i64>, Msg>> {
        let Authority::Agent(agent, seen) = self else {
            return Ok(Ok(None));
        };
        let m = match seen.get(&seller_id) {
            Some(m) => *m,
            None => {
                let m = db
                    .mandate_for(agent, seller_id, |m| m.listings)
                    .await?
                    .map(|m| m.id);
                seen.insert(seller_id, m);
                m
            }
        };
        Ok(m.map(Some).ok_or_else(|| Msg::new("err-no-mandate")))
    }
}

struct Pending {
    line: u64,
    listing: Listing,
}

/// Import a catalogue. `progress` hears (lines read, bytes read) after each batch.
pub async fn import<R: Read, Z: Read + Seek>(
    db: &Db,
    who: Importer<'_>,
    input: R,
    mut photos: Option<&mut Photos<Z>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report> {
    use tianguis_domain::policy::{Duty, may};
    let mut authority = match who {
        Importer::Operator => Authority::Any,
        Importer::Person(u) if may(&u.person(), Duty::ManageDirectory).is_ok() => Authority::Any,
        Importer::Person(u) => {
            may(&u.person(), Duty::ServeAtCentre).map_err(|d| StoreError::Forbidden(d.msg()))?;
            Authority::Agent(u, HashMap::new())
        }
    };
    // Listings written under each mandate, for its log.
    let mut under: HashMap<i64, u64> = HashMap::new();
    let region = db.phone_region().await?;
    let currency = db.currency().await?;
    let categories: HashMap<String, i64> = db
        .categories()
        .await?
        .into_iter()
        .map(|c| (c.slug, c.id))
        .collect();
    let mut sellers: HashMap<String, Option<(i64, String)>> = HashMap::new();
    let before = db.product_count().await?;
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = rd.records();
    let header = match records.next() {
        None => return Err(StoreError::invalid("err-import-empty-file")),
        Some(Err(_)) => return Err(StoreError::invalid("err-import-not-csv")),
        Some(Ok(h)) => Header::read(h.iter()).map_err(StoreError::Invalid)?,
    };
    let mut report = Report::default();
    let mut writer = Writer(None);
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut in_batch: std::collections::HashSet<(i64, String)> = Default::default();
    let mut bytes = 0u64;
    for (n, rec) in records.enumerate() {
        // Line numbers as an editor shows them (the header is line 1), for one-line records.
        let at = n as u64 + 2;
        report.lines += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                if e.is_io_error() {
                    return Err(StoreError::invalid("err-import-not-csv"));
                }
                report.refuse(at, Msg::new("err-import-not-text"));
                continue;
            }
        };
        if let Some(p) = rec.position() {
            bytes = p.byte();
        }
        let row: Vec<&str> = rec.iter().collect();
        if row.iter().all(|c| c.trim().is_empty()) {
            report.lines -= 1;
            continue;
        }
        let line = match listing::read(&header, &row, region, currency) {
            Ok(l) => l,
            Err(why) => {
                report.refuse(at, why);
                continue;
            }
        };
        let pending =
            match resolve(db, &line, &categories, &mut sellers, photos.as_deref_mut()).await? {
                Ok(listing) => Pending { line: at, listing },
                Err(why) => {
                    report.refuse(at, why);
                    continue;
                }
            };
        match authority.allows(db, pending.listing.seller_id).await? {
            Ok(Some(mandate)) => *under.entry(mandate).or_default() += 1,
            Ok(None) => {}
            Err(why) => {
                report.refuse(at, why);
                continue;
            }
        }
        let key = (pending.listing.seller_id, pending.listing.sku.clone());
        if in_batch.contains(&key) {
            // The same SKU twice: the earlier line is written first, the later one wins.
            writer.send(db, &mut batch, &mut report).await?;
            in_batch.clear();
        }
        in_batch.insert(key);
        batch.push(pending);
        if batch.len() >= BATCH {
            writer.send(db, &mut batch, &mut report).await?;
            in_batch.clear();
            progress(report.lines, bytes);
        }
    }
    writer.send(db, &mut batch, &mut report).await?;
    writer.wait(&mut report).await?;
    // A batch's refusals arrive after the next batch was read: the report goes by line.
    report.refused.sort_by_key(|(l, _)| *l);
    progress(report.lines, bytes);
    report.added = (db.product_count().await? - before).max(0) as u64;
    if let Authority::Agent(agent, _) = &authority {
        for (mandate, n) in &under {
            db.log_mandate(
                *mandate,
                agent.id,
                "listing",
                &format!("import: {n} listings"),
            )
            .await?;
        }
    }
    if report.imported >= ANALYZE_AFTER {
        db.refresh_statistics().await?;
    }
    Ok(report)
}

/// Find the line's seller and category, and prepare its photo.
async fn resolve<Z: Read + Seek>(
    db: &Db,
    line: &Line,
    categories: &HashMap<String, i64>,
    sellers: &mut HashMap<String, Option<(i64, String)>>,
    photos: Option<&mut Photos<Z>>,
) -> Result<std::result::Result<Listing, Msg>> {
    let phone = line.seller_phone.as_str().to_string();
    let seller = match sellers.get(&phone) {
        Some(s) => s.clone(),
        None => {
            let s = db.seller_by_phone(&phone).await?;
            sellers.insert(phone.clone(), s.clone());
            s
        }
    };
    let Some((seller_id, shop_name)) = seller else {
        return Ok(Err(Msg::new("err-import-no-seller").arg("phone", phone)));
    };
    let Some(category_id) = categories.get(&line.category.to_lowercase()).copied() else {
        return Ok(Err(
            Msg::new("err-import-category").arg("category", &line.category)
        ));
    };
    let photo = match (&line.photo, photos) {
        (None, _) => None,
        (Some(_), None) => return Ok(Err(Msg::new("err-import-photos-not-given"))),
        (Some(name), Some(z)) => match z.prepared(name) {
            Ok(p) => Some(p),
            Err(why) => return Ok(Err(why)),
        },
    };
    Ok(Ok(Listing {
        seller_id,
        shop_name,
        sku: line.sku.clone(),
        input: ProductInput {
            category_id,
            name_en: line.name_en.clone(),
            name_es: line.name_es.clone(),
            name_bn: line.name_bn.clone(),
            name_sw: line.name_sw.clone(),
            description: line.description.clone(),
            price_minor: line.price.minor,
            stock: line.stock,
        },
        photo,
    }))
}

/// Batches go to the database one at a time, while the next one is read and checked: the
/// reading and the writing use a core each.
struct Writer(Option<tokio::task::JoinHandle<Result<Report>>>);

impl Writer {
    /// Wait for the batch on its way, then send this one.
    async fn send(&mut self, db: &Db, batch: &mut Vec<Pending>, report: &mut Report) -> Result<()> {
        self.wait(report).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let db = db.clone();
        let batch = std::mem::take(batch);
        self.0 = Some(tokio::spawn(async move { write(&db, &batch).await }));
        Ok(())
    }

    async fn wait(&mut self, report: &mut Report) -> Result<()> {
        if let Some(h) = self.0.take() {
            let done = h
                .await
                .map_err(|e| StoreError::Corrupt(format!("the import's writer stopped: {e}")))??;
            report.imported += done.imported;
            report.photos += done.photos;
            for (l, m) in done.refused {
                report.refuse(l, m);
            }
        }
        Ok(())
    }
}

/// Write a batch in one transaction. If the database refuses it, each line is tried alone, so
/// the one at fault is reported and the others are written.
async fn write(db: &Db, batch: &[Pending]) -> Result<Report> {
    let mut report = Report::default();
    let listings: Vec<Listing> = batch.iter().map(|p| p.listing.clone()).collect();
    match crate::retrying(|| db.upsert_listings(&listings)).await {
        Ok(_) => count(&mut report, &listings),
        Err(e) if e.msg().is_some() => {
            for p in batch {
                let one = std::slice::from_ref(&p.listing);
                match crate::retrying(|| db.upsert_listings(one)).await {
                    Ok(_) => count(&mut report, one),
                    Err(e) => match e.msg() {
                        Some(why) => report.refuse(p.line, why),
                        None => return Err(e),
                    },
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(report)
}

fn count(report: &mut Report, written: &[Listing]) {
    report.imported += written.len() as u64;
    report.photos += written.iter().filter(|l| l.photo.is_some()).count() as u64;
}
