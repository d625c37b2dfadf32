//! The `tianguis` binary run as a person or a script would: plus codes, migrate, backup, users.

use std::process::Command;

fn tianguis(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tianguis"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tianguis-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn plus_codes_one_result_per_line() {
    let d = temp_dir();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "pluscode",
                "encode",
                "20.3701135",
                "2.78223535156",
                "--length",
                "13",
            ],
            "7FG49QCJ+2VXGJ\n",
        ),
        (
            &["pluscode", "encode", "-41.2730625", "174.7859375"],
            "4VCPPQGP+Q9\n",
        ),
        (
            &["pluscode", "decode", "7fg49qcj+2vx"],
            "20.3701 2.78221875 20.370125 2.78225\n",
        ),
        (
            &[
                "pluscode",
                "shorten",
                "9C3W9QCJ+2VX",
                "51.3701125",
                "-1.217765625",
            ],
            "+2VX\n",
        ),
        (
            &[
                "pluscode",
                "recover",
                "CJ+2VX",
                "51.3708675",
                "-1.217765625",
            ],
            "9C3W9QCJ+2VX\n",
        ),
    ];
    for (args, want) in cases {
        let (ok, out, err) = tianguis(args, &d);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(&out, want, "{args:?}");
    }
    for bad in [
        &["pluscode", "decode", "8FWC2300+G6"][..],
        &["pluscode", "encode", "1", "2", "--length", "7"],
        &["pluscode", "decode", "CJ+2VX"],
    ] {
        let (ok, out, err) = tianguis(bad, &d);
        assert!(
            !ok && out.is_empty() && err.starts_with("error: "),
            "{bad:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn migrate_add_users_make_tokens_and_back_up() {
    let d = temp_dir().join("ops");
    std::fs::create_dir_all(&d).unwrap();
    let db = "--database-url=sqlite:ops.db";
    let (ok, out, err) = tianguis(&[db, "migrate"], &d);
    assert!(ok && out.contains("migrations applied"), "{err}");
    let (ok, _, err) = tianguis(&[db, "country", "Mexico"], &d);
    assert!(!ok && err.contains("not a country code"), "{err}");
    let (ok, out, err) = tianguis(&[db, "country", "mx"], &d);
    assert!(ok && out.contains("country MX"), "{err}");
    let (ok, out, err) = tianguis(
        &[
            db,
            "user",
            "add",
            "--role",
            "admin",
            "--phone",
            "(951) 000 0099",
            "--name",
            "Ofelia",
            "--password",
            "muy-segura-1",
        ],
        &d,
    );
    assert!(ok && out.contains("(admin)"), "{err}");
    let (ok, _, err) = tianguis(
        &[
            db,
            "user",
            "add",
            "--role",
            "admin",
            "--phone",
            "+529510000099",
            "--name",
            "Again",
            "--password",
            "muy-segura-1",
        ],
        &d,
    );
    assert!(
        !ok && err.contains("already exists"),
        "duplicate phone: {err}"
    );
    let (ok, _, err) = tianguis(
        &[
            db,
            "user",
            "add",
            "--role",
            "king",
            "--phone",
            "+529510000098",
            "--name",
            "X",
            "--password",
            "muy-segura-1",
        ],
        &d,
    );
    assert!(!ok && err.contains("is not a role"), "{err}");
    let (ok, out, err) = tianguis(&[db, "user", "token", "--phone", "951 000 0099"], &d);
    assert!(ok && out.trim().starts_with("tgs_"), "{err}");
    let _ = std::fs::remove_file(d.join("backup.db"));
    let (ok, out, err) = tianguis(&[db, "backup", "backup.db"], &d);
    assert!(ok && out.contains("backup.db"), "{err}");
    assert!(std::fs::metadata(d.join("backup.db")).unwrap().len() > 4096);
    let (ok, _, err) = tianguis(&[db, "backup", "backup.db"], &d);
    assert!(!ok && err.contains("already exists"), "{err}");
    std::fs::write(d.join("registry.csv"), "name,owner_phone,latitude,longitude\nRancho,+529511000001,16.9512,-96.7481\nNowhere,+529511000002,95,1\n").unwrap();
    let (ok, out, err) = tianguis(&[db, "registry", "import", "registry.csv"], &d);
    assert!(ok, "{err}");
    assert!(
        out.contains("imported 1, already registered 0, refused 1")
            && out.contains("line 3: Latitude is -90 to 90"),
        "{out}"
    );
    let (ok, _, err) = tianguis(&["--database-url=mysql://x", "migrate"], &d);
    assert!(!ok && err.contains("sqlite: or postgres:"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The server refuses to start half-configured: no provider and no simulators asked for, or a
/// real provider without its secret. It never prints a database password.
#[test]
fn serve_refuses_unsafe_configurations_before_it_starts() {
    let d = temp_dir().join("serve");
    std::fs::create_dir_all(&d).unwrap();
    let db = "--database-url=sqlite:serve.db";
    let bind = "--bind=127.0.0.1:0";
    // No provider at all, and no --simulators: refuse.
    let (ok, _, err) = tianguis(&[db, "serve", bind], &d);
    assert!(
        !ok && err.contains("no mobile-money provider") && err.contains("--simulators"),
        "{err}"
    );
    // A real mobile-money provider without its callback secret: refuse (a forged callback
    // would otherwise pass).
    let (ok, _, err) = tianguis(
        &[
            db,
            "serve",
            bind,
            "--simulators",
            "--momo-url=http://127.0.0.1:9/",
            "--momo-key=k",
        ],
        &d,
    );
    assert!(!ok && err.contains("--momo-secret"), "{err}");
    let (ok, _, err) = tianguis(
        &[
            db,
            "serve",
            bind,
            "--simulators",
            "--sms-url=http://127.0.0.1:9/",
            "--sms-username=u",
        ],
        &d,
    );
    assert!(!ok && err.contains("--sms-key"), "{err}");
    // A real disbursement provider without its keys: refuse (money would leave on a guess).
    let (ok, _, err) = tianguis(
        &[
            db,
            "serve",
            bind,
            "--simulators",
            "--payout-url=http://127.0.0.1:9/",
            "--payout-user=u",
            "--payout-key=k",
        ],
        &d,
    );
    assert!(!ok && err.contains("--payout-subscription-key"), "{err}");
    assert!(
        !d.join("serve.db").exists(),
        "nothing was touched before the refusal"
    );
    // A database password never reaches the terminal (the connection fails; the URL is shown
    // redacted).
    let (ok, _, err) = tianguis(
        &[
            "--database-url=postgres://app:s3cret-pw@127.0.0.1:1/nope",
            "serve",
            bind,
            "--simulators",
        ],
        &d,
    );
    assert!(!ok, "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(err.contains("app:***@"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `backup` copies what is there: a mistyped source is an error (no empty database appears,
/// nothing is reported as backed up) and the source is not migrated.
#[test]
fn backup_never_creates_or_migrates_its_source() {
    let d = temp_dir().join("backup");
    std::fs::create_dir_all(&d).unwrap();
    let (ok, out, err) = tianguis(
        &["--database-url=sqlite:tianguis-typo.db", "backup", "b.db"],
        &d,
    );
    assert!(!ok && !out.contains("written"), "{out} {err}");
    assert!(err.contains("no database"), "{err}");
    assert!(
        !d.join("tianguis-typo.db").exists(),
        "no empty database made"
    );
    assert!(!d.join("b.db").exists());
    // An unmigrated SQLite file (another program's) is copied as it is, not migrated.
    let raw = d.join("other.db");
    let status = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3; c=sqlite3.connect('{}'); c.execute('create table t(x)'); c.commit()",
                raw.display()
            ),
        ])
        .status();
    if status.map(|s| s.success()).unwrap_or(false) {
        let (ok, _, err) = tianguis(&["--database-url=sqlite:other.db", "backup", "o.db"], &d);
        assert!(ok, "{err}");
        let tables = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import sqlite3; print([r[0] for r in sqlite3.connect('{}').execute(\"select name from sqlite_master where type='table'\")])",
                    raw.display()
                ),
            ])
            .output()
            .unwrap();
        let tables = String::from_utf8_lossy(&tables.stdout);
        assert_eq!(tables.trim(), "['t']", "the source was not migrated");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `payouts run|list|approve` work on the command line as on the pages: an official prepares
/// (nothing when nobody is owed), a missing batch or a person who is not an official is a clear
/// error.
#[test]
fn payouts_on_the_command_line() {
    let d = temp_dir().join("payouts");
    std::fs::create_dir_all(&d).unwrap();
    let db = "--database-url=sqlite:payouts.db";
    let (ok, _, err) = tianguis(
        &[
            db,
            "user",
            "add",
            "--phone=+520000000091",
            "--name=Oficial",
            "--role=admin",
            "--password=password1",
        ],
        &d,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = tianguis(&[db, "payouts", "run", "--as", "+520000000091"], &d);
    assert!(ok && out.contains("nobody is owed"), "{out} {err}");
    let (ok, out, _) = tianguis(&[db, "payouts", "list"], &d);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, _, err) = tianguis(
        &[db, "payouts", "approve", "7", "--as", "+520000000091"],
        &d,
    );
    assert!(!ok && err.contains("payout batch"), "{err}");
    let (ok, _, err) = tianguis(&[db, "payouts", "run", "--as", "+520000000099"], &d);
    assert!(!ok && err.contains("account"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGTERM stops the server gracefully: a request in flight when the signal comes is still
/// answered, then the process exits cleanly (its background jobs finish the run they are in).
#[cfg(unix)]
#[test]
fn sigterm_answers_the_request_in_flight_then_exits_cleanly() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let d = temp_dir().join("graceful");
    std::fs::create_dir_all(&d).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tianguis"))
        .args([
            "--database-url=sqlite:graceful.db",
            "serve",
            &format!("--bind={addr}"),
            "--simulators",
        ])
        .current_dir(&d)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut conn = loop {
        if let Ok(c) = std::net::TcpStream::connect(&addr) {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = "phone=%2B520000000001&password=wrong-password";
    write!(
        conn,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The signal arrives while the request is half sent.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "the request in flight was answered: {answer:?}"
    );
    // Then it exits by itself, cleanly.
    let stop = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stop.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("still running 40 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("stopped"), "{out}");
    // And it no longer takes connections.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

/// The fault tests, as `.ci/run` runs them: the real server killed with SIGKILL 20 times under
/// load, and the restore drill, on each database; on PostgreSQL also two servers, one of them
/// killed each time. `tianguis chaos` audits with SQL and exits non-zero when anything broke;
/// its report is printed here for the log.
fn chaos(url: &str, extra: &[&str]) -> String {
    let d = temp_dir().join(format!("chaos-{}", unique()));
    std::fs::create_dir_all(&d).unwrap();
    let mut args = vec!["--database-url", url, "chaos", "--dir"];
    let dir = d.to_string_lossy().into_owned();
    args.push(&dir);
    args.extend_from_slice(extra);
    let (ok, out, err) = tianguis(&args, &d);
    eprintln!("{out}");
    assert!(ok, "chaos {extra:?} broke:\n{out}\n{err}");
    for line in ["lost          0", "duplicated    0", "verdict       held"] {
        assert!(out.contains(line), "{line}:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&d);
    out
}

/// A name no other test of this run uses.
fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

const KILLS: &[&str] = &["--seconds", "40", "--kills", "20"];
const RESTORE: &[&str] = &["--restore", "--seconds", "30"];

fn restarts(out: &str) -> u32 {
    out.lines()
        .find_map(|l| l.strip_prefix("restarts"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn chaos_on_sqlite_loses_nothing_under_kills_and_restores() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for extra in [KILLS, RESTORE] {
        let t = rt.block_on(tianguis_testkit::sqlite_empty());
        let out = chaos(&t.url, extra);
        if extra == KILLS {
            assert_eq!(restarts(&out), 20, "{out}");
        }
    }
}

#[test]
fn chaos_on_postgres_loses_nothing_with_one_or_two_servers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runs: [&[&str]; 3] = [
        KILLS,
        &[KILLS, &["--servers", "2"]].concat(),
        &[RESTORE, &["--servers", "2"]].concat(),
    ];
    for extra in runs {
        let Some(t) = rt.block_on(tianguis_testkit::postgres_empty()) else {
            return;
        };
        let out = chaos(&t.url, extra);
        if extra.contains(&"--kills") {
            assert_eq!(restarts(&out), 20, "{out}");
        }
    }
}

/// API fuzzing: schemathesis (installed and pinned by `.ci/run`, found through
/// `TIANGUIS_SCHEMATHESIS`) runs every check against the demo's OpenAPI document, bounded in
/// examples and time: no server error, no answer outside the document, nothing valid refused
/// that the document could have said (`.ci/schemathesis.toml` lists what it cannot).
#[test]
fn the_api_holds_under_schemathesis() {
    let st = match std::env::var("TIANGUIS_SCHEMATHESIS") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("schemathesis is required on CI (.ci/run installs it)")
        }
        _ => {
            eprintln!("SKIP API fuzzing: set TIANGUIS_SCHEMATHESIS to schemathesis's `st`");
            return;
        }
    };
    let d = temp_dir().join(format!("fuzz-{}", unique()));
    std::fs::create_dir_all(&d).unwrap();
    let port = free_port();
    let db = "--database-url=sqlite:fuzz.db";
    let mut server = Command::new(env!("CARGO_BIN_EXE_tianguis"))
        .args([
            db,
            "serve",
            "--demo",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(&d)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let up = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(up.elapsed().as_secs() < 120, "the demo did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, token, err) = tianguis(
        &[
            db,
            "user",
            "token",
            "--phone",
            tianguis_demo::DEMO_BUYER_PHONE,
            "--name",
            "fuzz",
        ],
        &d,
    );
    assert!(ok, "{err}");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/schemathesis.toml");
    let examples = std::env::var("TIANGUIS_FUZZ_EXAMPLES").unwrap_or_else(|_| "20".into());
    let out = Command::new(&st)
        .args(["--config-file", config, "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--checks", "all", "--max-examples", &examples])
        .args([
            "--max-time",
            "150",
            "--request-timeout",
            "20",
            "--seed",
            "1",
        ])
        .args(["--no-color"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .current_dir(&d)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Credentials on the command line as an operator and a lender would use them: keys made and
/// rotated, a credential signed, checked offline (with this database's keys or a saved copy of
/// the marketplace's DID document), and refused when changed, when signed by a stranger or by
/// a revoked key.
#[test]
fn credentials_are_signed_checked_offline_and_keys_rotate() {
    let d = temp_dir().join("credentials");
    std::fs::create_dir_all(&d).unwrap();
    let db = "--database-url=sqlite:credentials.db";
    let unsigned = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../credential/tests/data/unsigned.json");
    std::fs::copy(&unsigned, d.join("unsigned.json")).unwrap();
    let (ok, _, err) = tianguis(&[db, "credential", "issue", "unsigned.json"], &d);
    assert!(!ok && err.contains("no signing key"), "{err}");
    let (ok, first, err) = tianguis(&[db, "credential", "keys", "generate"], &d);
    assert!(ok && first.trim().ends_with("in use"), "{first} {err}");
    let first_key = first.split_whitespace().next().unwrap().to_string();
    assert!(first_key.starts_with("z6Mk"), "{first_key}");
    let (ok, _, err) = tianguis(&[db, "credential", "keys", "generate"], &d);
    assert!(!ok && err.contains("already has a signing key"), "{err}");
    std::fs::write(d.join("list.json"), "[1, 2]").unwrap();
    let (ok, _, err) = tianguis(&[db, "credential", "issue", "list.json"], &d);
    assert!(
        !ok && err.contains("cannot be signed: not a JSON object"),
        "{err}"
    );
    let (ok, signed, err) = tianguis(&[db, "credential", "issue", "unsigned.json"], &d);
    assert!(ok, "{err}");
    std::fs::write(d.join("signed.json"), &signed).unwrap();
    let verify = |file: &str, keys: Option<&str>| {
        let mut args = vec![db, "credential", "verify", file];
        if let Some(k) = keys {
            args.extend(["--keys", k]);
        }
        let (ok, out, err) = tianguis(&args, &d);
        (ok, format!("{out}{err}").trim().to_string())
    };
    assert_eq!(verify("signed.json", None), (true, "valid".to_string()));
    // Changed by a byte: refused, with the reason.
    std::fs::write(
        d.join("changed.json"),
        signed.replace("The School of Examples", "The School of Exampled"),
    )
    .unwrap();
    let (ok, out) = verify("changed.json", None);
    assert!(
        !ok && out.starts_with("invalid: the signature does not match"),
        "{out}"
    );
    std::fs::write(d.join("junk.json"), "{not json").unwrap();
    let (ok, out) = verify("junk.json", None);
    assert!(
        !ok && out.starts_with("invalid: junk.json: not JSON"),
        "{out}"
    );
    // Offline, with a saved copy of the marketplace's keys.
    let did = |key: &str| {
        format!(
            r#"{{"id":"did:web:m.example","verificationMethod":[{{"id":"did:web:m.example#{key}","type":"Multikey","controller":"did:web:m.example","publicKeyMultibase":"{key}"}}],"assertionMethod":["did:web:m.example#{key}"]}}"#
        )
    };
    std::fs::write(d.join("ours.json"), did(&first_key)).unwrap();
    std::fs::write(
        d.join("theirs.json"),
        did("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"),
    )
    .unwrap();
    assert_eq!(
        verify("signed.json", Some("ours.json")),
        (true, "valid".into())
    );
    let (ok, out) = verify("signed.json", Some("theirs.json"));
    assert!(!ok && out.contains("not one of the issuer's keys"), "{out}");
    // Rotated: new credentials carry the new key, the old one still counts.
    let (ok, _, err) = tianguis(&[db, "credential", "keys", "rotate"], &d);
    assert!(ok, "{err}");
    let (ok, list, _) = tianguis(&[db, "credential", "keys", "list"], &d);
    assert!(ok && list.lines().count() == 2, "{list}");
    assert!(list.lines().next().unwrap().ends_with("retired"), "{list}");
    let (ok, again, _) = tianguis(&[db, "credential", "issue", "unsigned.json"], &d);
    assert!(ok && !again.contains(&first_key), "{again}");
    assert_eq!(verify("signed.json", None), (true, "valid".to_string()));
    // The old key found compromised: what it signed no longer counts.
    let (ok, _, err) = tianguis(&[db, "credential", "keys", "revoke", &first_key], &d);
    assert!(ok, "{err}");
    let (ok, out) = verify("signed.json", None);
    assert!(!ok && out.contains("a key revoked at"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A questionnaire an officer broke keeps the server from starting, with the line and reason.
#[test]
fn serve_refuses_a_broken_questionnaire() {
    let d = temp_dir().join("questionnaire");
    std::fs::create_dir_all(&d).unwrap();
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programmes/readiness.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    std::fs::write(
        d.join("bad.toml"),
        text.replacen("version = 1", "version = 0", 1),
    )
    .unwrap();
    let port = free_port().to_string();
    let (ok, _, err) = tianguis(
        &[
            "--database-url=sqlite:q.db",
            "serve",
            "--simulators",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--questionnaire",
            "bad.toml",
        ],
        &d,
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("bad.toml: line 30: the version must be 1 or more"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The operator's check of search's word counts, and its repair.
#[test]
fn search_counts_are_checked_and_recounted_on_the_command_line() {
    let d = temp_dir().join("search-check");
    std::fs::create_dir_all(&d).unwrap();
    let db = "--database-url=sqlite:search.db";
    let (ok, out, err) = tianguis(&[db, "products", "search-check"], &d);
    assert!(
        ok && out.contains("search counts match the catalogue"),
        "{out} {err}"
    );
    // Counts knocked off (as an older server could leave them): found, then repaired.
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3; c = sqlite3.connect('search.db'); c.execute(\"INSERT INTO search_vocab (term, listings) VALUES ('ghost', 3)\"); c.commit()",
        ])
        .current_dir(&d)
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, out, err) = tianguis(&[db, "products", "search-check"], &d);
    assert!(
        !ok && out.contains("ghost: counted 3, held by 0"),
        "{out} {err}"
    );
    assert!(err.contains("--recount"), "{err}");
    let (ok, out, err) = tianguis(&[db, "products", "search-check", "--recount"], &d);
    assert!(
        ok && out.contains("search counts match the catalogue"),
        "{out} {err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
