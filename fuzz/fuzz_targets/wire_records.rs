//! Every znode document reader: any bytes a peer can write give a record or a `WireError`,
//! never a panic, and a record that reads back writes a document that reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodepool_model::ComponentKind;
use nodepool_model::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = wire::node::from_json(data) {
        let again = wire::node::to_json(&node);
        assert!(
            wire::node::from_json(&again).is_ok(),
            "a written node reads back"
        );
    }
    if let Ok(request) = wire::request::from_json(data) {
        let again = wire::request::to_json(&request);
        assert!(
            wire::request::from_json(&again).is_ok(),
            "a written request reads back"
        );
    }
    if let Ok(build) = wire::image::build_from_json(data) {
        let again = wire::image::build_to_json(&build);
        assert!(
            wire::image::build_from_json(&again).is_ok(),
            "a written build reads back"
        );
    }
    if let Ok(upload) = wire::image::upload_from_json(data) {
        let again = wire::image::upload_to_json(&upload);
        assert!(
            wire::image::upload_from_json(&again).is_ok(),
            "a written upload reads back"
        );
    }
    for kind in [
        ComponentKind::Launcher,
        ComponentKind::Builder,
        ComponentKind::Pool,
    ] {
        let _ = wire::component::from_json(kind, "host-0000000001", data);
    }
});
