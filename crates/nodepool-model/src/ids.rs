//! Identifiers carried in ZooKeeper path components.
//!
//! None of these ids is stored inside the JSON documents: Nodepool takes them
//! from the znode path (spec 1.3). The domain structs therefore do not hold
//! their own id; the store pairs an id with the value it read.
//!
//! ZooKeeper formats sequence suffixes as `%010d` of the parent's `cversion`
//! (an `i32`), so every sequence the server hands out fits a `u32` and prints
//! as exactly ten digits. Parsers here are strict about that shape: an id of
//! another shape was not produced by ZooKeeper, and callers skip it instead of
//! choking on it (Python Nodepool stops processing *all* requests when one
//! request id has the wrong shape, spec 8.1 item 1).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Number of digits in a ZooKeeper sequence suffix.
pub const SEQUENCE_DIGITS: usize = 10;

/// Why a path component is not the id it was supposed to be.
///
/// Callers listing children branch on this to skip foreign znodes (for
/// example the `lock` child next to builds and uploads).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{what} {value:?} is not a 10-digit ZooKeeper sequence")]
    NotASequence { what: &'static str, value: String },
    #[error("request id {value:?} is not `<precedence>-<10-digit sequence>` with exactly one '-'")]
    RequestIdShape { value: String },
    #[error("request id {value:?} has precedence {precedence:?}, which is not a decimal string")]
    RequestPrecedence { value: String, precedence: String },
    #[error("build id {value:?} is neither 32 lowercase hex digits nor a 10-digit sequence")]
    BuildId { value: String },
    #[error("component znode name {value:?} is not `<hostname><10-digit sequence>`")]
    ComponentName { value: String },
    #[error("lock znode name {value:?} does not end in `__lock__` and a 10-digit sequence")]
    LockContender { value: String },
}

/// Parses exactly ten ASCII digits into a sequence number.
///
/// `None` for any other length or character, and for ten digits above
/// `u32::MAX`, which ZooKeeper cannot produce.
pub(crate) fn parse_sequence(text: &str) -> Option<u32> {
    if text.len() != SEQUENCE_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A fresh `uuid4().hex`: 32 lowercase hex digits.
///
/// Nodepool uses this shape for build ids, lock contender prefixes and the
/// `event_id` of requests it creates itself.
pub fn random_uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Id of a node: the sequence suffix of `/nodepool/nodes/<seq10>`.
///
/// Ordering is numeric, which equals the string order Nodepool uses because
/// every id has exactly ten digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u32);

impl NodeId {
    pub fn new(sequence: u32) -> NodeId {
        NodeId(sequence)
    }

    pub fn sequence(self) -> u32 {
        self.0
    }

    pub fn parse(text: &str) -> Result<NodeId, IdError> {
        parse_sequence(text)
            .map(NodeId)
            .ok_or_else(|| IdError::NotASequence {
                what: "node id",
                value: text.to_owned(),
            })
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<NodeId, IdError> {
        NodeId::parse(text)
    }
}

/// Id of an image upload: the sequence suffix of
/// `.../providers/<provider>/images/<seq10>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(u32);

impl UploadId {
    pub fn new(sequence: u32) -> UploadId {
        UploadId(sequence)
    }

    pub fn sequence(self) -> u32 {
        self.0
    }

    pub fn parse(text: &str) -> Result<UploadId, IdError> {
        parse_sequence(text)
            .map(UploadId)
            .ok_or_else(|| IdError::NotASequence {
                what: "upload id",
                value: text.to_owned(),
            })
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

impl FromStr for UploadId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<UploadId, IdError> {
        UploadId::parse(text)
    }
}

/// Id of a node request: `<precedence>-<seq10>`, e.g. `100-0000000042`.
///
/// The precedence is kept as the string it was written as, because Nodepool
/// compares it as a string (`"099" < "100"` but also `"99" > "100"`); Zuul
/// zero-pads it to three characters so the two orders agree in practice.
/// The derived ordering is (precedence string, sequence).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    precedence: String,
    sequence: u32,
}

impl RequestId {
    /// Builds the id ZooKeeper would give a request created under
    /// `/nodepool/requests/<precedence>-`.
    pub fn new(precedence: &str, sequence: u32) -> Result<RequestId, IdError> {
        if !is_precedence(precedence) {
            return Err(IdError::RequestPrecedence {
                value: format!("{precedence}-{sequence:010}"),
                precedence: precedence.to_owned(),
            });
        }
        Ok(RequestId {
            precedence: precedence.to_owned(),
            sequence,
        })
    }

    /// Parses a child name of `/nodepool/requests`.
    ///
    /// Python splits on `-` and needs exactly two parts; we also require the
    /// parts to be what Zuul and Nodepool write (digits, ten-digit sequence).
    pub fn parse(text: &str) -> Result<RequestId, IdError> {
        let mut parts = text.split('-');
        let (Some(precedence), Some(sequence), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(IdError::RequestIdShape {
                value: text.to_owned(),
            });
        };
        if !is_precedence(precedence) {
            return Err(IdError::RequestPrecedence {
                value: text.to_owned(),
                precedence: precedence.to_owned(),
            });
        }
        let Some(sequence) = parse_sequence(sequence) else {
            return Err(IdError::RequestIdShape {
                value: text.to_owned(),
            });
        };
        Ok(RequestId {
            precedence: precedence.to_owned(),
            sequence,
        })
    }

    /// The queue precedence, e.g. `"100"`; lower strings are served first.
    pub fn precedence(&self) -> &str {
        &self.precedence
    }

    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Whether Zuul's leaked-request cleanup recognises this as a Nodepool
    /// request id: it tests `request_id[3] == "-"` (zuul nodepool.py
    /// `isNodeRequestID`), i.e. a precedence of exactly three characters.
    pub fn has_zuul_recognised_shape(&self) -> bool {
        self.precedence.len() == 3
    }
}

fn is_precedence(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:010}", self.precedence, self.sequence)
    }
}

impl FromStr for RequestId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<RequestId, IdError> {
        RequestId::parse(text)
    }
}

/// Id of an image build: `uuid4().hex` for builds made by Nodepool 11, or a
/// 10-digit sequence for builds made by old installations. Both are valid
/// child names of `/nodepool/images/<image>/builds`.
///
/// Ordering is plain string order; it carries no meaning ("most recent" is
/// decided by `state_time`) but lets builds live in sorted maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildId(String);

impl BuildId {
    /// A new build id in the form Nodepool 11 uses.
    pub fn new_random() -> BuildId {
        BuildId(random_uuid_hex())
    }

    pub fn parse(text: &str) -> Result<BuildId, IdError> {
        let is_uuid_hex =
            text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_uuid_hex || parse_sequence(text).is_some() {
            Ok(BuildId(text.to_owned()))
        } else {
            Err(IdError::BuildId {
                value: text.to_owned(),
            })
        }
    }

    /// True for the 10-digit ids of builds made before uuid build ids.
    pub fn is_legacy_sequence(&self) -> bool {
        self.0.len() == SEQUENCE_DIGITS
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BuildId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<BuildId, IdError> {
        BuildId::parse(text)
    }
}

/// Name of a component znode: `<hostname><seq10>`, e.g. `np1.example.com0000000003`.
///
/// The sequence is always the last ten characters, so a hostname that ends in
/// digits (`np1`) is still split correctly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentName {
    hostname: String,
    sequence: u32,
}

impl ComponentName {
    pub fn new(hostname: &str, sequence: u32) -> ComponentName {
        ComponentName {
            hostname: hostname.to_owned(),
            sequence,
        }
    }

    pub fn parse(text: &str) -> Result<ComponentName, IdError> {
        let error = || IdError::ComponentName {
            value: text.to_owned(),
        };
        let Some(split) = text.len().checked_sub(SEQUENCE_DIGITS) else {
            return Err(error());
        };
        // The last ten bytes must be ASCII digits, so `split` is a char boundary.
        let (hostname, sequence) = text.split_at_checked(split).ok_or_else(error)?;
        let sequence = parse_sequence(sequence).ok_or_else(error)?;
        if hostname.is_empty() {
            return Err(error());
        }
        Ok(ComponentName {
            hostname: hostname.to_owned(),
            sequence,
        })
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn sequence(&self) -> u32 {
        self.sequence
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:010}", self.hostname, self.sequence)
    }
}

impl FromStr for ComponentName {
    type Err = IdError;
    fn from_str(text: &str) -> Result<ComponentName, IdError> {
        ComponentName::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_and_orders() {
        let id = NodeId::parse("0000000042").unwrap();
        assert_eq!(id.sequence(), 42);
        assert_eq!(id.to_string(), "0000000042");
        assert_eq!(NodeId::new(0).to_string(), "0000000000");
        assert_eq!(NodeId::new(u32::MAX).to_string(), "4294967295");
        assert!(NodeId::parse("0000000009").unwrap() < NodeId::parse("0000000010").unwrap());
        assert_eq!("0000000007".parse::<NodeId>().unwrap(), NodeId::new(7));
    }

    #[test]
    fn node_id_rejects_other_shapes() {
        for bad in [
            "",
            "42",
            "00000000042",
            "000000004a",
            "lock",
            "-000000001",
            "+000000001",
            "9999999999",
            "０００００００００１",
        ] {
            assert_eq!(
                NodeId::parse(bad),
                Err(IdError::NotASequence {
                    what: "node id",
                    value: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_id_round_trips() {
        let id = UploadId::parse("0000000001").unwrap();
        assert_eq!(id, UploadId::new(1));
        assert_eq!(id.to_string(), "0000000001");
        assert!(UploadId::parse("lock").is_err());
    }

    #[test]
    fn request_id_parses_precedence_and_sequence() {
        let id = RequestId::parse("100-0000000042").unwrap();
        assert_eq!(id.precedence(), "100");
        assert_eq!(id.sequence(), 42);
        assert_eq!(id.to_string(), "100-0000000042");
        assert!(id.has_zuul_recognised_shape());

        let long = RequestId::parse("1000-0000000001").unwrap();
        assert_eq!(long.precedence(), "1000");
        assert!(!long.has_zuul_recognised_shape());

        let built = RequestId::new("900", 12).unwrap();
        assert_eq!(built.to_string(), "900-0000000012");
        assert_eq!(built, RequestId::parse("900-0000000012").unwrap());
    }

    #[test]
    fn request_id_requires_exactly_one_dash() {
        for bad in [
            "1000000000042",
            "100-0000000042-1",
            "0-1-0000000005",
            "-0000000001",
            "100-",
        ] {
            let error = RequestId::parse(bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    IdError::RequestIdShape { .. } | IdError::RequestPrecedence { .. }
                ),
                "{bad:?}: {error:?}"
            );
        }
        assert_eq!(
            RequestId::parse("100-42"),
            Err(IdError::RequestIdShape {
                value: "100-42".to_owned()
            })
        );
        assert_eq!(
            RequestId::parse("abc-0000000001"),
            Err(IdError::RequestPrecedence {
                value: "abc-0000000001".to_owned(),
                precedence: "abc".to_owned()
            })
        );
        assert!(RequestId::new("", 1).is_err());
        assert!(RequestId::new("1-2", 1).is_err());
    }

    #[test]
    fn request_ids_order_by_precedence_string_then_sequence() {
        let mut ids: Vec<RequestId> = [
            "900-0000000001",
            "300-0000000002",
            "100-0000000009",
            "099-0000000010",
            "200-0000000003",
            "100-0000000004",
        ]
        .iter()
        .map(|s| RequestId::parse(s).unwrap())
        .collect();
        ids.sort();
        let sorted: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            [
                "099-0000000010",
                "100-0000000004",
                "100-0000000009",
                "200-0000000003",
                "300-0000000002",
                "900-0000000001",
            ]
        );
        // String comparison, as in Python: an unpadded "99" sorts after "100".
        assert!(
            RequestId::parse("99-0000000001").unwrap()
                > RequestId::parse("100-0000000001").unwrap()
        );
    }

    #[test]
    fn build_id_accepts_uuid_hex_and_legacy_sequence() {
        let uuid = BuildId::parse("6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70").unwrap();
        assert!(!uuid.is_legacy_sequence());
        assert_eq!(uuid.as_str(), "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70");
        let legacy = BuildId::parse("0000000012").unwrap();
        assert!(legacy.is_legacy_sequence());
        assert_eq!(legacy.to_string(), "0000000012");
        for bad in [
            "lock",
            "",
            "6E1F0B1C7D7B4E9C8A1E2B3C4D5E6F70",
            "6e1f0b1c-7d7b-4e9c-8a1e-2b3c4d5e6f70",
            "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f7",
            "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f7g",
        ] {
            assert!(BuildId::parse(bad).is_err(), "{bad:?}");
        }
        let random = BuildId::new_random();
        assert_eq!(BuildId::parse(random.as_str()).unwrap(), random);
    }

    #[test]
    fn random_uuid_hex_has_python_shape() {
        let hex = random_uuid_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(hex, random_uuid_hex());
    }

    #[test]
    fn component_name_splits_off_the_last_ten_digits() {
        let name = ComponentName::parse("np1.example.com0000000003").unwrap();
        assert_eq!(name.hostname(), "np1.example.com");
        assert_eq!(name.sequence(), 3);
        assert_eq!(name.to_string(), "np1.example.com0000000003");

        let digits = ComponentName::parse("np10000000003").unwrap();
        assert_eq!(digits.hostname(), "np1");
        assert_eq!(digits.sequence(), 3);

        assert_eq!(ComponentName::new("host", 5).to_string(), "host0000000005");
        for bad in ["0000000003", "host", "host000000003x", "", "hé00000000"] {
            assert!(ComponentName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ComponentName::parse("hé0000000001").unwrap().hostname(),
            "hé"
        );
    }
}
