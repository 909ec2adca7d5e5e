//! The genre vocabulary of a model: its labels, the name written into tags for each,
//! and which of the backbone's 50 tags are evidence for it.
//!
//! The shipped taxonomy is `models/taxonomy.txt` (documented there and in
//! `models/README.md`); users may edit it or pass their own. One genre per line:
//!
//! ```text
//! key = Written Name : backbone tag, backbone tag * weight, ...
//! ```
//!
//! Evidence for a genre is the noisy-OR of its tags' probabilities,
//! `1 - prod(1 - w * p(tag))`: any one strong tag is enough, several weak ones add up.

use std::path::{Path, PathBuf};

use crate::ml::musicnn::MSD_TAGS;

/// Why a taxonomy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    /// The file could not be read.
    #[error("cannot read the taxonomy ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line does not follow `key = Name : tags`.
    #[error("taxonomy line {line}: {reason}: {}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One genre of a taxonomy.
#[derive(Debug, Clone, PartialEq)]
pub struct GenreDef {
    /// The model's label, lower case (`hiphop`).
    pub key: String,
    /// The name written into tags (`Hip Hop`).
    pub name: String,
    /// Backbone tags that are evidence for it: (index into [`MSD_TAGS`], weight in (0, 1]).
    pub evidence: Vec<(usize, f32)>,
}

/// An ordered set of genres.
#[derive(Debug, Clone, PartialEq)]
pub struct Taxonomy {
    /// The genres, in label order.
    pub genres: Vec<GenreDef>,
}

/// The shipped taxonomy file's text (also embedded, so a lone binary has it).
pub const SHIPPED_TEXT: &str = include_str!("../../models/taxonomy.txt");

/// Evidence below this is treated as this (a genre without any tag evidence, or with
/// tags the backbone gives ~0): keeps log-evidence finite.
pub const EVIDENCE_FLOOR: f32 = 0.02;

/// Normalise a label or genre name for comparison: lower case, letters and digits only
/// (`Hip-Hop`, `hip hop` and `hiphop` are the same).
pub fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Taxonomy {
    /// The taxonomy shipped with genretag.
    pub fn shipped() -> Self {
        Self::parse(SHIPPED_TEXT, Path::new("models/taxonomy.txt"))
            .expect("the shipped taxonomy is checked by a unit test")
    }

    /// Read a taxonomy file.
    pub fn load(path: &Path) -> Result<Self, TaxonomyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaxonomyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse taxonomy text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TaxonomyError> {
        let err = |line: usize, reason: String| TaxonomyError::Syntax {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut genres: Vec<GenreDef> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, rest) = line
                .split_once('=')
                .ok_or_else(|| err(n + 1, "expected `key = Name : tags`".into()))?;
            let (name, tags) = rest.split_once(':').unwrap_or((rest, ""));
            let key = key.trim().to_lowercase();
            let name = name.trim().to_string();
            if key.is_empty() || name.is_empty() {
                return Err(err(n + 1, "empty key or name".into()));
            }
            if genres.iter().any(|g| normalise(&g.key) == normalise(&key)) {
                return Err(err(n + 1, format!("genre {key:?} appears twice")));
            }
            let mut evidence = Vec::new();
            for item in tags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let (tag, weight) = match item.split_once('*') {
                    Some((t, w)) => (
                        t.trim(),
                        w.trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|w| *w > 0.0 && *w <= 1.0)
                            .ok_or_else(|| {
                                err(n + 1, format!("weight of {t:?} must be in (0, 1]"))
                            })?,
                    ),
                    None => (item, 1.0),
                };
                let idx = MSD_TAGS
                    .iter()
                    .position(|t| t.eq_ignore_ascii_case(tag))
                    .ok_or_else(|| {
                        err(
                            n + 1,
                            format!("{tag:?} is not one of the backbone's 50 tags (models/README.md lists them)"),
                        )
                    })?;
                evidence.push((idx, weight));
            }
            genres.push(GenreDef {
                key,
                name,
                evidence,
            });
        }
        if genres.is_empty() {
            return Err(err(0, "no genres".into()));
        }
        Ok(Self { genres })
    }

    /// The labels, in order.
    pub fn keys(&self) -> Vec<String> {
        self.genres.iter().map(|g| g.key.clone()).collect()
    }

    /// Position of `label` (compared after [`normalise`]).
    pub fn index_of(&self, label: &str) -> Option<usize> {
        let n = normalise(label);
        self.genres.iter().position(|g| normalise(&g.key) == n)
    }

    /// The written name of `label`, if it is one of ours.
    pub fn name_of(&self, label: &str) -> Option<&str> {
        self.index_of(label).map(|i| self.genres[i].name.as_str())
    }

    /// Per-genre evidence in [`EVIDENCE_FLOOR`], 1] from the backbone's 50 tag
    /// probabilities.
    pub fn evidence(&self, tags: &[f32]) -> Vec<f32> {
        self.genres
            .iter()
            .map(|g| {
                let none: f32 = g
                    .evidence
                    .iter()
                    .map(|&(i, w)| 1.0 - w * tags.get(i).copied().unwrap_or(0.0).clamp(0.0, 1.0))
                    .product();
                (1.0 - none).max(EVIDENCE_FLOOR)
            })
            .collect()
    }

    /// True if any genre has backbone-tag evidence.
    pub fn has_evidence(&self) -> bool {
        self.genres.iter().any(|g| !g.evidence.is_empty())
    }

    /// Canonical text (what identifies this taxonomy in a model's id).
    pub fn canonical(&self) -> String {
        self.genres
            .iter()
            .map(|g| {
                let tags: Vec<String> = g
                    .evidence
                    .iter()
                    .map(|&(i, w)| format!("{}*{w}", MSD_TAGS[i]))
                    .collect();
                format!("{}={}:{}\n", g.key, g.name, tags.join(","))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_taxonomy_parses_and_covers_gtzan_and_the_wider_genres() {
        let t = Taxonomy::parse(SHIPPED_TEXT, Path::new("shipped")).expect("parses");
        for k in [
            "blues",
            "classical",
            "country",
            "disco",
            "hiphop",
            "jazz",
            "metal",
            "pop",
            "reggae",
            "rock",
            "electronic",
            "soul",
            "folk",
            "punk",
            "ambient",
        ] {
            assert!(t.index_of(k).is_some(), "{k}");
        }
        assert_eq!(t.name_of("Hip-Hop"), Some("Hip Hop"));
        assert_eq!(
            &t.keys()[..10],
            [
                "blues",
                "classical",
                "country",
                "disco",
                "hiphop",
                "jazz",
                "metal",
                "pop",
                "reggae",
                "rock"
            ]
        );
    }

    #[test]
    fn evidence_is_noisy_or_with_a_floor() {
        let t =
            Taxonomy::parse("a = A : rock, pop * 0.5\nb = B :\n", Path::new("t")).expect("parses");
        let mut tags = vec![0.0; 50];
        tags[0] = 0.5; // rock
        tags[1] = 0.4; // pop
        let e = t.evidence(&tags);
        assert!((e[0] - (1.0 - 0.5 * 0.8)).abs() < 1e-6);
        assert_eq!(e[1], EVIDENCE_FLOOR);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_reason() {
        let e =
            Taxonomy::parse("a = A : not-a-tag\n", Path::new("x.txt")).expect_err("unknown tag");
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(e.to_string().contains("not-a-tag"), "{e}");
        assert!(Taxonomy::parse("a = A\na = B\n", Path::new("x")).is_err());
        assert!(Taxonomy::parse("junk\n", Path::new("x")).is_err());
    }
}
