//! The `tianguis` command: a thin main over the store and web crates.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::time::{Duration, Instant};
use tianguis_app::people::NewUser;
use tianguis_demo::bench::{process_cpu_seconds, write_counters};
use tianguis_store::Db;
use tianguis_store::users::Role;

mod catalog;
mod chaos;

#[derive(Parser)]
#[command(
    name = "tianguis",
    version,
    about = "A marketplace a district runs for its small sellers"
)]
struct Cli {
    /// sqlite:FILE (created if missing) or postgres://user@host/db
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite:tianguis.db",
        global = true
    )]
    database_url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How the server runs: its address, the demo and simulators, and each real provider.
#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// Fill an empty database with the demo district. Implies --simulators.
    #[arg(long)]
    demo: bool,
    /// Mount the local mobile-money and SMS simulators for whatever has no real provider
    /// configured (no real money moves, no text leaves this machine).
    #[arg(long)]
    simulators: bool,
    /// Public base URL for provider callbacks (default: http://BIND).
    #[arg(long)]
    public_url: Option<String>,
    /// Mobile-money provider base URL (needs --momo-key and --momo-secret).
    #[arg(long, env = "TIANGUIS_MOMO_URL")]
    momo_url: Option<String>,
    #[arg(long, env = "TIANGUIS_MOMO_KEY", hide_env_values = true)]
    momo_key: Option<String>,
    /// The secret the provider signs its callbacks with.
    #[arg(long, env = "TIANGUIS_MOMO_SECRET", hide_env_values = true)]
    momo_secret: Option<String>,
    /// SMS gateway base URL speaking Africa's Talking's API (e.g.
    /// https://api.africastalking.com; needs --sms-username and --sms-key).
    #[arg(long, env = "TIANGUIS_SMS_URL")]
    sms_url: Option<String>,
    #[arg(long, env = "TIANGUIS_SMS_USERNAME")]
    sms_username: Option<String>,
    #[arg(long, env = "TIANGUIS_SMS_KEY", hide_env_values = true)]
    sms_key: Option<String>,
    /// Sender id or short code.
    #[arg(long, env = "TIANGUIS_SMS_FROM")]
    sms_from: Option<String>,
    /// The token in the URL the gateway forwards replies (STOP, START) to:
    /// PUBLIC_URL/api/v1/sms/inbound/TOKEN. Without it, replies are not taken.
    #[arg(long, env = "TIANGUIS_SMS_INBOUND_TOKEN", hide_env_values = true)]
    sms_inbound_token: Option<String>,
    /// Payouts to wallets: a provider speaking MTN MoMo's Disbursement API (e.g.
    /// https://proxy.momoapi.mtn.com; needs --payout-user, --payout-key and
    /// --payout-subscription-key).
    #[arg(long, env = "TIANGUIS_PAYOUT_URL")]
    payout_url: Option<String>,
    /// The API user (a UUID) the provider issued.
    #[arg(long, env = "TIANGUIS_PAYOUT_USER")]
    payout_user: Option<String>,
    #[arg(long, env = "TIANGUIS_PAYOUT_KEY", hide_env_values = true)]
    payout_key: Option<String>,
    #[arg(long, env = "TIANGUIS_PAYOUT_SUBSCRIPTION_KEY", hide_env_values = true)]
    payout_subscription_key: Option<String>,
    /// The provider's target environment (MTN's X-Target-Environment, e.g. mtnuganda).
    #[arg(long, env = "TIANGUIS_PAYOUT_ENVIRONMENT", default_value = "sandbox")]
    payout_environment: String,
    /// A bearer token a metrics scraper may use for /metrics (admins may read it signed in).
    #[arg(long, env = "TIANGUIS_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Behind a reverse proxy: the header carrying the client's address
    /// (e.g. x-forwarded-for), believed only from --trusted-proxy addresses.
    #[arg(long, env = "TIANGUIS_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// The address of a reverse proxy whose client-address header is believed (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "TIANGUIS_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// The readiness diagnostic's questionnaire, a TOML file an officer edits (default: the
    /// one shipped, programmes/readiness.toml). Checked before the server starts: a bad file
    /// is refused with each problem's line.
    #[arg(long, env = "TIANGUIS_QUESTIONNAIRE")]
    questionnaire: Option<std::path::PathBuf>,
}

/// The local provider simulators as their own process, with the keys the server is given.
#[derive(clap::Args)]
struct SimulateArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: String,
    /// The server whose mobile-money callback the simulator calls (its --public-url).
    #[arg(long)]
    server_url: String,
    #[arg(long, env = "TIANGUIS_MOMO_KEY", hide_env_values = true)]
    momo_key: String,
    #[arg(long, env = "TIANGUIS_MOMO_SECRET", hide_env_values = true)]
    momo_secret: String,
    /// How long a payer takes to approve (0: never by itself; the payment waits for a query).
    #[arg(long, default_value_t = 300)]
    approve_after_ms: u64,
    #[arg(long, env = "TIANGUIS_SMS_USERNAME", default_value = "sandbox")]
    sms_username: String,
    #[arg(long, env = "TIANGUIS_SMS_KEY", hide_env_values = true)]
    sms_key: String,
    #[arg(long, env = "TIANGUIS_PAYOUT_USER")]
    payout_user: String,
    #[arg(long, env = "TIANGUIS_PAYOUT_KEY", hide_env_values = true)]
    payout_key: String,
    #[arg(long, env = "TIANGUIS_PAYOUT_SUBSCRIPTION_KEY", hide_env_values = true)]
    payout_subscription_key: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the local mobile-money, SMS and payout simulators as a process of their own (no
    /// real money moves, no text leaves this machine), for the fault tests and demos of the
    /// real adapters: give the server their URLs (BIND/sim/momo, /sim/sms, /sim/disburse).
    Simulate(Box<SimulateArgs>),
    /// Fault test: run real servers on an empty database, drive shoppers, sellers and buyers,
    /// a cashier and payout runs at them, kill them with SIGKILL at random moments and restart
    /// them, then check with SQL that nothing acknowledged was lost or duplicated, the books
    /// balance, stock and timers are exact and no payment is stranded or mis-applied.
    Chaos(Box<chaos::Args>),
    /// Run the web server (migrates first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations.
    Migrate,
    /// Online backup of a SQLite database to FILE.
    Backup { file: String },
    /// Set the marketplace's country (ISO 3166 two letters, such as MX, BD or KE): phone
    /// numbers typed without a country code are read as its own, and stored ones are brought
    /// to E.164 (accounts found to share a number are reported on /admin/users).
    Country { code: String },
    /// Manage users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Plus codes (Open Location Code): one result per line.
    Pluscode {
        #[command(subcommand)]
        cmd: PlusCmd,
    },
    /// The address registry.
    Registry {
        #[command(subcommand)]
        cmd: RegistryCmd,
    },
    /// Route planning.
    Routes {
        #[command(subcommand)]
        cmd: RoutesCmd,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// The catalogue.
    Products {
        #[command(subcommand)]
        cmd: ProductsCmd,
    },
    /// Payout batches (the transfers themselves go out from the running server's queue).
    Payouts {
        #[command(subcommand)]
        cmd: PayoutsCmd,
    },
    /// Credentials the marketplace signs (training certificates, sales statements) and its
    /// signing keys.
    Credential {
        #[command(subcommand)]
        cmd: CredentialCmd,
    },
}

#[derive(Subcommand)]
enum CredentialCmd {
    /// Check a credential file offline: its proof (W3C Data Integrity, eddsa-jcs-2022), its
    /// dates, and that one of the marketplace's keys signed it: the keys of --keys (a saved
    /// copy of the marketplace's /.well-known/did.json), or else this database's. Prints
    /// `valid`, or `invalid: REASON` and exits with 1.
    Verify {
        file: std::path::PathBuf,
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
    /// Sign a credential (a JSON document without a proof) with the key in use; prints it.
    Issue { file: std::path::PathBuf },
    /// The signing keys (kept in the database, never in a file of the repository).
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Make the first signing key (refused if there is one: rotate it instead).
    Generate,
    /// Put a new key in use; the one before stays published, so what it signed still counts.
    Rotate,
    /// Every key: its public half, when it was made, retired or revoked.
    List,
    /// Mark a retired key compromised: what it signed no longer counts.
    Revoke { public_key: String },
}

#[derive(Subcommand)]
enum PayoutsCmd {
    /// Prepare a batch now of everyone owed at least the minimum, as the official --as PHONE.
    Run {
        #[arg(long = "as")]
        as_phone: String,
    },
    /// Batches, newest first, each with its lines.
    List {
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Approve a prepared batch as the official --as PHONE (not the one who prepared it, unless
    /// the marketplace relaxed four eyes).
    Approve {
        id: i64,
        #[arg(long = "as")]
        as_phone: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user.
    Add {
        #[arg(long)]
        phone: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "buyer")]
        role: String,
        #[arg(long, env = "TIANGUIS_PASSWORD")]
        password: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Create an API token for a user (printed once).
    Token {
        #[arg(long)]
        phone: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum PlusCmd {
    /// The code of a location.
    Encode {
        #[arg(allow_negative_numbers = true)]
        lat: f64,
        #[arg(allow_negative_numbers = true)]
        lng: f64,
        /// Digits: 2, 4, 6, 8, or 10 to 15 (10 is about 14 m).
        #[arg(long, default_value_t = 10)]
        length: usize,
    },
    /// The area of a full code: LAT_LO LNG_LO LAT_HI LNG_HI (south-west and north-east corners).
    Decode { code: String },
    /// The shortest code that recovers near the reference location.
    Shorten {
        code: String,
        #[arg(allow_negative_numbers = true)]
        lat: f64,
        #[arg(allow_negative_numbers = true)]
        lng: f64,
    },
    /// The full code a short code means near the reference location.
    Recover {
        code: String,
        #[arg(allow_negative_numbers = true)]
        lat: f64,
        #[arg(allow_negative_numbers = true)]
        lng: f64,
    },
}

#[derive(Subcommand)]
enum ProductsCmd {
    /// Import listings from CSV. A header row names the columns, in any order: seller_phone,
    /// sku, category (slug), name_en, name_es, name_bn, name_sw (at least one name),
    /// description, price (as people type it), currency, stock, photo (a file name in the zip
    /// given with --photos). A seller's SKU is one listing: importing again updates it. Refused
    /// lines are listed with the reason; nothing of a refused line is written.
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        photos: Option<std::path::PathBuf>,
    },
    /// Check that search's count of listings per word matches the catalogue (it should, always;
    /// a rolling upgrade from before the count could leave it off); --recount counts again.
    SearchCheck {
        #[arg(long)]
        recount: bool,
    },
}

#[derive(Subcommand)]
enum RegistryCmd {
    /// Import properties from CSV (header: name, owner_phone, latitude, longitude); each gets a
    /// plus code. Prints a report of rows that were refused.
    Import { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum RoutesCmd {
    /// Solve Solomon VRPTW instances with the product's planner and compare with the
    /// best-known distance (BKS.json next to the files or one folder up, key NAME_distance).
    Bench {
        files: Vec<std::path::PathBuf>,
        /// Time budget per instance.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Concurrent checkouts through the HTTP API against a fresh database, and the raw ceiling
    /// of the same database, with their ratio.
    Checkout {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Search at scale: a fresh database of N listings built through the import path, a real
    /// server, a fixed mix of queries over HTTP (common, rare, two words, accents, Bangla,
    /// misspelled, filters, next pages, home and browse); p50/p99 per kind, the import rate,
    /// the server's memory, and the raw engine's own time for the same words with the ratio.
    Search {
        #[arg(long, default_value_t = 1_000_000)]
        listings: u64,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Keep the database afterwards (to look at its plans), instead of dropping it.
        #[arg(long)]
        keep: bool,
    },
    /// Mixed load (shoppers, sellers, a cashier, payouts) on one real server for M minutes
    /// against a fresh database: its memory and the answers' p50/p99 printed each minute (it
    /// must stay flat), then the same audit as `tianguis chaos`.
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        #[arg(long, default_value_t = 4)]
        shoppers: usize,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Store errors carry a message key: say it in words.
            let words = e
                .chain()
                .find_map(|c| c.downcast_ref::<tianguis_store::StoreError>())
                .and_then(|se| se.msg())
                .map(|m| tianguis_web::i18n::Tr::new("en").msg(&m));
            match words {
                Some(w) => eprintln!("error: {w}"),
                None => eprintln!("error: {e:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => {
            let ServeArgs {
                bind,
                demo,
                simulators,
                public_url,
                momo_url,
                momo_key,
                momo_secret,
                sms_url,
                sms_username,
                sms_key,
                sms_from,
                sms_inbound_token,
                payout_url,
                payout_user,
                payout_key,
                payout_subscription_key,
                payout_environment,
                metrics_token,
                client_ip_header,
                trusted_proxies,
                questionnaire,
            } = *args;
            let simulators = simulators || demo;
            // Decide the providers before touching anything: a half-configured real provider
            // never starts.
            let momo = provider(
                "mobile-money",
                momo_url,
                &[("--momo-key", momo_key), ("--momo-secret", momo_secret)],
                simulators,
            )?;
            let sms = provider(
                "SMS",
                sms_url,
                &[("--sms-username", sms_username), ("--sms-key", sms_key)],
                simulators,
            )?;
            let payout = provider(
                "payout (disbursement)",
                payout_url,
                &[
                    ("--payout-user", payout_user),
                    ("--payout-key", payout_key),
                    ("--payout-subscription-key", payout_subscription_key),
                ],
                simulators,
            )?;
            let db = open(&cli.database_url).await?;
            if demo {
                eprintln!("filling the demo district (first run only)...");
                tianguis_demo::seed(&db, true)
                    .await
                    .context("seeding demo data")?;
                // Today's route plans, solved before the first page is served.
                tianguis_web::caps::courier::run_route_plans(&db)
                    .await
                    .context("planning the demo routes")?;
            }
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            let addr = listener.local_addr()?;
            let public = public_url.unwrap_or_else(|| format!("http://{addr}"));
            let mut config = tianguis_web::Config::local(&public);
            let langs = tianguis_web::i18n::lang_codes();
            let checked = match &questionnaire {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    tianguis_app::diagnostic::load(&text, &langs)
                }
                None => tianguis_app::diagnostic::readiness(&langs),
            };
            match checked {
                Ok(q) => config.questionnaire = Some(std::sync::Arc::new(q)),
                Err(problems) => {
                    let name = questionnaire
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "programmes/readiness.toml".into());
                    let lines: Vec<String> =
                        problems.iter().map(|p| format!("{name}: {p}")).collect();
                    anyhow::bail!("the questionnaire cannot be used:\n{}", lines.join("\n"));
                }
            }
            match momo {
                Some(mut v) => {
                    config.momo_base_url = v.remove(0);
                    config.momo_api_key = v.remove(0);
                    config.momo_secret = v.remove(0);
                    config.simulator = false;
                }
                None => config.simulator = true,
            }
            match sms {
                Some(mut v) => {
                    config.sms_base_url = v.remove(0);
                    config.sms_username = v.remove(0);
                    config.sms_api_key = v.remove(0);
                    config.sms_simulator = false;
                }
                None => config.sms_simulator = true,
            }
            match payout {
                Some(mut v) => {
                    config.payout_base_url = v.remove(0);
                    config.payout_api_user = v.remove(0);
                    config.payout_api_key = v.remove(0);
                    config.payout_subscription_key = v.remove(0);
                    config.payout_environment = payout_environment;
                    config.payout_simulator = false;
                }
                None => config.payout_simulator = true,
            }
            config.sms_from = sms_from;
            if let Some(t) = sms_inbound_token.filter(|t| !t.trim().is_empty()) {
                config.sms_inbound_token = t.trim().to_string();
            }
            config.metrics_token = metrics_token.filter(|t| !t.trim().is_empty());
            config.client_ip_header = client_ip_header.map(|h| h.to_ascii_lowercase());
            config.trusted_proxies = trusted_proxies;
            eprintln!(
                "tianguis listening on http://{addr} ({})",
                redact_url(&cli.database_url)
            );
            if config.simulator || config.sms_simulator || config.payout_simulator {
                let which: Vec<&str> = [
                    config.simulator.then_some("mobile money at /sim/momo"),
                    config.sms_simulator.then_some("text messages at /sim/sms"),
                    config
                        .payout_simulator
                        .then_some("payouts to wallets at /sim/disburse"),
                ]
                .into_iter()
                .flatten()
                .collect();
                eprintln!(
                    "\n  *** LOCAL SIMULATORS ON: {} ***\n  No real money moves and no text leaves this machine. For a real\n  programme give --momo-url/--momo-key/--momo-secret,\n  --sms-url/--sms-username/--sms-key and --payout-url/--payout-user/--payout-key/\n  --payout-subscription-key, and leave out --demo and --simulators.\n",
                    which.join(", ")
                );
            }
            if demo {
                eprintln!(
                    "demo accounts (password '{}'): admin {}, second official (approves payouts) {}, seller {}, buyer {}, pickup-point operator {}, courier {}, agent {}, champion {}",
                    tianguis_demo::DEMO_PASSWORD,
                    tianguis_demo::DEMO_ADMIN_PHONE,
                    tianguis_demo::DEMO_TREASURER_PHONE,
                    tianguis_demo::DEMO_SELLER_PHONE,
                    tianguis_demo::DEMO_BUYER_PHONE,
                    tianguis_demo::DEMO_OPERATOR_PHONE,
                    tianguis_demo::DEMO_COURIER_PHONE,
                    tianguis_demo::DEMO_AGENT_PHONE,
                    tianguis_demo::DEMO_CHAMPION_PHONE
                );
            }
            tianguis_web::serve_until(
                tianguis_web::state(db, config),
                listener,
                tianguis_web::stop_signal(),
            )
            .await?;
            println!("stopped");
        }
        Cmd::Simulate(a) => {
            let mut config = tianguis_web::Config::local(a.server_url.trim_end_matches('/'));
            config.momo_api_key = a.momo_key;
            config.momo_secret = a.momo_secret;
            config.sim_approve_after_ms = a.approve_after_ms;
            config.sms_username = a.sms_username;
            config.sms_api_key = a.sms_key;
            config.payout_api_user = a.payout_user;
            config.payout_api_key = a.payout_key;
            config.payout_subscription_key = a.payout_subscription_key;
            let listener = tokio::net::TcpListener::bind(&a.bind)
                .await
                .with_context(|| format!("cannot listen on {}", a.bind))?;
            eprintln!(
                "\n  *** LOCAL SIMULATORS ONLY: no real money moves and no text leaves this machine ***\n  simulators listening on http://{}",
                listener.local_addr()?
            );
            axum_serve(listener, tianguis_web::standalone_simulators(&config)).await?;
        }
        Cmd::Chaos(a) => chaos::run(&cli.database_url, *a).await?,
        Cmd::Migrate => {
            open(&cli.database_url).await?;
            println!("migrations applied");
        }
        Cmd::Country { code } => {
            let db = open(&cli.database_url).await?;
            let reported = db.set_country(&code).await?;
            println!(
                "country {}; {reported} account(s) to settle at /admin/users",
                code.trim().to_uppercase()
            );
        }
        Cmd::Backup { file } => {
            // The source as it is: never created, never migrated.
            let db = Db::connect_existing(&cli.database_url)
                .await
                .with_context(|| format!("cannot open {}", redact_url(&cli.database_url)))?;
            db.backup(&file).await?;
            println!("backup written to {file}");
        }
        Cmd::User {
            cmd:
                UserCmd::Add {
                    phone,
                    name,
                    role,
                    password,
                    email,
                },
        } => {
            let db = open(&cli.database_url).await?;
            let u = tianguis_app::people::create_user(
                &db,
                NewUser {
                    phone: &phone,
                    email: email.as_deref(),
                    name: &name,
                    password: &password,
                    role: tianguis_store::users::parse_role(&role)?,
                    place_id: None,
                },
            )
            .await?;
            println!("user {} created ({})", u.id, u.primary_role().as_str());
        }
        Cmd::User {
            cmd: UserCmd::Token { phone, name },
        } => {
            let db = open(&cli.database_url).await?;
            let user = db
                .user_by_phone(&phone)
                .await
                .with_context(|| format!("no user with phone {phone}"))?;
            println!("{}", db.create_api_token(user.id, &name).await?);
        }
        Cmd::Payouts { cmd } => payouts(&cli.database_url, cmd).await?,
        Cmd::Products {
            cmd: ProductsCmd::Import { file, photos },
        } => {
            let db = open(&cli.database_url).await?;
            catalog::import(&db, &file, photos.as_deref()).await?;
        }
        Cmd::Products {
            cmd: ProductsCmd::SearchCheck { recount },
        } => {
            let db = open(&cli.database_url).await?;
            if recount {
                db.recount_vocabulary_now().await?;
            }
            let drift = db.vocabulary_drift().await?;
            for (word, counted, held) in drift.iter().take(20) {
                println!("{word}: counted {counted}, held by {held}");
            }
            if drift.is_empty() {
                println!("search counts match the catalogue");
            } else {
                anyhow::bail!(
                    "{} words counted wrong: run `tianguis products search-check --recount`",
                    drift.len()
                );
            }
        }
        Cmd::Bench {
            cmd:
                BenchCmd::Search {
                    listings,
                    rounds,
                    keep,
                },
        } => catalog::bench_search(&cli.database_url, listings, rounds, keep).await?,
        Cmd::Pluscode { cmd } => println!("{}", pluscode(cmd)?),
        Cmd::Routes {
            cmd: RoutesCmd::Bench { files, seconds },
        } => routes_bench(&files, seconds)?,
        Cmd::Credential { cmd } => credential(&cli.database_url, cmd).await?,
        Cmd::Registry {
            cmd: RegistryCmd::Import { file },
        } => {
            let db = open(&cli.database_url).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let rows = text.lines().count().saturating_sub(1) as u64;
            let bar = indicatif::ProgressBar::new(rows);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("importing");
            let report = db.import_registry(&text, |n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            let tr = tianguis_web::i18n::Tr::new("en");
            println!(
                "imported {}, already registered {}, refused {}",
                report.imported,
                report.duplicates,
                report.rejected.len()
            );
            for (line, why) in &report.rejected {
                println!("line {line}: {}", tr.msg(why));
            }
        }
        Cmd::Bench {
            cmd: BenchCmd::Checkout { clients, seconds },
        } => bench_checkout(&cli.database_url, clients, seconds).await?,
        Cmd::Bench {
            cmd: BenchCmd::Soak { minutes, shoppers },
        } => {
            let (db, fresh_url) = fresh(&cli.database_url).await?;
            db.close().await;
            let ran = chaos::run(&fresh_url, chaos::Args::soak(minutes, shoppers)).await;
            drop_fresh(&cli.database_url, &fresh_url).await?;
            ran?;
        }
    }
    Ok(())
}

/// A real provider's URL and credentials (all given, none empty), None for the local simulator
/// (only when asked for), or an error that stops the server before it starts.
fn provider(
    what: &str,
    url: Option<String>,
    creds: &[(&str, Option<String>)],
    simulators: bool,
) -> Result<Option<Vec<String>>> {
    let names: Vec<&str> = creds.iter().map(|(n, _)| *n).collect();
    match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => {
            let mut v = vec![u];
            for (name, value) in creds {
                match value.as_deref().map(str::trim) {
                    Some(x) if !x.is_empty() => v.push(x.to_string()),
                    _ => anyhow::bail!(
                        "the {what} provider needs {name} (refusing to start without its secret)"
                    ),
                }
            }
            Ok(Some(v))
        }
        None if simulators => Ok(None),
        None => anyhow::bail!(
            "no {what} provider: give its URL and {}, or --simulators (or --demo) for the local simulator",
            names.join(" and ")
        ),
    }
}

/// A database URL fit to print: any password replaced.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn pluscode(cmd: PlusCmd) -> Result<String> {
    use tianguis_geo::PlusCode;
    Ok(match cmd {
        PlusCmd::Encode { lat, lng, length } => PlusCode::encode(lat, lng, length)?.to_string(),
        PlusCmd::Decode { code } => {
            let a = PlusCode::parse(&code)?.decode()?;
            format!("{} {} {} {}", a.lat_lo, a.lng_lo, a.lat_hi, a.lng_hi)
        }
        PlusCmd::Shorten { code, lat, lng } => {
            PlusCode::parse(&code)?.shorten(lat, lng)?.to_string()
        }
        PlusCmd::Recover { code, lat, lng } => {
            PlusCode::parse(&code)?.recover(lat, lng)?.to_string()
        }
    })
}

fn best_known(file: &std::path::Path, name: &str) -> Option<(f64, &'static str)> {
    let dir = file.parent()?;
    for candidate in [dir.join("BKS.json"), dir.parent()?.join("BKS.json")] {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            // Distance only where it is published; else the hierarchical best (fewest
            // vehicles first), which a distance-minimising plan may undercut.
            return v[format!("{name}_distance")]["best_known_cost"]
                .as_f64()
                .map(|b| (b, ""))
                .or_else(|| v[name]["best_known_cost"].as_f64().map(|b| (b, " (h)")));
        }
    }
    None
}

fn routes_bench(files: &[std::path::PathBuf], seconds: u64) -> Result<()> {
    anyhow::ensure!(!files.is_empty(), "give one or more Solomon instance files");
    println!(
        "{:<8} {:>8} {:>10} {:>14} {:>8} {:>8}",
        "instance", "vehicles", "distance", "best", "gap %", "time s"
    );
    let mut worst: Option<(f64, String)> = None;
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let inst = tianguis_routing::solomon::parse(&text)?;
        let start = Instant::now();
        let problem = inst.to_problem();
        let plan = tianguis_routing::solve(&problem, Duration::from_secs(seconds))?;
        let took = start.elapsed().as_secs_f64();
        if let Err(why) = tianguis_routing::verify(&problem, &plan) {
            anyhow::bail!("{}: the plan breaks a constraint: {why}", inst.name);
        }
        let known = best_known(f, &inst.name);
        let gap = known.map(|(b, _)| (plan.distance - b) / b * 100.0);
        if let Some(g) = gap
            && worst.as_ref().is_none_or(|w: &(f64, String)| g > w.0)
        {
            worst = Some((g, inst.name.clone()));
        }
        let gap = gap.map(|g| format!("{g:.2}")).unwrap_or_else(|| "-".into());
        let best = known
            .map(|(b, kind)| format!("{b:.2}{kind}"))
            .unwrap_or_else(|| "-".into());
        let unassigned = if plan.unassigned.is_empty() {
            String::new()
        } else {
            format!("  ({} unassigned)", plan.unassigned.len())
        };
        println!(
            "{:<8} {:>8} {:>10.2} {:>14} {:>8} {:>8.1}{unassigned}",
            inst.name,
            plan.routes.len(),
            plan.distance,
            best,
            gap,
            took
        );
    }
    if let Some((g, name)) = worst {
        println!(
            "worst gap {g:.2}% ({name}); every plan checked stop by stop; (h): only the fewest-vehicles best is published"
        );
    }
    Ok(())
}

async fn payouts(url: &str, cmd: PayoutsCmd) -> Result<()> {
    let db = open(url).await?;
    let official = |phone: String| {
        let db = db.clone();
        async move {
            db.user_by_phone(&phone)
                .await
                .with_context(|| format!("no user with phone {phone}"))
        }
    };
    match cmd {
        PayoutsCmd::Run { as_phone } => {
            let who = official(as_phone).await?;
            match tianguis_app::payouts::prepare(
                &db,
                Some(&who),
                tianguis_domain::payout::Run::Manual,
            )
            .await?
            {
                Some(id) => {
                    let b = db.payout_batch(id).await?;
                    println!(
                        "batch {id} prepared: {} lines, {} {} (approve it as another official)",
                        b.line_count,
                        b.total.to_decimal(),
                        b.total.currency.as_str()
                    );
                }
                None => println!("nobody is owed enough for a payout now"),
            }
        }
        PayoutsCmd::List { limit } => {
            for b in db.payout_batches(limit).await? {
                println!(
                    "batch {}\t{}\t{}\t{} lines\t{} {}",
                    b.id,
                    b.status.as_str(),
                    b.reason,
                    b.line_count,
                    b.total.to_decimal(),
                    b.total.currency.as_str()
                );
                for l in db.payout_lines(b.id).await? {
                    println!(
                        "  line {}\t{}\t{}\t{}\t{} {}\t{}{}",
                        l.id,
                        l.payee.code(),
                        l.payee_name,
                        l.channel.as_str(),
                        l.amount.to_decimal(),
                        l.amount.currency.as_str(),
                        l.status.as_str(),
                        l.failure.map(|f| format!(" ({f})")).unwrap_or_default()
                    );
                }
            }
        }
        PayoutsCmd::Approve { id, as_phone } => {
            let who = official(as_phone).await?;
            tianguis_app::payouts::approve(&db, &who, id).await?;
            println!("batch {id} approved: its transfers go out from the server's queue");
        }
    }
    Ok(())
}

async fn open(url: &str) -> Result<Db> {
    let db = Db::connect(url)
        .await
        .with_context(|| format!("cannot open {}", redact_url(url)))?;
    db.migrate().await.context("migrating")?;
    Ok(db)
}

/// A fresh database next to the given one: a new SQLite file, or a new PostgreSQL database.
async fn fresh(url: &str) -> Result<(Db, String)> {
    let tag = tianguis_store::random_token(4);
    let fresh_url = if url.starts_with("sqlite:") {
        format!("sqlite:bench-{tag}.db")
    } else {
        let admin = Db::connect(url).await?;
        let name = format!("tianguis_bench_{tag}");
        sqlx_exec(&admin, &format!("CREATE DATABASE {name}")).await?;
        tianguis_store::db::sibling_url(url, &name)
    };
    Ok((open(&fresh_url).await?, fresh_url))
}

async fn sqlx_exec(db: &Db, sql: &str) -> Result<()> {
    db.raw_execute(sql).await?;
    Ok(())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn bench_checkout(url: &str, clients: usize, seconds: u64) -> Result<()> {
    let (db, fresh_url) = fresh(url).await?;
    db.set_setting("currency", "MXN").await?;
    let place = db.create_place("Bench", "village", None).await?;
    let cat = db.create_category("bench", "Bench", "Banco", None).await?;
    let seller_user = tianguis_app::people::create_user(
        &db,
        NewUser {
            phone: "+520000009000",
            email: None,
            name: "Bench seller",
            password: "bench-pass",
            role: Role::Seller,
            place_id: Some(place),
        },
    )
    .await?;
    let seller = db
        .create_seller(seller_user.id, "Bench shop", place, 3, true)
        .await?;
    let mut products = Vec::new();
    for i in 0..50 {
        let input = tianguis_store::catalog::ProductInput {
            category_id: cat,
            name_en: format!("Bench item {i}"),
            price_minor: 1000 + i,
            stock: 1_000_000,
            ..Default::default()
        };
        products.push(db.create_product(seller, &input).await?);
    }
    let mut tokens = Vec::new();
    for c in 0..clients {
        let u = tianguis_app::people::create_user(
            &db,
            NewUser {
                phone: &format!("+5200001{:05}", c),
                email: None,
                name: "Bench buyer",
                password: "bench-pass",
                role: Role::Buyer,
                place_id: None,
            },
        )
        .await?;
        tokens.push(db.create_api_token(u.id, "bench").await?);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = tianguis_web::Config::local(&format!("http://{addr}"));
    config.checkout_per_minute = 1_000_000;
    config.sim_approve_after_ms = 10;
    config.payout_schedule = false;
    let state = tianguis_web::state(db.clone(), config);
    tokio::spawn(tianguis_web::serve(state, listener));
    tianguis_demo::bench::settle(&db).await;
    let load = Load {
        http: reqwest::Client::new(),
        url: format!("http://{addr}/api/v1/checkout"),
        tokens,
        products,
    };
    // The raw ceiling just before and just after the checkouts, half the time each: a disk's
    // speed drifts over a minute, and the ratio should compare like with like.
    let raw = |db: Db| async move {
        tianguis_demo::bench::raw_write_ceiling(
            &db,
            clients,
            Duration::from_secs_f64(seconds as f64 / 2.0),
        )
        .await
    };
    let ceiling_before = raw(db.clone()).await?;
    let (before, cpu_before) = (write_counters(&db).await?, process_cpu_seconds());
    let mut lat = load.run("max", Duration::from_secs(seconds), None).await?;
    let (after, cpu_after) = (write_counters(&db).await?, process_cpu_seconds());
    let ceiling_after = raw(db.clone()).await?;
    let ceiling = (ceiling_before + ceiling_after) / 2.0;
    let done = lat.len().max(1) as f64;
    let rate = lat.len() as f64 / seconds as f64;
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    // Half the rate just measured, paced: latency counts from when each request was due.
    let half = rate / 2.0;
    let mut paced = load
        .run("half", Duration::from_secs(seconds), Some(half))
        .await?;
    let paced_rate = paced.len() as f64 / seconds as f64;
    let (h50, h99) = (pct(&mut paced, 0.5), pct(&mut paced, 0.99));
    println!("database      {fresh_url}");
    println!("clients       {clients}");
    println!(
        "checkouts/s   {rate:.1}  (p50 {p50:.1} ms, p99 {p99:.1} ms, {} ok)",
        lat.len()
    );
    println!(
        "at half rate  {paced_rate:.1}/s asked {half:.1}/s  (p50 {h50:.1} ms, p99 {h99:.1} ms)"
    );
    println!(
        "raw ceiling   {ceiling:.1} tx/s  (before {ceiling_before:.1}, after {ceiling_after:.1}; {})",
        tianguis_demo::bench::ceiling_name(&db)
    );
    println!(
        "ratio         {:.2}",
        if ceiling > 0.0 { rate / ceiling } else { 0.0 }
    );
    println!(
        "per checkout  {:.1} rows written, {:.3} durable commits{}, {:.2} ms CPU in this process (HTTP server, handlers and the load generator)",
        (after.rows - before.rows) as f64 / done,
        (after.commits - before.commits) as f64 / done,
        match (before.wal_syncs, after.wal_syncs) {
            (Some(a), Some(b)) => format!(", {:.3} WAL fsyncs", (b - a) as f64 / done),
            _ => " (one WAL fsync each, plus checkpoints)".to_string(),
        },
        (cpu_after - cpu_before) * 1000.0 / done,
    );
    db.close().await;
    drop_fresh(url, &fresh_url).await
}

async fn credential(database_url: &str, cmd: CredentialCmd) -> Result<()> {
    use tianguis_app::credentials;
    let show = |k: &tianguis_store::keys::SigningKey| {
        let state = match (k.retired_at, k.revoked_at) {
            (_, Some(_)) => "revoked",
            (Some(_), None) => "retired",
            (None, None) => "in use",
        };
        println!("{}  {state}", k.public_multibase);
    };
    match cmd {
        CredentialCmd::Verify { file, keys } => {
            let read = |p: &std::path::Path| -> std::result::Result<serde_json::Value, String> {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                tianguis_app::credentials::parse(&text).map_err(|e| format!("{}: {e}", p.display()))
            };
            let outcome = async {
                let credential = read(&file)?;
                let (did_document, now) = match keys {
                    Some(k) => (read(&k)?, tianguis_store::Clock::default().now_ms()),
                    None => {
                        let db = open(database_url).await.map_err(|e| format!("{e:#}"))?;
                        let doc = credentials::did_document(&db, "http://localhost")
                            .await
                            .map_err(|e| e.to_string())?;
                        (doc, db.now_ms())
                    }
                };
                credentials::check(&credential, &did_document, now).map_err(|e| e.to_string())
            };
            match outcome.await {
                Ok(()) => println!("valid"),
                Err(why) => {
                    println!("invalid: {why}");
                    std::process::exit(1);
                }
            }
        }
        CredentialCmd::Issue { file } => {
            let db = open(database_url).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let signed = credentials::issue(&db, &doc).await?;
            println!("{}", serde_json::to_string_pretty(&signed)?);
        }
        CredentialCmd::Keys { cmd } => {
            let db = open(database_url).await?;
            match cmd {
                KeysCmd::Generate => show(&credentials::new_key(&db, false).await?),
                KeysCmd::Rotate => show(&credentials::new_key(&db, true).await?),
                KeysCmd::List => {
                    for k in db.signing_keys().await? {
                        show(&k);
                    }
                }
                KeysCmd::Revoke { public_key } => {
                    db.revoke_signing_key(&public_key).await?;
                    println!("revoked {public_key}");
                }
            }
        }
    }
    Ok(())
}

/// Checkout traffic through the HTTP API: one task per buyer token.
struct Load {
    http: reqwest::Client,
    url: String,
    tokens: Vec<String>,
    products: Vec<i64>,
}

impl Load {
    /// Closed loop (each client sends its next checkout when the last is answered) or, with
    /// `pace`, that many checkouts a second spread over the clients, each latency counted
    /// from when its request was due. Returns the latencies (ms) of the checkouts created.
    async fn run(&self, phase: &str, for_: Duration, pace: Option<f64>) -> Result<Vec<f64>> {
        let start = tokio::time::Instant::now();
        let deadline = start + for_;
        let clients = self.tokens.len();
        let mut tasks = Vec::new();
        for (c, token) in self.tokens.iter().cloned().enumerate() {
            let (http, url, products) =
                (self.http.clone(), self.url.clone(), self.products.clone());
            let phase = phase.to_string();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut n = 0u64;
                loop {
                    let due = match pace {
                        Some(rate) => {
                            let at = start
                                + Duration::from_secs_f64((n as f64 * clients as f64 + c as f64) / rate.max(0.1));
                            tokio::time::sleep_until(at).await;
                            at
                        }
                        None => tokio::time::Instant::now(),
                    };
                    if due >= deadline {
                        break;
                    }
                    let body = serde_json::json!({"lines": [{"product_id": products[(c + n as usize) % products.len()], "quantity": 1}], "method": "cash", "address": "7685X722+FQ Bench", "phone": "+529510000000"});
                    let r = http.post(&url).bearer_auth(&token).header("Idempotency-Key", format!("{phase}{c}-{n}")).json(&body).send().await;
                    if r.is_ok_and(|r| r.status().as_u16() == 201) {
                        lat.push(due.elapsed().as_secs_f64() * 1000.0);
                    }
                    n += 1;
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await?);
        }
        Ok(lat)
    }
}

/// Remove a database [`fresh`] made.
async fn drop_fresh(url: &str, fresh_url: &str) -> Result<()> {
    if fresh_url.starts_with("sqlite:") {
        let f = fresh_url.trim_start_matches("sqlite:");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{f}{suffix}"));
        }
    } else if let Some(name) = fresh_url.rsplit('/').next() {
        let admin = Db::connect(url).await?;
        admin
            .raw_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}

/// Serve a plain router until SIGTERM or Ctrl-C (the simulators' process).
async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) -> Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(tianguis_web::stop_signal())
        .await?;
    Ok(())
}
