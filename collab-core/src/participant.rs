//! Participants, their roles and colours.

pub use collab_wire::participant::{Action, Participant, Role};

/// Colours that read well as cursor and name-tag backgrounds on a light or dark editor.
const PALETTE: [&str; 12] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46b4b4", "#f032e6", "#808000",
    "#9a6324", "#000075", "#e6a800", "#800000",
];

/// Lightness levels of the generated hues after the palette: 3 × 360 hues.
const LIGHTNESS: [f64; 3] = [0.45, 0.32, 0.60];

/// Every colour a participant can get, in the order they are handed out: the
/// palette first, then hues spread by the golden angle (137 is prime to 360,
/// so every whole hue comes once) at each lightness in turn. Finite on
/// purpose: a search over an endless sequence never ends once a long-lived
/// session holds every colour it yields.
fn candidates() -> impl Iterator<Item = String> {
    PALETTE.iter().map(|c| (*c).to_owned()).chain(
        LIGHTNESS
            .iter()
            .flat_map(|&l| (0u32..360).map(move |i| hsl_hex((i * 137 + 17) % 360, l))),
    )
}

/// The first colour no current member holds. Once every candidate is held
/// (over a thousand members, most of them long offline), the first colour
/// no one online holds and, among those, the least held: people in the
/// session at the same time still tell each other apart. `taken` lists each
/// current member's colour and whether they are online. Linear in `taken`
/// plus the candidates, whatever the session's size.
pub(crate) fn pick_colour<'a>(taken: impl Iterator<Item = (&'a str, bool)>) -> String {
    // (online holders, all holders) per colour.
    let mut held: std::collections::HashMap<String, (usize, usize)> =
        std::collections::HashMap::new();
    for (colour, online) in taken {
        let entry = held.entry(colour.to_ascii_lowercase()).or_default();
        entry.0 += usize::from(online);
        entry.1 += 1;
    }
    let mut best: Option<((usize, usize), String)> = None;
    for candidate in candidates() {
        let count = held.get(&candidate).copied().unwrap_or((0, 0));
        if count == (0, 0) {
            return candidate;
        }
        if best.as_ref().is_none_or(|(least, _)| count < *least) {
            best = Some((count, candidate));
        }
    }
    best.map_or_else(|| PALETTE[0].to_owned(), |(_, colour)| colour)
}

/// A saturated colour of the given hue and lightness as `#rrggbb`.
fn hsl_hex(hue: u32, l: f64) -> String {
    let s = 0.65_f64;
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let h = f64::from(hue) / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match hue / 60 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to_byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", to_byte(r), to_byte(g), to_byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_matrix() {
        use Action::*;
        for action in Action::ALL {
            assert!(Role::Host.permits(action), "host may {action:?}");
        }
        let editor_may = [EditDocument, PostMessage, React, SetPresence];
        let viewer_may = [PostMessage, React, SetPresence];
        for action in Action::ALL {
            assert_eq!(
                Role::Editor.permits(action),
                editor_may.contains(&action),
                "{action:?}"
            );
            assert_eq!(
                Role::Viewer.permits(action),
                viewer_may.contains(&action),
                "{action:?}"
            );
        }
    }

    #[test]
    fn colours_stay_distinct_past_the_palette() {
        let mut taken: Vec<String> = Vec::new();
        for _ in 0..100 {
            let c = pick_colour(taken.iter().map(|c| (c.as_str(), false)));
            assert!(!taken.contains(&c), "{c} given twice");
            assert!(c.starts_with('#') && c.len() == 7);
            taken.push(c);
        }
    }

    #[test]
    fn every_candidate_is_a_distinct_colour() {
        let all: Vec<String> = candidates().collect();
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 12 + 3 * 360);
        // A few hues round to the same bytes; nearly all stay distinct.
        assert!(distinct.len() > 1000, "{} distinct", distinct.len());
    }

    #[test]
    fn past_every_candidate_colours_are_reused_evenly() {
        let mut taken: Vec<String> = Vec::new();
        for _ in 0..3000 {
            let c = pick_colour(taken.iter().map(|c| (c.as_str(), false)));
            taken.push(c);
        }
        let mut counts = std::collections::HashMap::new();
        for c in &taken {
            *counts.entry(c.as_str()).or_insert(0usize) += 1;
        }
        let most = counts.values().max().copied().unwrap_or(0);
        assert!(most <= 3 + 1, "a colour held {most} times");
    }

    #[test]
    fn a_freed_colour_is_reused() {
        let first = pick_colour(std::iter::empty());
        let second = pick_colour([(first.as_str(), true)].into_iter());
        assert_ne!(first, second);
        assert_eq!(pick_colour([(second.as_str(), true)].into_iter()), first);
    }
}
