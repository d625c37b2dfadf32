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
    let (ok, out, err) = tianguis(
        &[
            db,
            "user",
            "add",
            "--role",
            "admin",
            "--phone",
            "+52 951 000 0099",
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
    let (ok, out, err) = tianguis(&[db, "user", "token", "--phone", "+529510000099"], &d);
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
