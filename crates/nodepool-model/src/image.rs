//! Image build and upload records written by the builder (spec 1.8).
//!
//! Image name, build id, provider and upload id come from the znode path and
//! are not part of these values.

use crate::states::{BuildState, UploadState};

/// `python_path` assumed when the key is absent on read. (An old Nodepool
/// default; the config default today is `auto`.)
pub const DEFAULT_IMAGE_PYTHON_PATH: &str = "/usr/bin/python2";

/// `username` assumed when the key is absent on read.
pub const DEFAULT_IMAGE_USERNAME: &str = "zuul";

/// `/nodepool/images/<image>/builds/<build_id>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBuild {
    pub state: BuildState,
    pub state_time: f64,
    /// The builder's FQDN; the key is left out when `None`.
    pub builder: Option<String>,
    /// Uuid from the builder's `builder_id.txt`; left out when `None`.
    pub builder_id: Option<String>,
    /// Image formats built (`qcow2`, `raw`, ...). Written sorted and
    /// comma-joined; the key is left out when empty (failed builds).
    pub formats: Vec<String>,
    pub username: Option<String>,
    pub python_path: Option<String>,
    pub shell_type: Option<String>,
}

impl ImageBuild {
    /// A build record as Nodepool's `ImageBuild()` constructor makes it.
    pub fn new(state: BuildState, now: f64) -> ImageBuild {
        ImageBuild {
            state,
            state_time: now,
            builder: None,
            builder_id: None,
            formats: Vec::new(),
            username: None,
            python_path: None,
            shell_type: None,
        }
    }

    /// Changes the state and stamps `state_time` ("most recent build" is
    /// decided by it).
    pub fn set_state(&mut self, state: BuildState, now: f64) {
        self.state = state;
        self.state_time = now;
    }

    /// The formats in the order they are written: sorted.
    pub fn sorted_formats(&self) -> Vec<&str> {
        let mut formats: Vec<&str> = self.formats.iter().map(String::as_str).collect();
        formats.sort_unstable();
        formats
    }
}

/// `.../builds/<build_id>/providers/<provider>/images/<upload_id>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUpload {
    pub state: UploadState,
    pub state_time: f64,
    /// The cloud's image id.
    pub external_id: Option<String>,
    /// The cloud's image name (`image-name-format` result).
    pub external_name: Option<String>,
    /// File extension of the uploaded file, e.g. `qcow2`.
    pub format: Option<String>,
    /// Copied from the build.
    pub username: Option<String>,
    pub python_path: Option<String>,
    pub shell_type: Option<String>,
}

impl ImageUpload {
    /// An upload record as Nodepool's `ImageUpload()` constructor makes it.
    pub fn new(state: UploadState, now: f64) -> ImageUpload {
        ImageUpload {
            state,
            state_time: now,
            external_id: None,
            external_name: None,
            format: None,
            username: None,
            python_path: None,
            shell_type: None,
        }
    }

    /// Changes the state and stamps `state_time`.
    pub fn set_state(&mut self, state: UploadState, now: f64) {
        self.state = state;
        self.state_time = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sorted_for_writing() {
        let mut build = ImageBuild::new(BuildState::Building, 1.0);
        build.formats = vec!["vhd".to_owned(), "qcow2".to_owned(), "raw".to_owned()];
        assert_eq!(build.sorted_formats(), ["qcow2", "raw", "vhd"]);
    }

    #[test]
    fn set_state_stamps_state_time() {
        let mut build = ImageBuild::new(BuildState::Building, 1.0);
        build.set_state(BuildState::Ready, 2.0);
        assert_eq!((build.state, build.state_time), (BuildState::Ready, 2.0));

        let mut upload = ImageUpload::new(UploadState::Uploading, 1.0);
        upload.set_state(UploadState::Failed, 3.0);
        assert_eq!(
            (upload.state, upload.state_time),
            (UploadState::Failed, 3.0)
        );
    }
}
