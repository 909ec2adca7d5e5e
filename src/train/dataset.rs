//! Datasets (a folder per genre, or a `path<TAB>genre` list) and splits: stratified
//! by track, grouped (a group never spans two parts), or explicit lists such as the
//! fault-filtered GTZAN split, whose missing files are reported. Every split has a
//! name that reports carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::ml::cv::{SplitMix, gtzan_block};

/// Why a dataset or split could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// A file could not be read.
    #[error("cannot read ({source}): {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A list file has a bad line.
    #[error("line {line}: expected `path<TAB>genre`: {}", path.display())]
    BadLine {
        /// The list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// Nothing usable was found.
    #[error("no labelled audio found: {}", path.display())]
    Empty {
        /// Where we looked.
        path: PathBuf,
    },
    /// A tag-to-label mapping file has a bad line.
    #[error("line {line}: expected `tag value = label`: {}", path.display())]
    BadMapLine {
        /// The mapping file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// No genre of a library has enough tagged tracks.
    #[error("no genre has at least {min_tracks} tagged tracks under {}", path.display())]
    TooFewTagged {
        /// The (first) library folder.
        path: PathBuf,
        /// The minimum asked for.
        min_tracks: usize,
    },
    /// A split leaves a part empty.
    #[error(
        "split {split} leaves {train} training and {test} test tracks (need at least one of each)"
    )]
    EmptyPart {
        /// The split's name.
        split: String,
        /// Training tracks.
        train: usize,
        /// Test tracks.
        test: usize,
    },
    /// Too few of the tracks could be decoded and analysed to go on.
    #[error("only {usable} tracks could be analysed{when}; {needed} needed")]
    TooFewUsable {
        /// Tracks that could.
        usable: usize,
        /// Tracks needed.
        needed: usize,
        /// Under which condition (" under every shift", "" for none).
        when: &'static str,
    },
    /// A dataset's genre has no place in the model's taxonomy.
    #[error("the dataset's genre {label:?} is not in the taxonomy; add it to the taxonomy file")]
    NotInTaxonomy {
        /// The genre.
        label: String,
    },
}

/// One labelled track.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The audio file.
    pub path: PathBuf,
    /// Its label index into [`Dataset::labels`].
    pub label: usize,
}

/// Labelled tracks.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Label names, sorted.
    pub labels: Vec<String>,
    /// Tracks, sorted by path.
    pub items: Vec<Item>,
}

fn build(pairs: Vec<(PathBuf, String)>, origin: &Path) -> Result<Dataset, SplitError> {
    if pairs.is_empty() {
        return Err(SplitError::Empty {
            path: origin.to_path_buf(),
        });
    }
    let labels: Vec<String> = pairs
        .iter()
        .map(|(_, l)| l.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut items: Vec<Item> = pairs
        .into_iter()
        .map(|(path, l)| Item {
            path,
            label: labels.binary_search(&l).unwrap_or(0),
        })
        .collect();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Dataset { labels, items })
}

impl Dataset {
    /// A folder with one sub-folder per genre (GTZAN layout); audio found recursively
    /// below each genre folder.
    pub fn from_folder(root: &Path) -> Result<Self, SplitError> {
        let entries = std::fs::read_dir(root).map_err(|source| SplitError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let mut pairs = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            let (files, _) = crate::library::files::collect(&[e.path()]);
            pairs.extend(files.into_iter().map(|f| (f, name.clone())));
        }
        build(pairs, root)
    }

    /// A list file of `path<TAB>genre` lines; relative paths are resolved against the
    /// list's folder. `#` starts a comment.
    pub fn from_list(list: &Path) -> Result<Self, SplitError> {
        let text = std::fs::read_to_string(list).map_err(|source| SplitError::Io {
            path: list.to_path_buf(),
            source,
        })?;
        let base = list.parent().unwrap_or(Path::new("."));
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim_end();
            if line.trim().is_empty() {
                continue;
            }
            let Some((p, g)) = line
                .split_once('\t')
                .filter(|(p, g)| !p.is_empty() && !g.trim().is_empty())
            else {
                return Err(SplitError::BadLine {
                    path: list.to_path_buf(),
                    line: n + 1,
                });
            };
            pairs.push((base.join(p), g.trim().to_string()));
        }
        build(pairs, list)
    }

    /// Tracks per label.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.labels.len()];
        self.items.iter().for_each(|i| c[i.label] += 1);
        c
    }
}

/// Indices into [`Dataset::items`] for each part, and the split's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Name carried by every report, e.g. `stratified(test=0.2,val=0.1,seed=1)`.
    pub name: String,
    /// Training items.
    pub train: Vec<usize>,
    /// Validation items.
    pub val: Vec<usize>,
    /// Test items.
    pub test: Vec<usize>,
    /// Entries of explicit lists that matched no dataset item.
    pub missing: Vec<String>,
}

/// Stratified random split by track: per label, `test` and `val` fractions.
pub fn stratified(ds: &Dataset, test: f64, val: f64, seed: u64) -> Split {
    let mut rng = SplitMix::new(seed);
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..ds.labels.len() {
        let mut idx: Vec<usize> = (0..ds.items.len())
            .filter(|&i| ds.items[i].label == l)
            .collect();
        rng.shuffle(&mut idx);
        let n_te = (idx.len() as f64 * test).round() as usize;
        let n_va = (idx.len() as f64 * val).round() as usize;
        te.extend(&idx[..n_te.min(idx.len())]);
        va.extend(&idx[n_te.min(idx.len())..(n_te + n_va).min(idx.len())]);
        tr.extend(&idx[(n_te + n_va).min(idx.len())..]);
    }
    for v in [&mut tr, &mut va, &mut te] {
        v.sort_unstable();
    }
    Split {
        name: format!("stratified(test={test},val={val},seed={seed})"),
        train: tr,
        val: va,
        test: te,
        missing: Vec::new(),
    }
}

/// Grouped split: whole groups go to one part. `group_of` gives each item's key
/// (artist tag, album tag, GTZAN block…). Groups are dealt per label so each part
/// gets a spread of labels.
pub fn grouped(
    ds: &Dataset,
    group_of: &dyn Fn(&Item) -> String,
    test: f64,
    val: f64,
    seed: u64,
    key_name: &str,
) -> Split {
    let mut rng = SplitMix::new(seed);
    let mut part_of_group: BTreeMap<String, u8> = BTreeMap::new();
    for l in 0..ds.labels.len() {
        let mut groups: Vec<String> = ds
            .items
            .iter()
            .filter(|i| i.label == l)
            .map(group_of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|g| !part_of_group.contains_key(g))
            .collect();
        rng.shuffle(&mut groups);
        let n = groups.len();
        let n_te = ((n as f64 * test).round() as usize).min(n);
        let n_va = ((n as f64 * val).round() as usize).min(n - n_te);
        for (k, g) in groups.into_iter().enumerate() {
            let part = if k < n_te {
                2
            } else if k < n_te + n_va {
                1
            } else {
                0
            };
            part_of_group.insert(g, part);
        }
    }
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for (i, item) in ds.items.iter().enumerate() {
        match part_of_group.get(&group_of(item)) {
            Some(2) => te.push(i),
            Some(1) => va.push(i),
            _ => tr.push(i),
        }
    }
    Split {
        name: format!("grouped(by={key_name},test={test},val={val},seed={seed})"),
        train: tr,
        val: va,
        test: te,
        missing: Vec::new(),
    }
}

/// The GTZAN block of an item (`genre.NNNNN` numbers in blocks of `block`).
pub fn gtzan_group(item: &Item, block: usize) -> String {
    let name = item
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    gtzan_block(&name, block).unwrap_or(name)
}

/// Explicit split lists (one `genre/file.ext` or path per line). Entries match items by
/// file stem (so `blues.00012.wav` matches `blues.00012.flac`); unmatched entries are
/// reported in `missing`. Items in no list are left out.
pub fn from_lists(
    ds: &Dataset,
    train: &Path,
    val: Option<&Path>,
    test: &Path,
) -> Result<Split, SplitError> {
    let stem_of = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let index: BTreeMap<String, usize> = ds
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (stem_of(&it.path), i))
        .collect();
    let mut missing = Vec::new();
    let mut read = |list: &Path| -> Result<Vec<usize>, SplitError> {
        let text = std::fs::read_to_string(list).map_err(|source| SplitError::Io {
            path: list.to_path_buf(),
            source,
        })?;
        let mut out = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            match index.get(&stem_of(Path::new(line))) {
                Some(&i) => out.push(i),
                None => missing.push(line.to_string()),
            }
        }
        out.sort_unstable();
        Ok(out)
    };
    let tr = read(train)?;
    let va = match val {
        Some(v) => read(v)?,
        None => Vec::new(),
    };
    let te = read(test)?;
    Ok(Split {
        name: format!(
            "lists({})",
            [Some(train), val, Some(test)]
                .into_iter()
                .flatten()
                .map(|p| p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        ),
        train: tr,
        val: va,
        test: te,
        missing,
    })
}

/// "Use my library's genre tags as labels": every audio file under `roots` whose first
/// genre tag (after the optional mapping file of `tag value = label` lines, compared
/// case-insensitively) names a genre with at least `min_tracks` tracks.
pub fn from_library_tags(
    roots: &[PathBuf],
    min_tracks: usize,
    map: Option<&Path>,
) -> Result<Dataset, SplitError> {
    let mut mapping: BTreeMap<String, String> = BTreeMap::new();
    if let Some(m) = map {
        let text = std::fs::read_to_string(m).map_err(|source| SplitError::Io {
            path: m.to_path_buf(),
            source,
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((from, to)) = line.split_once('=') else {
                return Err(SplitError::BadMapLine {
                    path: m.to_path_buf(),
                    line: n + 1,
                });
            };
            mapping.insert(from.trim().to_lowercase(), to.trim().to_string());
        }
    }
    let (files, _) = crate::library::files::collect(roots);
    let mut pairs = Vec::new();
    for f in files {
        // Untagged or unreadable files simply are not labelled examples.
        let Ok(tags) = crate::library::tags::read_tags(&f) else {
            continue;
        };
        let Some(g) = tags.genres.first().map(|g| g.trim().to_string()) else {
            continue;
        };
        if g.is_empty() {
            continue;
        }
        let label = mapping.get(&g.to_lowercase()).cloned().unwrap_or(g);
        pairs.push((f, label));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    pairs
        .iter()
        .for_each(|(_, l)| *counts.entry(l.clone()).or_default() += 1);
    pairs.retain(|(_, l)| counts[l] >= min_tracks.max(1));
    let origin = roots.first().cloned().unwrap_or_default();
    build(pairs, &origin).map_err(|_| SplitError::TooFewTagged {
        path: origin,
        min_tracks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        let pairs = (0..40)
            .map(|i| {
                let g = if i < 20 { "blues" } else { "jazz" };
                (
                    PathBuf::from(format!("/x/{g}/{g}.{:05}.flac", i % 20)),
                    g.to_string(),
                )
            })
            .collect();
        build(pairs, Path::new("/x")).expect("non-empty")
    }

    #[test]
    fn stratified_keeps_label_proportions_and_partitions() {
        let ds = toy();
        let s = stratified(&ds, 0.25, 0.25, 3);
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (20, 10, 10));
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.val)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        let jazz_in_test = s.test.iter().filter(|&&i| ds.items[i].label == 1).count();
        assert_eq!(jazz_in_test, 5);
    }

    #[test]
    fn grouped_never_splits_a_group() {
        let ds = toy();
        let s = grouped(
            &ds,
            &|it| gtzan_group(it, 5),
            0.25,
            0.25,
            9,
            "gtzan-block-5",
        );
        let part = |i: usize| {
            if s.test.contains(&i) {
                2
            } else if s.val.contains(&i) {
                1
            } else {
                0
            }
        };
        for i in 0..40 {
            for j in 0..40 {
                if gtzan_group(&ds.items[i], 5) == gtzan_group(&ds.items[j], 5) {
                    assert_eq!(part(i), part(j));
                }
            }
        }
        assert!(!s.test.is_empty() && !s.val.is_empty());
        assert!(s.name.contains("gtzan-block-5"));
    }

    #[test]
    fn lists_match_by_stem_and_report_missing() {
        let ds = toy();
        let dir = tempfile::tempdir().expect("tempdir");
        let tr = dir.path().join("train.txt");
        let te = dir.path().join("test.txt");
        std::fs::write(&tr, "blues/blues.00001.wav\nblues/blues.00099.wav\n").expect("write");
        std::fs::write(&te, "jazz/jazz.00003.wav\n").expect("write");
        let s = from_lists(&ds, &tr, None, &te).expect("reads");
        assert_eq!(s.train.len(), 1);
        assert_eq!(s.test.len(), 1);
        assert_eq!(s.missing, vec!["blues/blues.00099.wav"]);
    }

    #[test]
    fn list_file_dataset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("data.tsv");
        std::fs::write(&list, "a.flac\tRock\n# comment\nsub/b.mp3\tJazz\n").expect("write");
        let ds = Dataset::from_list(&list).expect("parses");
        assert_eq!(ds.labels, vec!["Jazz", "Rock"]);
        assert_eq!(ds.items[0].path, dir.path().join("a.flac"));
        std::fs::write(&list, "no tab here\n").expect("write");
        assert!(matches!(
            Dataset::from_list(&list),
            Err(SplitError::BadLine { line: 1, .. })
        ));
    }
}
