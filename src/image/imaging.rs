//! Image bytes to model inputs: sniff, check size, decode once, orient, crop.
//!
//! The format is decided from the bytes alone. The pixel count is read from
//! the header and checked before any pixel buffer exists, so a 100000x100000
//! PNG costs a few bytes of parsing, not 30 GB. Decoding is strict: a
//! truncated file is an error, never a partly grey image.

use crate::config::{ChannelOrder, Crop, ModelConfig};
use image::{imageops, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::sync::Arc;

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

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "unknown",
    }
}

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

/// A decoded image, oriented as displayed, in 8-bit RGB.
#[derive(Debug)]
pub struct Decoded {
    pub format: ImageFormat,
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
            format,
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
        format,
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

/// Applies the EXIF orientation. The four that swap width and height (phone
/// photos held upright are stored turned) go through [`transpose_tiled`]:
/// on a 16 MP photo about 100 ms instead of `image`'s 130-160 ms (measured
/// on this project's machine; most of what is left is faulting in the new
/// 48 MB image).
pub(crate) fn orient(rgb: RgbImage, orientation: image::metadata::Orientation) -> RgbImage {
    use image::metadata::Orientation as O;
    let (w, h) = (rgb.width(), rgb.height());
    match orientation {
        // (x, y) of the stored image lands at these coordinates of the shown one
        O::Rotate90 => transpose_tiled(&rgb, |x, y| (h - 1 - y, x)),
        O::Rotate270 => transpose_tiled(&rgb, |x, y| (y, w - 1 - x)),
        O::Rotate90FlipH => transpose_tiled(&rgb, |x, y| (y, x)),
        O::Rotate270FlipH => transpose_tiled(&rgb, |x, y| (h - 1 - y, w - 1 - x)),
        other => {
            let mut img = DynamicImage::ImageRgb8(rgb);
            img.apply_orientation(other);
            img.into_rgb8()
        }
    }
}

/// The `h` x `w` image whose pixel `to(x, y)` is `src`'s pixel `(x, y)`,
/// for a `to` that swaps the axes (so one step along a source row is one
/// step up or down a destination column), copied 64 x 64 pixels at a time
/// so that both the rows read and the columns written stay in cache.
fn transpose_tiled(src: &RgbImage, to: impl Fn(u32, u32) -> (u32, u32)) -> RgbImage {
    const TILE: u32 = 64;
    let (w, h) = src.dimensions();
    let mut dst = RgbImage::new(h, w);
    if w == 0 || h == 0 {
        return dst;
    }
    let (s, d) = (src.as_raw(), &mut *dst);
    let (sw, dw) = (w as usize * 3, h as usize * 3);
    let index = |(dx, dy): (u32, u32)| dy as usize * dw + dx as usize * 3;
    // where the next source pixel of a row lands, relative to this one
    let step = if w > 1 {
        index(to(1, 0)) as isize - index(to(0, 0)) as isize
    } else {
        0
    };
    for ty in (0..h).step_by(TILE as usize) {
        for tx in (0..w).step_by(TILE as usize) {
            let x_end = (tx + TILE).min(w);
            for y in ty..(ty + TILE).min(h) {
                let row =
                    &s[y as usize * sw + tx as usize * 3..y as usize * sw + x_end as usize * 3];
                let mut di = index(to(tx, y)) as isize;
                for px in row.chunks_exact(3) {
                    let at = di as usize;
                    d[at..at + 3].copy_from_slice(px);
                    di += step;
                }
            }
        }
    }
    dst
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

/// Where the model's window lies in the image: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub x: i64,
    pub y: i64,
    pub width: u32,
    pub height: u32,
}

impl Window {
    /// Whether the window lies wholly inside `img`.
    fn inside(&self, img: &RgbImage) -> bool {
        self.x >= 0
            && self.y >= 0
            && self.x + i64::from(self.width) <= i64::from(img.width())
            && self.y + i64::from(self.height) <= i64::from(img.height())
    }
}

/// The pixels of images being decoded or held for the models at once,
/// across all requests (`max-decoding-pixels`). Counted in units of 1024
/// pixels, the granularity of tokio's semaphore permits.
#[derive(Clone)]
pub struct PixelBudget {
    permits: Arc<tokio::sync::Semaphore>,
    units: u32,
}

impl PixelBudget {
    const UNIT: u64 = 1024;

    pub fn new(pixels: u64) -> PixelBudget {
        let units = pixels
            .div_ceil(Self::UNIT)
            .clamp(1, u64::from(u32::MAX >> 4)) as u32;
        PixelBudget {
            permits: Arc::new(tokio::sync::Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until `pixels` fit in the budget (all of it, for an image larger
    /// than the budget) and holds them until the returned guard is dropped.
    pub async fn acquire(&self, pixels: u64) -> tokio::sync::OwnedSemaphorePermit {
        let wanted = pixels.div_ceil(Self::UNIT).clamp(1, u64::from(self.units)) as u32;
        self.permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the budget's semaphore is never closed")
    }

    /// Pixels held now.
    pub fn in_use(&self) -> u64 {
        u64::from(self.units - self.permits.available_permits() as u32) * Self::UNIT
    }
}

/// The window a crop policy gives around `(px, py)` in a `w` x `h` image.
/// Fractions shift the window to stay inside; pixel squares are centred on
/// the point and may reach past the border (those pixels are clamped).
pub fn window(crop: Crop, w: u32, h: u32, px: u32, py: u32) -> Window {
    match crop {
        Crop::Fraction(f) => {
            let cw = ((w as f32 * f).round() as u32).clamp(1, w);
            let ch = ((h as f32 * f).round() as u32).clamp(1, h);
            let left = (i64::from(px) - i64::from(cw / 2)).clamp(0, i64::from(w - cw));
            let top = (i64::from(py) - i64::from(ch / 2)).clamp(0, i64::from(h - ch));
            Window {
                x: left,
                y: top,
                width: cw,
                height: ch,
            }
        }
        Crop::Pixels(n) => Window {
            x: i64::from(px) - i64::from(n / 2),
            y: i64::from(py) - i64::from(n / 2),
            width: n,
            height: n,
        },
    }
}

/// Crops the model's window around the point, resizes it to the model's
/// input and scales the values: the model's input tensor data, NHWC order.
/// The window is that of the whole image (and is returned as such); it is
/// read from the pixels `view` holds of it.
pub fn model_input(
    view: &crate::image::source::View,
    spec: &ModelConfig,
    px: u32,
    py: u32,
) -> (Window, Vec<f32>) {
    let win = window(spec.crop, view.full.0, view.full.1, px, py);
    let (img, local) = (&*view.image, view.local(win));
    let (tw, th) = (spec.input_width, spec.input_height);
    let patch = match prereduce_factor(local, tw, th) {
        Some(k) => prereduce(img, local, k).unwrap_or_else(|| extract(img, local)),
        None => extract(img, local),
    };
    let resized = if patch.dimensions() == (tw, th) {
        patch
    } else {
        resize(&patch, tw, th)
    };
    let (mean, inv_std) = (spec.input_mean, 1.0 / spec.input_std);
    let mut data = Vec::with_capacity((tw * th * 3) as usize);
    for p in resized.pixels() {
        let [r, g, b] = p.0;
        let ordered = match spec.channels {
            ChannelOrder::Rgb => [r, g, b],
            ChannelOrder::Bgr => [b, g, r],
        };
        data.extend(ordered.iter().map(|&v| (f32::from(v) - mean) * inv_std));
    }
    (win, data)
}

/// The integer factor by which a window much larger than the model's input
/// is first reduced, or `None` when it is not at least twice the input's
/// size in both directions (so every small photo takes the plain path).
/// The reduced window stays at least twice the input, so the area average
/// that follows still does the final, fractional step.
fn prereduce_factor(win: Window, tw: u32, th: u32) -> Option<u32> {
    let k = (win.width / (2 * tw)).min(win.height / (2 * th));
    (k >= 2).then_some(k)
}

/// The window, reduced by the integer factor `k` in one SIMD pass without
/// copying it out first (`fast_image_resize`, box filter: each output
/// pixel the average of a k x k block, exactly where k divides the window,
/// and nearly so at the last column and row where it does not). A 12 MP
/// photo's 80% window is 4-7x larger than a 224 input: averaging it
/// directly took 50-90 ms on one core; this takes a few. `None` for a
/// window that reaches outside the image (the caller copies it out
/// instead) or if the library refuses the buffers.
fn prereduce(img: &RgbImage, win: Window, k: u32) -> Option<RgbImage> {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    if !win.inside(img) {
        return None;
    }
    let src =
        images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3).ok()?;
    let (w, h) = (win.width.div_ceil(k), win.height.div_ceil(k));
    let mut dst = images::Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Box))
        .crop(
            win.x as f64,
            win.y as f64,
            f64::from(win.width),
            f64::from(win.height),
        );
    Resizer::new().resize(&src, &mut dst, &options).ok()?;
    RgbImage::from_raw(w, h, dst.into_vec())
}

/// Copies the window out, clamping coordinates that fall outside the image
/// (edge pixels repeat), so a window at a corner or an image smaller than
/// the window still gives a full patch.
fn extract(img: &RgbImage, win: Window) -> RgbImage {
    if win.inside(img) {
        return imageops::crop_imm(img, win.x as u32, win.y as u32, win.width, win.height)
            .to_image();
    }
    let (maxx, maxy) = (i64::from(img.width()) - 1, i64::from(img.height()) - 1);
    RgbImage::from_fn(win.width, win.height, |i, j| {
        let sx = (win.x + i64::from(i)).clamp(0, maxx) as u32;
        let sy = (win.y + i64::from(j)).clamp(0, maxy) as u32;
        *img.get_pixel(sx, sy)
    })
}

/// Resizes the crop to the model's input. Shrinking averages the source
/// pixels under each target pixel (area averaging: antialiased, and several
/// times cheaper than a float filter); enlarging, for crops smaller than
/// the input, interpolates bilinearly.
fn resize(patch: &RgbImage, tw: u32, th: u32) -> RgbImage {
    let (w, h) = patch.dimensions();
    if w >= tw && h >= th {
        imageops::thumbnail(patch, tw, th)
    } else {
        imageops::resize(patch, tw, th, imageops::FilterType::Triangle)
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

    /// A large window reduced by an integer factor first, then averaged
    /// down to the input, gives nearly the pixels of averaging it directly
    /// (measured: 1.0-1.3 levels of 255 on average).
    #[test]
    fn prereducing_a_large_window_changes_the_model_input_by_rounding_only() {
        let photo = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/photos/skimage-coffee.jpg"
        );
        let small = image::open(photo).unwrap().to_rgb8();
        // a camera-size picture with the photo's content
        let img = imageops::resize(&small, 3000, 2000, imageops::FilterType::Triangle);
        let (w, h) = img.dimensions();
        assert_eq!(
            prereduce_factor(window(Crop::Fraction(0.1), w, h, 10, 10), 224, 224),
            None
        );
        for (px, py) in [(w / 2, h / 2), (0, 0), (w - 1, h - 1)] {
            let win = window(Crop::Fraction(0.8), w, h, px, py);
            let k = prereduce_factor(win, 224, 224).expect("2400x1600 is over twice 224");
            assert_eq!(k, 3);
            let fast = resize(&prereduce(&img, win, k).unwrap(), 224, 224);
            let direct = resize(&extract(&img, win), 224, 224);
            let diffs: Vec<i32> = fast
                .as_raw()
                .iter()
                .zip(direct.as_raw())
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .collect();
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            assert!(mean < 2.0, "{win:?}: mean difference {mean}");
        }
    }

    /// Every EXIF orientation gives what `image` gives, on sizes that are
    /// not multiples of the tile.
    #[test]
    fn orientation_matches_image_crate() {
        use image::metadata::Orientation as O;
        let src = RgbImage::from_fn(131, 70, |x, y| {
            image::Rgb([x as u8, y as u8, (x * 7 + y * 13) as u8])
        });
        for o in [
            O::NoTransforms,
            O::Rotate90,
            O::Rotate180,
            O::Rotate270,
            O::FlipHorizontal,
            O::FlipVertical,
            O::Rotate90FlipH,
            O::Rotate270FlipH,
        ] {
            let mut want = DynamicImage::ImageRgb8(src.clone());
            want.apply_orientation(o);
            assert_eq!(orient(src.clone(), o), want.into_rgb8(), "{o:?}");
        }
    }

    #[test]
    fn fraction_window_stays_inside() {
        let c = Crop::Fraction(0.8);
        assert_eq!(
            window(c, 100, 50, 50, 25),
            Window {
                x: 10,
                y: 5,
                width: 80,
                height: 40
            }
        );
        assert_eq!(
            window(c, 100, 50, 0, 0),
            Window {
                x: 0,
                y: 0,
                width: 80,
                height: 40
            }
        );
        assert_eq!(
            window(c, 100, 50, 99, 49),
            Window {
                x: 20,
                y: 10,
                width: 80,
                height: 40
            }
        );
        assert_eq!(
            window(c, 1, 1, 0, 0),
            Window {
                x: 0,
                y: 0,
                width: 1,
                height: 1
            }
        );
    }

    #[test]
    fn pixel_window_is_centred_and_clamped() {
        let img = RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let win = window(Crop::Pixels(9), 20, 20, 0, 19);
        assert_eq!(
            win,
            Window {
                x: -4,
                y: 15,
                width: 9,
                height: 9
            }
        );
        let patch = extract(&img, win);
        assert_eq!(patch.get_pixel(0, 0).0, [0, 15, 0]);
        assert_eq!(patch.get_pixel(8, 8).0, [4, 19, 0]);
        let tiny = RgbImage::from_pixel(1, 1, image::Rgb([7, 8, 9]));
        let patch = extract(&tiny, window(Crop::Pixels(9), 1, 1, 0, 0));
        assert!(patch.pixels().all(|p| p.0 == [7, 8, 9]));
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
            assert_eq!((d.width(), d.height(), d.format), (31, 17, f));
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

    #[test]
    fn input_is_scaled_and_ordered() {
        let img = RgbImage::from_pixel(50, 40, image::Rgb([255, 127, 0]));
        let mut spec = crate::config::Config::default().models[1].clone();
        spec.input_width = 4;
        spec.input_height = 3;
        let view = crate::image::source::View::whole(std::sync::Arc::new(img));
        let (_, data) = model_input(&view, &spec, 10, 10);
        assert_eq!(data.len(), 4 * 3 * 3);
        assert_eq!(&data[..3], &[1.0, 0.0, -127.0 / 128.0]);
        spec.channels = ChannelOrder::Bgr;
        let (_, data) = model_input(&view, &spec, 10, 10);
        assert_eq!(&data[..3], &[-127.0 / 128.0, 0.0, 1.0]);
    }
}
