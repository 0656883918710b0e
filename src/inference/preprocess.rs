//! A model's input made of the pixels of its window: crop, reduce, resize,
//! scale and order the channels (NHWC, f32).

use crate::config::{ChannelOrder, ModelConfig};
use crate::image::source::View;
use crate::image::{window, Window};
use image::{imageops, RgbImage};

/// Crops the model's window around the point, resizes it to the model's
/// input and scales the values: the model's input tensor data, NHWC order.
/// The window is that of the whole image (and is returned as such); it is
/// read from the pixels `view` holds of it.
pub fn model_input(view: &View, spec: &ModelConfig, px: u32, py: u32) -> (Window, Vec<f32>) {
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
    use crate::config::Crop;

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
}
