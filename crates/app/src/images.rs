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
}
