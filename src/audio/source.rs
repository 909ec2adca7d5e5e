//! Opening audio files safely, for the decoder and the tag reader alike.
//!
//! - Only regular files are opened. A named pipe (FIFO) would block `open`/`read`
//!   forever, a device can have side effects on open, a socket cannot be opened at
//!   all: each is refused with its kind named. The type is checked on the path first
//!   (following symbolic links), then the file is opened non-blocking and checked
//!   again on the descriptor, so a file swapped for a FIFO in between cannot hang us.
//! - Containers whose declared lengths run past the end of the file (a truncated WAV,
//!   AIFF or MP4, or a WAV whose header claims 4 GB) are read through [`Repaired`], a
//!   read-only view of the file with those length fields clamped to what is there. The
//!   file itself is never modified; [`Layout::truncation`] says what was repaired so
//!   a writer can refuse to write tags into a damaged file.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Why a path is not a regular file, in words ("a named pipe (FIFO)").
pub fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
    }
    Some("not a regular file")
}

/// The error for a path that is not a regular file.
pub fn not_regular(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file: {kind}; skipped"),
    )
}

/// Open `path` for reading if, and only if, it is a regular file (after following
/// symbolic links). Never blocks on a FIFO and never opens a device.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = special_kind(&meta) {
        return Err(not_regular(kind));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: if the path was replaced by a FIFO since the check above, open
        // returns at once instead of waiting for a writer. It has no effect on reads of
        // regular files, which is all we go on to do.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path)?;
    if let Some(kind) = special_kind(&file.metadata()?) {
        return Err(not_regular(kind));
    }
    Ok(file)
}

/// A declared length that runs past the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Which length field (e.g. "RIFF data chunk", "MP4 mdat atom").
    pub what: String,
    /// Where the container says the data ends (bytes).
    pub declared_end: u64,
    /// The file's length.
    pub file_len: u64,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the file is cut short: its {} should end at byte {}, but the file has only {} bytes",
            self.what, self.declared_end, self.file_len
        )
    }
}

/// What [`inspect`] found: length fields to present clamped, and whether the file is
/// truncated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// (offset, replacement bytes) to overlay on the file.
    pub patches: Vec<(u64, Vec<u8>)>,
    /// Set when a length promises more data than the file holds.
    pub truncation: Option<Truncation>,
    /// The file's length.
    pub file_len: u64,
}

/// Streaming writers that do not know the length yet write one of these.
fn is_unknown_length(len: u32) -> bool {
    len == 0 || len == u32::MAX
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Look at a file's container structure (RIFF/WAVE, FORM/AIFF, MP4) for lengths that
/// run past its end. Other formats get an empty layout. Leaves the cursor at the start.
pub fn inspect(file: &mut File) -> io::Result<Layout> {
    let file_len = file.metadata()?.len();
    let mut head = [0u8; 12];
    let n = read_at(file, 0, &mut head)?;
    let mut layout = Layout {
        file_len,
        ..Layout::default()
    };
    if n == 12 {
        match (&head[..4], &head[8..12]) {
            (b"RIFF", b"WAVE") => iff(file, &mut layout, false, "RIFF")?,
            (b"FORM", b"AIFF") | (b"FORM", b"AIFC") => iff(file, &mut layout, true, "AIFF")?,
            (_, _) if &head[4..8] == b"ftyp" => mp4(file, &mut layout)?,
            _ => {}
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(layout)
}

/// RIFF (little-endian) or AIFF (big-endian) chunk lists.
fn iff(file: &mut File, layout: &mut Layout, big_endian: bool, family: &str) -> io::Result<()> {
    let file_len = layout.file_len;
    let word = |b: [u8; 4]| {
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let bytes = |v: u32| {
        if big_endian {
            v.to_be_bytes().to_vec()
        } else {
            v.to_le_bytes().to_vec()
        }
    };
    let mut w = [0u8; 4];
    read_at(file, 4, &mut w)?;
    let outer = word(w);
    let declared_end = 8 + outer as u64;
    let end = if outer < 4 || declared_end > file_len {
        let clamped = file_len.min(8 + u32::MAX as u64);
        layout.patches.push((4, bytes((clamped - 8) as u32)));
        if !is_unknown_length(outer) && outer >= 4 {
            layout.truncation = Some(Truncation {
                what: format!("{family} container"),
                declared_end,
                file_len,
            });
        }
        clamped
    } else {
        declared_end
    };
    let mut off = 12u64;
    let mut header = [0u8; 8];
    while off + 8 <= end {
        if read_at(file, off, &mut header)? < 8 {
            break;
        }
        let tag = String::from_utf8_lossy(&header[..4]).trim().to_string();
        let len = word([header[4], header[5], header[6], header[7]]);
        let chunk_end = off + 8 + len as u64;
        let sound = matches!(&header[..4], b"data" | b"SSND");
        if sound && is_unknown_length(len) && end > off + 8 {
            // A streaming writer's placeholder: the sound data runs to the end.
            layout
                .patches
                .push((off + 4, bytes((end - off - 8) as u32)));
            break;
        }
        if chunk_end > end {
            let room = (end - off - 8) as u32;
            layout.patches.push((off + 4, bytes(room)));
            if !is_unknown_length(len) && layout.truncation.is_none() {
                layout.truncation = Some(Truncation {
                    what: format!("{family} {tag} chunk"),
                    declared_end: chunk_end,
                    file_len,
                });
            }
            break;
        }
        // Chunks are padded to an even length.
        off = chunk_end + (len as u64 & 1);
    }
    Ok(())
}

/// Top-level MP4 atoms.
fn mp4(file: &mut File, layout: &mut Layout) -> io::Result<()> {
    let file_len = layout.file_len;
    let mut off = 0u64;
    let mut header = [0u8; 16];
    while off + 8 <= file_len {
        let n = read_at(file, off, &mut header)?;
        if n < 8 {
            break;
        }
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let tag = String::from_utf8_lossy(&header[4..8]).to_string();
        let (size, large) = match size32 {
            0 => break, // extends to the end of the file: nothing to clamp
            1 if n == 16 => (
                u64::from_be_bytes([
                    header[8], header[9], header[10], header[11], header[12], header[13],
                    header[14], header[15],
                ]),
                true,
            ),
            1 => break,
            s => (s as u64, false),
        };
        if size < 8 {
            break; // malformed; leave it to the demuxer to report
        }
        if off + size > file_len {
            let room = file_len - off;
            if large {
                layout.patches.push((off + 8, room.to_be_bytes().to_vec()));
            } else {
                layout
                    .patches
                    .push((off, (room as u32).to_be_bytes().to_vec()));
            }
            layout.truncation = Some(Truncation {
                what: format!("MP4 {tag} atom"),
                declared_end: off + size,
                file_len,
            });
            break;
        }
        off += size;
    }
    Ok(())
}

/// A read-only view of a file with a few bytes replaced (the clamped length fields of
/// its [`Layout`]). Implements symphonia's `MediaSource`, so the demuxers see a
/// consistent container and decode everything that is present.
pub struct Repaired {
    file: File,
    pos: u64,
    len: u64,
    patches: Vec<(u64, Vec<u8>)>,
}

impl Repaired {
    /// View `file` through `layout`'s patches.
    pub fn new(file: File, layout: &Layout) -> Self {
        Self {
            file,
            pos: 0,
            len: layout.file_len,
            patches: layout.patches.clone(),
        }
    }
}

impl Read for Repaired {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        let start = self.pos;
        let end = start + n as u64;
        for (at, bytes) in &self.patches {
            let (p0, p1) = (*at, at + bytes.len() as u64);
            if p1 <= start || p0 >= end {
                continue;
            }
            for i in p0.max(start)..p1.min(end) {
                buf[(i - start) as usize] = bytes[(i - p0) as usize];
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Seek for Repaired {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

impl symphonia::core::io::MediaSource for Repaired {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(data_len: u32, riff_len: u32, payload: usize) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(b"RIFF");
        d.extend_from_slice(&riff_len.to_le_bytes());
        d.extend_from_slice(b"WAVEfmt ");
        d.extend_from_slice(&16u32.to_le_bytes());
        for v in [1u16, 1] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&8000u32.to_le_bytes());
        d.extend_from_slice(&16000u32.to_le_bytes());
        for v in [2u16, 16] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(b"data");
        d.extend_from_slice(&data_len.to_le_bytes());
        d.resize(d.len() + payload, 0);
        d
    }

    fn layout_of(bytes: &[u8]) -> Layout {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        std::fs::write(&p, bytes).expect("write");
        inspect(&mut File::open(&p).expect("open")).expect("inspect")
    }

    #[test]
    fn intact_wav_needs_no_patch() {
        let l = layout_of(&wav(1000, 36 + 1000, 1000));
        assert!(l.patches.is_empty() && l.truncation.is_none(), "{l:?}");
    }

    #[test]
    fn truncated_wav_is_clamped_and_reported() {
        let l = layout_of(&wav(1000, 36 + 1000, 400));
        assert_eq!(
            l.patches,
            vec![
                (4, 436u32.to_le_bytes().to_vec()),
                (40, 400u32.to_le_bytes().to_vec())
            ]
        );
        let t = l.truncation.expect("truncated");
        assert_eq!((t.declared_end, t.file_len), (1044, 444));
        assert!(t.to_string().contains("cut short"), "{t}");
    }

    #[test]
    fn streaming_lengths_are_not_truncation() {
        let l = layout_of(&wav(u32::MAX, u32::MAX, 400));
        assert!(l.truncation.is_none(), "{l:?}");
        assert_eq!(l.patches.len(), 2);
        // A data length larger than the (valid) RIFF length is clamped to the RIFF end.
        let l = layout_of(&wav(u32::MAX - 10, 36 + 400, 400));
        assert_eq!(l.patches, vec![(40, 400u32.to_le_bytes().to_vec())]);
    }

    #[test]
    fn repaired_view_overlays_patches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        std::fs::write(&p, wav(1000, 36 + 1000, 8)).expect("write");
        let mut f = File::open(&p).expect("open");
        let layout = inspect(&mut f).expect("inspect");
        let mut view = Repaired::new(f, &layout);
        let mut all = Vec::new();
        view.read_to_end(&mut all).expect("read");
        assert_eq!(&all[4..8], &44u32.to_le_bytes());
        assert_eq!(&all[40..44], &8u32.to_le_bytes());
        view.seek(SeekFrom::Start(41)).expect("seek");
        let mut one = [0u8; 2];
        view.read_exact(&mut one).expect("read");
        assert_eq!(one, [0, 0]);
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("x.mp3");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = open_regular(&fifo).expect_err("a FIFO is not opened");
        assert!(err.to_string().contains("named pipe"), "{err}");
    }
}
