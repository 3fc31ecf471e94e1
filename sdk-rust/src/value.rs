//! Typed values: what parameters are bound as and what result cells come back as.

use time::{Date, OffsetDateTime, Time};

use crate::{Error, pb};

/// A typed cell or parameter. Converts from and to Rust types with `From` and [`FromValue`].
///
/// ```
/// use dbforge::Value;
/// assert_eq!(Value::from(42), Value::Int(42));
/// assert_eq!(Value::from("hi"), Value::Text("hi".into()));
/// assert_eq!(Value::from(None::<i64>), Value::Null);
/// let n: i64 = Value::Int(7).get().unwrap();
/// assert_eq!(n, 7);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Boolean.
    Bool(bool),
    /// Exact decimal as text, e.g. `"12.3400"`.
    Decimal(String),
    /// JSON document as text.
    Json(String),
    /// An instant (UTC).
    Timestamp(OffsetDateTime),
    /// A calendar date.
    Date(Date),
    /// A UUID in canonical text form.
    Uuid(String),
    /// A time of day.
    Time(Time),
    /// An array (PostgreSQL arrays).
    Array(Vec<Value>),
}

impl Value {
    /// The name of this value's kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Bool(_) => "bool",
            Value::Decimal(_) => "decimal",
            Value::Json(_) => "json",
            Value::Timestamp(_) => "timestamp",
            Value::Date(_) => "date",
            Value::Uuid(_) => "uuid",
            Value::Time(_) => "time",
            Value::Array(_) => "array",
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Converts into a Rust type.
    pub fn get<T: FromValue>(self) -> Result<T, Error> {
        T::from_value(self)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<OffsetDateTime> for Value {
    fn from(v: OffsetDateTime) -> Self {
        Value::Timestamp(v)
    }
}
impl From<Date> for Value {
    fn from(v: Date) -> Self {
        Value::Date(v)
    }
}
impl From<Time> for Value {
    fn from(v: Time) -> Self {
        Value::Time(v)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value
where
    T: NotByte,
{
    fn from(v: Vec<T>) -> Self {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

/// Element types that make a `Vec<T>` an array rather than bytes (`Vec<u8>` is bytes).
pub trait NotByte {}
impl NotByte for i64 {}
impl NotByte for i32 {}
impl NotByte for f64 {}
impl NotByte for bool {}
impl NotByte for String {}
impl NotByte for &str {}
impl NotByte for Value {}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Rust types a [`Value`] converts into.
pub trait FromValue: Sized {
    /// Converts, failing with [`Error::Type`] when the kinds do not match.
    fn from_value(v: Value) -> Result<Self, Error>;
}

fn mismatch<T>(expected: &'static str, v: &Value) -> Result<T, Error> {
    Err(Error::Type {
        expected,
        found: v.kind_name(),
    })
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, Error> {
        Ok(v)
    }
}
impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Int(i) => Ok(i),
            Value::Bool(b) => Ok(i64::from(b)),
            other => mismatch("int", &other),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: Value) -> Result<Self, Error> {
        let i = i64::from_value(v)?;
        i32::try_from(i).map_err(|_| Error::Type {
            expected: "int that fits in i32",
            found: "int",
        })
    }
}
impl FromValue for f64 {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Float(f) => Ok(f),
            // Integers widen; precision is lost only beyond 2^53, as with any f64.
            Value::Int(i) => Ok(i as f64),
            other => mismatch("float", &other),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Int(i) => Ok(i != 0),
            other => mismatch("bool", &other),
        }
    }
}
impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => Ok(s),
            other => mismatch("text", &other),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Bytes(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => mismatch("bytes", &other),
        }
    }
}
impl FromValue for OffsetDateTime {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Timestamp(t) => Ok(t),
            other => mismatch("timestamp", &other),
        }
    }
}
impl FromValue for Time {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Time(t) => Ok(t),
            other => mismatch("time", &other),
        }
    }
}
impl<T: FromValue + NotByte> FromValue for Vec<T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            other => mismatch("array", &other),
        }
    }
}
impl FromValue for Date {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Date(d) => Ok(d),
            other => mismatch("date", &other),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl From<Value> for pb::Value {
    fn from(v: Value) -> Self {
        use pb::value::Kind;
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Int(i) => Kind::IntValue(i),
            Value::Float(f) => Kind::FloatValue(f),
            Value::Text(s) => Kind::TextValue(s),
            Value::Bytes(b) => Kind::BytesValue(b),
            Value::Bool(b) => Kind::BoolValue(b),
            Value::Decimal(s) => Kind::DecimalValue(s),
            Value::Json(s) => Kind::JsonValue(s),
            Value::Timestamp(t) => Kind::TimestampValue(prost_types::Timestamp {
                seconds: t.unix_timestamp(),
                nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
            }),
            Value::Date(d) => Kind::DateValue(pb::Date {
                year: d.year(),
                month: i32::from(u8::from(d.month())),
                day: i32::from(d.day()),
            }),
            Value::Uuid(u) => Kind::UuidValue(u),
            Value::Time(t) => Kind::TimeValue(pb::TimeOfDay {
                hours: i32::from(t.hour()),
                minutes: i32::from(t.minute()),
                seconds: i32::from(t.second()),
                nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
            }),
            Value::Array(items) => Kind::ArrayValue(pb::ValueList {
                values: items.into_iter().map(pb::Value::from).collect(),
            }),
        };
        pb::Value { kind: Some(kind) }
    }
}

impl TryFrom<pb::Value> for Value {
    type Error = Error;
    fn try_from(v: pb::Value) -> Result<Self, Error> {
        use pb::value::Kind;
        Ok(match v.kind {
            None | Some(Kind::NullValue(_)) => Value::Null,
            Some(Kind::IntValue(i)) => Value::Int(i),
            Some(Kind::FloatValue(f)) => Value::Float(f),
            Some(Kind::TextValue(s)) => Value::Text(s),
            Some(Kind::BytesValue(b)) => Value::Bytes(b),
            Some(Kind::BoolValue(b)) => Value::Bool(b),
            Some(Kind::DecimalValue(s)) => Value::Decimal(s),
            Some(Kind::JsonValue(s)) => Value::Json(s),
            Some(Kind::TimestampValue(t)) => {
                let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
                Value::Timestamp(
                    OffsetDateTime::from_unix_timestamp_nanos(nanos)
                        .map_err(|e| Error::Protocol(format!("bad timestamp: {e}")))?,
                )
            }
            Some(Kind::DateValue(d)) => {
                let month = u8::try_from(d.month)
                    .ok()
                    .and_then(|m| time::Month::try_from(m).ok());
                let day = u8::try_from(d.day).ok();
                let date = month
                    .zip(day)
                    .and_then(|(m, day)| Date::from_calendar_date(d.year, m, day).ok())
                    .ok_or_else(|| Error::Protocol(format!("bad date {d:?}")))?;
                Value::Date(date)
            }
            Some(Kind::UuidValue(u)) => Value::Uuid(u),
            Some(Kind::TimeValue(t)) => {
                let part = |v: i32| u8::try_from(v).ok();
                let time = part(t.hours)
                    .zip(part(t.minutes))
                    .zip(part(t.seconds))
                    .zip(u32::try_from(t.nanos).ok())
                    .and_then(|(((h, m), s), n)| Time::from_hms_nano(h, m, s, n).ok())
                    .ok_or_else(|| Error::Protocol(format!("bad time {t:?}")))?;
                Value::Time(time)
            }
            Some(Kind::ArrayValue(list)) => Value::Array(
                list.values
                    .into_iter()
                    .map(Value::try_from)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// Builds a parameter list from anything that converts into [`Value`].
///
/// ```
/// use dbforge::{Value, params};
/// let p = params![24, "bob", None::<i64>];
/// assert_eq!(p, vec![Value::Int(24), Value::Text("bob".into()), Value::Null]);
/// ```
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($v:expr),+ $(,)?) => { ::std::vec![$($crate::Value::from($v)),+] };
}
