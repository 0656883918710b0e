//! JPEG decoding sized to what the models read, with libjpeg-turbo's decoder
//! (as vendored and built by `mozjpeg-sys`; with `nasm` installed at build
//! time it gets libjpeg-turbo's SIMD code).
//!
//! Two ways to read an upload, both one pass of entropy decoding at most:
//!
//! - [`decode_scaled`]: the whole image at 1/2, 1/4 or 1/8 of its size, the
//!   reduction done inside the inverse DCT (at 1/8, each 8x8 block's DC
//!   coefficient alone is its pixel). A 12 MP photo's theme window needs
//!   224 pixels a side: 1/8 of it is still ~400.
//! - [`decode_rect`]: a rectangle at full size. Columns outside it are not
//!   transformed (`jpeg_crop_scanline`), rows above it are entropy-decoded
//!   only (`jpeg_skip_scanlines`), rows below it not read at all unless the
//!   caller asks for the rest of the file to be checked.
//!
//! The decoder is strict where it matters: data that does not decode (bad
//! Huffman codes, a scan cut short, a missing restart marker) is an error,
//! never an image with grey or smeared rows; quirks that lose nothing (junk
//! bytes between segments, odd metadata) are read past, as libjpeg does.
//!
//! libjpeg reports errors by calling a function that must not return; ours
//! unwinds (without the panic hook: nothing is printed) to the
//! `catch_unwind` around each call, and the session's `Drop` frees what
//! libjpeg allocated. `mozjpeg-sys` builds the C code with `-fexceptions`
//! for that.

use image::metadata::Orientation;
use image::RgbImage;
use mozjpeg_sys as sys;
use std::os::raw::{c_int, c_long, c_ulong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// What the header says, read without decoding any pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// As stored (before the EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub orientation: Orientation,
    /// Progressive and multi-scan files keep every coefficient of the image
    /// in memory while decoding (about 3 bytes a pixel for 4:2:0).
    pub buffered: bool,
}

/// Why a JPEG did not decode: libjpeg's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed(pub String);

/// The unwinding payload of libjpeg's error exit.
struct Abort(String);

/// Warnings that mean pixels were made up: the file is refused.
fn loses_data(code: c_int) -> bool {
    [
        sys::JWRN_HIT_MARKER,
        sys::JWRN_HUFF_BAD_CODE,
        sys::JWRN_JPEG_EOF,
        sys::JWRN_MUST_RESYNC,
        sys::JWRN_NOT_SEQUENTIAL,
        sys::JWRN_BOGUS_PROGRESSION,
    ]
    .iter()
    .any(|&c| c as c_int == code)
}

fn message(cinfo: &mut sys::jpeg_common_struct) -> String {
    // libjpeg writes up to JMSG_LENGTH_MAX (200) bytes; the binding's type
    // says 80, so hand it a buffer of the real size.
    let mut buf = [0u8; 256];
    // SAFETY: `err` is the manager installed by `Session::new`;
    // `format_message` writes a NUL-terminated string of at most 200 bytes.
    unsafe {
        let err = &*cinfo.err;
        if let Some(format) = err.format_message {
            format(cinfo, &*(buf.as_mut_ptr() as *const [u8; 80]));
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut sys::jpeg_common_struct) {
    let text = message(cinfo);
    resume_unwind(Box::new(Abort(text)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut sys::jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return; // trace messages
    }
    let code = (*cinfo.err).msg_code;
    (*cinfo.err).num_warnings += 1;
    if loses_data(code) {
        let text = message(cinfo);
        resume_unwind(Box::new(Abort(text)));
    }
}

/// One decompressor reading `bytes`, freed on drop (also while unwinding
/// from an error).
struct Session<'a> {
    cinfo: Box<sys::jpeg_decompress_struct>,
    _err: Box<sys::jpeg_error_mgr>,
    _bytes: &'a [u8],
}

impl<'a> Session<'a> {
    /// Reads the header of `bytes`; APP1 (EXIF) segments are kept for the
    /// orientation.
    fn new(bytes: &'a [u8], max_memory: usize) -> Session<'a> {
        // SAFETY: both structs are plain C data, zero-initialised and then
        // set up by libjpeg's own initialisers; they are boxed so that the
        // pointer from one to the other stays valid; `bytes` outlives the
        // session (lifetime 'a) and libjpeg only reads it.
        unsafe {
            let mut err: Box<sys::jpeg_error_mgr> = Box::new(std::mem::zeroed());
            sys::jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.emit_message = Some(emit_message);
            let mut cinfo: Box<sys::jpeg_decompress_struct> = Box::new(std::mem::zeroed());
            cinfo.common.err = &mut *err;
            sys::jpeg_create_decompress(&mut *cinfo);
            let mut session = Session {
                cinfo,
                _err: err,
                _bytes: bytes,
            };
            let cinfo = &mut *session.cinfo;
            (*cinfo.common.mem).max_memory_to_use = max_memory.min(c_long::MAX as usize) as c_long;
            sys::jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            sys::jpeg_save_markers(cinfo, 0xE1, 0xFFFF);
            sys::jpeg_save_markers(cinfo, 0xEE, 0xFFFF);
            sys::jpeg_read_header(cinfo, 1);
            session
        }
    }

    fn header(&self) -> Header {
        let c = &*self.cinfo;
        Header {
            width: c.image_width,
            height: c.image_height,
            orientation: self.orientation(),
            // SAFETY: the header was read.
            buffered: unsafe { sys::jpeg_has_multiple_scans(c) } != 0,
        }
    }

    /// The saved segments with this marker.
    fn segments(&self, wanted: u8) -> Vec<&[u8]> {
        let mut found = Vec::new();
        let mut m = self.cinfo.marker_list;
        while !m.is_null() {
            // SAFETY: libjpeg's saved-marker list: `data_length` bytes at
            // `data`, alive as long as the decompressor.
            let (marker, data) = unsafe {
                let mk = &*m;
                m = mk.next;
                (
                    mk.marker,
                    std::slice::from_raw_parts(mk.data, mk.data_length as usize),
                )
            };
            if marker == wanted {
                found.push(data);
            }
        }
        found
    }

    /// The orientation of the first EXIF segment that states one; a
    /// missing or malformed EXIF block is no rotation.
    fn orientation(&self) -> Orientation {
        self.segments(0xE1)
            .into_iter()
            .filter_map(|d| d.strip_prefix(b"Exif\0\0"))
            .find_map(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms)
    }

    /// Adobe's APP14 segment: its CMYK is stored inverted.
    fn adobe(&self) -> bool {
        self.segments(0xEE).iter().any(|d| d.starts_with(b"Adobe"))
    }

    /// Starts decompressing at `1/denom` scale into 8-bit RGB (CMYK for
    /// CMYK and YCCK files, converted by [`cmyk_to_rgb`]).
    fn start(&mut self, denom: u32) -> bool {
        let c = &mut *self.cinfo;
        let cmyk = matches!(
            c.jpeg_color_space,
            sys::J_COLOR_SPACE::JCS_CMYK | sys::J_COLOR_SPACE::JCS_YCCK
        );
        c.out_color_space = if cmyk {
            sys::J_COLOR_SPACE::JCS_CMYK
        } else {
            sys::J_COLOR_SPACE::JCS_RGB
        };
        c.scale_num = 1;
        c.scale_denom = denom;
        // SAFETY: the header was read by `new`.
        unsafe { sys::jpeg_start_decompress(c) };
        cmyk
    }

    /// Reads the next output row into `row` (output_width x components).
    fn read_row(&mut self, row: &mut [u8]) {
        let c = &mut *self.cinfo;
        debug_assert!(row.len() >= (c.output_width as usize) * c.output_components as usize);
        let mut rows = [row.as_mut_ptr()];
        // SAFETY: `row` holds a whole output row, as asserted above.
        let n = unsafe { sys::jpeg_read_scanlines(c, rows.as_mut_ptr(), 1) };
        if n != 1 {
            resume_unwind(Box::new(Abort("a scanline could not be read".into())));
        }
    }

    fn skip_rows(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        // SAFETY: decompression was started; the source is in memory (not
        // suspending), as jpeg_skip_scanlines requires.
        let skipped = unsafe { sys::jpeg_skip_scanlines(&mut self.cinfo, n) };
        if skipped != n {
            resume_unwind(Box::new(Abort("rows could not be skipped".into())));
        }
    }

    fn finish(&mut self) {
        // SAFETY: every output row was read or skipped.
        unsafe { sys::jpeg_finish_decompress(&mut self.cinfo) };
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // SAFETY: created by jpeg_create_decompress; destroying is allowed
        // in any state, also after an error exit.
        unsafe { sys::jpeg_destroy_decompress(&mut self.cinfo) };
    }
}

/// Runs `f` on a session, turning libjpeg's error exit into `Err`.
fn with_session<T>(
    bytes: &[u8],
    max_memory: usize,
    f: impl FnOnce(&mut Session) -> T,
) -> Result<T, Failed> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut s = Session::new(bytes, max_memory);
        f(&mut s)
    }))
    .map_err(|payload| match payload.downcast::<Abort>() {
        Ok(abort) => Failed(abort.0),
        // A panic of our own: not libjpeg's, so not the file's fault.
        Err(other) => resume_unwind(other),
    })
}

/// The header: size, EXIF orientation, whether decoding buffers the image.
pub fn header(bytes: &[u8]) -> Result<Header, Failed> {
    with_session(bytes, 16 << 20, |s| s.header())
}

/// Adobe CMYK (as Photoshop writes it, inverted) or plain CMYK to RGB.
fn cmyk_to_rgb(src: &[u8], dst: &mut [u8], inverted: bool) {
    for (p, q) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
        let (c, m, y, k) = if inverted {
            (p[0], p[1], p[2], p[3])
        } else {
            (255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3])
        };
        let mul = |a: u8| ((u16::from(a) * u16::from(k) + 127) / 255) as u8;
        q.copy_from_slice(&[mul(c), mul(m), mul(y)]);
    }
}

/// The whole stored image (not oriented) at `1/denom` of its size
/// (`denom` 1, 2, 4 or 8; a side of `n` pixels becomes `ceil(n / denom)`).
/// Every scan is read: data that does not decode is an error.
pub fn decode_scaled(bytes: &[u8], denom: u32, max_memory: usize) -> Result<RgbImage, Failed> {
    assert!(matches!(denom, 1 | 2 | 4 | 8), "DCT scale 1/{denom}");
    with_session(bytes, max_memory, |s| {
        let cmyk = s.start(denom);
        let inverted = s.adobe();
        let (w, h) = (s.cinfo.output_width, s.cinfo.output_height);
        let mut out = RgbImage::new(w, h);
        let mut four = vec![0u8; if cmyk { w as usize * 4 } else { 0 }];
        for row in out.chunks_exact_mut(w as usize * 3) {
            if cmyk {
                s.read_row(&mut four);
                cmyk_to_rgb(&four, row, inverted);
            } else {
                s.read_row(row);
            }
        }
        s.finish();
        out
    })
}

/// Rows `y0..y1` and columns `x0..x1` of the stored image at full size.
/// With `check_rest`, the rows below are entropy-decoded too, so that data
/// which does not decode anywhere in the file is an error (as with
/// [`decode_scaled`]); without it they are not read at all.
///
/// The pixels are exactly those of a whole-image decode: libjpeg's crop and
/// skip work in whole blocks and smooth chroma with neighbouring rows and
/// columns, so the region decoded reaches a block row and column further on
/// every side than asked, and only the asked part is kept.
pub fn decode_rect(
    bytes: &[u8],
    (x0, y0, x1, y1): (u32, u32, u32, u32),
    check_rest: bool,
    max_memory: usize,
) -> Result<RgbImage, Failed> {
    with_session(bytes, max_memory, |s| {
        let (iw, ih) = (s.cinfo.image_width, s.cinfo.image_height);
        let (x1, y1) = (x1.min(iw), y1.min(ih));
        let (x0, y0) = (x0.min(x1), y0.min(y1));
        let cmyk = s.start(1);
        let inverted = s.adobe();
        // one iMCU (up to 32 pixels) of margin on each side
        const MARGIN: u32 = 32;
        let mut cx = x0.saturating_sub(MARGIN);
        let mut cw = (x1 + MARGIN).min(iw) - cx;
        // SAFETY: decompression was started and nothing read yet.
        unsafe { sys::jpeg_crop_scanline(&mut s.cinfo, &mut cx, &mut cw) };
        let first = y0.saturating_sub(MARGIN);
        s.skip_rows(first);
        let comps = if cmyk { 4 } else { 3 };
        let mut row = vec![0u8; cw as usize * comps];
        let mut rgb = vec![0u8; cw as usize * 3];
        let (w, h) = (x1 - x0, y1 - y0);
        let mut out = RgbImage::new(w, h);
        let from = (x0 - cx) as usize * 3;
        for y in first..y1 {
            s.read_row(&mut row);
            if y < y0 {
                continue;
            }
            let line: &[u8] = if cmyk {
                cmyk_to_rgb(&row, &mut rgb, inverted);
                &rgb
            } else {
                &row
            };
            let at = (y - y0) as usize * w as usize * 3;
            let n = w as usize * 3;
            (*out)[at..at + n].copy_from_slice(&line[from..from + n]);
        }
        if check_rest {
            s.skip_rows(ih - y1);
            s.finish();
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/fixtures/photos/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn scaled_sizes_round_up() {
        let bytes = photo("skimage-coffee.jpg");
        let h = header(&bytes).unwrap();
        for d in [1, 2, 4, 8] {
            let img = decode_scaled(&bytes, d, 1 << 30).unwrap();
            assert_eq!(
                img.dimensions(),
                (h.width.div_ceil(d), h.height.div_ceil(d))
            );
        }
    }

    #[test]
    fn a_rectangle_is_the_same_pixels_as_the_whole_image() {
        let bytes = photo("skimage-coffee.jpg");
        let whole = decode_scaled(&bytes, 1, 1 << 30).unwrap();
        let (w, h) = whole.dimensions();
        for (x0, y0, x1, y1) in [
            (0, 0, 9, 9),
            (w - 9, h - 9, w, h),
            (101, 57, 110, 66),
            (17, 200, 333, 209),
            (0, 0, w, h),
        ] {
            let rect = decode_rect(&bytes, (x0, y0, x1, y1), x1 == w, 1 << 30).unwrap();
            let want = image::imageops::crop_imm(&whole, x0, y0, x1 - x0, y1 - y0).to_image();
            assert_eq!(rect, want, "{x0},{y0} to {x1},{y1}");
        }
    }

    /// Every JPEG of the bad-input corpus that decodes, and every fixture
    /// photo (baseline and progressive, 4:2:0, 4:4:4, greyscale, odd sizes,
    /// odd metadata): rectangles at the corners, edges and middle are the
    /// whole decode's pixels.
    #[test]
    fn rectangles_match_on_every_decodable_fixture() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests");
        let mut files: Vec<_> = ["corpus", "fixtures/photos"]
            .iter()
            .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.ends_with(".jpg") || name.starts_with("jpeg-")
            })
            .collect();
        files.sort();
        let mut checked = 0;
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let Ok(whole) = decode_scaled(&bytes, 1, 1 << 30) else {
                continue;
            };
            let (w, h) = whole.dimensions();
            for (cx, cy) in [
                (0, 0),
                (w - 1, h - 1),
                (w / 2, h / 2),
                (w - 1, 0),
                (w / 3, h - 1),
            ] {
                let (x0, y0) = (cx.saturating_sub(4), cy.saturating_sub(4));
                let (x1, y1) = ((cx + 5).min(w), (cy + 5).min(h));
                for check_rest in [false, true] {
                    let rect = decode_rect(&bytes, (x0, y0, x1, y1), check_rest, 1 << 30)
                        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                    let want =
                        image::imageops::crop_imm(&whole, x0, y0, x1 - x0, y1 - y0).to_image();
                    assert!(rect == want, "{} at {cx},{cy}", path.display());
                }
            }
            checked += 1;
        }
        assert!(checked >= 50, "{checked} files");
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        let bytes = photo("skimage-coffee.jpg");
        assert!(
            header(&bytes[..100]).is_err() || decode_scaled(&bytes[..100], 8, 1 << 30).is_err()
        );
        assert!(decode_scaled(&bytes[..bytes.len() / 2], 8, 1 << 30).is_err());
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 64] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        let _ = decode_scaled(&flipped, 1, 1 << 30); // an error or an image, never a crash
        assert!(header(b"\xFF\xD8\xFF").is_err());
        assert!(header(b"").is_err());
    }
}
