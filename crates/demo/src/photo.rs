//! Demo pictures: plain gradients, so demo products have photos without shipping images.

use image::codecs::jpeg::JpegEncoder;
use tianguis_store::images::Photo;

/// A plain demo picture: a two-colour gradient with a band, so demo products have photos.
pub fn demo_photo(seed: u64) -> Photo {
    let (w, h) = (320u32, 240u32);
    let a = [
        (seed * 37 % 200) as u8 + 40,
        (seed * 91 % 200) as u8 + 30,
        (seed * 53 % 200) as u8 + 20,
    ];
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        let band = (y / 40) % 2 == 0;
        let k = if band { 1.0 } else { 0.85 };
        image::Rgb([
            (a[0] as f32 * (1.0 - t) * k + 240.0 * t) as u8,
            (a[1] as f32 * k) as u8,
            (a[2] as f32 * (0.5 + t) * k).min(255.0) as u8,
        ])
    });
    let mut out = Vec::new();
    let _ = JpegEncoder::new_with_quality(&mut out, 60).encode_image(&img);
    Photo {
        bytes: out,
        content_type: "image/jpeg",
        width: w,
        height: h,
    }
}
