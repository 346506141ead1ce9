//! Identifiers and timestamps in ngrok's formats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Base62 in ASCII order, so that ids compare like the numbers they encode.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the part after the prefix, as in ngrok's ids (`ed_2k5okDBx9lLxNoCld1s7SFJnmhT`).
const ID_LEN: usize = 27;
/// Leading characters holding the creation time: 62^11 > 2^64.
const TIME_LEN: usize = 11;

static LAST_NANOS: AtomicU64 = AtomicU64::new(0);

/// `prefix` + 27 alphanumerics. Like ngrok's KSUID-style ids, they sort by creation time,
/// which is what makes `before_id` paging work even for deleted ids.
pub(crate) fn new_id(prefix: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Strictly increasing, even for ids made within the same nanosecond.
    let nanos = match LAST_NANOS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        Some(now.max(last + 1))
    }) {
        Ok(last) => now.max(last + 1),
        Err(_) => unreachable!("the update closure always returns Some"),
    };
    let mut time_part = [b'0'; TIME_LEN];
    let mut rest = nanos;
    for slot in time_part.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let mut id = String::with_capacity(prefix.len() + ID_LEN);
    id.push_str(prefix);
    id.push_str(std::str::from_utf8(&time_part).expect("base62 is ASCII"));
    id.push_str(&random_alphanumeric(ID_LEN - TIME_LEN));
    id
}

/// `op_` + 27 random alphanumerics.
pub(crate) fn new_operation_id() -> String {
    format!("op_{}", random_alphanumeric(ID_LEN))
}

fn random_alphanumeric(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect()
}

/// Now, RFC 3339 in whole seconds, as ngrok writes it (`2024-08-02T07:15:39Z`).
pub(crate) fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .expect("UTC timestamps format as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_ngroks_shape_and_sort_by_creation() {
        let ids: Vec<String> = (0..100).map(|_| new_id("ed_")).collect();
        for id in &ids {
            assert_eq!(id.len(), 3 + 27);
            assert!(id[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(new_operation_id().starts_with("op_"));
        assert!(now_rfc3339().ends_with('Z'));
    }
}
