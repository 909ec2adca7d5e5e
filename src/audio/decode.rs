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
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Timestamp;

use super::source::{Layout, Repaired};
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
    /// Continue from native frame `frame` (counted from the start of the audio): the next
    /// chunk starts exactly there. `Ok(false)` when this stream cannot seek (the caller
    /// reads on, or starts again from the beginning). The first milliseconds after a
    /// seek may differ from a decode from the start (codecs with overlapping blocks need
    /// a frame to settle), so callers seek a little before what they need.
    fn seek_to(&mut self, frame: u64) -> Result<bool, DecodeError> {
        let _ = frame;
        Ok(false)
    }
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

    fn seek_to(&mut self, frame: u64) -> Result<bool, DecodeError> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(crashed(&self.path));
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.seek_to(frame))) {
            Ok(r) => r,
            Err(_) => {
                self.inner = None;
                Err(crashed(&self.path))
            }
        }
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
    let io_err = |source: std::io::Error| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = super::source::open_regular(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            DecodeError::Unsupported {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        } else {
            io_err(e)
        }
    })?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.len() == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    if super::au::sniff(&mut file).map_err(io_err)? {
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
    let layout = super::source::inspect(&mut file).map_err(io_err)?;
    Ok(Box::new(SymphoniaStream::new(file, &layout, path, &ext)?))
}

/// Decode a whole file to mono samples. Returns the samples and the stream info.
///
/// Meant for short clips and tests; analysis streams instead.
pub fn read_mono(path: &Path) -> Result<(Vec<f32>, AudioInfo), DecodeError> {
    let mut stream = open(path)?;
    let info = stream.info().clone();
    // A header may claim any length: reserve at most 16 MiB up front, grow as decoded.
    let mut out = Vec::with_capacity(info.total_frames.unwrap_or(0).min(1 << 22) as usize);
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
    /// Where the next packet should start (its predecessor's end), to notice packets the
    /// demuxer dropped silently while resynchronising (FLAC, MP3 and Ogg readers skip a
    /// corrupt frame or page without an error).
    next_ts: Option<i64>,
    /// Frames trimmed (encoder delay/padding) from the previous packet: demuxers differ
    /// on whether its duration counts them, so a gap up to this size is not a loss.
    prev_trim: u64,
    /// The longest packet seen, in frames.
    max_dur: u64,
    /// Timestamps count sample frames (the track's time base is 1 / sample rate), so a
    /// frame number can be sought.
    frame_timestamps: bool,
    /// After a seek: output starts at this timestamp (earlier decoded frames are dropped).
    start_at: Option<i64>,
}

/// After this many consecutive demux/decode failures we treat the rest of the file as lost.
const MAX_CONSECUTIVE_ERRORS: usize = 64;

impl SymphoniaStream {
    fn new(file: File, layout: &Layout, path: &Path, ext: &str) -> Result<Self, DecodeError> {
        let source = Repaired::new(file, layout);
        let mss = MediaSourceStream::new(Box::new(source), Default::default());
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
            .map_err(|e| map_open_error(e, path, layout))?;
        let track =
            reader
                .default_track(TrackType::Audio)
                .ok_or_else(|| match &layout.truncation {
                    Some(t) => DecodeError::Malformed {
                        path: path.to_path_buf(),
                        reason: format!("{t}, and no audio track survived the cut"),
                    },
                    None => DecodeError::Unsupported {
                        path: path.to_path_buf(),
                        reason: "no audio track".into(),
                    },
                })?;
        let track_id = track.id;
        let total_frames = track.num_frames;
        let time_base = track.time_base;
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
        let frame_timestamps =
            time_base.is_some_and(|tb| tb.numer.get() == 1 && tb.denom.get() == sample_rate_hz);
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
            next_ts: None,
            prev_trim: 0,
            max_dur: 0,
            frame_timestamps,
            start_at: None,
        })
    }

    /// Count a packet the demuxer dropped: the next packet starts later than the
    /// previous one ended (FLAC frame numbers, Ogg granule positions).
    fn note_timing(&mut self, packet: &symphonia::core::packet::Packet) {
        let pts = packet.pts.get();
        if let Some(expected) = self.next_ts
            && pts > expected.saturating_add_unsigned(self.prev_trim)
        {
            self.skipped += 1;
        }
        let dur = packet.dur.get();
        self.next_ts = pts.checked_add_unsigned(dur);
        self.prev_trim = packet.trim_start.get() + packet.trim_end.get();
        self.max_dur = self.max_dur.max(dur);
    }

    /// At a normal end of stream: demuxers that number packets by counting them (MP3)
    /// show no gap after a resync, but then end short of the length the header promised.
    fn note_end(&mut self) {
        let (Some(total), Some(end)) = (self.info.total_frames, self.next_ts) else {
            return;
        };
        let deficit = (total as i64).saturating_sub(end);
        if self.max_dur > 0 && deficit > 0 && deficit as u64 * 2 >= self.max_dur {
            self.skipped += (deficit as u64).div_ceil(self.max_dur) as usize;
        }
        // Count it once, however often the caller asks for more after the end.
        self.next_ts = None;
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

fn map_open_error(e: SymError, path: &Path, layout: &Layout) -> DecodeError {
    if let Some(t) = &layout.truncation {
        // Say what is wrong in the user's terms, not the demuxer's.
        let lost_index = e.to_string().contains("moov");
        return DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: if lost_index {
                format!(
                    "{t}, and the part holding the index of the audio (the MP4 moov atom) is \
                     gone, so nothing can be decoded"
                )
            } else {
                format!("{t}; no audio could be decoded from the rest ({e})")
            },
        };
    }
    match e {
        SymError::Unsupported(_) | SymError::DecodeError(_) if e.to_string().contains("moov") => {
            DecodeError::Malformed {
                path: path.to_path_buf(),
                reason: "the MP4 file has no index of its audio (moov atom): it was probably \
                         cut off while being written or downloaded"
                    .into(),
            }
        }
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

    fn seek_to(&mut self, frame: u64) -> Result<bool, DecodeError> {
        let Ok(ts) = i64::try_from(frame) else {
            return Ok(false);
        };
        if !self.frame_timestamps {
            return Ok(false);
        }
        let to = SeekTo::Timestamp {
            ts: Timestamp::new(ts),
            track_id: self.track_id,
        };
        match self.reader.seek(SeekMode::Accurate, to) {
            Ok(_) => {}
            Err(SymError::IoError(source))
                if source.kind() != std::io::ErrorKind::UnexpectedEof =>
            {
                return Err(DecodeError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
            // Out of range, unseekable, or damage on the way: not seekable here.
            Err(_) => return Ok(false),
        }
        self.decoder.reset();
        self.start_at = Some(ts);
        self.next_ts = None;
        self.prev_trim = 0;
        self.consecutive_errors = 0;
        Ok(true)
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, DecodeError> {
        loop {
            if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                // Too much garbage in a row: keep what we have, stop here.
                return Ok(None);
            }
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.note_end();
                    return Ok(None);
                }
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
            self.note_timing(&packet);
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    let channels = buf.spec().channels().count().max(1);
                    let frames = buf.frames();
                    if frames == 0 {
                        continue;
                    }
                    buf.copy_to_vec_interleaved(&mut self.interleaved);
                    let mut mono = mix_to_mono(&self.interleaved, channels);
                    if let Some(start) = self.start_at {
                        // The first valid frame of this packet (delay frames are trimmed).
                        let first = packet
                            .pts
                            .get()
                            .saturating_add_unsigned(packet.trim_start.get());
                        let drop = start.saturating_sub(first).clamp(0, mono.len() as i64);
                        if drop as usize == mono.len() {
                            continue;
                        }
                        mono.drain(..drop as usize);
                        self.start_at = None;
                    }
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
