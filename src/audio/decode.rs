//! Decode a file to a stream of mono f32 chunks at its native sample rate.
//!
//! Symphonia handles MP3, FLAC, Ogg Vorbis, WAV, AIFF and M4A/AAC; [`super::au`]
//! handles Sun/NeXT `.au`. A corrupt packet is skipped and counted, so audio
//! before and after it is still used; only a file we cannot start decoding at
//! all is an error.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::error::DecodeError;

/// What we know about a stream before decoding it.
#[derive(Debug, Clone)]
pub struct AudioInfo {
    /// Native sample rate.
    pub sample_rate_hz: u32,
    /// Channels in the file (the stream mixes them to mono).
    pub channels: usize,
    /// Total frames per channel, when the container says.
    pub total_frames: Option<u64>,
    /// Short codec/container description, e.g. `flac` or `au/pcm16`.
    pub codec: String,
}

/// A source of mono f32 samples in [-1, 1].
pub trait AudioStream: Send {
    /// Stream properties.
    fn info(&self) -> &AudioInfo;
    /// The next chunk of mono samples; `Ok(None)` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, DecodeError>;
    /// Packets or blocks that failed to decode and were skipped so far.
    fn skipped_packets(&self) -> usize;
}

/// Open `path` for decoding. Fails only if decoding cannot start.
///
/// Never panics, and neither does the stream it returns: should a decoder library
/// panic on malformed data, that becomes a [`DecodeError::Malformed`] for this file,
/// so every caller (analysis, training, the app) gets the same guard.
pub fn open(path: &Path) -> Result<Box<dyn AudioStream>, DecodeError> {
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open_unguarded(path)))
        .unwrap_or_else(|_| Err(crashed(path)));
    Ok(Box::new(Guarded {
        inner: Some(opened?),
        path: path.to_path_buf(),
    }))
}

fn crashed(path: &Path) -> DecodeError {
    DecodeError::Malformed {
        path: path.to_path_buf(),
        reason: "the decoder crashed on malformed data".into(),
    }
}

/// Turns a panic inside a decoder into an error; the stream is dropped after one.
struct Guarded {
    inner: Option<Box<dyn AudioStream>>,
    path: PathBuf,
}

impl AudioStream for Guarded {
    fn info(&self) -> &AudioInfo {
        match &self.inner {
            Some(s) => s.info(),
            None => &POISONED_INFO,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, DecodeError> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(crashed(&self.path));
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.next_chunk())) {
            Ok(r) => r,
            Err(_) => {
                // The decoder's state is unknown after a panic: never call it again.
                self.inner = None;
                Err(crashed(&self.path))
            }
        }
    }

    fn skipped_packets(&self) -> usize {
        self.inner.as_ref().map_or(0, |s| s.skipped_packets())
    }
}

static POISONED_INFO: AudioInfo = AudioInfo {
    sample_rate_hz: 1,
    channels: 1,
    total_frames: None,
    codec: String::new(),
};

fn open_unguarded(path: &Path) -> Result<Box<dyn AudioStream>, DecodeError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mut file = File::open(path).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    if super::au::sniff(&mut file).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })? {
        return Ok(Box::new(super::au::AuStream::new(file, path)?));
    }
    if ext == "opus" {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: "Opus audio cannot be decoded (symphonia has no Opus decoder); convert it to \
                     FLAC, Ogg Vorbis or MP3"
                .into(),
        });
    }
    Ok(Box::new(SymphoniaStream::new(file, path, &ext)?))
}

/// Decode a whole file to mono samples. Returns the samples and the stream info.
///
/// Meant for short clips and tests; analysis streams instead.
pub fn read_mono(path: &Path) -> Result<(Vec<f32>, AudioInfo), DecodeError> {
    let mut stream = open(path)?;
    let info = stream.info().clone();
    let mut out = Vec::with_capacity(info.total_frames.unwrap_or(0).min(1 << 26) as usize);
    while let Some(chunk) = stream.next_chunk()? {
        out.extend_from_slice(&chunk);
    }
    if out.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((out, info))
}

/// Symphonia-backed stream.
struct SymphoniaStream {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: AudioInfo,
    interleaved: Vec<f32>,
    skipped: usize,
    consecutive_errors: usize,
    produced_any: bool,
}

/// After this many consecutive demux/decode failures we treat the rest of the file as lost.
const MAX_CONSECUTIVE_ERRORS: usize = 64;

impl SymphoniaStream {
    fn new(file: File, path: &Path, ext: &str) -> Result<Self, DecodeError> {
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if !ext.is_empty() {
            hint.with_extension(ext);
        }
        let reader = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| map_open_error(e, path))?;
        let track =
            reader
                .default_track(TrackType::Audio)
                .ok_or_else(|| DecodeError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "no audio track".into(),
                })?;
        let track_id = track.id;
        let total_frames = track.num_frames;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| DecodeError::Unsupported {
                path: path.to_path_buf(),
                reason: "the audio track has no codec parameters".into(),
            })?
            .clone();
        let codec_name = format!("{:?}", params.codec).to_lowercase();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| DecodeError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("no decoder for codec {codec_name} ({e})"),
            })?;
        let sample_rate_hz = params.sample_rate.ok_or_else(|| DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: "no sample rate".into(),
        })?;
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(1);
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            decoder,
            track_id,
            info: AudioInfo {
                sample_rate_hz,
                channels,
                total_frames,
                codec: codec_name,
            },
            interleaved: Vec::new(),
            skipped: 0,
            consecutive_errors: 0,
            produced_any: false,
        })
    }

    fn note_error(&mut self, err: SymError) -> Result<(), DecodeError> {
        self.skipped += 1;
        self.consecutive_errors += 1;
        if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS && !self.produced_any {
            return Err(DecodeError::Malformed {
                path: self.path.clone(),
                reason: format!("no decodable audio ({err})"),
            });
        }
        Ok(())
    }
}

fn map_open_error(e: SymError, path: &Path) -> DecodeError {
    match e {
        SymError::IoError(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
        SymError::Unsupported(what) => DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("not a recognised audio format ({what})"),
        },
        SymError::IoError(_) => DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: "file ends before any audio".into(),
        },
        other => DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

impl AudioStream for SymphoniaStream {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn skipped_packets(&self) -> usize {
        self.skipped
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, DecodeError> {
        loop {
            if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                // Too much garbage in a row: keep what we have, stop here.
                return Ok(None);
            }
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                // A truncated file ends early: the audio before the cut is still good.
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(None);
                }
                Err(SymError::ResetRequired) => return Ok(None),
                Err(SymError::IoError(source)) => {
                    return Err(DecodeError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
                Err(e) => {
                    self.note_error(e)?;
                    continue;
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    let channels = buf.spec().channels().count().max(1);
                    let frames = buf.frames();
                    if frames == 0 {
                        continue;
                    }
                    buf.copy_to_vec_interleaved(&mut self.interleaved);
                    let mono = mix_to_mono(&self.interleaved, channels);
                    self.consecutive_errors = 0;
                    self.produced_any = true;
                    return Ok(Some(mono));
                }
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    self.note_error(SymError::DecodeError("corrupt packet"))?;
                }
                Err(e) => {
                    self.note_error(e)?;
                }
            }
        }
    }
}

/// Average interleaved channels into one.
pub fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let scale = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_mix_averages() {
        assert_eq!(mix_to_mono(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
        assert_eq!(mix_to_mono(&[0.25, 0.75], 1), vec![0.25, 0.75]);
    }
}
