//! Colours: one fixed colour per genre label, and text colours that stay readable in
//! both themes.
//!
//! Genre colours are chosen in OKLCH (a perceptual space): every known label gets its
//! own hue, and all of them sit in one luminance band (relative luminance 0.17..0.29)
//! so that a block of any genre stands out at >= 3:1 against both the dark (grey 27)
//! and the light (grey 248) panel, and black text on it reads at >= 4.5:1. Labels of
//! user-trained models that are not in the table get a hue from a hash of their name,
//! in the same band, so they are stable from run to run.
//!
//! The hues and lightness steps of the known labels were chosen by a search that
//! maximised the smallest OKLab distance between any two of them (0.077) inside the
//! luminance band, with genres that often meet in one song (rock / metal / punk,
//! jazz / blues / soul / funk, electronic / disco / ambient / pop, hip hop / reggae)
//! at least 0.15 apart.

use eframe::egui::{Color32, Visuals};

/// Known labels: (label, hue in degrees, OKLab lightness).
const KNOWN: [(&str, f32, f32); 16] = [
    ("rock", 130.0, 0.62),
    ("jazz", 315.0, 0.58),
    ("metal", 215.0, 0.64),
    ("hiphop", 275.0, 0.58),
    ("blues", 10.0, 0.66),
    ("classical", 95.0, 0.64),
    ("country", 350.0, 0.60),
    ("disco", 55.0, 0.66),
    ("pop", 110.0, 0.56),
    ("reggae", 70.0, 0.58),
    ("electronic", 150.0, 0.56),
    ("soul", 250.0, 0.64),
    ("funk", 175.0, 0.62),
    ("folk", 235.0, 0.56),
    ("punk", 295.0, 0.64),
    ("ambient", 330.0, 0.66),
];

/// Common spellings of the known labels (written names, tag values).
fn canonical(label: &str) -> String {
    let l: String = label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    match l.as_str() {
        "hiphop" | "rap" => "hiphop".into(),
        "rnb" | "rb" | "randb" | "soulrnb" | "soulrb" | "soulrandb" | "rhythmandblues" => {
            "soul".into()
        }
        "electronica" | "electro" | "edm" | "dance" => "electronic".into(),
        _ => l,
    }
}

/// The colour of a genre label: fixed for the known genres, a stable hashed hue for
/// any other label.
pub fn genre_colour(label: &str) -> Color32 {
    let key = canonical(label);
    if let Some(&(_, hue, l)) = KNOWN.iter().find(|(k, _, _)| *k == key) {
        return oklch(l, 0.14, hue);
    }
    // FNV-1a: a hash whose output never changes between Rust releases.
    let h = key.bytes().fold(0x811c_9dc5u32, |a, b| {
        (a ^ b as u32).wrapping_mul(0x0100_0193)
    });
    // 24 hue steps, offset half a step from the known ones' most common angles.
    let hue = (h % 24) as f32 * 15.0 + 7.5;
    let l = if (h / 24) % 2 == 0 { 0.60 } else { 0.63 };
    oklch(l, 0.11, hue)
}

/// Black or white, whichever reads better on `fill`.
pub fn text_on(fill: Color32) -> Color32 {
    if contrast(Color32::BLACK, fill) >= contrast(Color32::WHITE, fill) {
        Color32::BLACK
    } else {
        Color32::WHITE
    }
}

/// Text colours for the current theme, each >= 4.5:1 on the panel and window fill.
#[derive(Debug, Clone, Copy)]
pub struct TextColours {
    /// Warnings (no sound, partial results).
    pub warn: Color32,
    /// Errors.
    pub error: Color32,
    /// Good news (a proposed change, done).
    pub ok: Color32,
    /// The outline of a bar's empty part (>= 3:1 on the panel: a UI component).
    pub bar_outline: Color32,
    /// A bar's empty part.
    pub bar_track: Color32,
}

/// The text colours for `visuals` (dark or light).
pub fn text_colours(visuals: &Visuals) -> TextColours {
    if visuals.dark_mode {
        TextColours {
            warn: Color32::from_rgb(240, 180, 80),
            error: Color32::from_rgb(255, 128, 112),
            ok: Color32::from_rgb(110, 210, 120),
            bar_outline: Color32::from_gray(120),
            bar_track: Color32::from_gray(45),
        }
    } else {
        TextColours {
            warn: Color32::from_rgb(138, 80, 0),
            error: Color32::from_rgb(178, 34, 24),
            ok: Color32::from_rgb(22, 120, 50),
            bar_outline: Color32::from_gray(118),
            bar_track: Color32::from_gray(226),
        }
    }
}

/// WCAG relative luminance of an sRGB colour.
pub fn luminance(c: Color32) -> f32 {
    let lin = |v: u8| {
        let v = v as f32 / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c.r()) + 0.7152 * lin(c.g()) + 0.0722 * lin(c.b())
}

/// WCAG contrast ratio of two colours (1..21).
pub fn contrast(a: Color32, b: Color32) -> f32 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// OKLab coordinates of an sRGB colour (for distance checks).
pub fn oklab(c: Color32) -> [f32; 3] {
    let lin = |v: u8| {
        let v = v as f32 / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(c.r()), lin(c.g()), lin(c.b()));
    let l = (0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b).cbrt();
    let m = (0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b).cbrt();
    let s = (0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b).cbrt();
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

/// An OKLCH colour as sRGB; chroma is reduced until the colour fits the sRGB gamut.
fn oklch(l: f32, c: f32, hue_deg: f32) -> Color32 {
    let h = hue_deg.to_radians();
    let mut chroma = c;
    loop {
        let (a, b) = (chroma * h.cos(), chroma * h.sin());
        let l_ = l + 0.396_337_78 * a + 0.215_803_76 * b;
        let m_ = l - 0.105_561_346 * a - 0.063_854_17 * b;
        let s_ = l - 0.089_484_18 * a - 1.291_485_5 * b;
        let (l3, m3, s3) = (l_ * l_ * l_, m_ * m_ * m_, s_ * s_ * s_);
        let rgb = [
            4.076_741_7 * l3 - 3.307_711_6 * m3 + 0.230_969_94 * s3,
            -1.268_438 * l3 + 2.609_757_4 * m3 - 0.341_319_38 * s3,
            -0.004_196_086_3 * l3 - 0.703_418_6 * m3 + 1.707_614_7 * s3,
        ];
        if rgb.iter().all(|v| (-0.0005..=1.0005).contains(v)) || chroma <= 0.0 {
            let enc = |v: f32| {
                let v = v.clamp(0.0, 1.0);
                let s = if v <= 0.003_130_8 {
                    12.92 * v
                } else {
                    1.055 * v.powf(1.0 / 2.4) - 0.055
                };
                (s * 255.0).round() as u8
            };
            return Color32::from_rgb(enc(rgb[0]), enc(rgb[1]), enc(rgb[2]));
        }
        chroma -= 0.005;
    }
}

/// The known labels (for tests and legends).
pub fn known_labels() -> impl Iterator<Item = &'static str> {
    KNOWN.iter().map(|(k, _, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: Color32, b: Color32) -> f32 {
        let (x, y) = (oklab(a), oklab(b));
        ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2) + (x[2] - y[2]).powi(2)).sqrt()
    }

    #[test]
    fn known_genres_have_distinct_readable_colours() {
        let dark = Color32::from_gray(27);
        let light = Color32::from_gray(248);
        let labels: Vec<&str> = known_labels().collect();
        for l in &labels {
            let c = genre_colour(l);
            assert!(contrast(c, dark) >= 3.0, "{l} {c:?} on dark");
            assert!(contrast(c, light) >= 3.0, "{l} {c:?} on light");
            assert!(contrast(text_on(c), c) >= 4.5, "text on {l}");
        }
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                let d = dist(genre_colour(a), genre_colour(b));
                assert!(d >= 0.07, "{a} and {b} too alike: {d}");
            }
        }
        // The pairs the first-time user saw merge are far apart.
        for (a, b) in [
            ("metal", "jazz"),
            ("rock", "hiphop"),
            ("blues", "reggae"),
            ("country", "disco"),
            ("rock", "metal"),
        ] {
            assert!(dist(genre_colour(a), genre_colour(b)) >= 0.12, "{a}/{b}");
        }
    }

    #[test]
    fn spellings_and_unknown_labels_are_stable() {
        assert_eq!(genre_colour("Hip Hop"), genre_colour("hiphop"));
        assert_eq!(genre_colour("R&B"), genre_colour("soul"));
        let x = genre_colour("shoegaze");
        assert_eq!(x, genre_colour("Shoegaze"));
        assert!(contrast(x, Color32::from_gray(27)) >= 3.0);
        assert!(contrast(text_on(x), x) >= 4.5);
    }

    #[test]
    fn theme_text_colours_meet_wcag_aa() {
        for v in [Visuals::dark(), Visuals::light()] {
            let t = text_colours(&v);
            for bg in [v.panel_fill, v.window_fill, v.extreme_bg_color] {
                for (name, c) in [("warn", t.warn), ("error", t.error), ("ok", t.ok)] {
                    assert!(
                        contrast(c, bg) >= 4.5,
                        "{name} {c:?} on {bg:?}: {}",
                        contrast(c, bg)
                    );
                }
                assert!(contrast(t.bar_outline, bg) >= 3.0);
            }
            assert!(contrast(v.text_color(), v.panel_fill) >= 4.5);
        }
    }
}
