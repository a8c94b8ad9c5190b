//! `AwsDriver`: builds aws providers from their configuration.

use std::sync::Arc;

use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_driver::{Driver, DriverError, Provider};

use crate::cloud::AwsCloud;
use crate::provider::AwsProvider;

#[derive(Debug, Default)]
pub struct AwsDriver {
    /// Fixed credentials for every provider instead of the default chain (environment,
    /// profile, instance role): for tests and local emulators.
    static_credentials: Option<(String, String)>,
}

impl AwsDriver {
    pub fn new() -> AwsDriver {
        AwsDriver::default()
    }

    /// A driver whose providers sign with this access key instead of the default chain.
    pub fn with_static_credentials(access_key: &str, secret_key: &str) -> AwsDriver {
        AwsDriver {
            static_credentials: Some((access_key.to_string(), secret_key.to_string())),
        }
    }

    /// The concrete provider (tests reach its cloud).
    pub fn build_aws(&self, config: &ProviderConfig) -> Result<AwsProvider, DriverError> {
        let (mut connection, rate) = AwsProvider::connection(config)?;
        connection.static_credentials = self.static_credentials.clone();
        AwsProvider::new(config, Arc::new(AwsCloud::new(connection, rate)))
    }
}

impl Driver for AwsDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Aws
    }

    /// Builds the provider; no AWS call is made until it is used.
    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(self.build_aws(config)?))
    }
}
