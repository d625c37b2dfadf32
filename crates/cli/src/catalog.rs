//! `tianguis products import` and `tianguis bench search`.

use anyhow::{Context, Result};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tianguis_domain::phone::PhoneNumber;
use tianguis_domain::policy::Role;
use tianguis_store::Db;

/// Import a catalogue file with a progress bar, then print what was done and every refused
/// line with its reason.
pub async fn import(
    db: &Db,
    file: &std::path::Path,
    photos: Option<&std::path::Path>,
) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let input = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut zip = match photos {
        Some(p) => Some(tianguis_app::import::Photos::open(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent}% {pos}/{len} bytes, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("importing");
    let t = Instant::now();
    let report = tianguis_app::import::import(
        db,
        tianguis_app::import::Importer::Operator,
        input,
        zip.as_mut(),
        |_, bytes| bar.set_position(bytes),
    )
    .await?;
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    let tr = tianguis_web::i18n::Tr::new("en");
    println!(
        "{} lines: {} imported ({} new, {} updated), {} photos, {} refused; {:.1} s, {:.0} lines/s",
        report.lines,
        report.imported,
        report.added,
        report.imported.saturating_sub(report.added),
        report.photos,
        report.refused_count,
        secs,
        report.lines as f64 / secs.max(1e-9)
    );
    for (line, why) in &report.refused {
        println!("line {line}: {}", tr.msg(why));
    }
    if report.refused_count > report.refused.len() as u64 {
        println!(
            "... and {} more refused lines",
            report.refused_count - report.refused.len() as u64
        );
    }
    Ok(())
}

/// What the benchmark's catalogue sells: (English, Spanish, Bangla or empty, category).
const GOODS: &[(&str, &str, &str, usize)] = &[
    ("Ground coffee", "Café molido", "", 0),
    ("Coffee beans", "Café en grano", "কফি বীজ", 0),
    ("Mango", "Mango", "আম", 0),
    ("Dried mango", "Mango deshidratado", "শুকনো আম", 0),
    ("Corn tortillas", "Tortillas de maíz", "", 0),
    ("Honey", "Miel", "মধু", 0),
    ("Black beans", "Frijol negro", "", 0),
    ("Red rice", "Arroz rojo", "লাল চাল", 0),
    ("Mustard oil", "Aceite de mostaza", "সরিষার তেল", 0),
    ("Jaggery", "Piloncillo", "গুড়", 0),
    ("Dried chili", "Chile seco", "শুকনো মরিচ", 0),
    ("Cocoa", "Cacao", "", 0),
    ("Nakshi kantha quilt", "Colcha nakshi kantha", "নকশি কাঁথা", 1),
    ("Cotton scarf", "Rebozo de algodón", "সুতির ওড়না", 1),
    ("Jamdani sari", "Sari jamdani", "জামদানি শাড়ি", 1),
    ("Embroidered blouse", "Blusa bordada", "", 1),
    ("Wool blanket", "Cobija de lana", "পশমের কম্বল", 1),
    ("Clay pot", "Olla de barro", "মাটির হাঁড়ি", 2),
    ("Jute basket", "Canasta de yute", "পাটের ঝুড়ি", 2),
    ("Palm mat", "Petate", "শীতল পাটি", 2),
    ("Wooden spoon", "Cuchara de madera", "কাঠের চামচ", 2),
    ("Black clay mug", "Taza de barro negro", "", 2),
    ("Handmade soap", "Jabón artesanal", "হাতে তৈরি সাবান", 3),
    ("Coconut oil", "Aceite de coco", "নারকেল তেল", 3),
    ("Herbal balm", "Bálsamo de hierbas", "", 3),
    ("Mobile phone case", "Funda de celular", "মোবাইল কভার", 4),
    ("Solar lamp", "Lámpara solar", "সৌর বাতি", 4),
    ("Phone charger", "Cargador de teléfono", "চার্জার", 4),
    ("Tomato seedlings", "Plántulas de jitomate", "টমেটো চারা", 5),
    ("Maize seed", "Semilla de maíz", "ভুট্টা বীজ", 5),
    ("Organic compost", "Composta orgánica", "জৈব সার", 5),
    ("Hen eggs", "Huevos de gallina", "মুরগির ডিম", 0),
];
const ADJECTIVES: &[(&str, &str)] = &[
    ("organic", "orgánico"),
    ("handmade", "hecho a mano"),
    ("large", "grande"),
    ("small", "chico"),
    ("red", "rojo"),
    ("traditional", "tradicional"),
    ("fresh", "fresco"),
    ("premium", "selecto"),
    ("family", "familiar"),
    ("village", "del pueblo"),
];
const ORIGINS: &[&str] = &[
    "Oaxaca",
    "Tlaxiaco",
    "Ixtlán",
    "Mitla",
    "Tehuantepec",
    "Juchitán",
    "Rangpur",
    "Bogura",
    "Jessore",
    "Sylhet",
    "Comilla",
    "Mymensingh",
];
const SHOP_WORDS: &[&str] = &[
    "Café",
    "Tres",
    "Ríos",
    "Doña",
    "María",
    "Rahima",
    "Taller",
    "Cooperativa",
    "Nuevo",
    "Sol",
    "Sabores",
    "Manos",
    "Unidas",
    "Barro",
    "Verde",
    "Telar",
    "Karim",
    "Hasina",
    "Jardín",
    "Monte",
];
const CATEGORIES: &[(&str, &str, &str)] = &[
    ("food", "Food", "Comida"),
    ("textiles", "Textiles", "Textiles"),
    ("home", "Home", "Hogar"),
    ("care", "Personal care", "Cuidado personal"),
    ("phones", "Phones", "Teléfonos"),
    ("farm", "Farm supplies", "Insumos agrícolas"),
];
/// Sellers in the benchmark's catalogue (a listing every this many belongs to each).
const SELLERS: usize = 400;
/// One listing in this many carries the rare word.
const RARE_EVERY: u64 = 10_000;

/// A small deterministic generator (SplitMix64): the same catalogue on every run.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

fn seller_phone(i: usize) -> String {
    format!("+5295100{:05}", i)
}

/// Write the benchmark's catalogue file: `n` listings, realistic names in English, Spanish and
/// (for most goods) Bangla, descriptions, prices as people type them.
fn write_catalogue(path: &std::path::Path, n: u64) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "seller_phone,sku,category,name_en,name_es,name_bn,description,price,currency,stock"
    )?;
    let mut r = Mix(7);
    for i in 0..n {
        let (en, es, bn, cat) = *r.pick(GOODS);
        let (aen, aes) = *r.pick(ADJECTIVES);
        let origin = *r.pick(ORIGINS);
        let rare = if i % RARE_EVERY == 17 {
            " vainilla"
        } else {
            ""
        };
        let price = 500 + r.next() % 200_000;
        let stock = r.next() % 60;
        writeln!(
            w,
            "{},SKU-{i},{},\"{aen} {en}{rare}\",\"{es} {aes}\",\"{bn}\",\"{aen} {en} from {origin}. Made by a family business; delivered to your village centre.\",\"{}.{:02}\",MXN,{stock}",
            seller_phone(i as usize % SELLERS),
            CATEGORIES[cat].0,
            price / 100,
            price % 100
        )?;
    }
    w.flush()?;
    Ok(())
}

/// The queries, by kind: (kind, path, the words alone when the engine can be timed on them).
/// Next pages are followed from the first page's own link.
fn query_mix(cat: i64, place: i64) -> Vec<(&'static str, String, Option<&'static str>)> {
    let q = |kind: &'static str, s: &'static str| {
        (
            kind,
            format!("/search?q={}", tianguis_web::caps::views::urlencode(s)),
            Some(s),
        )
    };
    vec![
        q("common word", "cafe"),
        q("common word", "honey"),
        q("common word", "miel"),
        q("rare word", "vainilla"),
        q("two words", "cafe molido"),
        q("two words", "black clay"),
        q("accented", "café"),
        q("accented", "jabón"),
        q("unaccented", "jabon"),
        q("prefix", "torti"),
        q("bangla", "কাঁথা"),
        q("bangla", "আম"),
        q("misspelled", "mnago"),
        q("misspelled", "tortilas"),
        q("misspelled", "cafee"),
        (
            "filtered",
            format!("/search?q=mango&category={cat}&min=10&max=900&stock=1"),
            None,
        ),
        (
            "filtered",
            format!("/search?q=soap&place={place}&stock=1&sort=price"),
            None,
        ),
        ("next page", "/search?q=cafe".to_string(), None),
        ("next page", "/search?q=oaxaca".to_string(), None),
        ("home page", "/".to_string(), None),
        ("category", format!("/search?category={cat}"), None),
        ("place", format!("/search?place={place}"), None),
    ]
}

/// The raw engine's query for the same words: every word by prefix, newest first, one page.
async fn raw_engine(db: &Db, text: &str) -> Result<Option<f64>> {
    let terms = tianguis_domain::search::terms(text);
    if terms.is_empty() {
        return Ok(None);
    }
    let sql = match db.backend {
        tianguis_store::Backend::Sqlite => {
            let m: Vec<String> = terms.iter().map(|t| format!("\"{t}\"*")).collect();
            format!(
                "SELECT rowid FROM product_fts WHERE product_fts MATCH '{}' ORDER BY rowid DESC LIMIT 25",
                m.join(" AND ").replace('\'', "''")
            )
        }
        tianguis_store::Backend::Postgres => {
            let m: Vec<String> = terms.iter().map(|t| format!("''{t}'':*")).collect();
            format!(
                "SELECT id FROM products WHERE search_doc @@ CAST('{}' AS tsquery) ORDER BY id DESC LIMIT 25",
                m.join(" & ")
            )
        }
    };
    let t = Instant::now();
    db.raw_execute(&sql).await?;
    Ok(Some(t.elapsed().as_secs_f64() * 1000.0))
}

fn next_link(html: &str) -> Option<String> {
    let at = html.find("\" rel=\"next\"")?;
    let start = html[..at].rfind("href=\"")? + 6;
    Some(html[start..at].replace("&amp;", "&"))
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `tianguis bench search`: a fresh database of `listings` listings built through the import
/// path, a real server process, a fixed mix of queries over HTTP `rounds` times.
pub async fn bench_search(url: &str, listings: u64, rounds: usize, keep: bool) -> Result<()> {
    let (db, fresh_url) = crate::fresh(url).await?;
    let result = bench_search_on(&db, &fresh_url, listings, rounds).await;
    db.close().await;
    if keep {
        println!("kept          {}", crate::redact_url(&fresh_url));
    } else {
        crate::drop_fresh(url, &fresh_url).await?;
    }
    result
}

async fn bench_search_on(db: &Db, fresh_url: &str, listings: u64, rounds: usize) -> Result<()> {
    db.set_setting("currency", "MXN").await?;
    db.set_country("MX").await?;
    let district = db.create_place("Distrito Bench", "district", None).await?;
    let mut towns = Vec::new();
    for i in 0..6 {
        towns.push(
            db.create_place(&format!("Pueblo {i}"), "village", Some(district))
                .await?,
        );
    }
    let mut cats = Vec::new();
    for (slug, en, es) in CATEGORIES {
        cats.push(db.create_category(slug, en, es, None).await?);
    }
    let mut r = Mix(11);
    for i in 0..SELLERS {
        let phone = PhoneNumber::parse(&seller_phone(i), None)?;
        let shop = format!("{} {} {}", r.pick(SHOP_WORDS), r.pick(SHOP_WORDS), i);
        let u = db
            .insert_user(&tianguis_store::users::UserRow {
                phone: &phone,
                email: None,
                name: &shop,
                // No password: nobody signs in as a benchmark seller.
                password_hash: "!",
                role: Role::Seller,
                place_id: Some(towns[i % towns.len()]),
                password_set: false,
            })
            .await?;
        db.create_seller(u.id, &shop, towns[i % towns.len()], 1, i % 2 == 0)
            .await?;
    }
    let dir = std::env::temp_dir().join(format!("tianguis-bench-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("catalogue.csv");
    let t = Instant::now();
    write_catalogue(&csv, listings)?;
    let made = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = tianguis_app::import::import(
        db,
        tianguis_app::import::Importer::Operator,
        std::io::BufReader::new(std::fs::File::open(&csv)?),
        None::<&mut tianguis_app::import::Photos<std::fs::File>>,
        |n, _| {
            if n % 100_000 == 0 {
                eprint!("\rimported {n} lines");
            }
        },
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!();
    anyhow::ensure!(
        report.refused_count == 0 && report.imported == listings,
        "the import refused {} of {listings} lines: {:?}",
        report.refused_count,
        report.refused.first()
    );
    // The server: a process of its own, so its memory is its own.
    let port = crate::chaos::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("server.log"))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--simulators",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env("DATABASE_URL", fresh_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the server")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let ran = async {
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            if http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            anyhow::ensure!(Instant::now() < until, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mix = query_mix(cats[0], district);
        // One round unmeasured: the caches warm as a running server's would be.
        for (_, path, _) in &mix {
            http.get(format!("{base}{path}"))
                .send()
                .await?
                .text()
                .await?;
        }
        let mut by_kind: Vec<(&str, Vec<f64>)> = Vec::new();
        let mut raw: Vec<(&str, Vec<f64>)> = Vec::new();
        let add = |v: &mut Vec<(&'static str, Vec<f64>)>, k: &'static str, ms: f64| match v
            .iter_mut()
            .find(|(n, _)| *n == k)
        {
            Some((_, l)) => l.push(ms),
            None => v.push((k, vec![ms])),
        };
        for _ in 0..rounds {
            for (kind, path, words) in &mix {
                let t = Instant::now();
                let resp = http.get(format!("{base}{path}")).send().await?;
                anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
                let html = resp.text().await?;
                let first = t.elapsed().as_secs_f64() * 1000.0;
                if *kind == "next page" {
                    // Pages two and three, by the page's own link.
                    let mut link = next_link(&html);
                    for _ in 0..2 {
                        let Some(l) = link.take() else { break };
                        let t = Instant::now();
                        let html = http.get(format!("{base}{l}")).send().await?.text().await?;
                        add(&mut by_kind, kind, t.elapsed().as_secs_f64() * 1000.0);
                        link = next_link(&html);
                    }
                } else {
                    add(&mut by_kind, kind, first);
                    if let Some(w) = words
                        && let Some(ms) = raw_engine(db, w).await?
                    {
                        add(&mut raw, kind, ms);
                    }
                }
            }
        }
        let rss = rss_kib(child.id(), "VmRSS:").unwrap_or(0);
        let hwm = rss_kib(child.id(), "VmHWM:").unwrap_or(0);
        println!("database        {}", crate::redact_url(fresh_url));
        println!("listings        {listings} (file written in {made:.1} s)");
        println!(
            "import          {:.1} s, {:.0} rows/s",
            secs,
            listings as f64 / secs.max(1e-9)
        );
        println!("rounds          {rounds} of {} queries", mix.len());
        println!(
            "{:<14} {:>9} {:>9} {:>6} {:>12} {:>7}",
            "kind", "p50 ms", "p99 ms", "n", "engine p50", "ratio"
        );
        let mut all = Vec::new();
        for (kind, lat) in &mut by_kind {
            all.extend(lat.iter().copied());
            let (p50, p99, n) = (crate::pct(lat, 0.5), crate::pct(lat, 0.99), lat.len());
            match raw.iter_mut().find(|(k, _)| k == kind) {
                Some((_, r)) => {
                    let e = crate::pct(r, 0.5);
                    println!(
                        "{kind:<14} {p50:>9.2} {p99:>9.2} {n:>6} {e:>12.2} {:>7.1}",
                        p50 / e.max(1e-6)
                    );
                }
                None => println!("{kind:<14} {p50:>9.2} {p99:>9.2} {n:>6}"),
            }
        }
        println!(
            "{:<14} {:>9.2} {:>9.2} {:>6}",
            "overall",
            crate::pct(&mut all, 0.5),
            crate::pct(&mut all, 0.99),
            all.len()
        );
        println!(
            "server RSS      {:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        Ok(())
    }
    .await;
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    ran
}
