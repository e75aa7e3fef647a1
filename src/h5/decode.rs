//! Stored numbers to Rust numbers: the element layouts NLB and NWB files use (any integer width
//! and byte order, IEEE half, single and double floats, enums over integers such as h5py's
//! booleans), decoded from the raw bytes the HDF5 layer hands back.

use rust_hdf5::format::messages::datatype::IeeeFormat;
use rust_hdf5::{ByteOrder, DatatypeMessage};

/// How one stored element is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Element {
    Int {
        size: usize,
        signed: bool,
        little: bool,
    },
    F16 {
        little: bool,
    },
    F32 {
        little: bool,
    },
    F64 {
        little: bool,
    },
}

impl Element {
    pub(super) fn size(self) -> usize {
        match self {
            Element::Int { size, .. } => size,
            Element::F16 { .. } => 2,
            Element::F32 { .. } => 4,
            Element::F64 { .. } => 8,
        }
    }
}

/// What a dataset or attribute holds, as far as this crate reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Plain numbers.
    Number(Element),
    /// An enum whose two members are FALSE = 0 and TRUE = 1 (h5py's and pandas' booleans).
    Bool(Element),
    /// Any other enum over an integer: read as its integer values.
    Enum(Element),
    /// Strings, fixed or variable length.
    Text,
    /// Variable-length sequences of numbers.
    Sequence(Element),
    /// Anything else, described for an error message.
    Other(String),
}

fn little(order: ByteOrder) -> bool {
    order == ByteOrder::LittleEndian
}

/// The element layout of a numeric datatype, if it is one.
fn element(dt: &DatatypeMessage) -> Option<Element> {
    match *dt {
        DatatypeMessage::FixedPoint {
            size,
            byte_order,
            signed,
            bit_offset: 0,
            bit_precision,
        } if matches!(size, 1 | 2 | 4 | 8) && u32::from(bit_precision) == size * 8 => {
            Some(Element::Int {
                size: size as usize,
                signed,
                little: little(byte_order),
            })
        }
        DatatypeMessage::FloatingPoint { byte_order, .. } => {
            let little = little(byte_order);
            match dt.ieee_format()? {
                IeeeFormat::Binary16 => Some(Element::F16 { little }),
                IeeeFormat::Binary32 => Some(Element::F32 { little }),
                IeeeFormat::Binary64 => Some(Element::F64 { little }),
            }
        }
        _ => None,
    }
}

/// Classifies a stored datatype.
pub(super) fn kind(dt: &DatatypeMessage) -> Kind {
    if let Some(e) = element(dt) {
        return Kind::Number(e);
    }
    match dt {
        DatatypeMessage::Enum { base, members } => match element(base) {
            Some(e) if is_bool(members, e) => Kind::Bool(e),
            Some(e) => Kind::Enum(e),
            None => Kind::Other(format!("enum over {base:?}")),
        },
        DatatypeMessage::FixedString { .. } | DatatypeMessage::VarLenString { .. } => Kind::Text,
        DatatypeMessage::VarLenSequence { base } => match element(base) {
            Some(e) => Kind::Sequence(e),
            None => Kind::Other(format!("variable-length sequence of {base:?}")),
        },
        other => Kind::Other(format!("{other:?}")),
    }
}

fn is_bool(members: &[rust_hdf5::format::messages::datatype::EnumMember], e: Element) -> bool {
    let value = |name: &str| {
        members
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .and_then(|m| to_i64(e, &m.value).ok())
            .and_then(|v| v.first().copied())
    };
    members.len() == 2 && value("FALSE") == Some(0) && value("TRUE") == Some(1)
}

fn bytes<const N: usize>(chunk: &[u8], little: bool) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(chunk);
    if !little {
        b.reverse();
    }
    b
}

fn int_at(chunk: &[u8], size: usize, signed: bool, little: bool) -> i128 {
    match (size, signed) {
        (1, true) => i8::from_le_bytes(bytes::<1>(chunk, little)).into(),
        (1, false) => u8::from_le_bytes(bytes::<1>(chunk, little)).into(),
        (2, true) => i16::from_le_bytes(bytes::<2>(chunk, little)).into(),
        (2, false) => u16::from_le_bytes(bytes::<2>(chunk, little)).into(),
        (4, true) => i32::from_le_bytes(bytes::<4>(chunk, little)).into(),
        (4, false) => u32::from_le_bytes(bytes::<4>(chunk, little)).into(),
        (8, true) => i64::from_le_bytes(bytes::<8>(chunk, little)).into(),
        _ => u64::from_le_bytes(bytes::<8>(chunk, little)).into(),
    }
}

fn float_at(e: Element, chunk: &[u8]) -> f64 {
    match e {
        Element::F16 { little } => {
            half::f16::from_bits(u16::from_le_bytes(bytes::<2>(chunk, little))).into()
        }
        Element::F32 { little } => f32::from_le_bytes(bytes::<4>(chunk, little)).into(),
        Element::F64 { little } => f64::from_le_bytes(bytes::<8>(chunk, little)),
        Element::Int {
            size,
            signed,
            little,
        } => int_at(chunk, size, signed, little) as f64,
    }
}

fn check_len(e: Element, raw: &[u8]) -> Result<(), String> {
    if raw.len().is_multiple_of(e.size()) {
        Ok(())
    } else {
        Err(format!(
            "{} bytes are not a whole number of {}-byte elements",
            raw.len(),
            e.size()
        ))
    }
}

/// Every element as f64 (integers are converted, so an int64 above 2^53 rounds).
pub(super) fn to_f64(e: Element, raw: &[u8]) -> Result<Vec<f64>, String> {
    check_len(e, raw)?;
    Ok(raw.chunks_exact(e.size()).map(|c| float_at(e, c)).collect())
}

/// Every element as i64; floats are refused, and so is an unsigned value above `i64::MAX`.
pub(super) fn to_i64(e: Element, raw: &[u8]) -> Result<Vec<i64>, String> {
    check_len(e, raw)?;
    let Element::Int {
        size,
        signed,
        little,
    } = e
    else {
        return Err("expected integers, found floats".into());
    };
    raw.chunks_exact(size)
        .enumerate()
        .map(|(i, c)| {
            let v = int_at(c, size, signed, little);
            i64::try_from(v).map_err(|_| format!("element {i} ({v}) does not fit in int64"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_every_width_and_order() {
        let be = Element::Int {
            size: 2,
            signed: true,
            little: false,
        };
        assert_eq!(to_i64(be, &[0xff, 0xfe, 0x01, 0x00]).unwrap(), [-2, 256]);
        let u8s = Element::Int {
            size: 1,
            signed: false,
            little: true,
        };
        assert_eq!(to_f64(u8s, &[200, 1]).unwrap(), [200.0, 1.0]);
        let u64s = Element::Int {
            size: 8,
            signed: false,
            little: true,
        };
        assert!(to_i64(u64s, &u64::MAX.to_le_bytes()).is_err());
        assert!(to_i64(u64s, &[0; 7]).is_err(), "a partial element");
    }

    #[test]
    fn floats_of_every_width() {
        let h = half::f16::from_f32(-1.5).to_bits().to_le_bytes();
        assert_eq!(to_f64(Element::F16 { little: true }, &h).unwrap(), [-1.5]);
        let mut f = 0.25f32.to_be_bytes().to_vec();
        f.extend(f32::NAN.to_be_bytes());
        let v = to_f64(Element::F32 { little: false }, &f).unwrap();
        assert_eq!(v[0], 0.25);
        assert!(v[1].is_nan());
        assert!(to_i64(Element::F64 { little: true }, &[0; 8]).is_err());
    }

    #[test]
    fn h5py_booleans_are_recognised() {
        assert_eq!(
            kind(&DatatypeMessage::bool_type()),
            Kind::Bool(Element::Int {
                size: 1,
                signed: false,
                little: true
            })
        );
    }
}
