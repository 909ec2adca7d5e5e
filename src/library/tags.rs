//! Reading tags (lofty) and writing genres without ever damaging a file.
//!
//! Conventions per format: ID3v2.4 `TCON` with one value per genre (ID3v2.3 files,
//! or on request, get one value joined with "; "), Vorbis comments with one `GENRE`
//! field per genre (FLAC, Ogg Vorbis), MP4 `©gen` with one data entry per genre,
//! WAV and AIFF through their ID3v2 chunk. Only the genre is touched: every other
//! tag item and picture is compared before and after.
//!
//! A write never modifies the original in place. It copies the file next to itself
//! (next to the target of a symbolic link, with owner, mode and extended attributes:
//! see [`super::replace`]), writes the copy, re-reads its tags, decodes its audio and
//! compares a checksum of the decoded samples with the original's, and only then
//! renames the copy over the original. A crash at any moment leaves the old file or the
//! new one, and at worst a stray hidden `.genretag-<pid>-<name>` copy beside it, which
//! the next run removes.
//!
//! Reading goes through [`crate::audio::source`]: only regular files are opened, and a
//! container cut short is read through a repaired view, so its tags can still be shown.
//! Writing refuses such a damaged file, `.au` files (the format has no tag block) and
//! files with several hard links, each with the reason in words. The tag library is
//! panic-guarded like the decoder: malformed data it chokes on is an error for that file.

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use lofty::TextEncoding;
use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::{AudioFile, FileType, TaggedFileExt};
use lofty::id3::v2::{
    ExtendedTextFrame, Frame, FrameId, Id3v2Tag, Id3v2Version, TextInformationFrame,
};
use lofty::mp4::{Atom, AtomData, AtomIdent, Ilst, Mp4File};
use lofty::ogg::VorbisFile;
use lofty::ogg::tag::VorbisComments;
use lofty::tag::{Accessor, ItemKey, ItemValue};

use super::replace::{Scratch, Target, resolve};
use crate::audio::source::{Repaired, inspect, open_regular};
use crate::error::TagError;

/// What a library view needs from a file's tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackTags {
    /// Title.
    pub title: Option<String>,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Recording year (from the date or year tag).
    pub year: Option<u32>,
    /// Genres, one entry per value.
    pub genres: Vec<String>,
    /// Duration in seconds (from the container).
    pub duration_s: f64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TagError + '_ {
    move |source| TagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path, e: impl std::fmt::Display) -> TagError {
    TagError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Split a stored genre value into its genres: ID3v2.4 NUL separators, and the "; "
/// or " / " joins other taggers (and our ID3v2.3 writes) use.
pub fn split_genres(value: &str) -> Vec<String> {
    value
        .split(['\0', ';'])
        .flat_map(|v| v.split(" / "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Run the tag library on `path`, turning a panic on malformed data into an error for
/// this file (as [`crate::audio::open`] does for the decoder).
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, TagError>) -> Result<T, TagError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(format_err(
            path,
            "the tag reader crashed on malformed data in this file",
        ))
    })
}

/// Why genretag does not write `.au` files.
const AU_REASON: &str =
    "genretag cannot write tags into .au files: the format has no standard tag block";

/// Is this a Sun/NeXT `.au` file (by its magic, whatever the name)?
fn is_au(path: &Path) -> Result<bool, TagError> {
    let mut f = open_regular(path).map_err(io_err(path))?;
    crate::audio::au::sniff(&mut f).map_err(io_err(path))
}

/// Parse a file with lofty, recognising the format by content (not only the extension),
/// through the repaired view of a truncated container.
fn read_tagged(path: &Path) -> Result<lofty::file::TaggedFile, TagError> {
    let mut file = open_regular(path).map_err(io_err(path))?;
    let layout = inspect(&mut file).map_err(io_err(path))?;
    let reader = BufReader::new(Repaired::new(file, &layout));
    guarded(path, || {
        let mut probe = lofty::probe::Probe::new(reader);
        if let Some(ft) = FileType::from_path(path) {
            probe = probe.set_file_type(ft);
        }
        probe
            .guess_file_type()
            .map_err(io_err(path))?
            .read()
            .map_err(|e| match &layout.truncation {
                Some(t) => format_err(path, format!("{t}; the tags could not be read ({e})")),
                None => format_err(path, e),
            })
    })
}

/// Read title, artist, album, genres and duration. A `.au` file (no tag block) has
/// only a duration.
pub fn read_tags(path: &Path) -> Result<TrackTags, TagError> {
    if is_au(path)? {
        let file = open_regular(path).map_err(io_err(path))?;
        let stream =
            crate::audio::au::AuStream::new(file, path).map_err(|e| format_err(path, e))?;
        let info = crate::audio::AudioStream::info(&stream);
        return Ok(TrackTags {
            duration_s: info.total_frames.unwrap_or(0) as f64 / info.sample_rate_hz.max(1) as f64,
            ..TrackTags::default()
        });
    }
    let tagged = read_tagged(path)?;
    let duration_s = tagged.properties().duration().as_secs_f64();
    // The primary tag first, then the others (a WAV may hold its title in RIFF INFO and
    // its genre in the ID3 chunk).
    let mut tags: Vec<&lofty::tag::Tag> = tagged.primary_tag().into_iter().collect();
    tags.extend(
        tagged
            .tags()
            .iter()
            .filter(|t| Some(t.tag_type()) != tagged.primary_tag().map(|p| p.tag_type())),
    );
    let field = |get: fn(&lofty::tag::Tag) -> Option<String>| tags.iter().find_map(|t| get(t));
    let genres = tags
        .iter()
        .map(|t| {
            let mut genres: Vec<String> = Vec::new();
            for g in t.get_strings(ItemKey::Genre) {
                for one in split_genres(g) {
                    if !genres.contains(&one) {
                        genres.push(one);
                    }
                }
            }
            genres
        })
        .find(|g| !g.is_empty())
        .unwrap_or_default();
    Ok(TrackTags {
        title: field(|t| t.title().map(|s| s.to_string())),
        artist: field(|t| t.artist().map(|s| s.to_string())),
        album: field(|t| t.album().map(|s| s.to_string())),
        year: tags
            .iter()
            .find_map(|t| t.date())
            .map(|d| u32::from(d.year))
            .filter(|&y| y > 0),
        genres,
        duration_s,
    })
}

/// How to write.
#[derive(Debug, Clone, Default)]
pub struct TagWriteOptions {
    /// Write ID3v2.3 (genres joined with "; ") even if the file has ID3v2.4.
    /// Files that already carry ID3v2.3 stay ID3v2.3 either way.
    pub force_id3v23: bool,
    /// Also record the model's confidence and name in custom fields
    /// (`TXXX:GENRETAG_CONFIDENCE` / `TXXX:GENRETAG_MODEL`, the same names as Vorbis
    /// comments, MP4 freeform `----:com.genretag:…`). Off by default.
    pub provenance: Option<Provenance>,
}

/// What the optional custom fields record.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Probability of the first written genre, 0–1.
    pub confidence: f32,
    /// Model identifier.
    pub model: String,
}

/// Custom field names (ID3 TXXX descriptions, Vorbis keys, MP4 freeform names).
pub const CONFIDENCE_FIELD: &str = "GENRETAG_CONFIDENCE";
/// See [`CONFIDENCE_FIELD`].
pub const MODEL_FIELD: &str = "GENRETAG_MODEL";

impl Provenance {
    fn fields(&self) -> [(&'static str, String); 2] {
        [
            (CONFIDENCE_FIELD, format!("{:.3}", self.confidence)),
            (MODEL_FIELD, self.model.clone()),
        ]
    }
}

/// A genre write that happened: old and new values.
#[derive(Debug, Clone, PartialEq)]
pub struct GenreChange {
    /// The file.
    pub path: PathBuf,
    /// Genres before.
    pub old: Vec<String>,
    /// Genres after.
    pub new: Vec<String>,
}

/// Every tag item and picture except genres, as comparable text.
fn snapshot_without_genre(path: &Path) -> Result<Vec<String>, TagError> {
    let tagged = read_tagged(path)?;
    let mut items = Vec::new();
    for tag in tagged.tags() {
        for item in tag.items() {
            if item.key() == ItemKey::Genre || format!("{:?}", item.key()).contains("GENRETAG_") {
                continue;
            }
            let value = match item.value() {
                ItemValue::Text(t) | ItemValue::Locator(t) => t.clone(),
                ItemValue::Binary(b) => format!("binary:{}:{}", b.len(), bytes_hash(b)),
            };
            items.push(format!("{:?}/{:?}={value}", tag.tag_type(), item.key()));
        }
        for p in tag.pictures() {
            items.push(format!(
                "{:?}/picture:{:?}:{}",
                tag.tag_type(),
                p.pic_type(),
                bytes_hash(p.data())
            ));
        }
    }
    items.sort();
    Ok(items)
}

/// Checksum of the decoded audio: sample count and a stable hash (XXH3) of the
/// samples' bits.
pub fn audio_checksum(path: &Path) -> Result<(u64, u64), TagError> {
    let mut stream = crate::audio::open(path).map_err(|e| format_err(path, e))?;
    let (mut n, mut h) = (0u64, xxhash_rust::xxh3::Xxh3::new());
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next_chunk().map_err(|e| format_err(path, e))? {
        n += chunk.len() as u64;
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|s| s.to_bits().to_le_bytes()));
        h.update(&bytes);
    }
    Ok((n, h.digest()))
}

/// Set the genres of a file whose primary tag is its ID3v2 tag or chunk (created if
/// absent); evaluates to whether it must be saved as ID3v2.3. (A macro: lofty's
/// concrete file types share no trait for their ID3v2 accessors.)
macro_rules! primary_id3v2 {
    ($file:expr, $genres:expr, $opts:expr) => {{
        let mut tag = $file.id3v2().cloned().unwrap_or_else(Id3v2Tag::new);
        let v23 = set_id3v2_genres(&mut tag, $genres, $opts);
        $file.set_id3v2(tag);
        v23
    }};
}

/// Set the genres in the scratch copy at `scratch`, by the format's convention. Errors
/// name `path`, the file the user knows.
fn set_genres_in(
    scratch: &Path,
    path: &Path,
    genres: &[String],
    opts: &TagWriteOptions,
) -> Result<(), TagError> {
    guarded(path, || set_genres_unguarded(scratch, path, genres, opts))
}

fn set_genres_unguarded(
    scratch: &Path,
    path: &Path,
    genres: &[String],
    opts: &TagWriteOptions,
) -> Result<(), TagError> {
    let mut probe = lofty::probe::Probe::open(scratch).map_err(|e| format_err(path, e))?;
    if let Some(ft) = FileType::from_path(path) {
        probe = probe.set_file_type(ft);
    }
    let file_type = probe
        .guess_file_type()
        .map_err(io_err(path))?
        .file_type()
        .ok_or_else(|| TagError::Unsupported {
            path: path.to_path_buf(),
            reason: "unrecognised format".into(),
        })?;
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(scratch)
        .map_err(io_err(path))?;
    let parse = ParseOptions::new();
    let write = WriteOptions::default();
    match file_type {
        FileType::Mpeg => {
            let mut file =
                lofty::mpeg::MpegFile::read_from(&mut f, parse).map_err(|e| format_err(path, e))?;
            let v23 = primary_id3v2!(file, genres, opts);
            // Secondary tags that carry a genre are kept in step, so no reader sees a stale one.
            if let Some(v1) = file.id3v1_mut() {
                // ID3v1 holds one genre from a fixed list; lofty maps the name (or clears it).
                set_accessor_genre(v1, genres.get(..1).unwrap_or_default());
            }
            if let Some(ape) = file.ape_mut() {
                set_accessor_genre(ape, genres);
            }
            save(&file, &mut f, path, write, v23)
        }
        FileType::Wav => {
            let mut file = lofty::iff::wav::WavFile::read_from(&mut f, parse)
                .map_err(|e| format_err(path, e))?;
            let v23 = primary_id3v2!(file, genres, opts);
            if let Some(info) = file.riff_info_mut() {
                set_accessor_genre(info, genres);
            }
            save(&file, &mut f, path, write, v23)
        }
        FileType::Aiff => {
            let mut file = lofty::iff::aiff::AiffFile::read_from(&mut f, parse)
                .map_err(|e| format_err(path, e))?;
            let v23 = primary_id3v2!(file, genres, opts);
            save(&file, &mut f, path, write, v23)
        }
        FileType::Flac => {
            let mut file =
                lofty::flac::FlacFile::read_from(&mut f, parse).map_err(|e| format_err(path, e))?;
            let mut tag = file.vorbis_comments().cloned().unwrap_or_default();
            set_vorbis_genres(&mut tag, genres, opts);
            file.set_vorbis_comments(tag);
            if let Some(id3) = file.id3v2_mut() {
                set_id3v2_genres(id3, genres, opts);
            }
            save(&file, &mut f, path, write, false)
        }
        FileType::Vorbis => {
            let mut file = VorbisFile::read_from(&mut f, parse).map_err(|e| format_err(path, e))?;
            set_vorbis_genres(file.vorbis_comments_mut(), genres, opts);
            save(&file, &mut f, path, write, false)
        }
        FileType::Mp4 => {
            let mut file = Mp4File::read_from(&mut f, parse).map_err(|e| format_err(path, e))?;
            let mut ilst = file.ilst().cloned().unwrap_or_else(Ilst::new);
            ilst.remove_genre();
            // The removed atoms themselves are not needed (only their absence).
            ilst.remove(&AtomIdent::Fourcc(*b"gnre")).for_each(drop);
            let data: Vec<AtomData> = genres.iter().map(|g| AtomData::UTF8(g.clone())).collect();
            if let Some(atom) = Atom::from_collection(AtomIdent::Fourcc(*b"\xa9gen"), data) {
                ilst.replace_atom(atom);
            }
            for (name, value) in opts.provenance.iter().flat_map(Provenance::fields) {
                let ident = AtomIdent::Freeform {
                    mean: "com.genretag".into(),
                    name: name.into(),
                };
                ilst.replace_atom(Atom::new(ident, AtomData::UTF8(value)));
            }
            file.set_ilst(ilst);
            save(&file, &mut f, path, write, false)
        }
        other => Err(TagError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("{other:?}"),
        }),
    }
}

/// Returns whether the tag must be written as ID3v2.3.
fn set_id3v2_genres(tag: &mut Id3v2Tag, genres: &[String], opts: &TagWriteOptions) -> bool {
    let v23 = opts.force_id3v23 || tag.original_version() == Id3v2Version::V3;
    for (name, value) in opts.provenance.iter().flat_map(Provenance::fields) {
        tag.insert(Frame::UserText(ExtendedTextFrame::new(
            TextEncoding::UTF8,
            name,
            value,
        )));
    }
    if genres.is_empty() {
        tag.remove_genre();
    } else {
        let value = if v23 {
            genres.join("; ")
        } else {
            genres.join("\0")
        };
        if let Ok(id) = FrameId::new("TCON") {
            tag.insert(Frame::Text(TextInformationFrame::new(
                id,
                TextEncoding::UTF8,
                value,
            )));
        }
    }
    v23
}

/// For tags with a single genre slot: genres joined with "; ", or the slot cleared.
fn set_accessor_genre(tag: &mut impl Accessor, genres: &[String]) {
    if genres.is_empty() {
        tag.remove_genre();
    } else {
        tag.set_genre(genres.join("; "));
    }
}

fn set_vorbis_genres(tag: &mut VorbisComments, genres: &[String], opts: &TagWriteOptions) {
    tag.remove("GENRE").for_each(drop);
    for g in genres {
        tag.push("GENRE".to_string(), g.clone());
    }
    for (name, value) in opts.provenance.iter().flat_map(Provenance::fields) {
        tag.insert(name.to_string(), value);
    }
}

fn save<A: AudioFile>(
    file: &A,
    f: &mut File,
    path: &Path,
    mut write: WriteOptions,
    v23: bool,
) -> Result<(), TagError> {
    if v23 {
        write = write.use_id3v23(true);
    }
    // Reading left the cursor mid-file; some writers expect it at the start.
    std::io::Seek::rewind(f).map_err(io_err(path))?;
    file.save_to(f, write).map_err(|e| format_err(path, e))?;
    f.sync_all().map_err(io_err(path))
}

/// Can genretag write tags into `path`? Resolves a symbolic link to its target and
/// returns it, or the reason it cannot: not a regular file, several hard links,
/// read-only, `.au`, or damaged (cut short).
pub fn check_writable(path: &Path) -> Result<Target, TagError> {
    let target = resolve(path)?;
    if is_au(&target.path)? {
        return Err(TagError::Unsupported {
            path: path.to_path_buf(),
            reason: AU_REASON.into(),
        });
    }
    let mut f = open_regular(&target.path).map_err(io_err(path))?;
    if let Some(t) = inspect(&mut f).map_err(io_err(path))?.truncation {
        return Err(TagError::Damaged {
            path: path.to_path_buf(),
            reason: format!(
                "{t}; genretag does not write tags into a damaged file, repair or replace it \
                 first"
            ),
        });
    }
    Ok(target)
}

/// Replace the genres of `path` with `genres`, verified and atomic (see module docs).
/// A symbolic link is written through to its target.
pub fn write_genres(
    path: &Path,
    genres: &[String],
    opts: &TagWriteOptions,
) -> Result<GenreChange, TagError> {
    let target = check_writable(path)?;
    let real = &target.path;
    let old = read_tags(real)?.genres;
    let before_tags = snapshot_without_genre(real)?;
    let before_audio = audio_checksum(real)?;

    let scratch = Scratch::create(&target)?;
    set_genres_in(scratch.path(), path, genres, opts)?;
    let verify = |reason: String| TagError::Verify {
        path: path.to_path_buf(),
        reason,
    };
    let after = read_tags(scratch.path())?.genres;
    if after != genres {
        return Err(verify(format!(
            "genres read back as {after:?}, wanted {genres:?}"
        )));
    }
    if snapshot_without_genre(scratch.path())? != before_tags {
        return Err(verify("other tags changed".into()));
    }
    if audio_checksum(scratch.path())? != before_audio {
        return Err(verify("decoded audio changed".into()));
    }
    scratch.commit(&target)?;
    Ok(GenreChange {
        path: path.to_path_buf(),
        old,
        new: genres.to_vec(),
    })
}

/// XXH3-128 of bytes (stable), for comparing binary tag items and pictures.
fn bytes_hash(b: &[u8]) -> String {
    super::files::bytes_hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_value_genres() {
        assert_eq!(split_genres("Rock\0Blues"), vec!["Rock", "Blues"]);
        assert_eq!(split_genres("Hip-Hop; Jazz"), vec!["Hip-Hop", "Jazz"]);
        assert_eq!(split_genres("Rock / Pop"), vec!["Rock", "Pop"]);
        assert!(split_genres(" ").is_empty());
    }
}
