//! Sun/NeXT `.au` reader (GTZAN's original format), streaming.
//!
//! Header: magic `.snd`, data offset, data size (or `0xffffffff`), encoding,
//! sample rate, channels; all big-endian. Encodings: 1 (µ-law), 2/3/4/5
//! (8/16/24/32-bit PCM), 6/7 (f32/f64), 27 (A-law).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::decode::{AudioInfo, AudioStream, mix_to_mono};
use crate::error::DecodeError;

/// True if the file starts with the `.snd` magic. Leaves the cursor at the start.
pub fn sniff(file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let n = read_full(file, &mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(n == 4 && &magic == b".snd")
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Mulaw,
    Pcm8,
    Pcm16,
    Pcm24,
    Pcm32,
    F32,
    F64,
    Alaw,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::Mulaw | Encoding::Alaw | Encoding::Pcm8 => 1,
            Encoding::Pcm16 => 2,
            Encoding::Pcm24 => 3,
            Encoding::Pcm32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Encoding::Mulaw => mulaw(b[0]),
            Encoding::Alaw => alaw(b[0]),
            Encoding::Pcm8 => b[0] as i8 as f32 / 128.0,
            Encoding::Pcm16 => i16::from_be_bytes([b[0], b[1]]) as f32 / 32768.0,
            Encoding::Pcm24 => {
                (i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8) as f32 / 8_388_608.0
            }
            Encoding::Pcm32 => {
                i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            Encoding::F32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::F64 => {
                f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

fn mulaw(u: u8) -> f32 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    let v = if sign != 0 { -magnitude } else { magnitude };
    v as f32 / 32768.0
}

fn alaw(a: u8) -> f32 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    let v = if sign != 0 { magnitude } else { -magnitude };
    v as f32 / 32768.0
}

/// A streaming `.au` decoder.
pub struct AuStream {
    path: PathBuf,
    reader: BufReader<File>,
    encoding: Encoding,
    info: AudioInfo,
    remaining_bytes: Option<u64>,
    buf: Vec<u8>,
    truncated: bool,
}

/// Frames per chunk.
const CHUNK_FRAMES: usize = 16_384;

impl AuStream {
    /// Parse the header of an `.au` file.
    pub fn new(mut file: File, path: &Path) -> Result<Self, DecodeError> {
        let malformed = |reason: &str| DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut header = [0u8; 24];
        let n = read_full(&mut file, &mut header).map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n < 24 {
            return Err(malformed("truncated .au header"));
        }
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let offset = word(4);
        let size = word(8);
        let encoding = match word(12) {
            1 => Encoding::Mulaw,
            2 => Encoding::Pcm8,
            3 => Encoding::Pcm16,
            4 => Encoding::Pcm24,
            5 => Encoding::Pcm32,
            6 => Encoding::F32,
            7 => Encoding::F64,
            27 => Encoding::Alaw,
            other => {
                return Err(DecodeError::Unsupported {
                    path: path.to_path_buf(),
                    reason: format!(".au encoding {other}"),
                });
            }
        };
        let sample_rate_hz = word(16);
        let channels = word(20) as usize;
        if sample_rate_hz == 0 || channels == 0 || channels > 64 || offset < 24 {
            return Err(malformed("invalid .au header values"));
        }
        file.seek(SeekFrom::Start(offset as u64))
            .map_err(|source| DecodeError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let file_len = file
            .metadata()
            .map_err(|source| DecodeError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let available = file_len.saturating_sub(offset as u64);
        let declared = (size != u32::MAX).then_some(size as u64);
        let data_bytes = declared.map_or(available, |d| d.min(available));
        let frame_bytes = (encoding.bytes() * channels) as u64;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            encoding,
            info: AudioInfo {
                sample_rate_hz,
                channels,
                total_frames: Some(data_bytes / frame_bytes),
                codec: format!("au/{encoding:?}").to_lowercase(),
            },
            remaining_bytes: declared,
            buf: Vec::new(),
            truncated: declared.is_some_and(|d| d > available),
        })
    }

    /// True if the header promised more data than the file holds.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl AudioStream for AuStream {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn skipped_packets(&self) -> usize {
        0
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>, DecodeError> {
        let frame_bytes = self.encoding.bytes() * self.info.channels;
        let mut want = CHUNK_FRAMES * frame_bytes;
        if let Some(rem) = self.remaining_bytes {
            want = want.min(rem as usize);
        }
        self.buf.resize(want, 0);
        let n = read_full(&mut self.reader, &mut self.buf).map_err(|source| DecodeError::Io {
            path: self.path.clone(),
            source,
        })?;
        if let Some(rem) = self.remaining_bytes.as_mut() {
            *rem -= n as u64;
        }
        let whole = n / frame_bytes * frame_bytes;
        if whole == 0 {
            return Ok(None);
        }
        let bytes = self.encoding.bytes();
        let samples: Vec<f32> = self.buf[..whole]
            .chunks_exact(bytes)
            .map(|b| self.encoding.decode(b))
            .collect();
        Ok(Some(mix_to_mono(&samples, self.info.channels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companding_tables_are_sane() {
        // µ-law 0xFF and A-law 0xD5 are (near) zero; extremes are near full scale.
        assert!(mulaw(0xff).abs() < 1e-3);
        assert!(mulaw(0x00) < -0.9);
        assert!(mulaw(0x80) > 0.9);
        assert!(alaw(0xd5).abs() < 1e-3);
        assert!(alaw(0x2a).abs() > 0.9);
    }
}
