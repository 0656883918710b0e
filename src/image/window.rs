//! The model's window around a point, and the budget of pixels being
//! decoded or held at once.

use crate::config::Crop;
use image::RgbImage;
use std::sync::Arc;

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
    pub(crate) fn inside(&self, img: &RgbImage) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
