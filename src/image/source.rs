//! An uploaded image, decoded only as far as the models need it.
//!
//! The theme model reads 80% of the photo at 224x224; the color model reads
//! 9x9 pixels. Decoding a 12 MP JPEG at full size for that costs ~100 ms
//! and 36 MB. So a JPEG is opened from its header alone, and each model
//! gets a [`View`]:
//!
//! - a window that is still at least the model's input at 1/2, 1/4 or 1/8
//!   of the photo's size reads a *plane*: the whole photo decoded at that
//!   DCT scale (one entropy pass, the inverse DCT mostly skipped: 1/8 of a
//!   12 MP photo is ~0.2 MP), kept for the next click. The last step to the
//!   input's size is still an average of pixels, and the labelled photos'
//!   accuracy is the same as from full-size pixels (docs/models.md, Accuracy);
//! - a small window reads a *rectangle* decoded at full size around it;
//! - a window that is a large part of a photo too small to scale (a 640 px
//!   picture's 80%) reads the full-size plane, kept like the others.
//!
//! Other formats are decoded whole once ([`imaging::decode`]) and every
//! model reads that plane.
//!
//! Every scan of a JPEG is decoded at least once per image (the first
//! plane, or the rectangle reading on to the end when no plane is needed),
//! so a file that does not decode is refused however small the windows.

use crate::config::ModelConfig;
use crate::image::{self as imaging, ImageError, Window};
use image::metadata::Orientation;
use image::{ImageFormat, RgbImage};
use jpeg_parts as jpeg;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What one model reads: pixels, and where they lie in the whole image.
#[derive(Debug, Clone)]
pub struct View {
    pub image: Arc<RgbImage>,
    /// `image` is the whole image reduced by this factor (1, 2, 4, 8), or,
    /// at 1, the rectangle of it at `origin`.
    pub scale: u32,
    /// Where `image`'s top-left pixel lies in the whole image (at scale 1).
    pub origin: (i64, i64),
    /// The whole image's size as displayed.
    pub full: (u32, u32),
}

impl View {
    /// A decoded image as its own view.
    pub fn whole(image: Arc<RgbImage>) -> View {
        let full = image.dimensions();
        View {
            image,
            scale: 1,
            origin: (0, 0),
            full,
        }
    }

    /// The window of the whole image, in this view's pixels.
    pub fn local(&self, win: Window) -> Window {
        if self.scale == 1 {
            return Window {
                x: win.x - self.origin.0,
                y: win.y - self.origin.1,
                ..win
            };
        }
        let s = f64::from(self.scale);
        let (pw, ph) = self.image.dimensions();
        let width = ((f64::from(win.width) / s).round() as u32).clamp(1, pw);
        let height = ((f64::from(win.height) / s).round() as u32).clamp(1, ph);
        Window {
            x: ((win.x as f64 / s).round() as i64).clamp(0, i64::from(pw - width)),
            y: ((win.y as f64 / s).round() as i64).clamp(0, i64::from(ph - height)),
            width,
            height,
        }
    }
}

/// How a model's window is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The whole image at 1/n of its size.
    Plane(u32),
    /// This rectangle (left, top, right, bottom; displayed, full size).
    Rect(u32, u32, u32, u32),
}

enum Kind {
    Jpeg(jpeg::Header),
    Other,
}

/// An upload, opened, with what has been decoded of it so far.
pub struct Source {
    bytes: bytes::Bytes,
    /// Size as displayed (after the EXIF orientation).
    pub width: u32,
    pub height: u32,
    kind: Kind,
    /// Every scan has decoded without error once.
    checked: AtomicBool,
    /// Planes decoded so far, oriented, by scale.
    planes: Mutex<Vec<(u32, Arc<RgbImage>)>>,
}

/// Width and height swap under these orientations.
fn turns(o: Orientation) -> bool {
    use Orientation as O;
    matches!(
        o,
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH
    )
}

impl Source {
    /// Reads the header: format, size, orientation. For a JPEG nothing more
    /// is decoded; other formats are decoded here (their decoders cannot
    /// do less).
    pub fn open(bytes: bytes::Bytes, max_pixels: u64) -> Result<Source, ImageError> {
        let format = imaging::sniff(&bytes)?;
        if format != ImageFormat::Jpeg {
            let decoded = imaging::decode(&bytes, max_pixels)?;
            let (width, height) = decoded.rgb.dimensions();
            return Ok(Source {
                bytes,
                width,
                height,
                kind: Kind::Other,
                checked: AtomicBool::new(true),
                planes: Mutex::new(vec![(1, Arc::new(decoded.rgb))]),
            });
        }
        let header = jpeg::header(&bytes).map_err(imaging::jpeg_invalid)?;
        imaging::check_jpeg(&bytes, header.width, header.height, max_pixels)?;
        let (width, height) = if turns(header.orientation) {
            (header.height, header.width)
        } else {
            (header.width, header.height)
        };
        Ok(Source {
            bytes,
            width,
            height,
            kind: Kind::Jpeg(header),
            checked: AtomicBool::new(false),
            planes: Mutex::new(Vec::new()),
        })
    }

    fn planes(&self) -> std::sync::MutexGuard<'_, Vec<(u32, Arc<RgbImage>)>> {
        self.planes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn plane(&self, scale: u32) -> Option<Arc<RgbImage>> {
        self.planes()
            .iter()
            .find(|(s, _)| *s == scale)
            .map(|(_, p)| p.clone())
    }

    /// Bytes held: the upload and the planes decoded so far.
    pub fn held_bytes(&self) -> u64 {
        let planes: usize = self.planes().iter().map(|(_, p)| p.as_raw().len()).sum();
        (self.bytes.len() + planes) as u64
    }

    /// What reading `win` of the whole image for `spec` takes.
    pub fn need(&self, spec: &ModelConfig, win: Window) -> Need {
        let header = match &self.kind {
            Kind::Other => return Need::Plane(1),
            Kind::Jpeg(h) => h,
        };
        let (tw, th) = (spec.input_width, spec.input_height);
        // the largest reduction that leaves the window at least the model's
        // input, so the last step is still an average of pixels
        let scale = [8, 4, 2]
            .into_iter()
            .find(|&s| win.width / s >= tw && win.height / s >= th)
            .unwrap_or(1);
        if scale > 1 {
            return Need::Plane(scale);
        }
        // a pixel square may reach past the border: those pixels repeat the
        // edge, so only the part inside is read
        let x0 = win.x.clamp(0, i64::from(self.width) - 1) as u32;
        let y0 = win.y.clamp(0, i64::from(self.height) - 1) as u32;
        let x1 = (win.x + i64::from(win.width)).clamp(i64::from(x0) + 1, i64::from(self.width));
        let y1 = (win.y + i64::from(win.height)).clamp(i64::from(y0) + 1, i64::from(self.height));
        let (x1, y1) = (x1 as u32, y1 as u32);
        let area = u64::from(x1 - x0) * u64::from(y1 - y0);
        let whole = u64::from(header.width) * u64::from(header.height);
        if area * 4 >= whole || self.plane(1).is_some() {
            Need::Plane(1)
        } else {
            Need::Rect(x0, y0, x1, y1)
        }
    }

    /// Pixels decoding `need` holds at once (for `max-decoding-pixels`).
    pub fn cost(&self, need: Need) -> u64 {
        let (buffered, whole) = match &self.kind {
            Kind::Other => return 0, // decoded when opened
            Kind::Jpeg(h) => (h.buffered, u64::from(h.width) * u64::from(h.height)),
        };
        let out = match need {
            Need::Plane(s) if self.plane(s).is_some() => return 0,
            Need::Plane(s) => whole / u64::from(s * s),
            Need::Rect(x0, y0, x1, y1) => u64::from(x1 - x0 + 64) * u64::from(y1 - y0 + 64),
        };
        // progressive files keep every coefficient (about one pixel's worth
        // of bytes, as counted here, per pixel) while decoding
        out + if buffered { whole } else { 0 }
    }

    /// Decodes what `need` says (unless a plane is already there) and
    /// returns it as a view. `check_rest`: a rectangle reads every scan to
    /// the end, for a request that decodes no plane of a JPEG never checked.
    pub fn view(&self, need: Need, check_rest: bool, max_pixels: u64) -> Result<View, ImageError> {
        let full = (self.width, self.height);
        let header = match &self.kind {
            Kind::Jpeg(h) => *h,
            Kind::Other => {
                let image = self.plane(1).expect("opened with its only plane");
                return Ok(View::whole(image));
            }
        };
        match need {
            Need::Plane(scale) => {
                if let Some(image) = self.plane(scale) {
                    return Ok(View {
                        image,
                        scale,
                        origin: (0, 0),
                        full,
                    });
                }
                let stored =
                    jpeg::decode_scaled(&self.bytes, scale, imaging::jpeg_memory(max_pixels))
                        .map_err(imaging::jpeg_invalid)?;
                self.checked.store(true, Ordering::SeqCst);
                let image = Arc::new(imaging::orient(stored, header.orientation));
                let mut planes = self.planes();
                if !planes.iter().any(|(s, _)| *s == scale) {
                    planes.push((scale, image.clone()));
                }
                Ok(View {
                    image,
                    scale,
                    origin: (0, 0),
                    full,
                })
            }
            Need::Rect(x0, y0, x1, y1) => {
                if let Some(image) = self.plane(1) {
                    return Ok(View::whole(image));
                }
                let o = header.orientation;
                let (sw, sh) = (header.width, header.height);
                let a = stored_point(o, sw, sh, x0, y0);
                let b = stored_point(o, sw, sh, x1 - 1, y1 - 1);
                let rect = (
                    a.0.min(b.0),
                    a.1.min(b.1),
                    a.0.max(b.0) + 1,
                    a.1.max(b.1) + 1,
                );
                let check = check_rest && !self.checked.load(Ordering::SeqCst);
                let stored =
                    jpeg::decode_rect(&self.bytes, rect, check, imaging::jpeg_memory(max_pixels))
                        .map_err(imaging::jpeg_invalid)?;
                if check {
                    self.checked.store(true, Ordering::SeqCst);
                }
                Ok(View {
                    image: Arc::new(imaging::orient(stored, o)),
                    scale: 1,
                    origin: (i64::from(x0), i64::from(y0)),
                    full,
                })
            }
        }
    }

    /// Whether every scan has decoded once (always so for other formats).
    pub fn checked(&self) -> bool {
        self.checked.load(Ordering::SeqCst)
    }
}

/// Where the displayed pixel `(x, y)` is stored, for a stored image of
/// `sw` x `sh` shown with orientation `o` (the inverse of
/// [`imaging::orient`]'s mapping).
fn stored_point(o: Orientation, sw: u32, sh: u32, x: u32, y: u32) -> (u32, u32) {
    use Orientation as O;
    match o {
        O::NoTransforms => (x, y),
        O::FlipHorizontal => (sw - 1 - x, y),
        O::FlipVertical => (x, sh - 1 - y),
        O::Rotate180 => (sw - 1 - x, sh - 1 - y),
        O::Rotate90 => (y, sh - 1 - x),
        O::Rotate270 => (sw - 1 - y, x),
        O::Rotate90FlipH => (y, x),
        O::Rotate270FlipH => (sw - 1 - y, sh - 1 - x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Crop;
    use image::metadata::Orientation as O;

    /// A JPEG of `img` with an EXIF block stating `orientation` (1-8).
    fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let plain = out.into_inner();
        let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut jpeg = plain[..2].to_vec();
        jpeg.extend_from_slice(&[0xFF, 0xE1]);
        jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        jpeg.extend_from_slice(&app1);
        jpeg.extend_from_slice(&plain[2..]);
        jpeg
    }

    /// A rectangle read around a point is the same pixels as the whole
    /// decoded image's, under every orientation, at the corners too.
    #[test]
    fn rectangles_match_the_whole_image_under_every_orientation() {
        let src = RgbImage::from_fn(203, 157, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 3) as u8, ((x ^ y) * 7) as u8])
        });
        for (n, o) in [
            (1, O::NoTransforms),
            (2, O::FlipHorizontal),
            (3, O::Rotate180),
            (4, O::FlipVertical),
            (5, O::Rotate90FlipH),
            (6, O::Rotate90),
            (7, O::Rotate270FlipH),
            (8, O::Rotate270),
        ] {
            let bytes = bytes::Bytes::from(jpeg_with_orientation(&src, n));
            let whole = imaging::decode(&bytes, 1 << 30).unwrap().rgb;
            let source = Source::open(bytes, 1 << 30).unwrap();
            assert_eq!((source.width, source.height), whole.dimensions(), "{o:?}");
            let (w, h) = whole.dimensions();
            for (x, y) in [(0, 0), (w - 1, h - 1), (w / 2, h / 3), (3, h - 2)] {
                let win = imaging::window(Crop::Pixels(9), w, h, x, y);
                let need = match source.need(&color_spec(), win) {
                    Need::Rect(a, b, c, d) => Need::Rect(a, b, c, d),
                    other => panic!("a 9x9 window of {w}x{h} read as {other:?}"),
                };
                let view = source.view(need, true, 1 << 30).unwrap();
                let local = view.local(win);
                for j in 0..9 {
                    for i in 0..9 {
                        let gx = (win.x + i).clamp(0, i64::from(w) - 1) as u32;
                        let gy = (win.y + j).clamp(0, i64::from(h) - 1) as u32;
                        let lx = (local.x + i).clamp(0, i64::from(view.image.width()) - 1) as u32;
                        let ly = (local.y + j).clamp(0, i64::from(view.image.height()) - 1) as u32;
                        assert_eq!(
                            view.image.get_pixel(lx, ly),
                            whole.get_pixel(gx, gy),
                            "{o:?} point {x},{y} offset {i},{j}"
                        );
                    }
                }
            }
            assert!(source.checked());
        }
    }

    fn color_spec() -> ModelConfig {
        let spec = crate::config::Config::default()
            .models
            .into_iter()
            .find(|m| matches!(m.crop, Crop::Pixels(_)))
            .unwrap();
        assert_eq!(spec.crop, Crop::Pixels(9));
        spec
    }

    #[test]
    fn large_windows_read_a_scaled_plane_and_small_images_the_whole() {
        let theme = crate::config::Config::default()
            .models
            .into_iter()
            .find(|m| matches!(m.crop, Crop::Fraction(_)))
            .unwrap();
        let big = RgbImage::from_fn(3000, 2000, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let bytes = bytes::Bytes::from(jpeg_with_orientation(&big, 1));
        let source = Source::open(bytes, 1 << 30).unwrap();
        let win = imaging::window(theme.crop, source.width, source.height, 1500, 1000);
        assert_eq!(source.need(&theme, win), Need::Plane(4));
        let view = source.view(Need::Plane(4), false, 1 << 30).unwrap();
        assert_eq!(view.image.dimensions(), (750, 500));
        assert!(source.checked());
        let small = RgbImage::from_fn(400, 300, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let source = Source::open(jpeg_with_orientation(&small, 1).into(), 1 << 30).unwrap();
        let win = imaging::window(theme.crop, source.width, source.height, 10, 10);
        assert_eq!(source.need(&theme, win), Need::Plane(1));
    }
}
