//! Images: the format from the bytes alone, the pixel count from the
//! header before any pixel buffer exists (a 100000x100000 PNG costs a few
//! bytes of parsing, not 30 GB), strict decoding (a truncated file is an
//! error, never a partly grey image), EXIF orientation, the model's window
//! around a point, and the parts of an upload each window needs, kept for
//! the next click.
//!
//! Nothing here knows a model or tract: what a model's input is made of
//! the pixels is `crate::inference::preprocess`.

pub mod cache;
mod decode;
mod orient;
mod sniff;
pub mod source;
mod window;

pub use decode::{check_jpeg, decode};
pub(crate) use decode::{jpeg_invalid, jpeg_memory};
pub(crate) use orient::orient;
pub use sniff::{header_dimensions, sniff};
pub use window::{window, PixelBudget, Window};

use ::image::ImageFormat;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    /// Nothing to decode.
    #[error("The image is empty")]
    Empty,
    /// Bytes of no supported format.
    #[error("Unsupported image format: expected JPEG, PNG, WebP, GIF or BMP")]
    UnsupportedFormat,
    /// The header claims more pixels than `max-pixels`.
    #[error("Image of {width}x{height} pixels is over the limit of {limit} pixels")]
    TooLarge { width: u32, height: u32, limit: u64 },
    /// A supported format that does not decode completely.
    #[error("Invalid {format} image: {reason}")]
    Invalid {
        format: &'static str,
        reason: String,
    },
}

/// Formats served; anything else is refused as unsupported.
pub const FORMATS: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

pub(crate) fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "unknown",
    }
}
