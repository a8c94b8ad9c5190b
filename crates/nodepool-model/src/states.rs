//! State enums of the ZooKeeper records (spec 1.6 - 1.9).
//!
//! Unknown state strings: every state enum that is read from a document has
//! an `Other(String)` variant. ZooKeeper is shared with Zuul, Python
//! Nodepool and whatever comes after them, so a reader must not fail (or
//! panic) on a state it does not know. `Other` keeps the exact string, so a
//! value we did not understand is written back unchanged, and decision code
//! can treat it as "not mine to touch" (no known state matches it). Python
//! Nodepool itself raises `TypeError` on an unknown state and drops the
//! update; keeping it is strictly more tolerant.
//!
//! `parse` never produces `Other` for a known string, so comparing against
//! the named variants is reliable. Constructing `Other("ready")` by hand is
//! a bug the types cannot prevent; don't.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Defines a state enum whose wire form is a fixed set of strings plus
/// `Other(String)` for anything else. One table per enum keeps the mapping
/// between variants and strings in a single place.
macro_rules! wire_state {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A state string this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known state, in the order Nodepool lists them.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// Reads a state string; never fails (see the module docs).
            pub fn parse(text: &str) -> $name {
                match text {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }

            /// The string written to ZooKeeper.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }

            /// False for `Other`.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_state! {
    /// State of a node (`Node.VALID_STATES`, spec 1.6).
    pub enum NodeState {
        /// Znode created by a launcher filling a request, not yet locked.
        Init => "init",
        Building => "building",
        /// Defined by Nodepool but never used.
        Testing => "testing",
        Ready => "ready",
        /// Set by Zuul when a job starts using the node.
        InUse => "in-use",
        /// Set by Zuul when the job is done.
        Used => "used",
        Hold => "hold",
        Deleting => "deleting",
        Failed => "failed",
        /// Launch aborted by a transient cloud error such as quota.
        Aborted => "aborted",
        /// Written just before the znode is deleted recursively.
        Deleted => "deleted",
    }
}

wire_state! {
    /// State of a node request (spec 1.7).
    pub enum RequestState {
        Requested => "requested",
        Pending => "pending",
        Fulfilled => "fulfilled",
        Failed => "failed",
    }
}

wire_state! {
    /// State of an image build record (spec 1.8).
    pub enum BuildState {
        Building => "building",
        Ready => "ready",
        Deleting => "deleting",
        Failed => "failed",
    }
}

wire_state! {
    /// State of an image upload record (spec 1.8).
    pub enum UploadState {
        Uploading => "uploading",
        Ready => "ready",
        Deleting => "deleting",
        Failed => "failed",
    }
}

wire_state! {
    /// State a component reports (spec 1.9).
    pub enum ComponentState {
        Initializing => "initializing",
        Running => "running",
        Paused => "paused",
        Stopped => "stopped",
    }
}

/// Kind of a registered component: the directory under `/nodepool/components`.
///
/// Unlike the states this is a closed set: Nodepool only watches these three
/// directories, so a kind comes from a path we chose to read, never from
/// foreign data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    Launcher,
    Builder,
    Pool,
}

/// A component directory name other than `launcher`, `builder` or `pool`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown component kind {0:?} (expected launcher, builder or pool)")]
pub struct UnknownComponentKind(pub String);

impl ComponentKind {
    pub const ALL: [ComponentKind; 3] = [
        ComponentKind::Launcher,
        ComponentKind::Builder,
        ComponentKind::Pool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Launcher => "launcher",
            ComponentKind::Builder => "builder",
            ComponentKind::Pool => "pool",
        }
    }

    pub fn parse(text: &str) -> Result<ComponentKind, UnknownComponentKind> {
        match text {
            "launcher" => Ok(ComponentKind::Launcher),
            "builder" => Ok(ComponentKind::Builder),
            "pool" => Ok(ComponentKind::Pool),
            other => Err(UnknownComponentKind(other.to_owned())),
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComponentKind {
    type Err = UnknownComponentKind;
    fn from_str(text: &str) -> Result<ComponentKind, UnknownComponentKind> {
        ComponentKind::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states_match_nodepool_strings() {
        let strings: Vec<&str> = NodeState::KNOWN.iter().map(NodeState::as_str).collect();
        assert_eq!(
            strings,
            [
                "init", "building", "testing", "ready", "in-use", "used", "hold", "deleting",
                "failed", "aborted", "deleted"
            ]
        );
        for state in NodeState::KNOWN {
            assert_eq!(&NodeState::parse(state.as_str()), state);
            assert!(state.is_known());
        }
    }

    #[test]
    fn other_states_keep_their_text() {
        let odd = NodeState::parse("frozen");
        assert_eq!(odd, NodeState::Other("frozen".to_owned()));
        assert_eq!(odd.as_str(), "frozen");
        assert_eq!(odd.to_string(), "frozen");
        assert!(!odd.is_known());
        // Case matters on the wire.
        assert!(!NodeState::parse("READY").is_known());
        assert_eq!(NodeState::parse(""), NodeState::Other(String::new()));
    }

    #[test]
    fn other_state_enums_round_trip() {
        for state in RequestState::KNOWN {
            assert_eq!(&RequestState::parse(state.as_str()), state);
        }
        for state in BuildState::KNOWN {
            assert_eq!(&BuildState::parse(state.as_str()), state);
        }
        for state in UploadState::KNOWN {
            assert_eq!(&UploadState::parse(state.as_str()), state);
        }
        for state in ComponentState::KNOWN {
            assert_eq!(&ComponentState::parse(state.as_str()), state);
        }
        assert_eq!(RequestState::Requested.as_str(), "requested");
        assert_eq!(BuildState::Building.as_str(), "building");
        assert_eq!(UploadState::Uploading.as_str(), "uploading");
        assert_eq!(ComponentState::Initializing.as_str(), "initializing");
        assert_eq!(
            RequestState::parse("accepted"),
            RequestState::Other("accepted".to_owned())
        );
        assert_eq!(
            UploadState::parse("building"),
            UploadState::Other("building".to_owned())
        );
    }

    #[test]
    fn component_kinds_are_a_closed_set() {
        for kind in ComponentKind::ALL {
            assert_eq!(ComponentKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.to_string().parse::<ComponentKind>(), Ok(kind));
        }
        assert_eq!(
            ComponentKind::parse("scheduler"),
            Err(UnknownComponentKind("scheduler".to_owned()))
        );
    }
}
