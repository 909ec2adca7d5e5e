//! Which files a batch command works on: paths on the command line and/or a list
//! (`--files-from FILE`, `-` for stdin, NUL-separated with `-0`), folders searched
//! recursively, then optionally one shard of them (`--shard K/N`).
//!
//! A shard is chosen by a hash of each file's path (relative to `--shard-root` when it
//! is under it), never by its content or its position in the list: N processes given
//! the same inputs take disjoint parts whose union is exactly the whole, whatever order
//! they list files in and on whichever machine the root is mounted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use clap::Args;

/// Paths that could not be read, with the reason.
pub type Unreadable = Vec<(PathBuf, String)>;

/// Input selection shared by `classify` and `tag`.
#[derive(Debug, Clone, Default, Args)]
pub struct Inputs {
    /// Audio files or folders (folders are searched recursively).
    pub paths: Vec<PathBuf>,
    /// Also read paths from this file, one per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    /// With `--files-from`: paths are separated by NUL bytes (`find -print0`), not lines.
    #[arg(short = '0', long = "null", requires = "files_from")]
    pub null: bool,
    /// Take only part K of N of the files (1 <= K <= N), chosen by a hash of each path:
    /// N runs with K = 1..N share the work and together cover every file once.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Hash paths relative to this folder for `--shard` (so machines that mount the
    /// library in different places agree). Default: paths as given.
    #[arg(long, value_name = "DIR", requires = "shard")]
    pub shard_root: Option<PathBuf>,
}

/// Part `k` (1-based) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part, 1..=n.
    pub k: u64,
    /// How many parts.
    pub n: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, e.g. 2/8 (got {s:?})"))?;
        let k: u64 = k
            .trim()
            .parse()
            .map_err(|_| format!("K in K/N is not a number: {k:?}"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("N in K/N is not a number: {n:?}"))?;
        if n == 0 || k == 0 || k > n {
            return Err(format!("need 1 <= K <= N (got {k}/{n})"));
        }
        Ok(Self { k, n })
    }
}

impl Shard {
    /// Whether `path` belongs to this shard. `root`: hash the path relative to it when
    /// the path is under it.
    pub fn contains(&self, path: &Path, root: Option<&Path>) -> bool {
        let rel = root.and_then(|r| path.strip_prefix(r).ok()).unwrap_or(path);
        let h = xxhash_rust::xxh3::xxh3_64(rel.as_os_str().as_encoded_bytes());
        h % self.n == self.k - 1
    }
}

/// Split a path list: NUL-separated, or lines (a trailing `\r` is kept: it can be part
/// of a Unix file name). Empty entries are skipped.
pub fn parse_list(bytes: &[u8], null: bool) -> Vec<PathBuf> {
    let sep = if null { b'\0' } else { b'\n' };
    bytes
        .split(|b| *b == sep)
        .filter(|p| !p.is_empty())
        .map(|p| crate::library::paths::from_bytes(p.to_vec()))
        .collect()
}

/// Read a path list from `source` (`-`: standard input).
fn read_list(source: &Path, null: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut bytes = Vec::new();
    let read = if source == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        // A pipe is fine here (`--files-from <(find ...)`): this is a list, not audio.
        std::fs::File::open(source).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.with_context(|| format!("cannot read the file list {}", source.display()))?;
    Ok(parse_list(&bytes, null))
}

impl Inputs {
    /// Every path given (command line first, then the list).
    pub fn given(&self) -> anyhow::Result<Vec<PathBuf>> {
        if self.paths.is_empty() && self.files_from.is_none() {
            anyhow::bail!("give audio files or folders, or --files-from FILE (`-`: stdin)");
        }
        let mut all = self.paths.clone();
        if let Some(list) = &self.files_from {
            all.extend(read_list(list, self.null)?);
        }
        Ok(all)
    }

    /// Whether a path is in this run's shard (every path without `--shard`).
    pub fn selects(&self, path: &Path) -> bool {
        self.shard
            .is_none_or(|s| s.contains(path, self.shard_root.as_deref()))
    }

    /// The audio files to work on and the paths that could not be read (with the
    /// reason), both limited to this run's shard.
    pub fn collect(&self) -> anyhow::Result<(Vec<PathBuf>, Unreadable)> {
        let (mut files, mut errors) = crate::library::files::collect(&self.given()?);
        files.retain(|p| self.selects(p));
        errors.retain(|(p, _)| self.selects(p));
        Ok((files, errors))
    }

    /// A short description for a batch's journal entry.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .paths
            .iter()
            .map(|p| crate::library::paths::escaped(p))
            .collect();
        if let Some(f) = &self.files_from {
            parts.push(format!("--files-from {}", f.display()));
        }
        if let Some(s) = &self.shard {
            parts.push(format!("--shard {}/{}", s.k, s.n));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        let paths: Vec<PathBuf> = (0..2000)
            .map(|i| PathBuf::from(format!("/music/artist {}/track {i}.flac", i % 37)))
            .collect();
        let n = 7;
        let mut counts = vec![0usize; paths.len()];
        for k in 1..=n {
            let s = Shard { k, n };
            let mut size = 0;
            for (i, p) in paths.iter().enumerate() {
                if s.contains(p, None) {
                    counts[i] += 1;
                    size += 1;
                }
            }
            // Roughly even: each part within 30 % of 2000/7.
            assert!((200..=371).contains(&size), "shard {k}/{n} has {size}");
        }
        assert!(counts.iter().all(|&c| c == 1));
    }

    #[test]
    fn shard_root_makes_mount_points_agree() {
        let s = Shard { k: 1, n: 3 };
        for i in 0..100 {
            let a = PathBuf::from(format!("/mnt/a/music/x{i}.mp3"));
            let b = PathBuf::from(format!("/media/b/x{i}.mp3"));
            assert_eq!(
                s.contains(&a, Some(Path::new("/mnt/a/music"))),
                s.contains(&b, Some(Path::new("/media/b")))
            );
        }
    }

    #[test]
    fn parses_shards_and_rejects_nonsense() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { k: 2, n: 8 }));
        for bad in ["0/3", "4/3", "1/0", "x/2", "3", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_split_on_lines_or_nul() {
        let lines = parse_list(b"a b.mp3\n-dash.flac\n\nunicod\xc3\xa9.ogg\n", false);
        assert_eq!(
            lines,
            vec![
                PathBuf::from("a b.mp3"),
                PathBuf::from("-dash.flac"),
                PathBuf::from("unicodé.ogg")
            ]
        );
        let nul = parse_list(b"new\nline.mp3\0b.wav\0", true);
        assert_eq!(
            nul,
            vec![PathBuf::from("new\nline.mp3"), PathBuf::from("b.wav")]
        );
    }
}
