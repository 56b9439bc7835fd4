//! `otp_image_source` of `mfa_otp_secret_creation` (hanko-flow-api.md 7.5): the `otpauth://`
//! URI as a QR code in a `data:image/png;base64,` URI, for an authenticator app's camera.

use base64::Engine as _;
use qrcode::{Color, QrCode};

/// Pixels per QR module; 4 modules of quiet zone around the code (ISO/IEC 18004).
const SCALE: usize = 6;
const QUIET_ZONE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("QR encoding failed: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

pub fn png_data_uri(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let modules = code.width();
    let dark: Vec<bool> = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, _) in dark.iter().enumerate().filter(|(_, d)| **d) {
        let (row, col) = (i / modules + QUIET_ZONE, i % modules + QUIET_ZONE);
        for y in row * SCALE..(row + 1) * SCALE {
            pixels[y * side + col * SCALE..y * side + (col + 1) * SCALE].fill(0);
        }
    }
    let mut png_bytes = Vec::new();
    {
        let side = side as u32;
        let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png_bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_png_of_the_quiet_zone_framed_code() {
        let uri = png_data_uri("otpauth://totp/authflow:a%40example.com?secret=JBSWY3DPEHPK3PXP")
            .expect("encodes");
        let b64 = uri.strip_prefix("data:image/png;base64,").expect("prefix");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("a PNG");
        let (width, height) = (reader.info().width as usize, reader.info().height as usize);
        assert_eq!(width, height);
        // Version 3 or more (29+ modules) for a URI this long, plus the quiet zone.
        assert!(width >= (29 + 2 * QUIET_ZONE) * SCALE);
        let mut pixels = vec![0u8; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut pixels).expect("pixels");
        let at = |x: usize, y: usize| pixels[y * width + x];
        let edge = QUIET_ZONE * SCALE;
        assert_eq!(at(0, 0), 255, "quiet zone is light");
        // The top-left finder pattern: a dark ring, a light ring, a dark centre.
        assert_eq!(at(edge, edge), 0);
        assert_eq!(at(edge + SCALE, edge + SCALE), 255);
        assert_eq!(at(edge + 3 * SCALE, edge + 3 * SCALE), 0);
    }
}
