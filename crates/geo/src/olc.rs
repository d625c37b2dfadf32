//! Open Location Code. All encoding works on integers: latitude in units of 1/2.5e7 degree and
//! longitude in units of 1/8.192e6 degree (the precision of a 15-digit code). Degrees given as
//! `f64` are converted through their shortest decimal form with exact integer arithmetic, so
//! `20.3701135` becomes exactly `20.3701135 * 2.5e7`, never `509252837.49999994`.

use std::fmt;

const ALPHABET: &[u8; 20] = b"23456789CFGHJMPQRVWX";
const SEPARATOR: char = '+';
const SEPARATOR_POSITION: usize = 8;
const PADDING: char = '0';
const PAIR_CODE_LENGTH: usize = 10;
const MAX_DIGITS: usize = 15;
const GRID_ROWS: i64 = 5;
const GRID_COLS: i64 = 4;
/// Units per degree at full precision.
const LAT_UNITS: i64 = 25_000_000;
const LNG_UNITS: i64 = 8_192_000;
const LAT_MAX_UNITS: i64 = 180 * LAT_UNITS;
const LNG_MAX_UNITS: i64 = 360 * LNG_UNITS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OlcError {
    #[error("'{0}' is not a plus code")]
    Invalid(String),
    #[error("'{0}' is a short plus code; give a nearby place or location to recover it")]
    NotFull(String),
    #[error("a plus code has 2, 4, 6, 8 or 10 to 15 digits, not {0}")]
    BadLength(usize),
    #[error("'{0}' has padding and cannot be shortened")]
    Padded(String),
    #[error("latitude and longitude must be numbers")]
    NotANumber,
}

/// A valid plus code, full or short, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlusCode(String);

/// The area a code stands for: south-west corner (inclusive) to north-east corner (exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeArea {
    pub lat_lo: f64,
    pub lng_lo: f64,
    pub lat_hi: f64,
    pub lng_hi: f64,
    pub length: usize,
}

impl CodeArea {
    pub fn center(&self) -> (f64, f64) {
        (
            ((self.lat_lo + self.lat_hi) / 2.0).min(90.0),
            ((self.lng_lo + self.lng_hi) / 2.0).min(180.0),
        )
    }
}

fn digit_value(c: char) -> Option<i64> {
    let u = c.to_ascii_uppercase();
    ALPHABET
        .iter()
        .position(|&a| a as char == u)
        .map(|p| p as i64)
}

fn digit(v: i64) -> char {
    ALPHABET[v as usize] as char
}

/// `floor(x * units)` exactly, for the decimal that `x` prints as.
fn floor_times(x: f64, units: i64) -> i64 {
    let s = format!("{x}");
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.as_str()),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    const FRAC: usize = 24;
    let kept: String = frac_part.chars().take(FRAC).collect();
    let dropped_nonzero = frac_part.chars().skip(FRAC).any(|c| c != '0');
    let mut m: i128 = 0;
    for ch in int_part.chars().chain(kept.chars()) {
        m = m * 10 + i128::from(ch.to_digit(10).unwrap_or(0));
    }
    for _ in kept.len()..FRAC {
        m *= 10;
    }
    let scale: i128 = 10i128.pow(FRAC as u32);
    let prod = m * i128::from(units);
    let (q, r) = (prod / scale, prod % scale);
    let v = if neg {
        if r != 0 || dropped_nonzero {
            -q - 1
        } else {
            -q
        }
    } else {
        q
    };
    v as i64
}

/// Latitude and longitude in full-precision integer units, clipped and normalised as the
/// specification says.
pub fn location_to_integers(lat: f64, lng: f64) -> Result<(i64, i64), OlcError> {
    if !lat.is_finite() || !lng.is_finite() {
        return Err(OlcError::NotANumber);
    }
    let lat = lat.clamp(-90.0, 90.0);
    let mut lat_v = floor_times(lat, LAT_UNITS) + 90 * LAT_UNITS;
    lat_v = lat_v.clamp(0, LAT_MAX_UNITS - 1);
    // Reduce absurd longitudes first so the exact conversion stays in range.
    let lng = if lng.abs() >= 1.0e6 {
        lng.rem_euclid(360.0)
    } else {
        lng
    };
    let lng_v = (floor_times(lng, LNG_UNITS) + 180 * LNG_UNITS).rem_euclid(LNG_MAX_UNITS);
    Ok((lat_v, lng_v))
}

fn check_length(length: usize) -> Result<usize, OlcError> {
    if length < 2 || (length < PAIR_CODE_LENGTH && length % 2 == 1) {
        return Err(OlcError::BadLength(length));
    }
    Ok(length.min(MAX_DIGITS))
}

/// Encode integer units (as from [`location_to_integers`]) to a code of `length` digits.
pub fn encode_integers(lat_v: i64, lng_v: i64, length: usize) -> Result<PlusCode, OlcError> {
    let length = check_length(length)?;
    let mut lat = lat_v;
    let mut lng = lng_v;
    let mut rev: Vec<char> = Vec::with_capacity(MAX_DIGITS);
    // Digits 15..11: one each, from a 5x4 grid.
    for _ in 0..(MAX_DIGITS - PAIR_CODE_LENGTH) {
        rev.push(digit((lat % GRID_ROWS) * GRID_COLS + lng % GRID_COLS));
        lat /= GRID_ROWS;
        lng /= GRID_COLS;
    }
    // Digits 10..1: in pairs (latitude first), base 20.
    for _ in 0..(PAIR_CODE_LENGTH / 2) {
        rev.push(digit(lng % 20));
        rev.push(digit(lat % 20));
        lat /= 20;
        lng /= 20;
    }
    let digits: Vec<char> = rev.into_iter().rev().collect();
    let mut code = String::with_capacity(length + 8);
    for (i, c) in digits.iter().enumerate() {
        if i == SEPARATOR_POSITION {
            code.push(SEPARATOR);
        }
        if i < length {
            code.push(*c);
        } else if i < SEPARATOR_POSITION {
            code.push(PADDING);
        } else {
            break;
        }
    }
    // The loop always reaches position 8 (length >= 2), so the separator is in place.
    Ok(PlusCode(code))
}

impl PlusCode {
    /// The code for a location; `length` digits (10 is about 14 m, 11 about 3 m).
    pub fn encode(lat: f64, lng: f64, length: usize) -> Result<PlusCode, OlcError> {
        let (a, b) = location_to_integers(lat, lng)?;
        encode_integers(a, b, length)
    }

    /// Parse any valid code, full or short; case-insensitive, surrounding spaces ignored.
    pub fn parse(text: &str) -> Result<PlusCode, OlcError> {
        let t = text.trim();
        if is_valid(t) {
            Ok(PlusCode(t.to_ascii_uppercase()))
        } else {
            Err(OlcError::Invalid(text.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_full(&self) -> bool {
        is_full(&self.0)
    }

    pub fn is_short(&self) -> bool {
        is_short(&self.0)
    }

    /// The area of a full code.
    pub fn decode(&self) -> Result<CodeArea, OlcError> {
        if !self.is_full() {
            return Err(OlcError::NotFull(self.0.clone()));
        }
        let digits: Vec<i64> = self
            .0
            .chars()
            .filter(|c| *c != SEPARATOR && *c != PADDING)
            .take(MAX_DIGITS)
            .filter_map(digit_value)
            .collect();
        let len = digits.len();
        let mut lat: i64 = 0;
        let mut lng: i64 = 0;
        // Place value of each digit, in full-precision units.
        let mut lat_place = LAT_UNITS * 20; // first pair: 20 degrees
        let mut lng_place = LNG_UNITS * 20;
        for (i, d) in digits.iter().enumerate() {
            if i < PAIR_CODE_LENGTH {
                if i % 2 == 0 {
                    lat += d * lat_place;
                } else {
                    lng += d * lng_place;
                    lat_place /= 20;
                    lng_place /= 20;
                }
            } else {
                if i == PAIR_CODE_LENGTH {
                    lat_place = LAT_UNITS / 8000;
                    lng_place = LNG_UNITS / 8000;
                }
                lat_place /= GRID_ROWS;
                lng_place /= GRID_COLS;
                lat += (d / GRID_COLS) * lat_place;
                lng += (d % GRID_COLS) * lng_place;
            }
        }
        // Height and width of the area in units.
        let (lat_size, lng_size) = if len <= PAIR_CODE_LENGTH {
            let steps = (len / 2) as u32;
            (
                LAT_UNITS * 400 / 20i64.pow(steps),
                LNG_UNITS * 400 / 20i64.pow(steps),
            )
        } else {
            (lat_place, lng_place)
        };
        // Offset in integers, then one correctly rounded division: 20.3701, not 20.370099999999994.
        let to_lat = |v: i64| (v - 90 * LAT_UNITS) as f64 / LAT_UNITS as f64;
        let to_lng = |v: i64| (v - 180 * LNG_UNITS) as f64 / LNG_UNITS as f64;
        Ok(CodeArea {
            lat_lo: to_lat(lat),
            lng_lo: to_lng(lng),
            lat_hi: to_lat(lat + lat_size),
            lng_hi: to_lng(lng + lng_size),
            length: len,
        })
    }

    /// Remove as many leading digits as the reference location allows (at most 6).
    pub fn shorten(&self, lat: f64, lng: f64) -> Result<PlusCode, OlcError> {
        if !self.is_full() {
            return Err(OlcError::NotFull(self.0.clone()));
        }
        if self.0.contains(PADDING) {
            return Err(OlcError::Padded(self.0.clone()));
        }
        if !lat.is_finite() || !lng.is_finite() {
            return Err(OlcError::NotANumber);
        }
        let (c_lat, c_lng) = self.decode()?.center();
        let range = (clip_lat(lat) - c_lat)
            .abs()
            .max((normalize_lng(lng) - c_lng).abs());
        for pairs in [4usize, 3, 2, 1] {
            // Shorten only well inside half the precision of what is removed (0.3 for safety).
            if range < lat_precision(pairs * 2) * 0.3 {
                return Ok(PlusCode(self.0[pairs * 2..].to_string()));
            }
        }
        Ok(self.clone())
    }

    /// The full code nearest the reference location that ends with this short code.
    pub fn recover(&self, lat: f64, lng: f64) -> Result<PlusCode, OlcError> {
        if self.is_full() {
            return Ok(self.clone());
        }
        if !lat.is_finite() || !lng.is_finite() {
            return Err(OlcError::NotANumber);
        }
        let (r_lat, r_lng) = (clip_lat(lat), normalize_lng(lng));
        let sep = self.0.find(SEPARATOR).unwrap_or(0);
        let missing = SEPARATOR_POSITION - sep;
        let prefix_precision = 20f64.powi(2 - (missing as i32 / 2));
        let reference = PlusCode::encode(r_lat, r_lng, PAIR_CODE_LENGTH)?;
        let candidate = PlusCode(format!("{}{}", &reference.0[..missing], self.0));
        let area = candidate.decode()?;
        let (mut c_lat, mut c_lng) = area.center();
        let d_lat = c_lat - r_lat;
        if d_lat > prefix_precision / 2.0 && c_lat - prefix_precision > -90.0 {
            c_lat -= prefix_precision;
        } else if d_lat < -prefix_precision / 2.0 && c_lat + prefix_precision < 90.0 {
            c_lat += prefix_precision;
        }
        let d_lng = c_lng - r_lng;
        if d_lng > prefix_precision / 2.0 {
            c_lng -= prefix_precision;
        } else if d_lng < -prefix_precision / 2.0 {
            c_lng += prefix_precision;
        }
        PlusCode::encode(c_lat, c_lng, area.length)
    }
}

impl fmt::Display for PlusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn clip_lat(lat: f64) -> f64 {
    lat.clamp(-90.0, 90.0)
}

fn normalize_lng(lng: f64) -> f64 {
    if (-180.0..180.0).contains(&lng) {
        lng
    } else {
        (lng + 180.0).rem_euclid(360.0) - 180.0
    }
}

/// Height in degrees of a code of `length` digits.
fn lat_precision(length: usize) -> f64 {
    if length <= PAIR_CODE_LENGTH {
        20f64.powi(2 - (length as i32 / 2))
    } else {
        20f64.powi(-3) / 5f64.powi(length as i32 - PAIR_CODE_LENGTH as i32)
    }
}

/// The specification's validity rules: one separator at an even position up to 8; padding only
/// before the separator of a full code, from an even position, with nothing after the
/// separator; never a single digit after the separator; only code characters.
pub fn is_valid(code: &str) -> bool {
    let chars: Vec<char> = code.chars().collect();
    let Some(sep) = chars.iter().position(|c| *c == SEPARATOR) else {
        return false;
    };
    if chars.iter().filter(|c| **c == SEPARATOR).count() != 1 || chars.len() == 1 {
        return false;
    }
    if sep > SEPARATOR_POSITION || sep % 2 == 1 {
        return false;
    }
    if let Some(pad) = chars.iter().position(|c| *c == PADDING) {
        // Padding comes before the separator (found by the property test: "CVV2JV2P+FFPFV0").
        if sep < SEPARATOR_POSITION || pad == 0 || pad % 2 == 1 || pad > sep {
            return false;
        }
        // Padding runs from `pad` to the separator, and the code ends at the separator.
        if chars[pad..sep].iter().any(|c| *c != PADDING) || chars.len() > sep + 1 {
            return false;
        }
    }
    if chars.len() - sep - 1 == 1 {
        return false;
    }
    chars
        .iter()
        .all(|c| *c == SEPARATOR || *c == PADDING || digit_value(*c).is_some())
}

pub fn is_short(code: &str) -> bool {
    is_valid(code) && code.find(SEPARATOR).is_some_and(|s| s < SEPARATOR_POSITION)
}

pub fn is_full(code: &str) -> bool {
    if !is_valid(code) || is_short(code) {
        return false;
    }
    let mut it = code.chars();
    let first_lat = it.next().and_then(digit_value).unwrap_or(0);
    let first_lng = it.next().and_then(digit_value).unwrap_or(0);
    first_lat * 20 < 180 && first_lng * 20 < 360
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimal_conversion() {
        assert_eq!(floor_times(20.3701135, LAT_UNITS), 509_252_837);
        assert_eq!(floor_times(-0.0000001, LAT_UNITS), -3);
        assert_eq!(floor_times(-1.0, LAT_UNITS), -25_000_000);
        assert_eq!(floor_times(1e-300, LAT_UNITS), 0);
        assert_eq!(floor_times(-1e-300, LAT_UNITS), -1);
    }

    #[test]
    fn round_trip_of_a_village_address() {
        let c = PlusCode::encode(17.0654, -96.7236, 10).unwrap();
        assert_eq!(c.as_str().len(), 11);
        let area = c.decode().unwrap();
        let (lat, lng) = area.center();
        assert!((lat - 17.0654).abs() < 0.0002 && (lng - (-96.7236)).abs() < 0.0002);
        let short = c.shorten(17.06, -96.72).unwrap();
        assert!(short.is_short());
        assert_eq!(short.recover(17.06, -96.72).unwrap(), c);
    }
}

/// Find a plus code inside a free-text address ("8C4X+2F Santa Ana, blue house"). A word with a
/// `+` that is not a valid code is an error, so a mistyped code is caught rather than ignored.
pub fn find_in_text(text: &str) -> Result<Option<PlusCode>, OlcError> {
    for word in text.split_whitespace() {
        if !word.contains(SEPARATOR) {
            continue;
        }
        let w = word
            .trim_matches(|c: char| matches!(c, ',' | ';' | '.' | ':' | '(' | ')' | '"' | '\''));
        // "+52 951 ..." is a phone number, not a code.
        if w.starts_with(SEPARATOR) && w[1..].chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        return PlusCode::parse(w).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod find_tests {
    use super::*;
    #[test]
    fn codes_in_addresses() {
        assert_eq!(
            find_in_text("8c4x+2f Santa Ana, casa azul")
                .unwrap()
                .unwrap()
                .as_str(),
            "8C4X+2F"
        );
        assert_eq!(
            find_in_text("Casa azul (76GQ8C4X+2F).")
                .unwrap()
                .unwrap()
                .as_str(),
            "76GQ8C4X+2F"
        );
        assert_eq!(
            find_in_text("junto a la iglesia, tel +52 951").unwrap(),
            None
        );
        assert!(
            find_in_text("8C4X+2 Santa Ana").is_err(),
            "a mistyped code is caught"
        );
        assert_eq!(find_in_text("").unwrap(), None);
    }
}
