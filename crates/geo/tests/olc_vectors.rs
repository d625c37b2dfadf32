//! The official Open Location Code test vectors (google/open-location-code `test_data/`, kept in
//! `tests/data/olc/`, copied from `../shared/data/olc/` with its Apache-2.0 licence). Every row must pass.

use proptest::prelude::*;
use tianguis_geo::olc::{self, PlusCode};

fn rows(name: &str) -> Vec<Vec<String>> {
    let path = format!("{}/tests/data/olc/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .collect()
}

#[test]
fn encoding_vectors() {
    let rows = rows("encoding.csv");
    assert!(rows.len() >= 300, "{} rows", rows.len());
    let mut failures = Vec::new();
    for r in &rows {
        let (lat, lng): (f64, f64) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        let (lat_i, lng_i): (i64, i64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        let len: usize = r[4].parse().unwrap();
        let want = r.get(5).cloned().unwrap_or_default();
        let ints = olc::location_to_integers(lat, lng).unwrap();
        if ints != (lat_i, lng_i) {
            failures.push(format!(
                "integers of {lat},{lng}: {ints:?} != ({lat_i}, {lng_i})"
            ));
        }
        let from_ints = olc::encode_integers(lat_i, lng_i, len)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let from_degrees = PlusCode::encode(lat, lng, len)
            .map(|c| c.to_string())
            .unwrap_or_default();
        if from_ints != want || from_degrees != want {
            failures.push(format!(
                "{lat},{lng} len {len}: want {want:?}, ints {from_ints:?}, degrees {from_degrees:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn decoding_vectors() {
    let rows = rows("decoding.csv");
    assert!(rows.len() >= 400);
    for r in &rows {
        let area = PlusCode::parse(&r[0]).unwrap().decode().unwrap();
        let want: Vec<f64> = r[2..6].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(area.length, r[1].parse::<usize>().unwrap(), "{}", r[0]);
        for (got, want) in [area.lat_lo, area.lng_lo, area.lat_hi, area.lng_hi]
            .iter()
            .zip(&want)
        {
            assert!((got - want).abs() < 1e-10, "{}: {got} != {want}", r[0]);
        }
    }
}

#[test]
fn validity_vectors() {
    for r in rows("validityTests.csv") {
        let (code, valid, short, full) = (&r[0], r[1] == "true", r[2] == "true", r[3] == "true");
        assert_eq!(olc::is_valid(code), valid, "valid {code}");
        assert_eq!(olc::is_short(code), short, "short {code}");
        assert_eq!(olc::is_full(code), full, "full {code}");
    }
}

#[test]
fn short_code_vectors() {
    for r in rows("shortCodeTests.csv") {
        let (full, lat, lng, short, kind) = (
            &r[0],
            r[1].parse::<f64>().unwrap(),
            r[2].parse::<f64>().unwrap(),
            &r[3],
            r[4].as_str(),
        );
        if kind == "S" || kind == "B" {
            let got = PlusCode::parse(full).unwrap().shorten(lat, lng).unwrap();
            assert_eq!(got.as_str(), short, "shorten {full} near {lat},{lng}");
        }
        if kind == "R" || kind == "B" {
            let got = PlusCode::parse(short).unwrap().recover(lat, lng).unwrap();
            assert_eq!(got.as_str(), full, "recover {short} near {lat},{lng}");
        }
    }
}

/// Found by `code_shaped_strings_never_panic`: padding after the separator made the validity
/// check slice backwards. Kept as fixed cases so they run every time.
#[test]
fn padding_after_the_separator_is_an_error_not_a_panic() {
    for s in [
        "CVV2JV2P+FFPFV0",
        "8FVC9G8F+0",
        "8FVC9G8F+6X0",
        "8FVC0000+00",
        "8F+0000000",
    ] {
        assert!(PlusCode::parse(s).is_err(), "{s}");
        assert!(!tianguis_geo::olc::is_valid(s), "{s}");
    }
    assert!(
        PlusCode::parse("8FVC0000+").is_ok(),
        "padding before the separator is fine"
    );
}

proptest! {
    /// Arbitrary text is a clear error or a valid code, never a panic; valid full codes decode.
    #[test]
    fn parser_never_panics(s in "\\PC{0,24}") {
        match PlusCode::parse(&s) {
            Ok(c) => {
                if c.is_full() {
                    prop_assert!(c.decode().is_ok());
                }
                let _ = c.recover(10.0, 10.0);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Code-shaped strings (the interesting part of the input space).
    #[test]
    fn code_shaped_strings_never_panic(s in "[23456789CFGHJMPQRVWX0+]{0,17}") {
        if let Ok(c) = PlusCode::parse(&s)
            && c.is_full()
        {
            let a = c.decode().unwrap();
            prop_assert!(a.lat_lo <= a.lat_hi && a.lng_lo <= a.lng_hi);
        }
    }

    /// Encode then decode lands in a cell that contains the point, for any location.
    #[test]
    fn encode_decode_contains_the_point(lat in -90.0f64..90.0, lng in -180.0f64..180.0, len in prop::sample::select(vec![2usize, 4, 6, 8, 10, 11, 12, 13, 14, 15])) {
        let c = PlusCode::encode(lat, lng, len).unwrap();
        let a = c.decode().unwrap();
        prop_assert!(a.lat_lo <= lat + 1e-9 && lat < a.lat_hi + 1e-9, "{} {} {:?}", lat, c, a);
        prop_assert!(a.lng_lo <= lng + 1e-9 && lng < a.lng_hi + 1e-9, "{} {} {:?}", lng, c, a);
    }
}
