//! The genre vocabulary of the default model: GTZAN's ten genres, one table.

use serde::{Deserialize, Serialize};

/// One of the ten GTZAN genres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Genre {
    /// Blues.
    Blues,
    /// Classical.
    Classical,
    /// Country.
    Country,
    /// Disco.
    Disco,
    /// Hip-hop.
    Hiphop,
    /// Jazz.
    Jazz,
    /// Metal.
    Metal,
    /// Pop.
    Pop,
    /// Reggae.
    Reggae,
    /// Rock.
    Rock,
}

impl Genre {
    /// All genres in label order (the order of the default model's outputs).
    pub const ALL: [Genre; 10] = [
        Genre::Blues,
        Genre::Classical,
        Genre::Country,
        Genre::Disco,
        Genre::Hiphop,
        Genre::Jazz,
        Genre::Metal,
        Genre::Pop,
        Genre::Reggae,
        Genre::Rock,
    ];

    /// The GTZAN folder name, e.g. `hiphop`.
    pub fn key(self) -> &'static str {
        match self {
            Genre::Blues => "blues",
            Genre::Classical => "classical",
            Genre::Country => "country",
            Genre::Disco => "disco",
            Genre::Hiphop => "hiphop",
            Genre::Jazz => "jazz",
            Genre::Metal => "metal",
            Genre::Pop => "pop",
            Genre::Reggae => "reggae",
            Genre::Rock => "rock",
        }
    }

    /// The name a tag editor would show, e.g. `Hip-Hop`.
    pub fn display_name(self) -> &'static str {
        match self {
            Genre::Blues => "Blues",
            Genre::Classical => "Classical",
            Genre::Country => "Country",
            Genre::Disco => "Disco",
            Genre::Hiphop => "Hip-Hop",
            Genre::Jazz => "Jazz",
            Genre::Metal => "Metal",
            Genre::Pop => "Pop",
            Genre::Reggae => "Reggae",
            Genre::Rock => "Rock",
        }
    }

    /// Parse a GTZAN key or display name, case-insensitively.
    pub fn from_key(s: &str) -> Option<Genre> {
        let norm: String = s
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Genre::ALL.into_iter().find(|g| g.key() == norm)
    }

    /// Position of this genre in [`Genre::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Genre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        for (i, g) in Genre::ALL.into_iter().enumerate() {
            assert_eq!(g.index(), i);
            assert_eq!(Genre::from_key(g.key()), Some(g));
            assert_eq!(Genre::from_key(g.display_name()), Some(g));
        }
        assert_eq!(Genre::from_key("Hip-Hop"), Some(Genre::Hiphop));
        assert_eq!(Genre::from_key("polka"), None);
    }
}
