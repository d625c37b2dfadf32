//! The catalogue's search index, in each database's own full-text engine:
//! - SQLite: FTS5, a contentless table `product_fts` (rowid = product id; columns `name`,
//!   `description`, `shop`; the `ascii` tokenizer, so every non-ASCII letter or mark is part of a
//!   word and Bangla or Devanagari words stay whole), with prefix indexes;
//! - PostgreSQL: `products.search_doc`, a tsvector with weights A (names), B (description) and
//!   C (shop), under a GIN index; written and queried as tsvector/tsquery literals, so neither
//!   the text-search parser nor the database's locale decides what a word is.
//!
//! Both hold the same words, made by `tianguis_domain::search::terms` (case and Latin accents
//! folded; Bangla kept), in the same transaction as the listing: a change made through one
//! server is found through every other at once. Relevance is in tiers
//! (`tianguis_domain::search::Tier`), the next page starts after the last row shown (keyset),
//! counts stop at `COUNT_CAP`, and a word the index does not know is corrected from the
//! vocabulary (`search_vocab`, with each word's one-deletion neighbourhood in
//! `search_vocab_deletes`).

use crate::catalog::{PRODUCT_COLS, Product, product_from};
use crate::{Backend, Db, Result, row_i64, row_str};
use sqlx::{Any, Transaction};
use std::collections::BTreeMap;
use tianguis_domain::search::{self, COUNT_CAP, Cursor, Field, Sort, Tier};

/// At most this many words of a query are searched for.
const MAX_TERMS: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    /// A place and its children.
    pub place_id: Option<i64>,
    pub category_id: Option<i64>,
    pub seller_id: Option<i64>,
    /// Price bounds in minor units, both included.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    pub sort: Sort,
    /// Where the page starts: the `next` of the page before.
    pub after: Option<Cursor>,
    /// Search the words as typed, with no correction.
    pub exact: bool,
    pub limit: i64,
}

#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub products: Vec<Product>,
    /// Matches counted, at most `COUNT_CAP`; `capped` says there are more.
    pub total: i64,
    pub capped: bool,
    /// The cursor of the next page, if there is one.
    pub next: Option<Cursor>,
    /// The query as searched, when a word was corrected ("mnago" → "mango").
    pub corrected: Option<String>,
}

/// A product's words per field, folded.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    name: Vec<String>,
    description: Vec<String>,
    shop: Vec<String>,
}

impl Doc {
    pub fn new(names: &[&str], description: &str, shop: &str) -> Doc {
        Doc {
            name: search::terms(&names.join(" ")),
            description: search::terms(description),
            shop: search::terms(shop),
        }
    }

    fn field(&self, f: Field) -> &[String] {
        match f {
            Field::Name => &self.name,
            Field::Description => &self.description,
            Field::Shop => &self.shop,
        }
    }

    /// The words of a listing read from the database: its names, description and shop name
    /// (columns `name_en`, `name_es`, `name_bn`, `name_sw`, `description`, `shop_name`).
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Doc> {
        let names = [
            row_str(r, "name_en")?,
            crate::row_opt_str(r, "name_es")?.unwrap_or_default(),
            crate::row_opt_str(r, "name_bn")?.unwrap_or_default(),
            crate::row_opt_str(r, "name_sw")?.unwrap_or_default(),
        ];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Doc::new(
            &names,
            &row_str(r, "description")?,
            &row_str(r, "shop_name")?,
        ))
    }

    /// Every distinct word with the first field that holds it (names, else description, else
    /// shop): what the vocabulary counts, so a tier's size can be told before it is read.
    pub fn words_by_field(&self) -> Vec<(&str, Field)> {
        let mut out: Vec<(&str, Field)> = Vec::new();
        for f in [Field::Name, Field::Description, Field::Shop] {
            for w in self.field(f) {
                if !out.iter().any(|(x, _)| *x == w.as_str()) {
                    out.push((w.as_str(), f));
                }
            }
        }
        out
    }

    /// Every distinct word, in order.
    pub fn words(&self) -> Vec<&str> {
        let mut all: Vec<&str> = [Field::Name, Field::Description, Field::Shop]
            .iter()
            .flat_map(|f| self.field(*f).iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The PostgreSQL tsvector literal: each word with its positions and field weights.
    pub fn tsvector(&self) -> String {
        let mut at: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut pos = 0u32;
        for f in [Field::Name, Field::Description, Field::Shop] {
            for t in self.field(f) {
                pos = (pos + 1).min(16_383);
                at.entry(t).or_default().push(format!("{pos}{}", weight(f)));
            }
        }
        at.iter()
            .map(|(t, ps)| format!("{}:{}", quote_lexeme(t), ps.join(",")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The FTS5 row's three columns.
    fn columns(&self) -> [String; 3] {
        [
            self.name.join(" "),
            self.description.join(" "),
            self.shop.join(" "),
        ]
    }
}

fn weight(f: Field) -> char {
    match f {
        Field::Name => 'A',
        Field::Description => 'B',
        Field::Shop => 'C',
    }
}

fn column(f: Field) -> &'static str {
    match f {
        Field::Name => "name",
        Field::Description => "description",
        Field::Shop => "shop",
    }
}

fn quote_lexeme(t: &str) -> String {
    format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''"))
}

/// Every term, by prefix, in the tier's fields; with `only`, the narrower tier's matches left
/// out (the tier alone).
pub fn fts5_query(terms: &[String], tier: Tier, only: bool) -> String {
    let all = |tier: Tier| {
        let cols: Vec<&str> = tier.fields().iter().map(|f| column(*f)).collect();
        let star = if tier.whole() { "" } else { "*" };
        let words: Vec<String> = terms
            .iter()
            .map(|t| format!("\"{}\"{star}", t.replace('"', "\"\"")))
            .collect();
        format!("{{{}}} : ({})", cols.join(" "), words.join(" AND "))
    };
    match tier.narrower().filter(|_| only) {
        None => all(tier),
        Some(n) => format!("({}) NOT ({})", all(tier), all(n)),
    }
}

/// Every term, whole, anywhere.
pub fn fts5_whole(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Every term, whole, anywhere, for PostgreSQL.
pub fn tsquery_whole(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| quote_lexeme(t))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// The same for PostgreSQL: `'cafe':*AB & 'molido':*AB & !('cafe':*A & 'molido':*A)`.
pub fn tsquery(terms: &[String], tier: Tier, only: bool) -> String {
    let all = |tier: Tier| {
        let w: String = tier.fields().iter().map(|f| weight(*f)).collect();
        let star = if tier.whole() { "" } else { "*" };
        terms
            .iter()
            .map(|t| format!("{}:{star}{w}", quote_lexeme(t)))
            .collect::<Vec<_>>()
            .join(" & ")
    };
    match tier.narrower().filter(|_| only) {
        None => all(tier),
        Some(n) => format!("{} & !({})", all(tier), all(n)),
    }
}

enum Bind {
    S(String),
    I(i64),
}

/// A statement under construction: SQL from this module's fragments, and its binds.
#[derive(Default)]
struct Stmt {
    sql: String,
    binds: Vec<Bind>,
}

impl Stmt {
    fn p(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn push(&mut self, s: &str) {
        self.sql.push_str(s);
    }
    /// Planned afresh for its values each time (an unnamed statement): a plan PostgreSQL
    /// caches for any values may join a price range's index of half the catalogue.
    fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(crate::sql(self.sql.clone())).persistent(false);
        for b in &self.binds {
            q = match b {
                Bind::S(s) => q.bind(s.clone()),
                Bind::I(i) => q.bind(*i),
            };
        }
        q
    }
}

/// How a list is read: with words (one tier alone, or every match), or the whole catalogue.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Browse,
    /// The words, in the tier's fields; `only`: that tier alone.
    Words(&'a [String], Tier, bool),
    /// The words, whole, anywhere (a count that stops early for common words).
    Whole(&'a [String]),
}

/// Above this many matches, a word is common enough to read the listings in the page's order
/// and test each (a page costs a few rows: PostgreSQL by its indexes, SQLite by the price index
/// when a page is in price order); below it, the engine finds the matches first and only they
/// are sorted. PostgreSQL's planner cannot tell the two apart for prefixes and field weights,
/// so the vocabulary's counts decide.
const DENSE: i64 = 5_000;

/// One word's (or prefix's) counts in the vocabulary.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Listings holding it first in their names, description, shop name (upper bounds).
    first: [i64; 3],
    /// The most active listings any one of its words is in (exact once the vocabulary is
    /// counted): at least this many listings match it.
    most: i64,
}

/// The vocabulary's counts of the words of one search, each read once.
#[derive(Default)]
struct Known(Vec<(String, bool, Option<Counts>)>);

impl Known {
    /// Read every word's counts, by prefix and whole, in one statement.
    async fn prefetch(&mut self, db: &Db, terms: &[String]) -> Result<()> {
        if terms.is_empty() {
            return Ok(());
        }
        let words: Vec<(&str, bool)> = terms
            .iter()
            .flat_map(|t| [(t.as_str(), false), (t.as_str(), true)])
            .collect();
        for ((t, whole), c) in words.iter().zip(db.words_counts(&words).await?) {
            self.0.push((t.to_string(), *whole, c));
        }
        Ok(())
    }

    async fn counts(&mut self, db: &Db, t: &str, whole: bool) -> Result<Option<[i64; 3]>> {
        Ok(self.all(db, t, whole).await?.map(|c| c.first))
    }

    async fn all(&mut self, db: &Db, t: &str, whole: bool) -> Result<Option<Counts>> {
        if let Some((_, _, c)) = self.0.iter().find(|(w, x, _)| w == t && *x == whole) {
            return Ok(*c);
        }
        let c = db.words_counts(&[(t, whole)]).await?.remove(0);
        self.0.push((t.to_string(), whole, c));
        Ok(c)
    }
}

/// The columns a list is filtered by (`id`, for the cursor) and sorted by.
#[derive(Clone, Copy)]
struct Order {
    id: &'static str,
    id_key: &'static str,
    price_key: &'static str,
}

impl Order {
    const FTS5: Order = Order {
        id: "product_fts.rowid",
        id_key: "product_fts.rowid",
        price_key: "p.price_minor",
    };
    const INDEXED: Order = Order {
        id: "p.id",
        id_key: "p.id",
        price_key: "p.price_minor",
    };
    const SORTED: Order = Order {
        id: "p.id",
        id_key: "(p.id + 0)",
        price_key: "(p.price_minor + 0)",
    };
}

/// How a search's matches are counted.
#[derive(Clone, Copy)]
enum Count {
    /// The vocabulary shows they pass the cap.
    Over,
    /// No words: the listings the filters leave.
    Browse,
    /// The words, whole first when the fewest listings holding one whole word (at most; the
    /// value) passes the cap, else by prefix.
    Words(i64),
}

/// How many listings each tier alone holds, at most, from the vocabulary's counts: exact for
/// one word, an estimate for several. None when a word is unknown (nothing can match).
type Sizes = [i64; 4];

impl Db {
    /// Search and browse: one page of listings, its capped count and the next page's cursor.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchPage> {
        let limit = q.limit.clamp(1, 100);
        let mut terms: Vec<String> = search::terms(&q.text).into_iter().take(MAX_TERMS).collect();
        let mut corrected = None;
        let mut known = Known::default();
        known.prefetch(self, &terms).await?;
        if !terms.is_empty() && !q.exact {
            let fixed = self.corrected(&terms, &mut known).await?;
            if fixed != terms {
                corrected = Some(fixed.join(" "));
                terms = fixed;
            }
        }
        let mut page = SearchPage {
            corrected,
            ..SearchPage::default()
        };
        let sizes = if terms.is_empty() {
            None
        } else {
            match self.sizes(&terms, &mut known).await? {
                Some(s) => Some(s),
                // A word no listing holds: nothing to read.
                None => return Ok(page),
            }
        };
        let all: i64 = sizes.map(|s| s.iter().sum()).unwrap_or(i64::MAX);
        let count = match sizes {
            None => Count::Browse,
            Some(_) if self.passes_cap(&terms, q, &mut known).await? => Count::Over,
            Some(_) => {
                // Whole words first: a common word reaches the cap in a few rows, where its
                // prefix would unroll into every word it starts.
                let mut whole = i64::MAX;
                for t in &terms {
                    let c = known.counts(self, t, true).await?.unwrap_or([0; 3]);
                    whole = whole.min(c.iter().sum());
                }
                Count::Words(whole)
            }
        };
        let want = limit + 1;
        let listing = async {
            let mut rows: Vec<(Cursor, Product)> = Vec::new();
            match (q.sort, sizes) {
                (Sort::Relevance, Some(sizes)) => {
                    let (start, after) = match q.after {
                        Some(Cursor::Tier(t, id)) => (t, Some(id)),
                        _ => (Tier::Word, None),
                    };
                    for tier in Tier::ALL.into_iter().filter(|t| *t >= start) {
                        let need = want - rows.len() as i64;
                        let size = sizes[tier as usize - 1];
                        if need <= 0 {
                            break;
                        }
                        if size == 0 {
                            continue;
                        }
                        let after = if tier == start { after } else { None };
                        let cursor = after.map(|id| Cursor::Tier(tier, id));
                        let scope = Scope::Words(&terms, tier, true);
                        for p in self.list(scope, size, q, cursor, need).await? {
                            rows.push((Cursor::Tier(tier, p.id), p));
                        }
                    }
                }
                (sort, sizes) => {
                    let scope = match sizes {
                        None => Scope::Browse,
                        Some(_) => Scope::Words(&terms, Tier::Anywhere, false),
                    };
                    for p in self.list(scope, all, q, q.after, want).await? {
                        let c = match sort {
                            Sort::PriceLow | Sort::PriceHigh => Cursor::Price(p.price.minor, p.id),
                            _ => Cursor::Newest(p.id),
                        };
                        rows.push((c, p));
                    }
                }
            }
            Ok(rows)
        };
        // When the matches may not fit on one page, they are counted while the page is read
        // (on another connection); otherwise the page alone may tell.
        let (mut rows, counted) = if q.after.is_some() || all > limit {
            let (rows, n) = tokio::try_join!(listing, self.capped(count, &terms, all, q))?;
            (rows, Some(n))
        } else {
            (listing.await?, None)
        };
        if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            page.next = rows.last().map(|(c, _)| *c);
        }
        page.products = rows.into_iter().map(|(_, p)| p).collect();
        let n = match counted {
            // The whole list is on this page: it is its own count (whatever the count read).
            _ if q.after.is_none() && page.next.is_none() => page.products.len() as i64,
            Some(n) => n,
            None => self.capped(count, &terms, all, q).await?,
        };
        page.total = n.min(COUNT_CAP);
        page.capped = n > COUNT_CAP;
        Ok(page)
    }

    /// Whether the vocabulary alone shows more than `COUNT_CAP` listings match: one word, no
    /// filter, and one of the words it starts (or is) in more active listings than the cap,
    /// counted exactly.
    async fn passes_cap(
        &self,
        terms: &[String],
        q: &SearchQuery,
        known: &mut Known,
    ) -> Result<bool> {
        let filtered = q.place_id.is_some()
            || q.category_id.is_some()
            || q.seller_id.is_some()
            || q.min_price.is_some()
            || q.max_price.is_some()
            || q.in_stock;
        let [t] = terms else { return Ok(false) };
        if filtered {
            return Ok(false);
        }
        let most = known.all(self, t, false).await?.map_or(0, |c| c.most);
        Ok(most > COUNT_CAP && self.vocabulary_counted().await?)
    }

    /// How many match, up to one past the cap (see [`Count`]).
    async fn capped(
        &self,
        count: Count,
        terms: &[String],
        all: i64,
        q: &SearchQuery,
    ) -> Result<i64> {
        match count {
            Count::Over => Ok(COUNT_CAP + 1),
            Count::Browse => self.count(Scope::Browse, all, q).await,
            Count::Words(whole) => {
                let n = if whole > COUNT_CAP {
                    self.count(Scope::Whole(terms), whole, q).await?
                } else {
                    0
                };
                if n > COUNT_CAP {
                    Ok(n)
                } else {
                    self.count(Scope::Words(terms, Tier::Anywhere, false), all, q)
                        .await
                }
            }
        }
    }

    /// Tier sizes for the words (see [`Sizes`]).
    async fn sizes(&self, terms: &[String], known: &mut Known) -> Result<Option<Sizes>> {
        // Each tier with the narrower ones: whole words in the names; names; names or
        // description; anywhere.
        let mut within = [i64::MAX; 4];
        for t in terms {
            let Some([n, d, sh]) = known.counts(self, t, false).await? else {
                return Ok(None);
            };
            let whole = known.counts(self, t, true).await?.map_or(0, |c| c[0]);
            for (k, v) in [whole, n, n + d, n + d + sh].into_iter().enumerate() {
                within[k] = within[k].min(v);
            }
        }
        Ok(Some([
            within[0],
            (within[1] - within[0]).max(0),
            (within[2] - within[1]).max(0),
            (within[3] - within[2]).max(0),
        ]))
    }

    /// For each word, the vocabulary's counts of the words starting with it (or of the word
    /// itself, `whole`), over at most a thousand words; None when there is no such word. One
    /// statement (one round trip) for them all.
    async fn words_counts(&self, words: &[(&str, bool)]) -> Result<Vec<Option<Counts>>> {
        let mut st = Stmt::default();
        let parts: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, (t, whole))| {
                let upper = if *whole {
                    format!("{t}\u{1}")
                } else {
                    format!("{t}{}", char::MAX)
                };
                let a = st.p(Bind::S(t.to_string()));
                let b = st.p(Bind::S(upper));
                format!(
                    "SELECT {i} AS i, COUNT(*) AS k, CAST(COALESCE(SUM(in_name), 0) AS BIGINT) AS n, \
                     CAST(COALESCE(SUM(in_description), 0) AS BIGINT) AS d, CAST(COALESCE(SUM(in_shop), 0) AS BIGINT) AS s, \
                     CAST(COALESCE(MAX(listings), 0) AS BIGINT) AS m \
                     FROM (SELECT in_name, in_description, in_shop, listings FROM search_vocab WHERE term >= {a} AND term < {b} LIMIT 1000) v{i}"
                )
            })
            .collect();
        st.push(&parts.join(" UNION ALL "));
        let mut out = vec![None; words.len()];
        for r in st.query().fetch_all(&self.pool).await? {
            let i = row_i64(&r, "i")? as usize;
            if i < out.len() && row_i64(&r, "k")? > 0 {
                out[i] = Some(Counts {
                    first: [row_i64(&r, "n")?, row_i64(&r, "d")?, row_i64(&r, "s")?],
                    most: row_i64(&r, "m")?,
                });
            }
        }
        Ok(out)
    }

    /// `select`, then the FROM and WHERE of a list or a count, with the filters. `size` (at
    /// most how many match) chooses PostgreSQL's plan. Returns the id column the order and the
    /// cursor use.
    fn matching(
        &self,
        select: &str,
        scope: Scope,
        size: i64,
        q: &SearchQuery,
        listing: bool,
        st: &mut Stmt,
    ) -> Order {
        // A count reads no seller or place unless a place filters (every listing has both).
        let joins = if listing || q.place_id.is_some() {
            "JOIN sellers s ON s.id = p.seller_id JOIN places pl ON pl.id = s.place_id"
        } else {
            ""
        };
        let words = match (scope, self.backend) {
            (Scope::Words(terms, tier, only), Backend::Sqlite) => {
                Some(fts5_query(terms, tier, only))
            }
            (Scope::Words(terms, tier, only), Backend::Postgres) => {
                Some(tsquery(terms, tier, only))
            }
            (Scope::Whole(terms), Backend::Sqlite) => Some(fts5_whole(terms)),
            (Scope::Whole(terms), Backend::Postgres) => Some(tsquery_whole(terms)),
            (Scope::Browse, _) => None,
        };
        let by_price = listing && matches!(q.sort, Sort::PriceLow | Sort::PriceHigh);
        // A condition tested last, after the filters' cheap comparisons.
        let mut last = None;
        let order = match (words, self.backend) {
            (Some(w), Backend::Sqlite) if by_price && size >= DENSE => {
                // Many matches in price order: walk the price index and test each listing
                // against the matches, instead of sorting them all (the unary `+` keeps
                // SQLite from driving the join by the match list instead).
                let m = st.p(Bind::S(w));
                st.push(&format!(
                    "{select} FROM products p {joins} WHERE +p.id IN (SELECT rowid FROM product_fts WHERE product_fts MATCH {m}) \
                     AND p.active = 1"
                ));
                Order::INDEXED
            }
            (Some(w), Backend::Sqlite) => {
                // FTS5 drives: it yields matches in rowid order, so a page reads a page of rows.
                let m = st.p(Bind::S(w));
                st.push(&format!(
                    "{select} FROM product_fts CROSS JOIN products p ON p.id = product_fts.rowid {joins} \
                     WHERE product_fts MATCH {m} AND p.active = 1"
                ));
                Order::FTS5
            }
            (Some(w), Backend::Postgres) if size < DENSE => {
                // Few matches: the GIN index finds them all first, then only they are sorted.
                let m = st.p(Bind::S(w));
                st.push(&format!(
                    "WITH m AS MATERIALIZED (SELECT id FROM products WHERE search_doc @@ CAST({m} AS tsquery)) \
                     {select} FROM m JOIN products p ON p.id = m.id {joins} WHERE p.active = 1"
                ));
                // Sorted as expressions, so the planner sorts the few matches instead of
                // walking an index of every listing to meet them in order.
                Order::SORTED
            }
            (Some(w), Backend::Postgres) => {
                // Many: read in the page's order and test each row; a page costs a few rows.
                // The words are tested last (PostgreSQL keeps the written order of conditions
                // of one cost): a listing a filter leaves out costs no tsquery.
                let m = st.p(Bind::S(w));
                st.push(&format!(
                    "{select} FROM products p {joins} WHERE p.active = 1"
                ));
                last = Some(format!(" AND p.search_doc @@ CAST({m} AS tsquery)"));
                Order::INDEXED
            }
            (None, _) => {
                st.push(&format!(
                    "{select} FROM products p {joins} WHERE p.active = 1"
                ));
                Order::INDEXED
            }
        };
        if let Some(pl) = q.place_id {
            let a = st.p(Bind::I(pl));
            let b = st.p(Bind::I(pl));
            st.push(&format!(" AND (s.place_id = {a} OR pl.parent_id = {b})"));
        }
        if let Some(c) = q.category_id {
            let a = st.p(Bind::I(c));
            st.push(&format!(" AND p.category_id = {a}"));
        }
        if let Some(s) = q.seller_id {
            let a = st.p(Bind::I(s));
            st.push(&format!(" AND p.seller_id = {a}"));
        }
        if let Some(v) = q.min_price {
            let a = st.p(Bind::I(v));
            st.push(&format!(" AND p.price_minor >= {a}"));
        }
        if let Some(v) = q.max_price {
            let a = st.p(Bind::I(v));
            st.push(&format!(" AND p.price_minor <= {a}"));
        }
        if q.in_stock {
            st.push(" AND p.stock > 0");
        }
        if let Some(l) = last {
            st.push(&l);
        }
        order
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        size: i64,
        q: &SearchQuery,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<Product>> {
        let mut st = Stmt::default();
        let order = self.matching(
            &format!("SELECT {PRODUCT_COLS}"),
            scope,
            size,
            q,
            true,
            &mut st,
        );
        let (id, id_key, price_key) = (order.id, order.id_key, order.price_key);
        let price_order = matches!(q.sort, Sort::PriceLow | Sort::PriceHigh);
        let (cmp, dir) = if q.sort == Sort::PriceLow {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        match after {
            Some(Cursor::Price(p, i)) if price_order => {
                let a = st.p(Bind::I(p));
                let b = st.p(Bind::I(p));
                let c = st.p(Bind::I(i));
                st.push(&format!(
                    " AND (p.price_minor {cmp} {a} OR (p.price_minor = {b} AND p.id {cmp} {c}))"
                ));
            }
            Some(Cursor::Tier(_, i)) | Some(Cursor::Newest(i)) if !price_order => {
                let a = st.p(Bind::I(i));
                st.push(&format!(" AND {id} < {a}"));
            }
            _ => {}
        }
        let n = st.p(Bind::I(limit));
        if price_order {
            st.push(&format!(
                " ORDER BY {price_key} {dir}, {id_key} {dir} LIMIT {n}"
            ));
        } else {
            st.push(&format!(" ORDER BY {id_key} DESC LIMIT {n}"));
        }
        let rows = st.query().fetch_all(&self.pool).await?;
        rows.iter().map(product_from).collect()
    }

    /// How many match, counted no further than one past the cap.
    async fn count(&self, scope: Scope<'_>, size: i64, q: &SearchQuery) -> Result<i64> {
        let mut st = Stmt::default();
        self.matching("SELECT 1 AS one", scope, size, q, false, &mut st);
        let n = st.p(Bind::I(COUNT_CAP + 1));
        st.sql = format!("SELECT COUNT(*) AS n FROM ({} LIMIT {n}) capped", st.sql);
        row_i64(&st.query().fetch_one(&self.pool).await?, "n")
    }

    /// The query's words with each one the index does not know (not even as the start of a
    /// word) replaced by its closest known word, when there is one.
    async fn corrected(&self, terms: &[String], known: &mut Known) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(terms.len());
        for t in terms {
            if t.chars().count() < 3 || known.counts(self, t, false).await?.is_some() {
                out.push(t.clone());
                continue;
            }
            let near = search::candidates(t, &self.neighbours(t).await?);
            let mut counted = Vec::with_capacity(near.len());
            for w in near {
                let n = self.holding(&w).await?;
                counted.push((w, n));
            }
            out.push(search::correction(t, &counted).unwrap_or_else(|| t.clone()));
        }
        Ok(out)
    }

    /// How many listings hold the word (whole, anywhere), counted up to a hundred.
    async fn holding(&self, word: &str) -> Result<i64> {
        let mut st = Stmt::default();
        match self.backend {
            Backend::Sqlite => {
                let m = st.p(Bind::S(format!("\"{}\"", word.replace('"', "\"\""))));
                st.push(&format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM product_fts WHERE product_fts MATCH {m} LIMIT 100) c"));
            }
            Backend::Postgres => {
                let m = st.p(Bind::S(quote_lexeme(word)));
                st.push(&format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM products WHERE search_doc @@ CAST({m} AS tsquery) AND active = 1 LIMIT 100) c"));
            }
        }
        row_i64(&st.query().fetch_one(&self.pool).await?, "n")
    }

    /// Known words sharing a one-deletion neighbour with `t` (SymSpell).
    async fn neighbours(&self, t: &str) -> Result<Vec<String>> {
        let dels = search::deletes(t);
        let mut st = Stmt::default();
        let own: Vec<String> = dels.iter().map(|d| st.p(Bind::S(d.clone()))).collect();
        st.push(&format!(
            "SELECT term FROM search_vocab WHERE term IN ({}) UNION ",
            own.join(",")
        ));
        let mut all = vec![st.p(Bind::S(t.to_string()))];
        all.extend(dels.iter().map(|d| st.p(Bind::S(d.clone()))));
        st.push(&format!(
            "SELECT term FROM search_vocab_deletes WHERE variant IN ({}) ORDER BY term LIMIT 200",
            all.join(",")
        ));
        let rows = st.query().fetch_all(&self.pool).await?;
        rows.iter().map(|r| row_str(r, "term")).collect()
    }
}

/// The settings row saying how far the index has been built: `VERSION` when whole, or
/// `VERSION:id` while under way. A new VERSION (other folding rules) rebuilds it.
const INDEXED: &str = "search_indexed";
const VERSION: &str = "1";
/// The settings row saying the vocabulary's `listings` are exact: `VERSION` once
/// [`Db::recount_vocabulary`] has run; emptied while the index is rebuilt.
const COUNTED: &str = "search_counted";

impl Db {
    /// Index every listing the search index lacks (after the upgrade that brought it, or when
    /// the folding rules change). In batches, each its own transaction behind the marker row,
    /// so several servers starting at once share the work and a restart resumes. Returns how
    /// many listings were indexed.
    pub async fn index_catalogue(&self) -> Result<u64> {
        let mut done = 0u64;
        loop {
            let mut tx = self.begin_write().await?;
            let at = crate::db::lock_marker_in(&mut tx, INDEXED).await?;
            if at == VERSION {
                tx.rollback().await?;
                return Ok(done);
            }
            let from = at
                .strip_prefix(&format!("{VERSION}:"))
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
            let rows = sqlx::query(
                "SELECT p.id, p.name_en, p.name_es, p.name_bn, p.name_sw, p.description, s.shop_name \
                 FROM products p JOIN sellers s ON s.id = p.seller_id WHERE p.id > $1 ORDER BY p.id LIMIT 1000",
            )
            .bind(from)
            .fetch_all(&mut *tx)
            .await?;
            let mut last = None;
            for r in &rows {
                let id = row_i64(r, "id")?;
                // The exact counts are rebuilt by `recount` afterwards.
                index_in(&mut tx, self.backend, id, None, &Doc::from_row(r)?, true).await?;
                last = Some(id);
            }
            let mark = match last {
                Some(id) => format!("{VERSION}:{id}"),
                None => VERSION.to_string(),
            };
            sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
                .bind(mark)
                .bind(INDEXED)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE settings SET value = '' WHERE key = $1")
                .bind(COUNTED)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done += rows.len() as u64;
        }
    }

    /// Count, exactly, how many active listings hold each word (after the upgrade that brought
    /// the count, or a rebuild of the index). One transaction: writers wait for it, then take
    /// their listings' old words away and add the new on top of counts that saw the old.
    /// Returns whether it ran.
    pub async fn recount_vocabulary(&self) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        if crate::db::lock_marker_in(&mut tx, COUNTED).await? == VERSION {
            tx.rollback().await?;
            return Ok(false);
        }
        // First, so on PostgreSQL every word's row is locked before the listings are read: a
        // writer waits here and its change is not yet visible to the count. The table lock
        // comes before the rows' (writers lock words in term order, an UPDATE of every row in
        // the table's order: the two could deadlock).
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE search_vocab IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE search_vocab SET listings = 0")
            .execute(&mut *tx)
            .await?;
        let counts: Vec<(String, i64)> = listing_words(&mut tx).await?.into_iter().collect();
        for chunk in counts.chunks(crate::db::rows_per_statement(&tx, 2, 400)) {
            let mut st = Stmt::default();
            let ps: Vec<String> = chunk
                .iter()
                .map(|(w, n)| {
                    let a = st.p(Bind::S(w.clone()));
                    let b = st.p(Bind::I(*n));
                    format!("({a},{b})")
                })
                .collect();
            st.push(&format!(
                "INSERT INTO search_vocab (term, listings) VALUES {} \
                 ON CONFLICT (term) DO UPDATE SET listings = excluded.listings",
                ps.join(",")
            ));
            st.query().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
            .bind(VERSION)
            .bind(COUNTED)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Words whose count of active listings is not what the catalogue holds: (word, counted,
    /// held). Empty when the counts are exact (an operator's check; the tests' too).
    pub async fn vocabulary_drift(&self) -> Result<Vec<(String, i64, i64)>> {
        let mut conn = self.pool.acquire().await?;
        let mut held = listing_words(&mut conn).await?;
        let mut out = Vec::new();
        for r in sqlx::query("SELECT term, listings FROM search_vocab ORDER BY term")
            .fetch_all(&mut *conn)
            .await?
        {
            let term = row_str(&r, "term")?;
            let counted = row_i64(&r, "listings")?;
            let n = held.remove(&term).unwrap_or(0);
            if n != counted {
                out.push((term, counted, n));
            }
        }
        out.extend(held.into_iter().map(|(t, n)| (t, 0, n)));
        Ok(out)
    }

    /// Count again from the catalogue whatever the marker says (an operator's repair, e.g. after
    /// a rolling upgrade in which older servers wrote words without their counts).
    pub async fn recount_vocabulary_now(&self) -> Result<()> {
        sqlx::query("UPDATE settings SET value = '' WHERE key = $1")
            .bind(COUNTED)
            .execute(&self.write)
            .await?;
        self.recount_vocabulary().await?;
        Ok(())
    }

    /// Whether the vocabulary's `listings` are exact (see [`COUNTED`]).
    async fn vocabulary_counted(&self) -> Result<bool> {
        let r = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(COUNTED)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => row_str(&r, "value")? == VERSION,
            None => false,
        })
    }
}

/// How many active listings hold each word, read from the catalogue (in batches).
async fn listing_words(conn: &mut sqlx::AnyConnection) -> Result<BTreeMap<String, i64>> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut from = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT p.id, p.name_en, p.name_es, p.name_bn, p.name_sw, p.description, s.shop_name \
             FROM products p JOIN sellers s ON s.id = p.seller_id WHERE p.id > $1 AND p.active = 1 \
             ORDER BY p.id LIMIT 2000",
        )
        .bind(from)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        from = row_i64(last, "id")?;
        for r in &rows {
            for (w, _) in Doc::from_row(r)?.words_by_field() {
                *counts.entry(w.to_string()).or_default() += 1;
            }
        }
    }
    Ok(counts)
}

/// Write one product's words into the index (replacing what was there) and the vocabulary;
/// `old`: its words before, when it was an active listing (taken from the exact counts);
/// `active`: whether it is one now (an inactive listing's words are not counted).
pub(crate) async fn index_in(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    product_id: i64,
    old: Option<&Doc>,
    doc: &Doc,
    active: bool,
) -> Result<()> {
    match backend {
        Backend::Sqlite => {
            sqlx::query("DELETE FROM product_fts WHERE rowid = $1")
                .bind(product_id)
                .execute(&mut **tx)
                .await?;
            let [n, d, s] = doc.columns();
            sqlx::query(
                "INSERT INTO product_fts (rowid, name, description, shop) VALUES ($1, $2, $3, $4)",
            )
            .bind(product_id)
            .bind(n)
            .bind(d)
            .bind(s)
            .execute(&mut **tx)
            .await?;
        }
        Backend::Postgres => {
            sqlx::query("UPDATE products SET search_doc = CAST($1 AS tsvector) WHERE id = $2")
                .bind(doc.tsvector())
                .bind(product_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    let mut removed: Vec<&Doc> = old.into_iter().collect();
    if !active {
        // Added for the upper bounds, taken away again from the exact count.
        removed.push(doc);
    }
    vocab_in(tx, &removed, &[doc]).await
}

/// SQLite: replace the FTS5 rows of many products at once (imports).
pub(crate) async fn fts_rows_in(
    tx: &mut Transaction<'static, Any>,
    ids: &[i64],
    docs: &[Doc],
) -> Result<()> {
    let rows = crate::db::rows_per_statement(tx, 4, 400);
    for (ids, docs) in ids.chunks(rows).zip(docs.chunks(rows)) {
        let mut del = Stmt::default();
        let ps: Vec<String> = ids.iter().map(|i| del.p(Bind::I(*i))).collect();
        del.push(&format!(
            "DELETE FROM product_fts WHERE rowid IN ({})",
            ps.join(",")
        ));
        del.query().execute(&mut **tx).await?;
        let mut ins = Stmt::default();
        let rows: Vec<String> = ids
            .iter()
            .zip(docs)
            .map(|(id, d)| {
                let [n, de, sh] = d.columns();
                let a = ins.p(Bind::I(*id));
                let b = ins.p(Bind::S(n));
                let c = ins.p(Bind::S(de));
                let e = ins.p(Bind::S(sh));
                format!("({a},{b},{c},{e})")
            })
            .collect();
        ins.push(&format!(
            "INSERT INTO product_fts (rowid, name, description, shop) VALUES {}",
            rows.join(",")
        ));
        ins.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Add listings' words to the vocabulary: how many listings hold each first in their names,
/// their description or their shop's name (counted on every write, so upper bounds); how many
/// active listings hold it (`listings`, exact: the `removed` words, a changed listing's words
/// before, are taken away); and the one-deletion neighbourhoods of the words that are new.
/// Sorted, so two writers on PostgreSQL take the rows' locks in one order.
pub(crate) async fn vocab_in(
    tx: &mut Transaction<'static, Any>,
    removed: &[&Doc],
    added: &[&Doc],
) -> Result<()> {
    let mut counts: BTreeMap<&str, [i64; 4]> = BTreeMap::new();
    for d in added {
        for (w, f) in d.words_by_field() {
            let c = counts.entry(w).or_default();
            c[f as usize] += 1;
            c[3] += 1;
        }
    }
    for d in removed {
        for (w, _) in d.words_by_field() {
            counts.entry(w).or_default()[3] -= 1;
        }
    }
    let rows: Vec<(&str, [i64; 4])> = counts.into_iter().filter(|(_, c)| *c != [0; 4]).collect();
    let mut fresh: Vec<String> = Vec::new();
    for chunk in rows.chunks(crate::db::rows_per_statement(tx, 5, 300)) {
        let mut st = Stmt::default();
        let ps: Vec<String> = chunk
            .iter()
            .map(|(w, c)| {
                let a = st.p(Bind::S(w.to_string()));
                let [n, d, sh, l] = c.map(|v| st.p(Bind::I(v)));
                format!("({a},{n},{d},{sh},{l})")
            })
            .collect();
        st.push(&format!(
            "INSERT INTO search_vocab (term, in_name, in_description, in_shop, listings) VALUES {} \
             ON CONFLICT (term) DO NOTHING RETURNING term",
            ps.join(",")
        ));
        let new: Vec<String> = st
            .query()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| row_str(r, "term"))
            .collect::<Result<_>>()?;
        let known: Vec<&(&str, [i64; 4])> = chunk
            .iter()
            .filter(|(w, _)| !new.iter().any(|n| n == w))
            .collect();
        if !known.is_empty() {
            let mut up = Stmt::default();
            let ps: Vec<String> = known
                .iter()
                .map(|(w, c)| {
                    let a = up.p(Bind::S(w.to_string()));
                    let [n, d, sh, l] = c.map(|v| up.p(Bind::I(v)));
                    format!("({a},{n},{d},{sh},{l})")
                })
                .collect();
            up.push(&format!(
                "INSERT INTO search_vocab (term, in_name, in_description, in_shop, listings) VALUES {} \
                 ON CONFLICT (term) DO UPDATE SET in_name = search_vocab.in_name + excluded.in_name, \
                 in_description = search_vocab.in_description + excluded.in_description, \
                 in_shop = search_vocab.in_shop + excluded.in_shop, \
                 listings = search_vocab.listings + excluded.listings",
                ps.join(",")
            ));
            up.query().execute(&mut **tx).await?;
        }
        fresh.extend(new);
    }
    let mut pairs: Vec<(String, String)> = fresh
        .iter()
        .flat_map(|w| search::deletes(w).into_iter().map(move |d| (d, w.clone())))
        .collect();
    pairs.sort_unstable();
    for chunk in pairs.chunks(crate::db::rows_per_statement(tx, 2, 400)) {
        let mut st = Stmt::default();
        let ps: Vec<String> = chunk
            .iter()
            .map(|(v, w)| {
                let a = st.p(Bind::S(v.clone()));
                let b = st.p(Bind::S(w.clone()));
                format!("({a},{b})")
            })
            .collect();
        st.push(&format!(
            "INSERT INTO search_vocab_deletes (variant, term) VALUES {} ON CONFLICT DO NOTHING",
            ps.join(",")
        ));
        st.query().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doc_is_written_as_each_engine_reads_it() {
        let d = Doc::new(
            &["Café molido", "Ground coffee"],
            "Café de Oaxaca",
            "Café Tres Ríos",
        );
        assert_eq!(
            d.tsvector(),
            "'cafe':1A,5B,8C 'coffee':4A 'de':6B 'ground':3A 'molido':2A 'oaxaca':7B 'rios':10C 'tres':9C"
        );
        assert_eq!(d.columns()[0], "cafe molido ground coffee");
        assert_eq!(
            d.words(),
            vec![
                "cafe", "coffee", "de", "ground", "molido", "oaxaca", "rios", "tres"
            ]
        );
    }

    #[test]
    fn tiers_become_engine_queries() {
        let t = vec!["cafe".to_string(), "mol".to_string()];
        assert_eq!(
            fts5_query(&t, Tier::Word, true),
            "{name} : (\"cafe\" AND \"mol\")"
        );
        assert_eq!(
            fts5_query(&t, Tier::Name, true),
            "({name} : (\"cafe\"* AND \"mol\"*)) NOT ({name} : (\"cafe\" AND \"mol\"))"
        );
        assert_eq!(tsquery(&t, Tier::Word, true), "'cafe':A & 'mol':A");
        assert_eq!(
            fts5_query(&t, Tier::Anywhere, false),
            "{name description shop} : (\"cafe\"* AND \"mol\"*)"
        );
        assert_eq!(
            fts5_query(&t, Tier::Anywhere, true),
            "({name description shop} : (\"cafe\"* AND \"mol\"*)) NOT ({name description} : (\"cafe\"* AND \"mol\"*))"
        );
        assert_eq!(
            tsquery(&t, Tier::NameOrDescription, true),
            "'cafe':*AB & 'mol':*AB & !('cafe':*A & 'mol':*A)"
        );
        assert_eq!(
            tsquery(&["it's".to_string()], Tier::Name, false),
            "'it''s':*A"
        );
    }
}
