//! TensorFlow-free reader for TF checkpoint V2 bundles (`.index` + `.data-*`).
//!
//! Used once, by `genretag convert-musicnn`, to turn the ISC-licensed musicnn
//! wheel's checkpoint into our burn record. The `.index` file is a LevelDB-style
//! table (uncompressed blocks of prefix-compressed keys) mapping each tensor name
//! to a `BundleEntryProto` (dtype, shape, shard, offset, size).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::ModelError;

/// One float tensor read from a checkpoint.
#[derive(Debug, Clone)]
pub struct CkptTensor {
    /// Dimensions as TensorFlow stores them.
    pub shape: Vec<usize>,
    /// Little-endian f32 values, C order.
    pub values: Vec<f32>,
}

/// Raw key/value pairs of one table block.
type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Default)]
struct Entry {
    dtype: u64,
    shape: Vec<usize>,
    shard: u64,
    offset: u64,
    size: u64,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("varint runs past the end")?;
        *pos += 1;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// Walk protobuf fields: `f(field_number, wire_type, varint_value, bytes)`.
fn proto_fields(
    buf: &[u8],
    mut f: impl FnMut(u64, u64, u64, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(buf, &mut pos)?;
                f(field, wire, v, &[])?;
            }
            1 => {
                pos += 8;
                f(field, wire, 0, &[])?;
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let bytes = buf.get(pos..pos + len).ok_or("field runs past the end")?;
                pos += len;
                f(field, wire, 0, bytes)?;
            }
            5 => {
                pos += 4;
                f(field, wire, 0, &[])?;
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        }
    }
    Ok(())
}

fn parse_entry(value: &[u8]) -> Result<Entry, String> {
    let mut e = Entry::default();
    proto_fields(value, |field, _, v, bytes| {
        match field {
            1 => e.dtype = v,
            2 => proto_fields(bytes, |f2, _, _, dim| {
                if f2 == 2 {
                    let mut size = 0;
                    proto_fields(dim, |f3, _, v3, _| {
                        if f3 == 1 {
                            size = v3 as usize;
                        }
                        Ok(())
                    })?;
                    e.shape.push(size);
                }
                Ok(())
            })?,
            3 => e.shard = v,
            4 => e.offset = v,
            5 => e.size = v,
            _ => {}
        }
        Ok(())
    })?;
    Ok(e)
}

/// Decode one table block (without its 5-byte trailer) into key/value pairs.
fn block_entries(block: &[u8]) -> Result<KeyValues, String> {
    if block.len() < 4 {
        return Err("block too small".into());
    }
    let n_restarts = u32::from_le_bytes(
        block[block.len() - 4..]
            .try_into()
            .map_err(|_| "restarts")?,
    ) as usize;
    let data_end = block
        .len()
        .checked_sub(4 + 4 * n_restarts)
        .ok_or("bad restart count")?;
    let mut out = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < data_end {
        let shared = varint(block, &mut pos)? as usize;
        let non_shared = varint(block, &mut pos)? as usize;
        let value_len = varint(block, &mut pos)? as usize;
        key.truncate(shared);
        key.extend_from_slice(block.get(pos..pos + non_shared).ok_or("key past end")?);
        pos += non_shared;
        let value = block
            .get(pos..pos + value_len)
            .ok_or("value past end")?
            .to_vec();
        pos += value_len;
        out.push((key.clone(), value));
    }
    Ok(out)
}

fn read_block(file: &[u8], handle: &[u8]) -> Result<KeyValues, String> {
    let mut pos = 0;
    let offset = varint(handle, &mut pos)? as usize;
    let size = varint(handle, &mut pos)? as usize;
    let block = file
        .get(offset..offset + size)
        .ok_or("block past end of index")?;
    let compression = *file.get(offset + size).ok_or("missing block trailer")?;
    if compression != 0 {
        return Err(format!(
            "compressed index blocks (type {compression}) are not supported"
        ));
    }
    block_entries(block)
}

/// Read all float tensors of the checkpoint with prefix `prefix` (the path without
/// `.index`; for musicnn's wheel the prefix is `…/MSD_musicnn/` itself, files `.index`
/// and `.data-00000-of-00001`). Optimizer slots (names containing `/Adam`) are skipped.
pub fn read_checkpoint(prefix: &Path) -> Result<BTreeMap<String, CkptTensor>, ModelError> {
    let prefix_str = prefix.to_string_lossy().to_string();
    let index_path = std::path::PathBuf::from(format!("{prefix_str}.index"));
    let index = std::fs::read(&index_path).map_err(|source| ModelError::Io {
        path: index_path.clone(),
        source,
    })?;
    let fmt = |reason: String| ModelError::Format {
        path: index_path.clone(),
        reason,
    };
    const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
    if index.len() < 48
        || u64::from_le_bytes(
            index[index.len() - 8..]
                .try_into()
                .map_err(|_| fmt("footer".into()))?,
        ) != MAGIC
    {
        return Err(fmt("not a TensorFlow table (bad footer magic)".into()));
    }
    let footer = &index[index.len() - 48..];
    let mut pos = 0;
    // metaindex handle, then the index handle.
    varint(footer, &mut pos).map_err(&fmt)?;
    varint(footer, &mut pos).map_err(&fmt)?;
    let index_handle = &footer[pos..];
    let mut entries = Vec::new();
    for (_, handle) in read_block(&index, index_handle).map_err(&fmt)? {
        entries.extend(read_block(&index, &handle).map_err(&fmt)?);
    }

    let mut shards: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        if key.is_empty() {
            continue; // the bundle header
        }
        let name = String::from_utf8_lossy(&key).to_string();
        if name.contains("/Adam") || name.contains("beta1_power") || name.contains("beta2_power") {
            continue;
        }
        let entry = parse_entry(&value).map_err(|e| fmt(format!("{name}: {e}")))?;
        if entry.dtype != 1 {
            continue; // not DT_FLOAT (e.g. the global step)
        }
        let data = match shards.entry(entry.shard) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let path = std::path::PathBuf::from(format!(
                    "{prefix_str}.data-{:05}-of-00001",
                    entry.shard
                ));
                let bytes =
                    std::fs::read(&path).map_err(|source| ModelError::Io { path, source })?;
                v.insert(bytes)
            }
        };
        let raw = data
            .get(entry.offset as usize..(entry.offset + entry.size) as usize)
            .ok_or_else(|| fmt(format!("{name}: data past end of shard")))?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let expected: usize = entry.shape.iter().product();
        if values.len() != expected {
            return Err(fmt(format!(
                "{name}: {} values for shape {:?}",
                values.len(),
                entry.shape
            )));
        }
        out.insert(
            name,
            CkptTensor {
                shape: entry.shape,
                values,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode() {
        let mut pos = 0;
        assert_eq!(varint(&[0xac, 0x02], &mut pos), Ok(300));
        assert_eq!(pos, 2);
        assert!(varint(&[0x80], &mut 0).is_err());
    }

    #[test]
    fn block_with_shared_prefixes() {
        // Two entries, "abc" -> "1" and "abd" -> "22" (shared 2), one restart at 0.
        let mut b = vec![0, 3, 1, b'a', b'b', b'c', b'1', 2, 1, 2, b'd', b'2', b'2'];
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        let e = block_entries(&b).expect("valid block");
        assert_eq!(e[0], (b"abc".to_vec(), b"1".to_vec()));
        assert_eq!(e[1], (b"abd".to_vec(), b"22".to_vec()));
    }
}
