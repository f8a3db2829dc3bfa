//! `application/x-www-form-urlencoded` encoding (WHATWG URL, the urlencoded serializer), as
//! `url::form_urlencoded` writes it: ASCII alphanumerics and `*-._` stand for themselves, a
//! space becomes `+`, every other byte `%XX`. Here rather than in the Graph client because
//! [`Payload`](crate::payload::Payload) writes its text straight into this encoding, and the
//! client encodes its other parameters with the same rules.
//!
//! Runs of safe bytes are copied whole: an upload is mostly hex digests, and encoding it byte
//! by byte was a third of the worker's CPU in the engine benchmark.

/// Bytes checked at once when skipping a run of safe bytes (hex digests are 64 long).
const SAFE_CHUNK: usize = 16;

/// Whether `b` stands for itself, by comparisons, which the compiler vectorises over a chunk.
#[inline(always)]
pub fn is_safe(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'*')
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
}

/// Appends `bytes`, encoded, to `out`.
pub fn encode_into(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // skip whole chunks of safe bytes, then look at the bytes one by one
        while let Some(chunk) = bytes.get(i..i + SAFE_CHUNK)
            && chunk.iter().fold(true, |all, &b| all & is_safe(b))
        {
            i += SAFE_CHUNK;
        }
        let end = (i + SAFE_CHUNK).min(bytes.len());
        while i < end {
            let b = bytes[i];
            i += 1;
            if is_safe(b) {
                continue;
            }
            out.extend_from_slice(&bytes[run..i - 1]);
            if b == b' ' {
                out.push(b'+');
            } else {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            run = i;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Length of `bytes` encoded: each byte that is neither safe nor a space takes three.
pub fn encoded_len(bytes: &[u8]) -> usize {
    // counted per 64-byte chunk in a byte-wide sum, which the compiler vectorises (a
    // usize-wide sum over the whole value was 13% of the engine benchmark's CPU)
    let escaped = |chunk: &[u8]| -> usize {
        usize::from(
            chunk
                .iter()
                .map(|&b| u8::from(!is_safe(b) & (b != b' ')))
                .fold(0u8, u8::wrapping_add),
        )
    };
    let chunks = bytes.chunks_exact(64);
    let tail = escaped(chunks.remainder());
    let escaped: usize = chunks.map(escaped).sum::<usize>() + tail;
    bytes.len() + 2 * escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(value: &str) -> Vec<u8> {
        url::form_urlencoded::byte_serialize(value.as_bytes())
            .collect::<String>()
            .into_bytes()
    }

    fn encoded(value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, value.as_bytes());
        out
    }

    #[test]
    fn encodes_as_the_url_crate_does() {
        for value in [
            r#"{"schema":["EMAIL","MADID"],"data":[["ab12","x y"],["é~*","&=%+"]]}"#,
            "EAAB/x+y=",
            "",
        ] {
            assert_eq!(encoded(value), reference(value), "{value}");
            assert_eq!(encoded_len(value.as_bytes()), reference(value).len());
        }
    }

    /// Every byte alone is encoded as the url crate encodes it (bytes from 0x80 up only occur
    /// inside UTF-8 sequences, which are never safe).
    #[test]
    fn every_byte_is_classified_as_the_url_crate_does() {
        for b in 0..=127u8 {
            let value = char::from(b).to_string();
            assert_eq!(encoded(&value), reference(&value), "byte {b}");
        }
        for b in 128..=255u8 {
            assert!(!is_safe(b), "byte {b}");
        }
    }

    proptest! {
        #[test]
        fn any_value_encodes_as_the_url_crate_does(value in ".{0,60}") {
            prop_assert_eq!(encoded(&value), reference(&value));
        }

        /// Long runs of safe bytes with unsafe ones anywhere, chunk boundaries included (the
        /// shape of a payload: hex digests between JSON delimiters).
        #[test]
        fn payload_like_values_encode_as_the_url_crate_does(
            value in "[a-f0-9]{0,70}([\\[\\]\",:{} é*._-][a-f0-9]{0,70}){0,12}"
        ) {
            prop_assert_eq!(encoded(&value), reference(&value));
        }

        #[test]
        fn the_encoded_length_is_counted_exactly(value in ".{0,300}") {
            prop_assert_eq!(encoded_len(value.as_bytes()), reference(&value).len());
        }
    }
}
