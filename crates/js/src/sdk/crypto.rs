//! Node's `crypto` (`node/crypto.js`): digests and HMACs on RustCrypto
//! (md5, sha1, sha224, sha256, sha384, sha512); random bytes come from the
//! web globals' generator.

use hmac::{Hmac, KeyInit, Mac};
use rquickjs::module::{Declarations, Exports};
use rquickjs::{Ctx, Exception, Function, TypedArray};
use sha2::Digest;

pub(super) fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("hash")?;
    decl.declare("hmac")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
    // Bytes come as strings of char codes 0-255 (`node/crypto.js` `binary`):
    // the engine's typed arrays cannot be read without `unsafe`.
    let hash = Function::new(ctx.clone(), |ctx: Ctx<'js>, algorithm: String, data: String| {
        let out = digest(&algorithm, &bytes(&data)).ok_or_else(|| unsupported(&ctx, &algorithm))?;
        TypedArray::<u8>::new(ctx.clone(), out)
    })?;
    exports.export("hash", hash)?;
    let hmac = Function::new(ctx.clone(), |ctx: Ctx<'js>, algorithm: String, key: String, data: String| {
        let out = mac(&algorithm, &bytes(&key), &bytes(&data)).ok_or_else(|| unsupported(&ctx, &algorithm))?;
        TypedArray::<u8>::new(ctx.clone(), out)
    })?;
    exports.export("hmac", hmac)?;
    Ok(())
}

/// A string of char codes 0-255 as the bytes it stands for.
fn bytes(binary: &str) -> Vec<u8> {
    binary.chars().map(|c| c as u32 as u8).collect()
}

fn unsupported(ctx: &Ctx<'_>, algorithm: &str) -> rquickjs::Error {
    Exception::throw_type(
        ctx,
        &format!("Digest method not supported: {algorithm} (md5, sha1, sha224, sha256, sha384 and sha512 are)"),
    )
}

/// Node's names, in any case, with or without a dash (`SHA-256`).
fn name(algorithm: &str) -> String {
    algorithm.to_ascii_lowercase().replace('-', "")
}

fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match name(algorithm).as_str() {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha224" => sha2::Sha224::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn mac(algorithm: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut m = <M as KeyInit>::new_from_slice(key).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().to_vec())
    }
    match name(algorithm).as_str() {
        "md5" => run::<Hmac<md5::Md5>>(key, data),
        "sha1" => run::<Hmac<sha1::Sha1>>(key, data),
        "sha224" => run::<Hmac<sha2::Sha224>>(key, data),
        "sha256" => run::<Hmac<sha2::Sha256>>(key, data),
        "sha384" => run::<Hmac<sha2::Sha384>>(key, data),
        "sha512" => run::<Hmac<sha2::Sha512>>(key, data),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&super::digest("sha256", b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&super::digest("MD5", b"").unwrap()), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&super::digest("sha-1", b"abc").unwrap()), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&super::mac("sha256", b"Jefe", b"what do ya want for nothing?").unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(super::digest("whirlpool", b"").is_none());
    }
}
