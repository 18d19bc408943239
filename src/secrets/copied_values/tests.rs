use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::*;

fn search(values: &[&[u8]], haystack: &[u8]) -> Search {
    CopiedValues::new(values.iter().copied(), std::iter::once(haystack)).search(haystack)
}

/// The rule as SPEC states it, one pair at a time: a value of at least `MIN_LEN` bytes,
/// raw or base64, anywhere in the annotation.
fn naive(values: &[Vec<u8>], haystack: &[u8]) -> bool {
    values
        .iter()
        .filter(|v| v.len() >= MIN_LEN)
        .flat_map(|v| [v.clone(), STANDARD.encode(v).into_bytes()])
        .any(|form| haystack.windows(form.len()).any(|w| w == form.as_slice()))
}

#[test]
fn finds_raw_and_base64_copies_anywhere() {
    let value: &[u8] = b"PLANTED-s3cr3t";
    let b64 = STANDARD.encode(value);
    assert_eq!(search(&[value], b"PLANTED-s3cr3t"), Search::Found);
    assert_eq!(search(&[value], b"note: PLANTED-s3cr3t!"), Search::Found);
    assert_eq!(search(&[value], b64.as_bytes()), Search::Found);
    assert_eq!(search(&[value], b"PLANTED-s3cr3"), Search::NotFound);
    assert_eq!(search(&[value], b"PLANTED-s3cr3T"), Search::NotFound);
    assert_eq!(search(&[b"short"], b"short short"), Search::NotFound);
    assert_eq!(search(&[], b"anything at all"), Search::NotFound);
}

#[test]
fn values_sharing_a_prefix_are_each_found() {
    let values: &[&[u8]] = &[b"prefix00-one", b"prefix00-two-longer", b"prefix00"];
    for v in values {
        let haystack = [b"..".as_slice(), v, b".."].concat();
        assert_eq!(search(values, &haystack), Search::Found);
    }
    assert_eq!(search(values, b"prefix0-none"), Search::NotFound);
}

#[test]
fn each_haystack_is_searched_against_every_value() {
    let values: &[&[u8]] = &[b"first-value", b"second-value"];
    let b64 = STANDARD.encode(b"second-value");
    let haystacks: &[&[u8]] = &[b"nothing here", b"has first-value", b64.as_bytes(), b""];
    let mut index = CopiedValues::new(values.iter().copied(), haystacks.iter().copied());
    let found: Vec<Search> = haystacks.iter().map(|h| index.search(h)).collect();
    use Search::{Found, NotFound};
    assert_eq!(found, [NotFound, Found, Found, NotFound]);
}

#[test]
fn the_base64_head_is_the_encoders() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in (MIN_LEN..40).cycle().take(5000) {
        let value: Vec<u8> = (0..len)
            .map(|_| {
                // xorshift: every byte value, not just the small alphabet below.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let encoded = STANDARD.encode(&value);
        assert_eq!(
            base64_head(&value),
            prefix_key(encoded.as_bytes()),
            "{value:?}"
        );
    }
}

#[test]
fn near_misses_exhaust_the_budget_instead_of_the_cpu() {
    // 8 values of 128 KiB that differ from a 250 KiB run of 'A' only in their last
    // byte: a full search compares ~256 Ki × 8 × 128 Ki bytes.
    let values: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            let mut v = vec![b'A'; 128 * 1024];
            *v.last_mut().expect("non-empty") = b'a' + i;
            v
        })
        .collect();
    let haystack = vec![b'A'; 250 * 1024];
    let mut index = CopiedValues::new(
        values.iter().map(Vec::as_slice),
        std::iter::once(haystack.as_slice()),
    );
    assert_eq!(index.search(&haystack), Search::Incomplete);
    assert_eq!(index.search(&haystack), Search::Incomplete);
}

#[test]
fn duplicate_values_are_indexed_once() {
    let value = b"same-value-1".as_slice();
    let haystack = [value, b" ", STANDARD.encode(value).as_bytes()].concat();
    let index = CopiedValues::new(
        vec![value; 10_000].into_iter(),
        std::iter::once(&haystack[..]),
    );
    assert_eq!(index.patterns.len(), 2);
}

#[test]
fn values_that_start_no_window_are_not_indexed_but_still_count_for_the_budget() {
    let values: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("{i:06}-value").into_bytes())
        .collect();
    let haystacks: &[&[u8]] = &[b"an annotation", b"000007-value is here"];
    let index = CopiedValues::new(values.iter().map(Vec::as_slice), haystacks.iter().copied());
    // Only 000007-value starts a window (its base64, 16 bytes, fits but starts none).
    // The filter lets a few of the other 1999 forms through (about one in ten here);
    // none of those can match.
    assert!(index.patterns.len() < 600, "{}", index.patterns.len());
    assert!(
        index
            .patterns
            .iter()
            .any(|&(_, at, len)| &index.arena[at as usize..(at + len) as usize] == b"000007-value")
    );
    // As if all 1000 values (12 bytes) and their encodings (16 bytes) were indexed.
    let haystack_bytes = 13 + 20;
    assert_eq!(
        index.budget,
        BUDGET_FLOOR + BUDGET_PER_BYTE * (1000 * (12 + 16) + haystack_bytes)
    );
}

/// Bytes from a small alphabet, so values, their encodings and haystacks overlap often.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"ab=AYWFiYQ".to_vec()), 0..max)
}

/// A haystack assembled from junk and from pieces of the values and their encodings,
/// cut at random, so that it holds whole copies, near misses and nothing in turn.
fn haystack(values: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::collection::vec(
        (
            bytes(6),
            any::<prop::sample::Index>(),
            any::<bool>(),
            0..20usize,
            0..20usize,
        ),
        0..6,
    );
    pieces.prop_map(move |pieces| {
        let mut out = Vec::new();
        for (junk, which, encode, from, to) in pieces {
            out.extend_from_slice(&junk);
            if values.is_empty() {
                continue;
            }
            let value = &values[which.index(values.len())];
            let form = if encode {
                STANDARD.encode(value).into_bytes()
            } else {
                value.clone()
            };
            let from = from.min(form.len()) * usize::from(from % 3 == 0);
            let to = form.len() - to.min(form.len() - from) * usize::from(to % 3 == 0);
            out.extend_from_slice(&form[from..to]);
        }
        out
    })
}

fn case() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<Vec<u8>>)> {
    prop::collection::vec(bytes(14), 0..6).prop_flat_map(|values| {
        let haystacks = prop::collection::vec(haystack(values.clone()), 0..5);
        (Just(values), haystacks)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The index finds exactly what the pair-by-pair search finds (inputs this small
    /// never exhaust the budget).
    #[test]
    fn agrees_with_the_naive_search((values, haystacks) in case()) {
        let mut index = CopiedValues::new(
            values.iter().map(Vec::as_slice),
            haystacks.iter().map(Vec::as_slice),
        );
        for h in &haystacks {
            let expected = if naive(&values, h) { Search::Found } else { Search::NotFound };
            prop_assert_eq!(index.search(h), expected, "haystack {:?}", String::from_utf8_lossy(h));
        }
    }
}
