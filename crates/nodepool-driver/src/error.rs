//! Errors a cloud returns, typed by what the launcher does about them.

/// The launcher branches on the kind: a quota error aborts the node (the request is retried,
/// the quota cache dropped), a transient one is retried with back-off, not-found makes a delete
/// succeed, anything else fails the attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The cloud refused for quota (instances, cores, RAM, ports, volumes...).
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The cloud has no room for this kind of instance right now (no hosts, no spot capacity).
    #[error("insufficient capacity: {0}")]
    Capacity(String),
    /// A failure worth retrying as is (timeouts, 5xx, rate limits).
    #[error("transient cloud error: {0}")]
    Transient(String),
    /// The resource does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// Anything else: bad request, bad configuration, a server in ERROR.
    #[error("{0}")]
    Fatal(String),
}

impl DriverError {
    /// The statsd result suffix Nodepool uses for a launch that failed with this error
    /// (`nodepool.launch.<result>`, spec 2.16).
    pub fn launch_result(&self) -> &'static str {
        match self {
            DriverError::Quota(_) => "error.quota",
            DriverError::Capacity(_) => "error.capacity",
            DriverError::Transient(_) | DriverError::NotFound(_) | DriverError::Fatal(_) => {
                "error.unknown"
            }
        }
    }
}
