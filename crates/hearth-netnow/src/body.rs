//! Body fields both wire formats share: a writer and a reader for the fixed-width fields
//! (timestamps, tids), and the timestamp body with its three subtypes, which v2 and v3 lay out
//! identically. Each format maps [`BodyError`] into its own `DecodeError`.

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

/// The data body, the same in both formats: `ts(12) ‖ tid(12) ‖ payload`.
pub(crate) fn data(body: &[u8]) -> Result<(Timestamp, Tid, &[u8]), BodyError> {
    let mut r = Reader::new(body);
    let ts = r.ts()?;
    let tid = r.tid()?;
    Ok((ts, tid, r.rest()))
}

/// The ping body, the same in both formats: exactly `ts(12) ‖ tid(12)`.
pub(crate) fn ping(body: &[u8]) -> Result<(Timestamp, Tid), BodyError> {
    let mut r = Reader::new(body);
    let ts = r.ts()?;
    let tid = r.tid()?;
    r.end()?;
    Ok((ts, tid))
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

/// Appends fields to an output buffer. Callers check sizes before writing; an overflow would be
/// a bug in those checks: it fails a debug assertion in tests and is skipped (never a panic) in
/// release builds.
pub(crate) struct Writer<'o> {
    buf: &'o mut [u8],
    len: usize,
}

impl<'o> Writer<'o> {
    pub(crate) fn new(buf: &'o mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        debug_assert!(
            end <= self.buf.len(),
            "size checks let an oversized body through"
        );
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }
}

/// Write the timestamp body: `subtype(1) ‖ ttid(12) ‖ ts(12) ‖ extra`.
pub(crate) fn write_timestamp(
    w: &mut Writer<'_>,
    subtype: &TsSubtype<'_>,
    ttid: &Tid,
    ts: &Timestamp,
) {
    let code = match subtype {
        TsSubtype::Default => SUBTYPE_DEFAULT,
        TsSubtype::Confirm(_) => SUBTYPE_CONFIRM,
        TsSubtype::Backdata(_) => SUBTYPE_BACKDATA,
    };
    w.put(&[code]);
    w.put(&ttid.0);
    w.put(&ts.to_be_bytes());
    match subtype {
        TsSubtype::Default => {}
        TsSubtype::Confirm(tid) => w.put(&tid.0),
        TsSubtype::Backdata(payload) => w.put(payload),
    }
}
