//! Names of kazoo lock contender znodes (spec 1.4).
//!
//! Nodepool and Zuul lock with kazoo's `Lock` recipe. A contender is an
//! ephemeral sequential child `<uuid4 hex>__lock__<seq10>` of the lock
//! directory. Kazoo recognises contenders with the regular expression
//! `(?:__lock__)(-?\d{10})$` and orders them by the captured sequence
//! *string*. This module reproduces exactly that, without a regex engine, so
//! that our locks and theirs agree on who holds a lock.

use std::cmp::Ordering;
use std::fmt;

use crate::ids::{IdError, SEQUENCE_DIGITS};

/// The marker kazoo puts between the contender prefix and the sequence.
pub const LOCK_MARKER: &str = "__lock__";

/// The name prefix a new contender is created with (ZooKeeper appends the
/// sequence): `<uuid hex>__lock__`.
pub fn contender_prefix(uuid_hex: &str) -> String {
    format!("{uuid_hex}{LOCK_MARKER}")
}

/// A child of a lock directory that kazoo treats as a lock contender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockContender {
    name: String,
    sequence_start: usize,
}

impl LockContender {
    /// Parses a child name of a lock directory.
    ///
    /// Matches kazoo's `re.search(r"(?:__lock__)(-?\d{10})$", name)`: the
    /// name ends in `__lock__` followed by ten ASCII digits, optionally
    /// preceded by `-`. Anything may come before `__lock__`. (Python's `$`
    /// would also match before a trailing newline, but ZooKeeper does not
    /// allow control characters in znode names.)
    pub fn parse(name: &str) -> Result<LockContender, IdError> {
        let error = || IdError::LockContender {
            value: name.to_owned(),
        };
        let bytes = name.as_bytes();
        let digits_start = bytes.len().checked_sub(SEQUENCE_DIGITS).ok_or_else(error)?;
        if !bytes[digits_start..].iter().all(u8::is_ascii_digit) {
            return Err(error());
        }
        let before_digits = &bytes[..digits_start];
        let sequence_start = if before_digits.ends_with(LOCK_MARKER.as_bytes()) {
            digits_start
        } else if before_digits.ends_with(b"__lock__-") {
            digits_start - 1
        } else {
            return Err(error());
        };
        Ok(LockContender {
            name: name.to_owned(),
            sequence_start,
        })
    }

    /// The full child name, e.g. `3f2a...__lock__0000000004`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything before `__lock__` (normally a uuid4 hex).
    pub fn prefix(&self) -> &str {
        // `parse` checked that `__lock__` ends right where the sequence starts.
        &self.name[..self.sequence_start - LOCK_MARKER.len()]
    }

    /// The sequence as kazoo captures it: ten digits, or `-` and ten digits.
    /// Contenders are ordered by comparing these strings.
    pub fn sequence(&self) -> &str {
        &self.name[self.sequence_start..]
    }
}

impl fmt::Display for LockContender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Kazoo's order: by sequence string, then by name so the order is total.
impl Ord for LockContender {
    fn cmp(&self, other: &LockContender) -> Ordering {
        self.sequence()
            .cmp(other.sequence())
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for LockContender {
    fn partial_cmp(&self, other: &LockContender) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The contenders among `children`, in kazoo's `Lock.contenders()` order
/// (the first one holds the lock). Children that are not contenders are
/// skipped. The sort is stable, like Python's.
pub fn sorted_contenders<'a>(children: impl IntoIterator<Item = &'a str>) -> Vec<LockContender> {
    let mut contenders: Vec<LockContender> = children
        .into_iter()
        .filter_map(|child| LockContender::parse(child).ok())
        .collect();
    contenders.sort_by(|a, b| a.sequence().cmp(b.sequence()));
    contenders
}

/// The contender a waiter with sequence `own_sequence` must watch, as kazoo's
/// `_get_predecessor` picks it: among contenders whose sequence string is
/// smaller than ours, the one with the largest sequence. `None` means the
/// lock is ours.
pub fn lock_predecessor<'a>(
    own_sequence: &str,
    children: impl IntoIterator<Item = &'a str>,
) -> Option<LockContender> {
    children
        .into_iter()
        .filter_map(|child| LockContender::parse(child).ok())
        .filter(|contender| contender.sequence() < own_sequence)
        // max_by keeps the last of equal elements, like Python's sorted()[-1].
        .max_by(|a, b| a.sequence().cmp(b.sequence()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "3f2a9c1e0b8d4f6a8e2c7b5d1a0f9e3c";

    #[test]
    fn parses_kazoo_contender_names() {
        let name = format!("{UUID}__lock__0000000004");
        let contender = LockContender::parse(&name).unwrap();
        assert_eq!(contender.sequence(), "0000000004");
        assert_eq!(contender.prefix(), UUID);
        assert_eq!(contender.name(), name);
        assert_eq!(contender.to_string(), name);
    }

    #[test]
    fn accepts_a_negative_sequence_like_the_regex() {
        let contender = LockContender::parse("x__lock__-0000000001").unwrap();
        assert_eq!(contender.sequence(), "-0000000001");
        assert_eq!(contender.prefix(), "x");
    }

    #[test]
    fn prefix_may_be_empty_or_contain_the_marker() {
        assert_eq!(
            LockContender::parse("__lock__0000000001").unwrap().prefix(),
            ""
        );
        let odd = LockContender::parse("a__lock__b__lock__0000000002").unwrap();
        assert_eq!(odd.prefix(), "a__lock__b");
        assert_eq!(odd.sequence(), "0000000002");
    }

    #[test]
    fn rejects_names_the_regex_does_not_match() {
        for bad in [
            "",
            "lock",
            "0000000004",
            "abc__lock__000000004",
            "abc__lock__00000000040",
            "abc__lock_0000000004",
            "abc__rlock__0000000004",
            "abc__lock__--000000001",
            "abc__lock__000000000x",
        ] {
            assert!(LockContender::parse(bad).is_err(), "{bad:?}");
        }
        // 11 digits: the regex still matches the last ten only if `__lock__`
        // (or `__lock__-`) immediately precedes them, which it does not here.
        assert!(LockContender::parse("abc__lock__10000000004").is_err());
    }

    #[test]
    fn contender_prefix_is_uuid_and_marker() {
        assert_eq!(contender_prefix(UUID), format!("{UUID}__lock__"));
        let name = format!("{}{}", contender_prefix(UUID), "0000000009");
        assert_eq!(
            LockContender::parse(&name).unwrap().sequence(),
            "0000000009"
        );
    }

    #[test]
    fn sorted_contenders_orders_by_sequence_string_and_skips_others() {
        let children = [
            "bbb__lock__0000000010",
            "lock",
            "aaa__lock__0000000002",
            "ccc__lock__-0000000005",
            "unrelated",
            "ddd__lock__0000000009",
        ];
        let names: Vec<String> = sorted_contenders(children)
            .into_iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ccc__lock__-0000000005",
                "aaa__lock__0000000002",
                "ddd__lock__0000000009",
                "bbb__lock__0000000010",
            ]
        );
    }

    #[test]
    fn predecessor_is_the_largest_smaller_sequence() {
        let children = [
            "a__lock__0000000001",
            "b__lock__0000000003",
            "me__lock__0000000004",
            "c__lock__0000000007",
            "not-a-contender",
        ];
        assert_eq!(
            lock_predecessor("0000000004", children).unwrap().name(),
            "b__lock__0000000003"
        );
        assert!(lock_predecessor("0000000001", children).is_none());
        assert_eq!(
            lock_predecessor("0000000008", children).unwrap().name(),
            "c__lock__0000000007"
        );
    }

    #[test]
    fn ordering_is_total_and_follows_sequence() {
        let a = LockContender::parse("z__lock__0000000001").unwrap();
        let b = LockContender::parse("a__lock__0000000002").unwrap();
        assert!(a < b);
    }
}
