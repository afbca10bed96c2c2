//! Colours: the one CSS colour parser every colour option goes through (`background`,
//! `border.color`, `trim.border.color`, text `color`).

use crate::Error;

/// An 8-bit sRGB colour with straight (non-premultiplied) alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgba {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Alpha, 255 = opaque.
    pub a: u8,
}

impl Rgba {
    /// Opaque white, the documented default background.
    pub const WHITE: Rgba = Rgba {
        r: 255,
        g: 255,
        b: 255,
        a: 255,
    };
    /// Opaque black.
    pub const BLACK: Rgba = Rgba {
        r: 0,
        g: 0,
        b: 0,
        a: 255,
    };
    /// Fully transparent black.
    pub const TRANSPARENT: Rgba = Rgba {
        r: 0,
        g: 0,
        b: 0,
        a: 0,
    };
}

/// Parses any CSS colour (`#rgb`, `#rrggbbaa`, `rgb()`, `rgba()`, `hsl()`, names, …).
pub fn parse_colour(value: &str) -> Result<Rgba, Error> {
    // CSS colours are ASCII; csscolorparser 0.7 panics slicing some non-ASCII input, e.g. inside
    // an `hsl()` angle (found by fuzz/options, kept in fuzz/regressions/options/).
    if !value.is_ascii() {
        return Err(Error::invalid(format!(
            "{value:?} is not a CSS colour: it is not ASCII"
        )));
    }
    let c = csscolorparser::parse(value)
        .map_err(|e| Error::invalid(format!("{value:?} is not a CSS colour: {e}")))?;
    let [r, g, b, a] = c.to_rgba8();
    Ok(Rgba { r, g, b, a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colours() {
        assert_eq!(
            parse_colour("#00ff0080").unwrap(),
            Rgba {
                r: 0,
                g: 255,
                b: 0,
                a: 128
            }
        );
        assert_eq!(parse_colour("white").unwrap(), Rgba::WHITE);
        assert_eq!(
            parse_colour("rgb(1, 2, 3)").unwrap(),
            Rgba {
                r: 1,
                g: 2,
                b: 3,
                a: 255
            }
        );
        assert!(parse_colour("#12").is_err());
    }
}
