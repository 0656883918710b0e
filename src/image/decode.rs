//! Whole decodes (JPEG through libjpeg-turbo, other formats through
//! `image`), and the checks a JPEG passes before any pixel is decoded.

use super::{format_name, header_dimensions, orient, ImageError};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;

/// A decoded image, oriented as displayed, in 8-bit RGB.
#[derive(Debug)]
pub struct Decoded {
    pub rgb: RgbImage,
}

impl Decoded {
    pub fn width(&self) -> u32 {
        self.rgb.width()
    }
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
}

/// Decodes `bytes` whole: format from the bytes, pixel count checked against
/// `max_pixels` from the header first, EXIF orientation applied. JPEGs go
/// through libjpeg-turbo (the workspace crate `jpeg-parts`), other formats through `image`.
/// Serving reads JPEGs by parts instead ([`crate::image::source`]).
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, ImageError> {
    let (format, width, height) = header_dimensions(bytes)?;
    if format == ImageFormat::Jpeg {
        let header = jpeg_parts::header(bytes).map_err(jpeg_invalid)?;
        check_jpeg(bytes, header.width, header.height, max_pixels)?;
        let stored =
            jpeg_parts::decode_scaled(bytes, 1, jpeg_memory(max_pixels)).map_err(jpeg_invalid)?;
        return Ok(Decoded {
            rgb: orient(stored, header.orientation),
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let invalid = |reason: String| ImageError::Invalid {
        format: format_name(format),
        reason,
    };
    if width == 0 || height == 0 {
        return Err(invalid("zero width or height".into()));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The header was checked above; the allocation limit is a second fence
    // against decoders whose real output differs from what the header said
    // (RGBA 16-bit is 8 bytes a pixel, plus working buffers).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| invalid(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| invalid(e.to_string()))?;
    let rgb = match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    Ok(Decoded {
        rgb: orient(rgb, orientation),
    })
}

/// libjpeg's working memory may reach a few bytes per pixel of the image
/// (progressive files keep every coefficient); beyond that it is refused.
pub(crate) fn jpeg_memory(max_pixels: u64) -> usize {
    usize::try_from(max_pixels.saturating_mul(6).saturating_add(64 << 20)).unwrap_or(usize::MAX)
}

pub(crate) fn jpeg_invalid(e: jpeg_parts::Failed) -> ImageError {
    ImageError::Invalid {
        format: "JPEG",
        reason: e.0,
    }
}

/// What a JPEG's header and structure must pass before any pixel is
/// decoded: the size limit, a non-empty frame, and an end-of-image marker
/// after the last scan (an upload cut short has none).
pub fn check_jpeg(
    bytes: &[u8],
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<(), ImageError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(jpeg_invalid(jpeg_parts::Failed(
            "zero width or height".into(),
        )));
    }
    if !jpeg_is_complete(bytes) {
        return Err(jpeg_invalid(jpeg_parts::Failed(
            "truncated: the last scan has no end-of-image marker".into(),
        )));
    }
    Ok(())
}

/// A JPEG whose upload was cut short still decodes in most decoders, with
/// the missing rows filled in grey. The end-of-image marker after the last
/// start-of-scan tells a whole file from a cut one: entropy-coded data
/// escapes every 0xFF byte, so neither marker can occur inside it by chance.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_marker = |marker: u8| {
        bytes
            .windows(2)
            .rposition(|w| w[0] == 0xFF && w[1] == marker)
    };
    match (last_marker(0xDA), last_marker(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_every_format_and_refuses_others() {
        let img = RgbImage::from_fn(31, 17, |x, y| image::Rgb([x as u8 * 8, y as u8 * 15, 128]));
        for f in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Bmp,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let d = decode(&encode(&img, f), 1_000_000).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!((d.width(), d.height()), (31, 17), "{f:?}");
        }
        assert_eq!(decode(b"", 100).unwrap_err(), ImageError::Empty);
        assert_eq!(
            decode(b"hello world", 100).unwrap_err(),
            ImageError::UnsupportedFormat
        );
        // A TIFF header: a real image format, but not one that is served.
        let tiff = b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            decode(tiff, 1_000_000).unwrap_err(),
            ImageError::UnsupportedFormat
        );
    }

    #[test]
    fn truncated_files_are_invalid() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9]));
        for f in [ImageFormat::Png, ImageFormat::Jpeg] {
            let bytes = encode(&img, f);
            let cut = &bytes[..bytes.len() * 2 / 3];
            assert!(
                matches!(decode(cut, 1_000_000), Err(ImageError::Invalid { .. })),
                "{f:?} cut short must not decode"
            );
        }
    }

    #[test]
    fn pixel_limit_is_checked_before_decoding() {
        let img = RgbImage::new(100, 100);
        let err = decode(&encode(&img, ImageFormat::Png), 9_999).unwrap_err();
        assert_eq!(
            err,
            ImageError::TooLarge {
                width: 100,
                height: 100,
                limit: 9_999
            }
        );
    }
}
