//! The format from the leading bytes, and the size a header claims.

use super::{format_name, jpeg_invalid, ImageError, FORMATS};
use image::{ImageFormat, ImageReader};
use std::io::Cursor;

/// Decides the format from the leading bytes.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    // A JPEG cut right after its start-of-image marker is still a JPEG
    // (one that does not decode), not an unknown format.
    if bytes.len() < 4 && bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(ImageFormat::Jpeg);
    }
    match image::guess_format(bytes) {
        Ok(f) if FORMATS.contains(&f) => Ok(f),
        _ => Err(ImageError::UnsupportedFormat),
    }
}

/// Width and height as the header states them, without decoding pixels.
pub fn header_dimensions(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), ImageError> {
    let format = sniff(bytes)?;
    if format == ImageFormat::Jpeg {
        let h = jpeg_parts::header(bytes).map_err(jpeg_invalid)?;
        return Ok((format, h.width, h.height));
    }
    let invalid = |e: image::ImageError| ImageError::Invalid {
        format: format_name(format),
        reason: e.to_string(),
    };
    // Sizes the decoders refuse to even report (BMP over 65535 a side, a
    // WebP canvas without its image chunk) are read here, so that a lying
    // header is "too large", not "invalid".
    //
    // Why not the `imagesize` crate (0.15, tried on crafted files): it reads
    // a BMP's height unsigned (every top-down BMP, height -17, would come
    // out 4294967279 rows and be refused as too large), misreads OS/2 core
    // headers and VP8 frames with scale bits, and reads a GIF's screen
    // only, while the decoder allocates by its largest frame. `image`'s own
    // header reading (below) stays the first source; these three readers
    // cover exactly its gaps.
    let claimed = match format {
        ImageFormat::Bmp => bmp_claimed_size(bytes),
        ImageFormat::WebP => webp_claimed_size(bytes),
        ImageFormat::Gif => gif_claimed_size(bytes),
        _ => None,
    };
    // A claim larger than what the decoder reports wins: the decoder
    // allocates by the claim (a GIF frame larger than its screen).
    if let Some((w, h)) = claimed {
        if u64::from(w) * u64::from(h) > u64::from(u32::MAX) {
            return Ok((format, w, h));
        }
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    match reader.into_dimensions() {
        Ok((w, h)) => match claimed {
            Some((cw, ch)) if u64::from(cw) * u64::from(ch) > u64::from(w) * u64::from(h) => {
                Ok((format, cw, ch))
            }
            _ => Ok((format, w, h)),
        },
        Err(e) => match claimed {
            Some((w, h)) => Ok((format, w, h)),
            None => Err(invalid(e)),
        },
    }
}

/// Width and height from a BMP's info header (height may be negative for
/// top-down rows).
fn bmp_claimed_size(b: &[u8]) -> Option<(u32, u32)> {
    let header_len = u32::from_le_bytes(b.get(14..18)?.try_into().ok()?);
    if header_len == 12 {
        let w = u16::from_le_bytes(b.get(18..20)?.try_into().ok()?);
        let h = u16::from_le_bytes(b.get(20..22)?.try_into().ok()?);
        return Some((w.into(), h.into()));
    }
    let w = i32::from_le_bytes(b.get(18..22)?.try_into().ok()?);
    let h = i32::from_le_bytes(b.get(22..26)?.try_into().ok()?);
    Some((w.unsigned_abs(), h.unsigned_abs()))
}

/// The size a WebP's first chunk states: the canvas of `VP8X`, the
/// 14-bit sides of lossless `VP8L` (image-webp 0.2 misreads 16384 as 0), or
/// the frame of lossy `VP8 `.
fn webp_claimed_size(b: &[u8]) -> Option<(u32, u32)> {
    let u24 = |at: usize| -> Option<u32> {
        let v = b.get(at..at + 3)?;
        Some(u32::from(v[0]) | u32::from(v[1]) << 8 | u32::from(v[2]) << 16)
    };
    match b.get(12..16)? {
        b"VP8X" => Some((u24(24)? + 1, u24(27)? + 1)),
        b"VP8L" => {
            if *b.get(20)? != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8 " => {
            if b.get(23..26)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            let w = u16::from_le_bytes(b.get(26..28)?.try_into().ok()?) & 0x3FFF;
            let h = u16::from_le_bytes(b.get(28..30)?.try_into().ok()?) & 0x3FFF;
            Some((w.into(), h.into()))
        }
        _ => None,
    }
}

/// The larger of a GIF's logical screen and its first frame (position
/// plus size): decoders allocate a frame by what its descriptor says.
fn gif_claimed_size(b: &[u8]) -> Option<(u32, u32)> {
    let u16_at = |at: usize| -> Option<u32> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?).into())
    };
    let (sw, sh) = (u16_at(6)?, u16_at(8)?);
    let flags = *b.get(10)?;
    let mut i = 13;
    if flags & 0x80 != 0 {
        i += 3 << ((flags & 0x07) + 1);
    }
    loop {
        match *b.get(i)? {
            // Extension: label, then data sub-blocks up to a zero length.
            0x21 => {
                i += 2;
                loop {
                    let n = usize::from(*b.get(i)?);
                    i += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let (left, top) = (u16_at(i + 1)?, u16_at(i + 3)?);
                let (fw, fh) = (u16_at(i + 5)?, u16_at(i + 7)?);
                return Some((sw.max(left + fw), sh.max(top + fh)));
            }
            _ => return Some((sw, sh)),
        }
    }
}
