//! Direct RFC 8785 (JCS) writer: serializes any `Serialize` value straight to canonical JSON
//! bytes, without building the temporary `serde_json::Value` tree that `canon::to_vec_of` uses.
//!
//! Invariant: for every value `v` that `serde_json::to_value` accepts,
//! `to_vec(v) == canon::to_vec(&serde_json::to_value(v)?)` byte for byte (object keys sorted by
//! UTF-16 code units, later duplicates win, numbers as IEEE doubles in ECMAScript form,
//! non-finite floats as `null`, the same string escapes). The intent digests use this path; the
//! proptests in `intent::normalize::tests` compare it against the `Value` path.

use crate::canon;
use serde::ser::{self, Error as _, Serialize};
use serde_json::Error;
use std::cmp::Ordering;

/// Largest integer magnitude written as an integer (2^53); larger ones are written as doubles.
const MAX_SAFE: u64 = 1 << 53;

/// Canonical JSON bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut w = Writer::default();
    w.out.reserve(256);
    value.serialize(&mut w)?;
    Ok(w.out)
}

/// A reusable canonical-JSON buffer: write several values (and raw punctuation) into one
/// output without re-allocating the writer's internal stacks.
#[derive(Default)]
pub struct Encoder {
    w: Writer,
}

impl Encoder {
    /// An encoder with room for a typical intent preimage.
    pub fn with_capacity(bytes: usize) -> Self {
        Encoder {
            w: Writer {
                out: Vec::with_capacity(bytes),
                entries: Vec::with_capacity(64),
                keys: String::new(),
                scratch: Vec::with_capacity(bytes),
            },
        }
    }

    /// Append the canonical JSON of `value`.
    pub fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut self.w)
    }

    /// Append raw bytes (the caller keeps the output valid canonical JSON).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.w.out.extend_from_slice(bytes);
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.w.out
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.w.out
    }
}

/// `hex(sha256(JCS(value)))`, identical to `canon::digest_of`.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    Ok(canon::sha256_hex(&to_vec(value)?))
}

/// Append `s` as a JSON string with exactly `canon`'s escapes.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v.unsigned_abs() <= MAX_SAFE {
        if v < 0 {
            out.push(b'-');
        }
        write_u64(out, v.unsigned_abs());
    } else {
        out.extend_from_slice(canon::format_es6(v as f64).as_bytes());
    }
}

fn write_unsigned(out: &mut Vec<u8>, v: u64) {
    if v <= MAX_SAFE {
        write_u64(out, v);
    } else {
        out.extend_from_slice(canon::format_es6(v as f64).as_bytes());
    }
}

fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(canon::format_es6(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// RFC 8785 §3.2.3 key order: UTF-16 code units. UTF-8 byte order equals code point order,
/// which differs from UTF-16 order only between supplementary characters (lead byte ≥ 0xF0)
/// and U+E000..U+FFFF (lead bytes 0xEE, 0xEF), so bytes ≥ 0xEE take the slow path.
fn key_cmp(a: &str, b: &str) -> Ordering {
    if a.bytes().chain(b.bytes()).any(|x| x >= 0xEE) {
        a.encode_utf16().cmp(b.encode_utf16())
    } else {
        a.as_bytes().cmp(b.as_bytes())
    }
}

#[derive(Clone, Copy)]
enum Key {
    Static(&'static str),
    /// Range in `Writer::keys`.
    Arena(usize, usize),
}

#[derive(Clone, Copy)]
struct Entry {
    key: Key,
    /// Byte range of `"key":value` in `Writer::out`.
    start: usize,
    end: usize,
}

/// The serializer. Object entries of all open objects share `entries` and `keys` as stacks.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    entries: Vec<Entry>,
    keys: String,
    scratch: Vec<u8>,
}

impl Writer {
    fn open_object(&mut self) -> Object {
        self.out.push(b'{');
        Object {
            body: self.out.len(),
            base: self.entries.len(),
            key_base: self.keys.len(),
        }
    }

    /// Sort the entries of `obj`, keep the last of equal keys, rewrite the body in order.
    fn close_object(&mut self, obj: Object) {
        let entries = &mut self.entries[obj.base..];
        let keys = &self.keys;
        let key = |k: Key| match k {
            Key::Static(s) => s,
            Key::Arena(a, b) => &keys[a..b],
        };
        let sorted = entries
            .windows(2)
            .all(|w| key_cmp(key(w[0].key), key(w[1].key)) == Ordering::Less);
        if !sorted {
            // Stable: equal keys keep insertion order, the last one wins below.
            entries.sort_by(|a, b| key_cmp(key(a.key), key(b.key)));
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.out[obj.body..]);
            self.out.truncate(obj.body);
            let n = entries.len();
            let mut first = true;
            for i in 0..n {
                let e = entries[i];
                if i + 1 < n && key(entries[i + 1].key) == key(e.key) {
                    continue;
                }
                if !first {
                    self.out.push(b',');
                }
                first = false;
                let (a, b) = (e.start - obj.body, e.end - obj.body);
                self.out.extend_from_slice(&self.scratch[a..b]);
            }
        }
        self.out.push(b'}');
        self.entries.truncate(obj.base);
        self.keys.truncate(obj.key_base);
    }

    fn begin_entry(&mut self, obj: &Object, key: Key) {
        if self.entries.len() > obj.base {
            self.out.push(b',');
        }
        let start = self.out.len();
        let k = match key {
            Key::Static(s) => s,
            Key::Arena(a, b) => &self.keys[a..b],
        };
        write_str(&mut self.out, k);
        self.out.push(b':');
        self.entries.push(Entry {
            key,
            start,
            end: start,
        });
    }

    fn end_entry(&mut self) {
        let end = self.out.len();
        if let Some(e) = self.entries.last_mut() {
            e.end = end;
        }
    }
}

#[derive(Clone, Copy)]
struct Object {
    body: usize,
    base: usize,
    key_base: usize,
}

/// An open array, object or variant wrapper.
struct Compound<'a> {
    w: &'a mut Writer,
    kind: Kind,
}

enum Kind {
    Array {
        first: bool,
    },
    /// `{"variant": [...]}`.
    VariantArray {
        outer: Object,
        first: bool,
    },
    Object(Object),
    /// `{"variant": {...}}`.
    VariantObject {
        outer: Object,
        inner: Object,
    },
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match &mut self.kind {
            Kind::Array { first } | Kind::VariantArray { first, .. } => {
                if !*first {
                    self.w.out.push(b',');
                }
                *first = false;
                value.serialize(&mut *self.w)
            }
            _ => Err(Error::custom("canonical writer: element outside an array")),
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        let obj = match &self.kind {
            Kind::Object(o) => *o,
            Kind::VariantObject { inner, .. } => *inner,
            _ => return Err(Error::custom("canonical writer: field outside an object")),
        };
        self.w.begin_entry(&obj, Key::Static(key));
        value.serialize(&mut *self.w)?;
        self.w.end_entry();
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        match self.kind {
            Kind::Array { .. } => self.w.out.push(b']'),
            Kind::VariantArray { outer, .. } => {
                self.w.out.push(b']');
                self.w.end_entry();
                self.w.close_object(outer);
            }
            Kind::Object(o) => self.w.close_object(o),
            Kind::VariantObject { outer, inner } => {
                self.w.close_object(inner);
                self.w.end_entry();
                self.w.close_object(outer);
            }
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_i64(&mut self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        if let Ok(u) = u64::try_from(v) {
            self.serialize_u64(u)
        } else if let Ok(i) = i64::try_from(v) {
            self.serialize_i64(i)
        } else {
            Err(Error::custom("number out of range"))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_unsigned(&mut self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        match u64::try_from(v) {
            Ok(u) => self.serialize_u64(u),
            Err(_) => Err(Error::custom("number out of range")),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        write_f64(&mut self.out, f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_f64(&mut self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        let mut buf = [0u8; 4];
        write_str(&mut self.out, v.encode_utf8(&mut buf));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(&mut self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(b'[');
        for (i, b) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_u64(&mut self.out, u64::from(*b));
        }
        self.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let outer = self.open_object();
        self.begin_entry(&outer, Key::Static(variant));
        value.serialize(&mut *self)?;
        self.end_entry();
        self.close_object(outer);
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            kind: Kind::Array { first: true },
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        let outer = self.open_object();
        self.begin_entry(&outer, Key::Static(variant));
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            kind: Kind::VariantArray { outer, first: true },
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        let o = self.open_object();
        Ok(Compound {
            w: self,
            kind: Kind::Object(o),
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        let outer = self.open_object();
        self.begin_entry(&outer, Key::Static(variant));
        let inner = self.open_object();
        Ok(Compound {
            w: self,
            kind: Kind::VariantObject { outer, inner },
        })
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let Kind::Object(obj) = self.kind else {
            return Err(Error::custom("canonical writer: key outside a map"));
        };
        let start = self.w.keys.len();
        key.serialize(KeyWriter(&mut self.w.keys))?;
        let end = self.w.keys.len();
        self.w.begin_entry(&obj, Key::Arena(start, end));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.w)?;
        self.w.end_entry();
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

/// Map keys: strings (and what serde_json turns into strings) appended to the key arena.
struct KeyWriter<'a>(&'a mut String);

fn key_must_be_string() -> Error {
    Error::custom("key must be a string")
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.0.push(v);
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _v: &T) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.0.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn same(v: &Value) {
        assert_eq!(
            String::from_utf8(to_vec(v).unwrap()).unwrap(),
            String::from_utf8(canon::to_vec(v)).unwrap()
        );
    }

    #[test]
    fn matches_value_path_on_samples() {
        same(&json!({"b": 1, "a": [true, null, "x"], "c": {"z": 1.5, "y": -0.0}}));
        same(&json!({"\u{20ac}": "€", "\r": "\u{0001}\u{001f}</", "1": "\"\\"}));
        same(&json!({"\u{10000}": 1, "\u{ffff}": 2, "\u{e000}": 3, "a": 4}));
        same(&json!([
            9007199254740993u64,
            -9007199254740993i64,
            1e21,
            1.5e-7,
            u64::MAX
        ]));
        same(&json!({"k": {"x": {"b": [], "a": {}}, "a": [{"z": 1, "y": 2}]}}));
    }

    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum E {
        Unit,
        New(i32),
        Tup(i32, String),
        Str { z: u8, a: f32 },
    }

    #[derive(serde::Serialize)]
    struct S {
        zeta: Vec<E>,
        alpha: Option<f64>,
        mid: std::collections::HashMap<String, (i8, char)>,
        bytes: serde_bytes_like::Bytes,
    }

    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn matches_value_path_on_typed_values() {
        let mut mid = std::collections::HashMap::new();
        mid.insert("b".to_string(), (-1, 'x'));
        mid.insert("a".to_string(), (2, '"'));
        let s = S {
            zeta: vec![
                E::Unit,
                E::New(3),
                E::Tup(1, "t".into()),
                E::Str { z: 1, a: 0.1 },
            ],
            alpha: Some(f64::NAN),
            mid,
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
        };
        assert_eq!(
            to_vec(&s).unwrap(),
            canon::to_vec(&serde_json::to_value(&s).unwrap())
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            "[\\x00-\\x1f\"\\\\a\u{e000}\u{10000}]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-c\u{e000}\u{10000}\u{7f}é]{0,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_value_matches_value_path(v in arb_json()) {
            prop_assert_eq!(to_vec(&v).unwrap(), canon::to_vec(&v));
        }
    }
}
