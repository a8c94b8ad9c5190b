//! Image build and upload JSON (spec 1.8; np `ImageBuild` and `ImageUpload`
//! `toDict`/`updateFromDict`).
//!
//! Build: `builder` and `builder_id` are left out when null and `formats`
//! (sorted, comma-joined) when empty, as `ImageBuild.toDict` does. On read,
//! `formats` is split on commas (absent, null and `""` give no formats),
//! `username` defaults to `"zuul"` and `python_path` to `"/usr/bin/python2"`
//! when absent (null stays null), everything else to null.
//!
//! Upload: all eight keys always; same defaults.
//!
//! Unknown keys are dropped on rewrite, as Nodepool drops them.

use serde::Serialize;
use serde_json::Value;

use super::fields::Fields;
use super::{DocumentKind, WireError};
use crate::image::{DEFAULT_IMAGE_PYTHON_PATH, DEFAULT_IMAGE_USERNAME, ImageBuild, ImageUpload};
use crate::python_json::to_python_json;
use crate::states::{BuildState, UploadState};

/// The build document, keys in `ImageBuild.toDict` order.
#[derive(Serialize)]
struct BuildDocument<'a> {
    state: &'a str,
    state_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    builder: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    builder_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    formats: Option<String>,
    username: &'a Option<String>,
    python_path: &'a Option<String>,
    shell_type: &'a Option<String>,
}

/// The upload document, keys in `ImageUpload.toDict` order.
#[derive(Serialize)]
struct UploadDocument<'a> {
    state: &'a str,
    state_time: f64,
    external_id: &'a Option<String>,
    external_name: &'a Option<String>,
    format: &'a Option<String>,
    username: &'a Option<String>,
    python_path: &'a Option<String>,
    shell_type: &'a Option<String>,
}

/// The bytes Nodepool would store for `build`.
pub fn build_to_json(build: &ImageBuild) -> Vec<u8> {
    let formats = build.sorted_formats();
    let document = BuildDocument {
        state: build.state.as_str(),
        state_time: build.state_time,
        builder: build.builder.as_deref(),
        builder_id: build.builder_id.as_deref(),
        formats: (!formats.is_empty()).then(|| formats.join(",")),
        username: &build.username,
        python_path: &build.python_path,
        shell_type: &build.shell_type,
    };
    to_python_json(&document)
}

/// Reads build znode data. `b""` is [`WireError::Empty`].
pub fn build_from_json(data: &[u8]) -> Result<ImageBuild, WireError> {
    let mut fields = Fields::parse(DocumentKind::ImageBuild, data)?;
    let state = BuildState::parse(&fields.required_string("state")?);
    let state_time = fields.required_time("state_time")?;
    let formats = match fields.take("formats") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(joined)) if joined.is_empty() => Vec::new(),
        Some(Value::String(joined)) => joined.split(',').map(str::to_owned).collect(),
        Some(other) => {
            return Err(fields.wrong_type("formats", "a comma-separated string", &other));
        }
    };
    Ok(ImageBuild {
        state,
        state_time,
        builder: fields.optional_string("builder")?,
        builder_id: fields.optional_string("builder_id")?,
        formats,
        username: fields.string_or("username", DEFAULT_IMAGE_USERNAME)?,
        python_path: fields.string_or("python_path", DEFAULT_IMAGE_PYTHON_PATH)?,
        shell_type: fields.optional_string("shell_type")?,
    })
}

/// The bytes Nodepool would store for `upload`.
pub fn upload_to_json(upload: &ImageUpload) -> Vec<u8> {
    let document = UploadDocument {
        state: upload.state.as_str(),
        state_time: upload.state_time,
        external_id: &upload.external_id,
        external_name: &upload.external_name,
        format: &upload.format,
        username: &upload.username,
        python_path: &upload.python_path,
        shell_type: &upload.shell_type,
    };
    to_python_json(&document)
}

/// Reads upload znode data. `b""` is [`WireError::Empty`].
pub fn upload_from_json(data: &[u8]) -> Result<ImageUpload, WireError> {
    let mut fields = Fields::parse(DocumentKind::ImageUpload, data)?;
    let state = UploadState::parse(&fields.required_string("state")?);
    let state_time = fields.required_time("state_time")?;
    Ok(ImageUpload {
        state,
        state_time,
        external_id: fields.optional_string("external_id")?,
        external_name: fields.optional_string("external_name")?,
        format: fields.optional_string("format")?,
        username: fields.string_or("username", DEFAULT_IMAGE_USERNAME)?,
        python_path: fields.string_or("python_path", DEFAULT_IMAGE_PYTHON_PATH)?,
        shell_type: fields.optional_string("shell_type")?,
    })
}
