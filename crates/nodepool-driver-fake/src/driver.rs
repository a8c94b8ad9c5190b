//! `FakeDriver`: builds fake providers and keeps their clouds across reloads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nodepool_config::{DriverKind, Provider as ProviderConfig, ProviderSettings};
use nodepool_driver::{Driver, DriverError, Provider};

use crate::cloud::FakeCloud;
use crate::provider::FakeProvider;

/// The fake driver. One per launcher or test; its clouds live as long as it does.
#[derive(Debug, Default)]
pub struct FakeDriver {
    /// Provider name -> its cloud. A cloud outlives the provider objects built for it, so a
    /// reloaded provider finds the servers it made, and tests reach the cloud by name. A std
    /// mutex: held only to look up or insert.
    clouds: Mutex<BTreeMap<String, Arc<FakeCloud>>>,
}

impl FakeDriver {
    pub fn new() -> FakeDriver {
        FakeDriver::default()
    }

    /// The cloud of the provider called `provider_name`, once a provider of that name was
    /// built.
    pub fn cloud(&self, provider_name: &str) -> Option<Arc<FakeCloud>> {
        self.clouds().get(provider_name).cloned()
    }

    fn clouds(&self) -> MutexGuard<'_, BTreeMap<String, Arc<FakeCloud>>> {
        self.clouds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Driver for FakeDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Fake
    }

    /// Builds the provider; the first build of a name makes its cloud (reading the state
    /// file, if any), later ones reuse it with the new quota and faults.
    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        let ProviderSettings::OpenStack(settings) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the fake driver needs OpenStack provider settings",
                config.name
            )));
        };
        let cloud_settings = settings
            .fake
            .clone()
            .unwrap_or_else(FakeCloud::default_settings);
        let cloud = {
            let mut clouds = self.clouds();
            match clouds.get(&config.name) {
                Some(cloud) => {
                    cloud.configure(&cloud_settings);
                    cloud.clone()
                }
                None => {
                    let cloud = Arc::new(FakeCloud::new(&cloud_settings)?);
                    clouds.insert(config.name.clone(), cloud.clone());
                    cloud
                }
            }
        };
        Ok(Arc::new(FakeProvider::new(config, cloud)?))
    }
}
