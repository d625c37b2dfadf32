//! A photo as stored: bytes ready to serve (prepared by `tianguis_app::images` before any
//! transaction begins). No image processing happens in storage.

#[derive(Debug, Clone)]
pub struct Photo {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}
