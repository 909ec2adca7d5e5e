//! Minimal reader for NumPy `.npy` arrays and `.npz` archives.
//!
//! Enough for reference data and weights: little-endian f4/f8/i4/i8 and
//! fixed-width unicode (`<U`) arrays in C order.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::error::ModelError;

/// The values of an array.
#[derive(Debug, Clone)]
pub enum NpyData {
    /// Floating point (f4 or f8, widened or narrowed to f32).
    F32(Vec<f32>),
    /// Integers (i4/i8).
    I64(Vec<i64>),
    /// Unicode strings.
    Str(Vec<String>),
}

/// One array: shape and data.
#[derive(Debug, Clone)]
pub struct NpyArray {
    /// Dimensions, C order.
    pub shape: Vec<usize>,
    /// The values.
    pub data: NpyData,
}

impl NpyArray {
    /// The values as f32, if numeric.
    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            NpyData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The values as strings, if unicode.
    pub fn strings(&self) -> Option<&[String]> {
        match &self.data {
            NpyData::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// Parse one `.npy` file's bytes.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = if major == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            return Err("truncated .npy header".into());
        }
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + header_len)
            .ok_or("truncated header")?,
    )
    .map_err(|_| "header is not text")?;
    let field = |name: &str| -> Option<&str> {
        let key = format!("'{name}':");
        let at = header.find(&key)? + key.len();
        Some(header[at..].trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or("no descr")?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err("fortran-order arrays are not supported".into());
    }
    let shape_str = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or("no shape")?;
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape_str}"))
        })
        .collect::<Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let body = &bytes[start + header_len..];
    let need = |width: usize| -> Result<&[u8], String> {
        body.get(..count * width)
            .ok_or_else(|| format!("array data truncated ({} < {})", body.len(), count * width))
    };
    let data = match descr {
        "<f4" => NpyData::F32(
            need(4)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        "<f8" => NpyData::F32(
            need(8)?
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
        ),
        "<i4" => NpyData::I64(
            need(4)?
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
        ),
        "<i8" => NpyData::I64(
            need(8)?
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        d if d.starts_with("<U") => {
            let width: usize = d[2..].parse().map_err(|_| format!("bad descr {d}"))?;
            NpyData::Str(
                need(4 * width)?
                    .chunks_exact(4 * width)
                    .map(|s| {
                        s.chunks_exact(4)
                            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .take_while(|&c| c != 0)
                            .filter_map(char::from_u32)
                            .collect()
                    })
                    .collect(),
            )
        }
        other => return Err(format!("unsupported dtype {other}")),
    };
    Ok(NpyArray { shape, data })
}

/// Read every array of an `.npz` archive, keyed by name without the `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, NpyArray>, ModelError> {
    let format_err = |reason: String| ModelError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format_err(e.to_string()))?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format_err(format!("{name}: {e}")))?;
        let array = parse_npy(&bytes).map_err(|e| format_err(format!("{name}: {e}")))?;
        out.insert(name, array);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn parses_f32_matrix() {
        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_npy(&npy("<f4", "(2, 3)", &body)).expect("valid npy");
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.f32s(), Some(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..]));
    }

    #[test]
    fn parses_unicode() {
        let mut body = Vec::new();
        for s in ["ab", "c"] {
            let mut chars: Vec<u32> = s.chars().map(|c| c as u32).collect();
            chars.resize(3, 0);
            body.extend(chars.iter().flat_map(|c| c.to_le_bytes()));
        }
        let a = parse_npy(&npy("<U3", "(2,)", &body)).expect("valid npy");
        assert_eq!(a.strings(), Some(&["ab".to_string(), "c".to_string()][..]));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_npy(b"hello world").is_err());
        assert!(parse_npy(&npy("<f4", "(4,)", &[0u8; 3])).is_err());
    }
}
