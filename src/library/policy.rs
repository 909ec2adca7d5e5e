//! Which genres to write: top-k, minimum probability, replace/merge/fill, a name
//! mapping, a whitelist, and protected genres a user never wants removed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::model::Taxonomy;

/// How proposed genres combine with what the file already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write the proposed genres (keeping protected existing ones).
    #[default]
    Replace,
    /// Add the proposed genres to the existing ones.
    Merge,
    /// Only tag files that have no genre yet.
    Fill,
}

/// The rules.
#[derive(Debug, Clone)]
pub struct TagPolicy {
    /// At most this many proposed genres.
    pub top_k: usize,
    /// Only genres at least this probable.
    pub min_prob: f32,
    /// Replace, merge or fill.
    pub mode: Mode,
    /// Model label -> the name written (e.g. `hiphop` -> `Hip-Hop`).
    pub names: BTreeMap<String, String>,
    /// If set, only these written names may be proposed (case-insensitive).
    pub whitelist: Option<Vec<String>>,
    /// Existing genres never removed (case-insensitive).
    pub protected: Vec<String>,
}

impl Default for TagPolicy {
    fn default() -> Self {
        Self {
            top_k: 1,
            min_prob: 0.5,
            mode: Mode::Replace,
            names: Taxonomy::shipped()
                .genres
                .iter()
                .map(|g| (g.key.clone(), g.name.clone()))
                .collect(),
            whitelist: None,
            protected: Vec::new(),
        }
    }
}

/// What the policy proposes for one file, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    /// Genres the file has now.
    pub existing: Vec<String>,
    /// Genres it would have.
    pub proposed: Vec<String>,
    /// Whether that differs from `existing`.
    pub changes: bool,
    /// True if the policy declined to propose anything (see `reason`).
    pub skipped: bool,
    /// Human-readable reason (probabilities, or why it is skipped).
    pub reason: String,
}

fn contains_ci(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(item))
}

impl TagPolicy {
    /// Read a mapping file: `label = Name` lines; `#` starts a comment.
    pub fn load_names(&mut self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line {}: expected `label = Name`: {}",
                        n + 1,
                        path.display()
                    ),
                ));
            };
            self.names
                .insert(k.trim().to_lowercase(), v.trim().to_string());
        }
        Ok(())
    }

    /// Propose genres from `ranked` (label, probability; most likely first).
    pub fn propose(&self, existing: &[String], ranked: &[(&str, f32)]) -> Proposal {
        let mut candidates: Vec<(String, f32)> = Vec::new();
        for &(label, p) in ranked {
            if candidates.len() >= self.top_k || p < self.min_prob {
                break;
            }
            let name = self
                .names
                .get(&label.to_lowercase())
                .cloned()
                .unwrap_or_else(|| label.to_string());
            if self
                .whitelist
                .as_ref()
                .is_some_and(|w| !contains_ci(w, &name))
            {
                continue;
            }
            if !candidates
                .iter()
                .any(|(c, _)| c.eq_ignore_ascii_case(&name))
            {
                candidates.push((name, p));
            }
        }
        let why: Vec<String> = candidates
            .iter()
            .map(|(g, p)| format!("{g} {:.0}%", p * 100.0))
            .collect();
        let skip = |reason: String| Proposal {
            existing: existing.to_vec(),
            proposed: existing.to_vec(),
            changes: false,
            skipped: true,
            reason,
        };
        if candidates.is_empty() {
            let best = ranked.first().map_or(String::new(), |(l, p)| {
                format!(" (best: {l} {:.0}%)", p * 100.0)
            });
            return skip(format!(
                "no genre at or above {:.0}%{best}",
                self.min_prob * 100.0
            ));
        }
        let names: Vec<String> = candidates.into_iter().map(|(g, _)| g).collect();
        let proposed = match self.mode {
            Mode::Fill if !existing.is_empty() => {
                return skip("already has a genre (fill mode)".into());
            }
            Mode::Fill => names,
            Mode::Merge => {
                let mut v = existing.to_vec();
                for n in names {
                    if !contains_ci(&v, &n) {
                        v.push(n);
                    }
                }
                v
            }
            Mode::Replace => {
                let mut v: Vec<String> = existing
                    .iter()
                    .filter(|e| contains_ci(&self.protected, e))
                    .cloned()
                    .collect();
                for n in names {
                    if !contains_ci(&v, &n) {
                        v.push(n);
                    }
                }
                v
            }
        };
        Proposal {
            changes: proposed != existing,
            skipped: false,
            existing: existing.to_vec(),
            proposed,
            reason: why.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn modes_and_thresholds() {
        let ranked = [("hiphop", 0.7), ("jazz", 0.2), ("blues", 0.1)];
        let mut p = TagPolicy::default();
        assert_eq!(p.propose(&s(&["Rock"]), &ranked).proposed, s(&["Hip Hop"]));
        p.mode = Mode::Merge;
        assert_eq!(
            p.propose(&s(&["Rock"]), &ranked).proposed,
            s(&["Rock", "Hip Hop"])
        );
        p.mode = Mode::Fill;
        assert!(!p.propose(&s(&["Rock"]), &ranked).changes);
        assert_eq!(p.propose(&[], &ranked).proposed, s(&["Hip Hop"]));
        p.mode = Mode::Replace;
        p.protected = s(&["rock"]);
        assert_eq!(
            p.propose(&s(&["Rock", "Pop"]), &ranked).proposed,
            s(&["Rock", "Hip Hop"])
        );
        p.min_prob = 0.8;
        let prop = p.propose(&s(&["Pop"]), &ranked);
        assert!(
            !prop.changes && prop.reason.contains("no genre"),
            "{prop:?}"
        );
        p.min_prob = 0.15;
        p.top_k = 3;
        p.protected.clear();
        assert_eq!(p.propose(&[], &ranked).proposed, s(&["Hip Hop", "Jazz"]));
        p.whitelist = Some(s(&["jazz"]));
        assert_eq!(p.propose(&[], &ranked).proposed, s(&["Jazz"]));
    }

    #[test]
    fn mapping_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("map.txt");
        std::fs::write(&f, "# mine\nhiphop = Rap\n\njazz=Jazz & Swing\n").expect("write");
        let mut p = TagPolicy::default();
        p.load_names(&f).expect("loads");
        assert_eq!(p.propose(&[], &[("hiphop", 0.9)]).proposed, s(&["Rap"]));
        std::fs::write(&f, "nonsense").expect("write");
        assert!(p.load_names(&f).is_err());
    }
}
