//! Content codings (`Content-Encoding: gzip`, `deflate`, `br`, `zstd`) undone for
//! hooks to read a body; what goes on the wire is never re-encoded.

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A coding interpose cannot undo (`compress`, …).
    Unsupported(String),
    /// Larger than the limit once decoded.
    TooLarge { coding: String, limit: usize },
    /// The bytes are not what the coding says.
    Corrupt { coding: String, cause: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(c) => {
                write!(f, "Content-Encoding {c:?} is not supported (gzip, deflate, br and zstd are)")
            }
            DecodeError::TooLarge { coding, limit } => {
                write!(f, "the body is larger than {limit} bytes once its {coding} coding is undone")
            }
            DecodeError::Corrupt { coding, cause } => write!(f, "the body does not decode as {coding}: {cause}"),
        }
    }
}

/// The codings named by `Content-Encoding`, in the order they were applied;
/// `identity` is no coding.
fn codings(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes()).split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// `bytes` with every content coding undone (last applied, first undone),
/// at most `limit` bytes; borrowed when there is none.
pub(crate) fn decode<'a>(headers: &HeaderMap, bytes: &'a Bytes, limit: usize) -> Result<Cow<'a, Bytes>, DecodeError> {
    if !headers.contains_key(http::header::CONTENT_ENCODING) || bytes.is_empty() {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Cow::Borrowed(bytes);
    for coding in codings(headers).iter().rev() {
        let input: &[u8] = &out;
        let decoded = match coding.as_str() {
            "gzip" | "x-gzip" => read_limited(flate2::read::MultiGzDecoder::new(input), coding, limit)?,
            // RFC 9110 §8.4.1.2: zlib format; some senders use raw deflate.
            "deflate" => read_limited(flate2::read::ZlibDecoder::new(input), coding, limit)
                .or_else(|_| read_limited(flate2::read::DeflateDecoder::new(input), coding, limit))?,
            "br" => read_limited(brotli_decompressor::Decompressor::new(input, 4096), coding, limit)?,
            "zstd" => zstd(input, limit)?,
            other => return Err(DecodeError::Unsupported(other.to_string())),
        };
        out = Cow::Owned(Bytes::from(decoded));
    }
    Ok(out)
}

/// The largest zstd window a body may ask for: RFC 9659 §3 has HTTP's
/// `zstd` coding use at most 8 MiB, which bounds what decoding one
/// allocates whatever its frame header claims.
const ZSTD_MAX_WINDOW: u64 = 8 << 20;

/// A zstd stream: one frame or more, skippable frames skipped (RFC 8878 §3).
fn zstd(mut input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    let corrupt = |cause: String| DecodeError::Corrupt { coding: "zstd".into(), cause };
    let mut out = Vec::new();
    // One decoder for every frame: its buffers are made once.
    let mut decoder = ruzstd::decoding::FrameDecoder::new();
    decoder.set_max_window_size(ZSTD_MAX_WINDOW);
    while !input.is_empty() {
        match ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut input, &mut decoder) {
            Ok(frame) => read_limited_into(frame, "zstd", limit, &mut out)?,
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                input = input.get(length as usize..).ok_or_else(|| corrupt("a skippable frame is cut short".into()))?;
            }
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    Ok(out)
}

fn read_limited(reader: impl Read, coding: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut buf = Vec::new();
    read_limited_into(reader, coding, limit, &mut buf)?;
    Ok(buf)
}

/// Append what `reader` gives to `buf`, which may hold at most `limit` bytes in all.
fn read_limited_into(reader: impl Read, coding: &str, limit: usize, buf: &mut Vec<u8>) -> Result<(), DecodeError> {
    let room = limit.saturating_sub(buf.len());
    reader
        .take(room as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| DecodeError::Corrupt { coding: coding.to_string(), cause: e.to_string() })?;
    if buf.len() > limit {
        return Err(DecodeError::TooLarge { coding: coding.to_string(), limit });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(coding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, coding.parse().unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    // `{"a":1}` compressed by Node's zlib.brotliCompressSync.
    const BROTLI: &[u8] = &[0x0b, 0x03, 0x80, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x31, 0x7d, 0x03];

    // `{"a":1}` compressed by the zstd CLI (1.5), without and with its checksum.
    const ZSTD: &[u8] =
        &[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x39, 0x00, 0x00, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x31, 0x7d];
    const ZSTD_CHECKED: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x39, 0x00, 0x00, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x31, 0x7d, 0x48, 0x8b,
        0xfc, 0x32,
    ];
    // 1 MiB of zeros, `zstd -19 --no-check`: 46 bytes.
    const ZSTD_BOMB: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x68, 0x4c, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0xfc, 0xff, 0x39, 0x10, 0x02,
        0x02, 0x00, 0x10, 0x00, 0x02, 0x00, 0x10, 0x00, 0x02, 0x00, 0x10, 0x00, 0x02, 0x00, 0x10, 0x00, 0x02, 0x00,
        0x10, 0x00, 0x02, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10, 0x00,
    ];

    #[test]
    fn undoes_zstd_frames_within_bounds() {
        let plain = Bytes::from_static(br#"{"a":1}"#);
        assert_eq!(&**decode(&headers("zstd"), &Bytes::from_static(ZSTD), 100).unwrap(), &plain);
        assert_eq!(&**decode(&headers("zstd"), &Bytes::from_static(ZSTD_CHECKED), 100).unwrap(), &plain);
        // Frames one after another, a skippable one between them.
        let skippable = [0x50, 0x2a, 0x4d, 0x18, 0x03, 0x00, 0x00, 0x00, 0xaa, 0xbb, 0xcc];
        let stream = [ZSTD_CHECKED, &skippable[..], ZSTD].concat();
        assert_eq!(&**decode(&headers("zstd"), &Bytes::from(stream), 100).unwrap(), br#"{"a":1}{"a":1}"#);
        let cut = Bytes::from([ZSTD, &skippable[..6]].concat());
        assert!(matches!(decode(&headers("zstd"), &cut, 100), Err(DecodeError::Corrupt { .. })));
        assert!(matches!(decode(&headers("zstd"), &plain, 100), Err(DecodeError::Corrupt { .. })));
        // Bounded by the limit across frames, as the other codings are.
        let err = decode(&headers("zstd"), &Bytes::from_static(ZSTD_BOMB), 65536).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { coding: "zstd".into(), limit: 65536 });
        assert_eq!(decode(&headers("zstd"), &Bytes::from_static(ZSTD_BOMB), 1 << 20).unwrap().len(), 1 << 20);
        let twice = Bytes::from([ZSTD, ZSTD].concat());
        assert!(matches!(decode(&headers("zstd"), &twice, 10), Err(DecodeError::TooLarge { .. })));
        // A frame that asks for a 1 GiB window (an empty raw block) is
        // refused before anything is allocated for it.
        let huge_window = Bytes::from_static(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, 0x01, 0x00, 0x00]);
        let err = decode(&headers("zstd"), &huge_window, 100).unwrap_err();
        assert!(matches!(&err, DecodeError::Corrupt { cause, .. } if cause.contains("window")), "{err:?}");
    }

    #[test]
    fn undoes_each_coding_in_reverse_order() {
        let plain = Bytes::from_static(br#"{"a":1}"#);
        assert_eq!(&**decode(&HeaderMap::new(), &plain, 100).unwrap(), &plain);
        assert_eq!(&**decode(&headers("identity"), &plain, 100).unwrap(), &plain);
        assert!(matches!(decode(&headers("identity"), &plain, 100).unwrap(), Cow::Borrowed(_)));
        assert_eq!(&**decode(&headers("GZIP"), &Bytes::from(gzip(&plain)), 100).unwrap(), &plain);
        assert_eq!(&**decode(&headers("x-gzip"), &Bytes::from(gzip(&plain)), 100).unwrap(), &plain);
        assert_eq!(&**decode(&headers("deflate"), &Bytes::from(zlib(&plain)), 100).unwrap(), &plain);
        assert_eq!(&**decode(&headers("br"), &Bytes::from_static(BROTLI), 100).unwrap(), &plain);
        // gzip applied first, then deflate: deflate is undone first.
        let twice = Bytes::from(zlib(&gzip(&plain)));
        assert_eq!(&**decode(&headers("gzip, deflate"), &twice, 100).unwrap(), &plain);
        let mut split = headers("gzip");
        split.append(http::header::CONTENT_ENCODING, "deflate".parse().unwrap());
        assert_eq!(&**decode(&split, &twice, 100).unwrap(), &plain);
    }

    #[test]
    fn refuses_what_it_cannot_undo_or_bound() {
        let plain = Bytes::from_static(br#"{"a":1}"#);
        assert_eq!(decode(&headers("compress"), &plain, 100).unwrap_err(), DecodeError::Unsupported("compress".into()));
        assert!(matches!(decode(&headers("gzip"), &plain, 100), Err(DecodeError::Corrupt { .. })));
        // A small bomb: 1 MB of zeros in about 1 KB.
        let bomb = Bytes::from(gzip(&vec![0u8; 1 << 20]));
        assert!(bomb.len() < 4096);
        let err = decode(&headers("gzip"), &bomb, 65536).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { coding: "gzip".into(), limit: 65536 });
        assert_eq!(err.to_string(), "the body is larger than 65536 bytes once its gzip coding is undone");
    }
}
