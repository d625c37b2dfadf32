//! Product photos: decoded, resized to fit 640x640 and re-encoded as JPEG, lowering quality
//! until the file fits the 30 KB budget a 2G phone can afford.

use image::ImageReader;
use image::codecs::jpeg::JpegEncoder;
use std::io::Cursor;
use tianguis_store::images::Photo;
use tianguis_store::{Result, StoreError};

pub const MAX_PHOTO_BYTES: usize = 30 * 1024;
const MAX_SIDE: u32 = 640;

/// Turn an uploaded image (JPEG or PNG, at most 10 MB) into a served photo.
pub fn prepare_photo(upload: &[u8]) -> Result<Photo> {
    prepare(upload, MAX_SIDE, MAX_PHOTO_BYTES)
}

/// A photographed document (a signed consent form): kept legible, up to 1600 px and 400 KB.
pub fn prepare_document(upload: &[u8]) -> Result<Photo> {
    prepare(upload, 1600, 400 * 1024)
}

fn prepare(upload: &[u8], max_side: u32, max_bytes: usize) -> Result<Photo> {
    if upload.len() > 10 * 1024 * 1024 {
        return Err(StoreError::invalid("err-photo-large"));
    }
    let bad = |_| StoreError::invalid("err-photo-format");
    let mut reader = ImageReader::new(Cursor::new(upload))
        .with_guessed_format()
        .map_err(bad)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(12_000);
    limits.max_image_height = Some(12_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|_| StoreError::invalid("err-photo-format"))?;
    let mut img = if img.width() > max_side || img.height() > max_side {
        img.thumbnail(max_side, max_side)
    } else {
        img
    };
    let mut quality = 80u8;
    loop {
        let rgb = img.to_rgb8();
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&rgb)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode photo: {e}")))?;
        if out.len() <= max_bytes {
            return Ok(Photo {
                bytes: out,
                content_type: "image/jpeg",
                width: rgb.width(),
                height: rgb.height(),
            });
        }
        if quality > 35 {
            quality -= 15;
        } else {
            // Still too big at low quality: shrink the picture.
            img = img.thumbnail(img.width() * 3 / 4, img.height() * 3 / 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn big_photo_is_resized_under_budget() {
        let img = image::RgbImage::from_fn(2000, 1500, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8])
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let p = prepare_photo(&png).unwrap();
        assert!(p.bytes.len() <= MAX_PHOTO_BYTES, "{} bytes", p.bytes.len());
        assert!(p.width <= 640 && p.height <= 640);
    }
    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(
            prepare_photo(b"not an image"),
            Err(StoreError::Invalid(_))
        ));
    }

    fn small(format: image::ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    proptest::proptest! {
        // Decoding is slow next to the other parsers: 32 cases unless TIANGUIS_FUZZ_CASES says.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("TIANGUIS_FUZZ_CASES").ok().and_then(|v| v.parse::<u32>().ok()).map(|n| (n / 8).max(1)).unwrap_or(32)
        ))]

        /// Uploads are outside input: a valid PNG or JPEG with bytes flipped or cut short, or
        /// bytes of anything, is a photo or a clear error, never a panic.
        #[test]
        fn damaged_uploads_never_panic(
            png in proptest::prelude::any::<bool>(),
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..12),
            cut in 0usize..4096,
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut bytes = small(if png { image::ImageFormat::Png } else { image::ImageFormat::Jpeg });
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            bytes.truncate(cut.max(1));
            for r in [prepare_photo(&bytes), prepare_photo(&noise), prepare_document(&bytes)] {
                match r {
                    Ok(p) => proptest::prop_assert!(p.bytes.len() <= 400 * 1024 && p.width > 0),
                    Err(e) => proptest::prop_assert!(matches!(e, StoreError::Invalid(_))),
                }
            }
        }
    }
}
