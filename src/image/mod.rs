//! Images: sniffing, header checks, decoding, orientation, and the parts
//! of an upload each model's window needs, kept for the next click.

pub mod cache;
pub mod imaging;
pub mod source;
