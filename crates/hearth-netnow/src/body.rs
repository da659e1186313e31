//! Body fields both wire formats share: a reader that splits fixed-width fields (timestamps,
//! tids) off the front of a decrypted body, and the timestamp body with its three subtypes,
//! which v2 and v3 lay out identically. Each format maps [`BodyError`] into its own
//! `DecodeError`.

use crate::{Tid, Timestamp, TsSubtype, TID_LEN, TS_LEN};

/// Timestamp subtype: plain time broadcast.
pub(crate) const SUBTYPE_DEFAULT: u8 = 0;
/// Timestamp subtype: confirms a tid.
pub(crate) const SUBTYPE_CONFIRM: u8 = 1;
/// Timestamp subtype: carries back-data.
pub(crate) const SUBTYPE_BACKDATA: u8 = 2;

/// What can be wrong with a body once it is authenticated and decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// A field is cut short.
    TooShort,
    /// A fixed-size body has bytes left over.
    TooLong,
    /// A timestamp body with an unknown subtype.
    UnknownSubtype(u8),
}

/// Splits fixed-width fields off the front of a body.
pub(crate) struct Reader<'b> {
    rest: &'b [u8],
}

impl<'b> Reader<'b> {
    pub(crate) fn new(body: &'b [u8]) -> Self {
        Self { rest: body }
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], BodyError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(BodyError::TooShort)?;
        self.rest = rest;
        Ok(*head)
    }

    pub(crate) fn ts(&mut self) -> Result<Timestamp, BodyError> {
        self.take::<TS_LEN>().map(Timestamp::from_be_bytes)
    }

    pub(crate) fn tid(&mut self) -> Result<Tid, BodyError> {
        self.take::<TID_LEN>().map(Tid)
    }

    /// Whatever is left, for variable-length payloads.
    pub(crate) fn rest(self) -> &'b [u8] {
        self.rest
    }

    /// Fixed-size bodies end here.
    pub(crate) fn end(self) -> Result<(), BodyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(BodyError::TooLong)
        }
    }
}

/// The timestamp body: `subtype(1) ‖ ttid(12) ‖ ts(12) ‖ extra`.
pub(crate) fn timestamp(body: &[u8]) -> Result<(TsSubtype<'_>, Tid, Timestamp), BodyError> {
    let mut r = Reader::new(body);
    let [code] = r.take::<1>()?;
    if !matches!(code, SUBTYPE_DEFAULT | SUBTYPE_CONFIRM | SUBTYPE_BACKDATA) {
        return Err(BodyError::UnknownSubtype(code));
    }
    let ttid = r.tid()?;
    let ts = r.ts()?;
    let subtype = match code {
        SUBTYPE_DEFAULT => {
            r.end()?;
            TsSubtype::Default
        }
        SUBTYPE_CONFIRM => {
            let tid = r.tid()?;
            r.end()?;
            TsSubtype::Confirm(tid)
        }
        _ => TsSubtype::Backdata(r.rest()),
    };
    Ok((subtype, ttid, ts))
}
