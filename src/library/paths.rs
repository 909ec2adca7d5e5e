//! Paths as bytes: stored losslessly, printed escaped.
//!
//! A file name on Linux is any sequence of bytes without NUL or `/`; it need not be
//! UTF-8. The library database stores paths as BLOBs of those exact bytes, so a name
//! like `caf\xe9.mp3` (Latin-1) is found again by `undo`. For people and for JSON:
//!
//! - [`escaped`]: the path as text; valid UTF-8 parts as they are, every byte that is
//!   not part of valid UTF-8 as `\xNN` (two lower-case hex digits).
//! - JSON documents carry that text in `"path"` and, only when the path is not valid
//!   UTF-8, the exact bytes as lower-case hex in `"path_bytes"` ([`JsonPath`]). A
//!   consumer that sees `path_bytes` knows `path` is an escaped rendering.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

/// The exact bytes of a path.
#[cfg(unix)]
pub fn to_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

/// The exact bytes of a path (platform encoding of `OsStr`).
#[cfg(not(unix))]
pub fn to_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// The path with these exact bytes.
#[cfg(unix)]
pub fn from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(OsString::from_vec(bytes))
}

/// The path with these bytes (lossy where the platform cannot represent them).
#[cfg(not(unix))]
pub fn from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Printable form: UTF-8 as is, other bytes as `\xNN`.
pub fn escaped(path: &Path) -> String {
    let bytes = to_bytes(path);
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The exact bytes as lower-case hex, if the path is not valid UTF-8.
pub fn bytes_hex_if_not_utf8(path: &Path) -> Option<String> {
    let bytes = to_bytes(path);
    if std::str::from_utf8(bytes).is_ok() {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A path as it appears in JSON output: `{"path": escaped, "path_bytes": hex?}` when
/// flattened into a struct (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath<'a>(pub &'a Path);

impl Serialize for JsonPath<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = bytes_hex_if_not_utf8(self.0);
        let mut st = s.serialize_struct("JsonPath", 1 + usize::from(hex.is_some()))?;
        st.serialize_field("path", &escaped(self.0))?;
        if let Some(hex) = hex {
            st.serialize_field("path_bytes", &hex)?;
        } else {
            st.skip_field("path_bytes")?;
        }
        st.end()
    }
}

/// The path a JSON document names: the exact bytes of `path_bytes` (hex) when present,
/// else `path` as it is. `None` if `path_bytes` is not valid hex.
pub fn from_json(path: &str, path_bytes: Option<&str>) -> Option<PathBuf> {
    let Some(hex) = path_bytes else {
        return Some(PathBuf::from(path));
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(from_bytes(bytes))
}

/// `serialize_with` for a path field: the escaped text (see the module docs).
pub fn serialize_escaped<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escaped(path))
}

/// `serialize_with` for a list of paths: `[{"path": .., "path_bytes"?: ..}, ...]`.
pub fn serialize_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(paths.len()))?;
    for p in paths {
        seq.serialize_element(&JsonPath(p))?;
    }
    seq.end()
}

/// `serialize_with` for (path, reason) pairs: `[{"path": .., "path_bytes"?: .., "reason": ..}]`.
pub fn serialize_problems<S: Serializer>(
    items: &[(PathBuf, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Problem<'a> {
        #[serde(flatten)]
        path: JsonPath<'a>,
        reason: &'a str,
    }
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for (p, reason) in items {
        seq.serialize_element(&Problem {
            path: JsonPath(p),
            reason,
        })?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_escape() {
        let p = from_bytes(b"/m/caf\xe9 \\ ok.mp3".to_vec());
        assert_eq!(to_bytes(&p), b"/m/caf\xe9 \\ ok.mp3");
        assert_eq!(escaped(&p), "/m/caf\\xe9 \\ ok.mp3");
        assert_eq!(
            bytes_hex_if_not_utf8(&p).as_deref(),
            Some("2f6d2f636166e9205c206f6b2e6d7033")
        );
        let utf8 = Path::new("/m/café.mp3");
        assert_eq!(escaped(utf8), "/m/café.mp3");
        assert_eq!(bytes_hex_if_not_utf8(utf8), None);
        let json = serde_json::to_value(JsonPath(&p)).expect("json");
        assert_eq!(json["path"], "/m/caf\\xe9 \\ ok.mp3");
        assert_eq!(json["path_bytes"], "2f6d2f636166e9205c206f6b2e6d7033");
        assert_eq!(
            from_json("ignored", Some("2f6d2f636166e9205c206f6b2e6d7033")),
            Some(p.clone())
        );
        assert_eq!(from_json("/m/café.mp3", None).as_deref(), Some(utf8));
        assert_eq!(from_json("x", Some("zz")), None);
        let json = serde_json::to_value(JsonPath(utf8)).expect("json");
        assert!(json.get("path_bytes").is_none(), "{json}");
    }
}
