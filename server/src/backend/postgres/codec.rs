//! PostgreSQL values in the binary wire format, both ways.
//!
//! sqlx asks for every result column in binary; decoding the bytes here (rather than through
//! sqlx's per-Rust-type decoders) keeps NUMERIC exact, including `NaN` and `Infinity`, handles
//! multi-dimensional arrays and arrays of enums, and decides a column's decoder once, when the
//! statement is prepared. Parameters are encoded the same way, each with the type its Value
//! names (see the table in [`super`]); NULL goes unspecified so that the server infers it.

use std::net::{Ipv4Addr, Ipv6Addr};

use sqlx::{
    Encode, Postgres, Type, TypeInfo,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgTypeKind, types::Oid},
};
use time::{Date, OffsetDateTime, Time};

use crate::{
    backend::sql::text::DecimalDigits,
    core::{
        error::{Error, Result},
        value::{Value, ValueKind},
    },
};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Julian day of 2000-01-01.
const PG_EPOCH_JULIAN_DAY: i32 = 2_451_545;

/// How to read one column (or array element) from its binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid`, `regclass`, `regtype`, … (unsigned 32-bit).
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`.
    Numeric,
    /// Types sent as their text: `text`, `varchar`, `bpchar`, `name`, `xml`, enums, `citext`.
    Text,
    /// The one-byte `"char"`.
    Char,
    /// `bytea`.
    Bytea,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb` (a version byte, then text).
    Jsonb,
    /// `jsonpath` (a version byte, then text).
    Jsonpath,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`, as text.
    Timetz,
    /// `timestamp`, read as UTC.
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
    /// `interval`, as ISO 8601 text.
    Interval,
    /// `inet` and `cidr`, as text.
    Inet,
    /// `macaddr` and `macaddr8`, as text.
    Macaddr,
    /// `bit` and `varbit`, as a text of 0s and 1s.
    Bits,
    /// `void` (a function returning nothing): NULL.
    Void,
    /// An array of the element decoder; multi-dimensional arrays nest.
    Array(Box<Decoder>),
}

impl Decoder {
    /// The decoder and Value kind of a column type, or `None` when DB-Forge cannot return it.
    pub fn for_type(ty: &PgTypeInfo) -> Option<(Decoder, ValueKind)> {
        match ty.kind() {
            PgTypeKind::Array(elem) => {
                let (inner, _) = Self::for_type(elem)?;
                return Some((Decoder::Array(Box::new(inner)), ValueKind::Array));
            }
            PgTypeKind::Enum(_) => return Some((Decoder::Text, ValueKind::Text)),
            PgTypeKind::Domain(base) => return Self::for_type(base),
            PgTypeKind::Composite(_) | PgTypeKind::Range(_) => return None,
            PgTypeKind::Simple | PgTypeKind::Pseudo => {}
        }
        let oid = ty.oid()?.0;
        use ValueKind as K;
        Some(match oid {
            16 => (Decoder::Bool, K::Bool),
            20 => (Decoder::Int8, K::Int),
            21 => (Decoder::Int2, K::Int),
            23 => (Decoder::Int4, K::Int),
            // oid, regproc, regprocedure, regoper, regoperator, regclass, regtype, regnamespace,
            // regrole: all unsigned 32-bit identifiers.
            24 | 26 | 2202..=2206 | 4089 | 4096 => (Decoder::Oid, K::Int),
            700 => (Decoder::Float4, K::Float),
            701 => (Decoder::Float8, K::Float),
            1700 => (Decoder::Numeric, K::Decimal),
            25 | 19 | 142 | 705 | 1042 | 1043 => (Decoder::Text, K::Text),
            18 => (Decoder::Char, K::Text),
            17 => (Decoder::Bytea, K::Bytes),
            2950 => (Decoder::Uuid, K::Uuid),
            114 => (Decoder::Json, K::Json),
            3802 => (Decoder::Jsonb, K::Json),
            4072 => (Decoder::Jsonpath, K::Text),
            1082 => (Decoder::Date, K::Date),
            1083 => (Decoder::Time, K::Time),
            1266 => (Decoder::Timetz, K::Text),
            1114 => (Decoder::Timestamp, K::Timestamp),
            1184 => (Decoder::Timestamptz, K::Timestamp),
            1186 => (Decoder::Interval, K::Text),
            650 | 869 => (Decoder::Inet, K::Text),
            774 | 829 => (Decoder::Macaddr, K::Text),
            1560 | 1562 => (Decoder::Bits, K::Text),
            2278 => (Decoder::Void, K::Unspecified),
            // Extension types are known by name only; citext is sent as its text.
            _ if ty.name().eq_ignore_ascii_case("citext") => (Decoder::Text, K::Text),
            _ => return None,
        })
    }

    /// Reads one non-NULL value.
    pub fn decode(&self, b: &[u8]) -> Result<Value> {
        Ok(match self {
            Decoder::Bool => Value::Bool(fixed::<1>(b)?[0] != 0),
            Decoder::Int2 => Value::Int(i16::from_be_bytes(fixed(b)?).into()),
            Decoder::Int4 => Value::Int(i32::from_be_bytes(fixed(b)?).into()),
            Decoder::Int8 => Value::Int(i64::from_be_bytes(fixed(b)?)),
            Decoder::Oid => Value::Int(u32::from_be_bytes(fixed(b)?).into()),
            Decoder::Float4 => {
                // Through the shortest text of the f32, so 0.1 reads as 0.1, not 0.100000001.
                let f = f32::from_be_bytes(fixed(b)?);
                Value::Float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
            }
            Decoder::Float8 => Value::Float(f64::from_be_bytes(fixed(b)?)),
            Decoder::Numeric => Value::Decimal(decode_numeric(b)?),
            Decoder::Text => Value::Text(utf8(b)?),
            Decoder::Char => Value::Text(String::from_utf8_lossy(b).into_owned()),
            Decoder::Bytea => Value::Bytes(b.to_vec()),
            Decoder::Uuid => Value::Uuid(format_uuid(&fixed::<16>(b)?)),
            Decoder::Json => Value::Json(utf8(b)?),
            Decoder::Jsonb => Value::Json(utf8(versioned(b)?)?),
            Decoder::Jsonpath => Value::Text(utf8(versioned(b)?)?),
            Decoder::Date => decode_date(i32::from_be_bytes(fixed(b)?))?,
            Decoder::Time => Value::Time(time_of_day(i64::from_be_bytes(fixed(b)?))?),
            Decoder::Timetz => {
                let (t, zone) = b.split_at_checked(8).ok_or_else(short)?;
                let time = time_of_day(i64::from_be_bytes(fixed(t)?))?;
                // PostgreSQL stores the offset in seconds west of UTC.
                let east = -i32::from_be_bytes(fixed(zone)?);
                let sign = if east < 0 { '-' } else { '+' };
                let east = east.unsigned_abs();
                Value::Text(format!(
                    "{}{sign}{:02}:{:02}",
                    crate::core::value::text::time(&time),
                    east / 3600,
                    east / 60 % 60
                ))
            }
            Decoder::Timestamp | Decoder::Timestamptz => {
                decode_timestamp(i64::from_be_bytes(fixed(b)?))?
            }
            Decoder::Interval => Value::Text(decode_interval(b)?),
            Decoder::Inet => Value::Text(decode_inet(b)?),
            Decoder::Macaddr => Value::Text(
                b.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            Decoder::Bits => {
                let (len, bits) = b.split_at_checked(4).ok_or_else(short)?;
                let len = usize::try_from(i32::from_be_bytes(fixed(len)?)).map_err(bad)?;
                Value::Text(
                    (0..len)
                        .map(|i| {
                            let byte = bits.get(i / 8).copied().unwrap_or(0);
                            if byte & (0x80 >> (i % 8)) != 0 {
                                '1'
                            } else {
                                '0'
                            }
                        })
                        .collect(),
                )
            }
            Decoder::Void => Value::Null,
            Decoder::Array(elem) => decode_array(elem, b)?,
        })
    }
}

fn short() -> Error {
    Error::internal("a postgres value is shorter than its type")
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("a postgres value is malformed: {e}"))
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N]> {
    b.get(..N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(short)
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(bad)
}

fn versioned(b: &[u8]) -> Result<&[u8]> {
    match b.split_first() {
        Some((1, rest)) => Ok(rest),
        _ => Err(bad("unknown binary format version")),
    }
}

fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn decode_date(days: i32) -> Result<Value> {
    Ok(match days {
        i32::MAX => Value::Text("infinity".into()),
        i32::MIN => Value::Text("-infinity".into()),
        d => {
            Value::Date(Date::from_julian_day(PG_EPOCH_JULIAN_DAY.saturating_add(d)).map_err(bad)?)
        }
    })
}

fn time_of_day(micros: i64) -> Result<Time> {
    let m = u64::try_from(micros).map_err(bad)?;
    let (h, rest) = (m / 3_600_000_000, m % 3_600_000_000);
    Time::from_hms_micro(
        u8::try_from(h).map_err(bad)?,
        (rest / 60_000_000) as u8,
        (rest / 1_000_000 % 60) as u8,
        (rest % 1_000_000) as u32,
    )
    .map_err(bad)
}

fn decode_timestamp(micros: i64) -> Result<Value> {
    Ok(match micros {
        i64::MAX => Value::Text("infinity".into()),
        i64::MIN => Value::Text("-infinity".into()),
        us => {
            let unix_nanos = (i128::from(us) + i128::from(PG_EPOCH_MICROS)) * 1000;
            Value::Timestamp(OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).map_err(bad)?)
        }
    })
}

/// An interval as ISO 8601 (`P1Y2M3DT4H5M6.5S`), each part with its own sign as PostgreSQL's
/// `iso_8601` interval style writes it.
fn decode_interval(b: &[u8]) -> Result<String> {
    let (us, rest) = b.split_at_checked(8).ok_or_else(short)?;
    let (days, months) = rest.split_at_checked(4).ok_or_else(short)?;
    let us = i64::from_be_bytes(fixed(us)?);
    let days = i32::from_be_bytes(fixed(days)?);
    let months = i32::from_be_bytes(fixed(months)?);
    let mut out = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [(years, 'Y'), (months, 'M'), (days, 'D')] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if us != 0 {
        out.push('T');
        let (h, rest) = (us / 3_600_000_000, us % 3_600_000_000);
        let (m, s_us) = (rest / 60_000_000, rest % 60_000_000);
        if h != 0 {
            out.push_str(&format!("{h}H"));
        }
        if m != 0 {
            out.push_str(&format!("{m}M"));
        }
        if s_us != 0 {
            let sign = if s_us < 0 { "-" } else { "" };
            let s_us = s_us.unsigned_abs();
            let frac = format!("{:06}", s_us % 1_000_000);
            let frac = frac.trim_end_matches('0');
            let dot = if frac.is_empty() { "" } else { "." };
            out.push_str(&format!("{sign}{}{dot}{frac}S", s_us / 1_000_000));
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    Ok(out)
}

fn decode_inet(b: &[u8]) -> Result<String> {
    let [family, bits, is_cidr, len] = fixed::<4>(b)?;
    let addr = b.get(4..4 + usize::from(len)).ok_or_else(short)?;
    let (text, full) = match family {
        2 => (Ipv4Addr::from(fixed::<4>(addr)?).to_string(), 32),
        3 => (Ipv6Addr::from(fixed::<16>(addr)?).to_string(), 128),
        f => return Err(bad(format!("inet family {f}"))),
    };
    Ok(if is_cidr != 0 || bits != full {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// NUMERIC's binary form: digit count, weight (of the first base-10000 digit), sign, display
/// scale, then the base-10000 digits. Written out exactly, to the display scale.
fn decode_numeric(b: &[u8]) -> Result<String> {
    let header = fixed::<8>(b)?;
    let ndigits = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let weight = i32::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = usize::from(u16::from_be_bytes([header[6], header[7]]));
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = b[8..]
        .chunks_exact(2)
        .take(ndigits)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if digits.len() != ndigits {
        return Err(short());
    }
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

fn decode_array(elem: &Decoder, b: &[u8]) -> Result<Value> {
    let ndim = usize::try_from(i32::from_be_bytes(fixed(b)?)).map_err(bad)?;
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut pos = 12;
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let len = i32::from_be_bytes(fixed(b.get(pos..).ok_or_else(short)?)?);
        dims.push(usize::try_from(len).map_err(bad)?);
        pos += 8;
    }
    let mut rest = b.get(pos..).ok_or_else(short)?;
    array_level(elem, &dims, &mut rest)
}

fn array_level(elem: &Decoder, dims: &[usize], rest: &mut &[u8]) -> Result<Value> {
    let (n, inner) = dims.split_first().ok_or_else(short)?;
    let mut items = Vec::with_capacity(*n);
    for _ in 0..*n {
        if !inner.is_empty() {
            items.push(array_level(elem, inner, rest)?);
            continue;
        }
        let len = i32::from_be_bytes(fixed(rest)?);
        *rest = &rest[4..];
        if len < 0 {
            items.push(Value::Null);
            continue;
        }
        let len = len as usize;
        let value = rest.get(..len).ok_or_else(short)?;
        items.push(elem.decode(value)?);
        *rest = &rest[len..];
    }
    Ok(Value::Array(items))
}

/// The PostgreSQL type a Value binds as, and its array type.
fn scalar_oids(v: &Value) -> Option<(u32, u32)> {
    Some(match v {
        Value::Int(_) => (20, 1016),
        Value::Float(_) => (701, 1022),
        Value::Text(_) => (25, 1009),
        Value::Bytes(_) => (17, 1001),
        Value::Bool(_) => (16, 1000),
        Value::Decimal(_) => (1700, 1231),
        Value::Json(_) => (114, 199),
        Value::Timestamp(_) => (1184, 1185),
        Value::Date(_) => (1082, 1182),
        Value::Time(_) => (1083, 1183),
        Value::Uuid(_) => (2950, 2951),
        Value::Null | Value::Array(_) => return None,
    })
}

/// A parameter, with the type it binds as (0: unspecified, the server infers it).
#[derive(Debug)]
pub struct Param<'a> {
    value: &'a Value,
    oid: u32,
    /// For arrays: the element type and the dimensions.
    array: Option<(u32, Vec<usize>)>,
}

impl<'a> Param<'a> {
    /// Checks a Value and chooses its type.
    pub fn new(value: &'a Value) -> Result<Self> {
        if let Value::Array(items) = value {
            let mut dims = Vec::new();
            let mut leaves = Vec::new();
            shape(items, 0, &mut dims, &mut leaves)?;
            let mut kinds = leaves.iter().filter_map(|v| scalar_oids(v));
            let first = kinds.next();
            if kinds.any(|k| Some(k) != first) {
                return Err(Error::invalid(
                    "params",
                    "the elements of an array must all be of one kind (or NULL)",
                ));
            }
            // An array of only NULLs (or an empty one) goes as text[]; cast it in SQL otherwise.
            let (elem, array) = first.unwrap_or((25, 1009));
            return Ok(Self {
                value,
                oid: array,
                array: Some((elem, dims)),
            });
        }
        Ok(Self {
            value,
            oid: scalar_oids(value).map_or(0, |(oid, _)| oid),
            array: None,
        })
    }

    /// The OID of the type it binds as (0: the server infers it).
    pub fn oid(&self) -> u32 {
        self.oid
    }

    /// The type it binds as.
    pub fn type_info(&self) -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(self.oid))
    }
}

/// Walks a (possibly nested) array: records the length of each level and collects the leaves.
/// Nested arrays must be rectangular, as PostgreSQL's are.
fn shape<'v>(
    items: &'v [Value],
    depth: usize,
    dims: &mut Vec<usize>,
    leaves: &mut Vec<&'v Value>,
) -> Result<()> {
    let ragged = || Error::invalid("params", "nested arrays must be rectangular");
    match dims.get(depth) {
        Some(&n) if n != items.len() => return Err(ragged()),
        Some(_) => {}
        None => dims.push(items.len()),
    }
    let nested = items
        .iter()
        .filter(|v| matches!(v, Value::Array(_)))
        .count();
    if nested != 0 && nested != items.len() {
        return Err(ragged());
    }
    for item in items {
        match item {
            Value::Array(inner) => shape(inner, depth + 1, dims, leaves)?,
            leaf => {
                if dims.len() != depth + 1 {
                    return Err(ragged());
                }
                leaves.push(leaf);
            }
        }
    }
    Ok(())
}

impl Type<Postgres> for Param<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }

    fn compatible(_ty: &PgTypeInfo) -> bool {
        true
    }
}

impl Encode<'_, Postgres> for Param<'_> {
    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.type_info())
    }

    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match (self.value, &self.array) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Array(items), Some((elem, dims))) => {
                let buf: &mut Vec<u8> = buf;
                buf.extend_from_slice(&i32::try_from(dims.len())?.to_be_bytes());
                buf.extend_from_slice(&1i32.to_be_bytes());
                buf.extend_from_slice(&elem.to_be_bytes());
                for d in dims {
                    buf.extend_from_slice(&i32::try_from(*d)?.to_be_bytes());
                    buf.extend_from_slice(&1i32.to_be_bytes());
                }
                encode_elements(items, buf)?;
                Ok(IsNull::No)
            }
            (v, _) => {
                encode_scalar(v, buf)?;
                Ok(IsNull::No)
            }
        }
    }
}

fn encode_elements(items: &[Value], buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    for item in items {
        match item {
            Value::Array(inner) => encode_elements(inner, buf)?,
            Value::Null => buf.extend_from_slice(&(-1i32).to_be_bytes()),
            v => {
                let at = buf.len();
                buf.extend_from_slice(&[0; 4]);
                encode_scalar(v, buf)?;
                let len = i32::try_from(buf.len() - at - 4)?;
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }
    Ok(())
}

fn encode_scalar(v: &Value, buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    match v {
        Value::Int(i) => buf.extend_from_slice(&i.to_be_bytes()),
        Value::Float(f) => buf.extend_from_slice(&f.to_be_bytes()),
        Value::Text(s) | Value::Json(s) => buf.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => buf.extend_from_slice(b),
        Value::Bool(b) => buf.push(u8::from(*b)),
        Value::Decimal(s) => encode_numeric(s, buf)?,
        Value::Timestamp(t) => {
            let micros = t.unix_timestamp_nanos().div_euclid(1000) - i128::from(PG_EPOCH_MICROS);
            buf.extend_from_slice(&i64::try_from(micros)?.to_be_bytes());
        }
        Value::Date(d) => {
            buf.extend_from_slice(&(d.to_julian_day() - PG_EPOCH_JULIAN_DAY).to_be_bytes())
        }
        Value::Time(t) => {
            let micros = i64::from(t.hour()) * 3_600_000_000
                + i64::from(t.minute()) * 60_000_000
                + i64::from(t.second()) * 1_000_000
                + i64::from(t.microsecond());
            buf.extend_from_slice(&micros.to_be_bytes());
        }
        Value::Uuid(u) => {
            let canonical = Value::parse_uuid(u).ok_or("not a UUID")?;
            let hex: Vec<u8> = canonical.bytes().filter(|b| *b != b'-').collect();
            for pair in hex.chunks(2) {
                buf.push(u8::from_str_radix(std::str::from_utf8(pair)?, 16)?);
            }
        }
        Value::Null | Value::Array(_) => return Err("nested value in the wrong place".into()),
    }
    Ok(())
}

/// Writes a decimal text as NUMERIC's binary form, digit for digit.
fn encode_numeric(s: &str, buf: &mut Vec<u8>) -> Result<(), BoxDynError> {
    let special = match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(0xC000u16),
        "infinity" | "+infinity" | "inf" => Some(0xD000),
        "-infinity" | "-inf" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        for n in [0u16, 0, sign, 0] {
            buf.extend_from_slice(&n.to_be_bytes());
        }
        return Ok(());
    }
    let d = DecimalDigits::parse(s).ok_or_else(|| format!("{s:?} is not a decimal number"))?;
    let dscale = u16::try_from(d.frac.len())
        .ok()
        .filter(|&n| n <= 0x3FFF)
        .ok_or("too many digits after the decimal point for NUMERIC")?;
    let int_pad = (4 - d.int.len() % 4) % 4;
    let frac_pad = (4 - d.frac.len() % 4) % 4;
    let all = format!(
        "{}{}{}{}",
        "0".repeat(int_pad),
        d.int,
        d.frac,
        "0".repeat(frac_pad)
    );
    let mut groups: Vec<u16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0')))
        .collect();
    let mut weight = i64::try_from((int_pad + d.int.len()) / 4)? - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i64::try_from(leading)?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = u16::try_from(groups.len())?;
    let weight = i16::try_from(weight)?;
    let sign: u16 = if d.negative { 0x4000 } else { 0 };
    buf.extend_from_slice(&ndigits.to_be_bytes());
    buf.extend_from_slice(&weight.to_be_bytes());
    buf.extend_from_slice(&sign.to_be_bytes());
    buf.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        buf.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_round_trip(s: &str) -> String {
        let mut buf = Vec::new();
        encode_numeric(s, &mut buf).expect("encode");
        decode_numeric(&buf).expect("decode")
    }

    #[test]
    fn numeric_keeps_every_digit() {
        for (input, out) in [
            ("0", "0"),
            (
                "12345678901234567890.123456789",
                "12345678901234567890.123456789",
            ),
            ("-0.00001", "-0.00001"),
            ("10000", "10000"),
            ("1.50", "1.50"),
            ("0.000", "0.000"),
            ("99999999.99999999", "99999999.99999999"),
            ("1e-20", "0.00000000000000000001"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ] {
            assert_eq!(numeric_round_trip(input), out, "{input}");
        }
        assert!(encode_numeric("12abc", &mut Vec::new()).is_err());
    }

    #[test]
    fn temporal_values_use_the_2000_epoch() {
        let t = time::macros::datetime!(2024-02-29 13:45:01.123456 UTC);
        let mut buf = Vec::new();
        encode_scalar(&Value::Timestamp(t), &mut buf).expect("encode");
        assert_eq!(
            Decoder::Timestamptz.decode(&buf).expect("decode"),
            Value::Timestamp(t)
        );
        let d = time::macros::date!(1999 - 12 - 31);
        let mut buf = Vec::new();
        encode_scalar(&Value::Date(d), &mut buf).expect("encode");
        assert_eq!(i32::from_be_bytes(fixed(&buf).expect("4 bytes")), -1);
        assert_eq!(Decoder::Date.decode(&buf).expect("decode"), Value::Date(d));
        assert_eq!(
            Decoder::Timestamp
                .decode(&i64::MAX.to_be_bytes())
                .expect("decode"),
            Value::Text("infinity".into())
        );
    }

    #[test]
    fn arrays_nest_and_keep_nulls() {
        let v = Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Null]),
            Value::Array(vec![Value::Int(3), Value::Int(4)]),
        ]);
        let p = Param::new(&v).expect("param");
        assert_eq!(p.oid, 1016);
        let mut buf = PgArgumentBuffer::default();
        let _ = p.encode_by_ref(&mut buf).expect("encode");
        let bytes: &Vec<u8> = &buf;
        assert_eq!(
            Decoder::Array(Box::new(Decoder::Int8))
                .decode(bytes)
                .expect("decode"),
            v
        );
        let ragged = Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Int(2)]);
        assert!(Param::new(&ragged).is_err());
        let mixed = Value::Array(vec![Value::Int(1), Value::Text("x".into())]);
        assert!(Param::new(&mixed).is_err());
    }

    #[test]
    fn intervals_and_addresses_read_as_text() {
        let mut b = Vec::new();
        b.extend_from_slice(&(4 * 3_600_000_000i64 + 5 * 60_000_000 + 6_500_000).to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&14i32.to_be_bytes());
        assert_eq!(decode_interval(&b).expect("interval"), "P1Y2M3DT4H5M6.5S");
        assert_eq!(
            decode_inet(&[2, 24, 1, 4, 10, 0, 0, 0]).expect("inet"),
            "10.0.0.0/24"
        );
        assert_eq!(
            decode_inet(&[2, 32, 0, 4, 127, 0, 0, 1]).expect("inet"),
            "127.0.0.1"
        );
    }
}
