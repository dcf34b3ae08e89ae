//! The versioned cache-key encoding.
//!
//! Every value that feeds a vertex digest or a cache key goes through [`encode`]: a
//! serde `Serializer` that writes an explicit, self-delimiting binary form — a type tag
//! byte before every value, lengths as u64 little-endian before strings, byte strings,
//! sequences and maps, field and variant names written out. Two different values can
//! never encode to the same bytes, and the bytes do not depend on serde_json or on any
//! map's iteration order as long as keyed types use `BTreeMap`s or sorted `Vec`s — never
//! a `HashMap` (the encoder cannot tell one apart, so this is a rule of the house).
//!
//! [`KEY_VERSION`] is written first. Changing the encoding, or the meaning of a field,
//! means bumping it: every old cache record then misses instead of being misread. A
//! golden test in this module pins the bytes.

use serde::ser::{self, Serialize};
use sha2::Digest as _;

use crate::{Digest, Sha256};

/// Bump when the encoding or the meaning of keyed data changes.
pub const KEY_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot encode key: {0}")]
    Custom(String),
}

impl ser::Error for KeyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        KeyError::Custom(msg.to_string())
    }
}

/// Digest of `value` under `domain` (e.g. `"vertex"`, `"cache/content"`), so equal data
/// used for different purposes never yields the same key.
pub fn encode<T: Serialize + ?Sized>(domain: &str, value: &T) -> Digest {
    let mut enc = Encoder {
        out: Sha256::new(),
        buf: String::new(),
    };
    enc.raw(&KEY_VERSION.to_le_bytes());
    enc.str_field(domain);
    value
        .serialize(&mut enc)
        .expect("key encoding is infallible for types without custom errors");
    Digest::from_hasher(enc.out)
}

/// The encoded bytes themselves (for golden tests and debugging).
pub fn encode_bytes<T: Serialize + ?Sized>(domain: &str, value: &T) -> Vec<u8> {
    let mut enc = Encoder {
        out: Vec::new(),
        buf: String::new(),
    };
    enc.raw(&KEY_VERSION.to_le_bytes());
    enc.str_field(domain);
    value
        .serialize(&mut enc)
        .expect("key encoding is infallible");
    enc.out
}

trait Sink {
    fn put(&mut self, b: &[u8]);
}
impl Sink for Sha256 {
    fn put(&mut self, b: &[u8]) {
        self.update(b)
    }
}
impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b)
    }
}

struct Encoder<S> {
    out: S,
    /// Scratch space for `collect_str` (digests serialize through Display).
    buf: String,
}

mod tag {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const UINT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const CHAR: u8 = 5;
    pub const STR: u8 = 6;
    pub const BYTES: u8 = 7;
    pub const NONE: u8 = 8;
    pub const SOME: u8 = 9;
    pub const UNIT: u8 = 10;
    pub const VARIANT: u8 = 11;
    pub const SEQ: u8 = 12;
    pub const MAP: u8 = 13;
    pub const STRUCT: u8 = 14;
    pub const FIELD: u8 = 15;
}

impl<S: Sink> Encoder<S> {
    fn raw(&mut self, b: &[u8]) {
        self.out.put(b)
    }
    fn tag(&mut self, t: u8) {
        self.out.put(&[t])
    }
    fn len(&mut self, n: usize) {
        self.out.put(&(n as u64).to_le_bytes())
    }
    fn str_field(&mut self, s: &str) {
        self.len(s.len());
        self.raw(s.as_bytes());
    }
}

/// Sequences and maps must announce their length up front (Vec, BTreeMap, slices do).
fn need_len(len: Option<usize>) -> Result<usize, KeyError> {
    len.ok_or_else(|| KeyError::Custom("sequence without a known length".into()))
}

impl<S: Sink> ser::Serializer for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        use std::fmt::Write as _;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        write!(buf, "{value}").map_err(|e| KeyError::Custom(e.to_string()))?;
        self.tag(tag::STR);
        self.str_field(&buf);
        self.buf = buf;
        Ok(())
    }

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.tag(tag::BOOL);
        self.raw(&[v as u8]);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.tag(tag::INT);
        self.raw(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.tag(tag::UINT);
        self.raw(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.tag(tag::FLOAT);
        self.raw(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.tag(tag::CHAR);
        self.raw(&(v as u32).to_le_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.tag(tag::STR);
        self.str_field(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.tag(tag::BYTES);
        self.len(v.len());
        self.raw(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), KeyError> {
        self.tag(tag::NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.tag(tag::SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.tag(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.tag(tag::VARIANT);
        self.str_field(variant);
        self.tag(tag::UNIT);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(tag::VARIANT);
        self.str_field(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, KeyError> {
        let n = need_len(len)?;
        self.tag(tag::SEQ);
        self.len(n);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, KeyError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, KeyError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, KeyError> {
        self.tag(tag::VARIANT);
        self.str_field(variant);
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, KeyError> {
        let n = need_len(len)?;
        self.tag(tag::MAP);
        self.len(n);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Self, KeyError> {
        self.tag(tag::STRUCT);
        self.len(len);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, KeyError> {
        self.tag(tag::VARIANT);
        self.str_field(variant);
        self.serialize_struct("", len)
    }
}

impl<S: Sink> ser::SerializeSeq for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeTuple for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeTupleStruct for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeTupleVariant for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeMap for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeStruct for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(tag::FIELD);
        self.str_field(key);
        value.serialize(&mut **self)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        // A skipped field still marks its place, so skipping differs from absence.
        self.tag(tag::FIELD);
        self.str_field(key);
        self.tag(tag::NONE);
        Ok(())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}
impl<S: Sink> ser::SerializeStructVariant for &mut Encoder<S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Sample {
        name: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        mode: Option<u32>,
        kind: Kind,
    }

    #[derive(Serialize)]
    enum Kind {
        Plain,
        Tagged { level: i32 },
    }

    fn sample() -> Sample {
        Sample {
            name: "copy".into(),
            args: vec!["a b".into(), "c".into()],
            env: [("K".to_string(), "V".to_string())].into_iter().collect(),
            mode: Some(0o755),
            kind: Kind::Tagged { level: -3 },
        }
    }

    /// Pins the encoding: if this digest changes, bump KEY_VERSION deliberately.
    #[test]
    fn golden_key_is_stable() {
        assert_eq!(
            encode("test", &sample()).to_string(),
            "sha256:2733a0eeda80c22fd1411296458a45b5c7435417e9d9e507b72e438ebc18f2c6",
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = vec!["ab".to_string(), "c".to_string()];
        let b = vec!["a".to_string(), "bc".to_string()];
        assert_ne!(encode("t", &a), encode("t", &b));
        assert_ne!(encode("t", &Some(1u32)), encode("t", &1u32));
        assert_ne!(encode("t", &Kind::Plain), encode("t", &"Plain"));
        assert_ne!(encode("a", &1u8), encode("b", &1u8));
    }

    #[test]
    fn bytes_start_with_the_version() {
        let bytes = encode_bytes("d", &true);
        assert_eq!(&bytes[..4], &KEY_VERSION.to_le_bytes());
        assert_eq!(crate::sha256(&bytes), encode("d", &true));
    }
}
