//! What an OpenStack cloud (or anything posing as one) answers: the listing readers and the
//! clouds.yaml loader take any bytes without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodepool_driver_openstack::{clouds, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _: Vec<wire::Server> = wire::list(&body, "servers");
        let _: Vec<wire::Flavor> = wire::list(&body, "flavors");
        let _: Vec<wire::Image> = wire::list(&body, "images");
        let _: Vec<wire::Network> = wire::list(&body, "networks");
        let _: Vec<wire::Port> = wire::list(&body, "ports");
        let _: Vec<wire::FloatingIp> = wire::list(&body, "floatingips");
        let _ = clouds::cloud_from_documents("fuzz", None, &body, None);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(document) = clouds::yaml_to_json(&text) {
        let _ = clouds::cloud_from_documents("fuzz", Some("RegionOne"), &document, Some(&document));
    }
});
