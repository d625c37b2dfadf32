//! The SMS alphabet (3GPP TS 23.038): a text goes as GSM 7-bit when every character is in the
//! default alphabet or its extension table (which costs two septets each), else as UCS-2.
//! A single part holds 160 septets or 70 UCS-2 characters; a concatenated part loses room to
//! its header and holds 153 or 67. Latin letters the GSM alphabet lacks (á, í, ó, ú, ...) are
//! folded to their base letter so a Spanish text stays GSM (a third of the parts it would take
//! in UCS-2); any other character (Bangla) keeps the text UCS-2, unchanged.

/// The default alphabet's printable characters (the escape to the extension table left out).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: each is sent as the escape and a second septet.
const EXTENDED: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

/// A text as it will be sent: possibly folded, its encoding and how many parts it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub text: String,
    pub encoding: Encoding,
    pub parts: u32,
}

/// The most parts a message of ours may take (each part is paid for).
pub const MAX_PARTS: u32 = 2;

fn septets(c: char) -> Option<u32> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// A Latin letter with a mark the GSM alphabet lacks, as the nearest one it has.
fn fold(c: char) -> Option<char> {
    Some(match c {
        'á' | 'â' | 'ã' | 'ā' => 'a',
        'Á' | 'À' | 'Â' | 'Ã' => 'A',
        'ê' | 'ë' | 'ē' => 'e',
        'È' | 'Ê' | 'Ë' => 'E',
        'í' | 'î' | 'ï' | 'ī' => 'i',
        'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
        'ó' | 'ô' | 'õ' | 'ō' => 'o',
        'Ó' | 'Ò' | 'Ô' | 'Õ' => 'O',
        'ú' | 'û' | 'ū' => 'u',
        'Ú' | 'Ù' | 'Û' => 'U',
        'ç' => 'Ç',
        'ý' | 'ÿ' => 'y',
        'Ý' => 'Y',
        '‘' | '’' | '´' | '`' => '\'',
        '“' | '”' => '"',
        '–' | '—' => '-',
        '…' => '.',
        '\u{a0}' => ' ',
        _ => return None,
    })
}

fn parts(units: u32, single: u32, multi: u32) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

/// How `text` goes out.
pub fn prepare(text: &str) -> Prepared {
    let folded: Option<String> = text
        .chars()
        .map(|c| {
            if septets(c).is_some() {
                Some(c)
            } else {
                fold(c)
            }
        })
        .collect();
    match folded {
        Some(t) => {
            let units: u32 = t.chars().map(|c| septets(c).unwrap_or(1)).sum();
            Prepared {
                parts: parts(units, 160, 153),
                text: t,
                encoding: Encoding::Gsm7,
            }
        }
        None => {
            // UCS-2 counts UTF-16 code units (a character outside the BMP takes two).
            let units = text.encode_utf16().count() as u32;
            Prepared {
                parts: parts(units, 70, 67),
                text: text.to_string(),
                encoding: Encoding::Ucs2,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_parts_follow_the_standard() {
        assert_eq!(prepare(&"a".repeat(160)).parts, 1);
        assert_eq!(prepare(&"a".repeat(161)).parts, 2);
        assert_eq!(prepare(&"a".repeat(306)).parts, 2);
        assert_eq!(prepare(&"a".repeat(307)).parts, 3);
        // The extension table costs two septets.
        let euros = prepare(&"€".repeat(80));
        assert_eq!((euros.encoding, euros.parts), (Encoding::Gsm7, 1));
        assert_eq!(prepare(&"€".repeat(81)).parts, 2);
        assert_eq!(prepare("").parts, 1);
    }

    #[test]
    fn spanish_folds_to_gsm_and_bangla_is_ucs2() {
        let p = prepare("Su pedido está en camino: código 123456. ¿Dudas? Pregúntenos.");
        assert_eq!(p.encoding, Encoding::Gsm7);
        assert_eq!(
            p.text,
            "Su pedido esta en camino: codigo 123456. ¿Dudas? Preguntenos."
        );
        // ñ, é, ¿ and ¡ are in the alphabet and stay.
        assert_eq!(prepare("¡Señor José!").text, "¡Señor José!");
        let bn = prepare("আপনার অর্ডার পৌঁছেছে");
        assert_eq!((bn.encoding, bn.parts), (Encoding::Ucs2, 1));
        assert_eq!(bn.text, "আপনার অর্ডার পৌঁছেছে");
        assert_eq!(prepare(&"অ".repeat(70)).parts, 1);
        assert_eq!(prepare(&"অ".repeat(71)).parts, 2);
        assert_eq!(prepare(&"অ".repeat(134)).parts, 2);
        assert_eq!(prepare(&"অ".repeat(135)).parts, 3);
        // One character outside the alphabet makes the whole text UCS-2.
        assert_eq!(prepare("ok ✓").encoding, Encoding::Ucs2);
    }
}
