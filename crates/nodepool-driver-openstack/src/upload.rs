//! Glance image upload: create the image record with its properties, stream the file, wait
//! until it is active and check Glance's checksum against ours.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use md5::Digest as _;
use nodepool_driver::{DriverError, ImageUploadSpec};
use serde_json::Value;

use crate::client::Service;
use crate::cloud::{CloudApi, escape};

/// The MD5 and SHA-256 of a file, hex (what openstacksdk records when the caller gives
/// none).
pub fn file_checksums(path: &Path) -> std::io::Result<(String, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
    }
    Ok((hex(&md5.finalize()), hex(&sha.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `POST /images` body: name, formats, private, and every property as a string (the
/// `nodepool_*` tags, the diskimage's `meta`, and openstacksdk's checksum properties).
pub fn image_body(spec: &ImageUploadSpec, md5: &str, sha256: &str) -> Value {
    let mut body = serde_json::Map::new();
    for (k, v) in &spec.metadata {
        body.insert(k.clone(), Value::from(v.clone()));
    }
    body.insert("name".into(), Value::from(spec.external_name.clone()));
    body.insert("disk_format".into(), Value::from(spec.format.clone()));
    body.insert("container_format".into(), Value::from("bare"));
    body.insert("visibility".into(), Value::from("private"));
    body.insert("owner_specified.openstack.md5".into(), Value::from(md5));
    body.insert(
        "owner_specified.openstack.sha256".into(),
        Value::from(sha256),
    );
    body.insert(
        "owner_specified.openstack.object".into(),
        Value::from(format!("images/{}", spec.external_name)),
    );
    Value::Object(body)
}

/// Uploads `spec` and returns the image id; a failed upload leaves no image behind.
pub async fn upload_image(
    cloud: &CloudApi,
    spec: &ImageUploadSpec,
    timeout: Duration,
) -> Result<String, DriverError> {
    let (md5, sha256) = match (&spec.md5, &spec.sha256) {
        (Some(m), Some(s)) => (m.clone(), s.clone()),
        _ => {
            let path = spec.path.clone();
            let sums = tokio::task::spawn_blocking(move || file_checksums(&path))
                .await
                .map_err(|e| DriverError::Fatal(format!("checksum task: {e}")))?
                .map_err(|e| {
                    DriverError::Fatal(format!("cannot read {}: {e}", spec.path.display()))
                })?;
            (
                spec.md5.clone().unwrap_or(sums.0),
                spec.sha256.clone().unwrap_or(sums.1),
            )
        }
    };
    let created = cloud
        .client
        .post(Service::Image, "/images", &image_body(spec, &md5, &sha256))
        .await?;
    let Some(id) = created
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(DriverError::Fatal(format!(
            "cloud {}: POST image /images: no image id in the answer",
            cloud.cloud_name()
        )));
    };
    tracing::info!(image = %spec.external_name, image_id = %id, path = %spec.path.display(), "uploading image data");
    let result = async {
        cloud
            .client
            .put_file(
                Service::Image,
                &format!("/images/{}/file", escape(&id)),
                &spec.path,
                timeout,
            )
            .await?;
        wait_active(cloud, &id, &md5, timeout).await
    }
    .await;
    if let Err(e) = result {
        if let Err(cleanup) = cloud
            .client
            .delete(Service::Image, &format!("/images/{}", escape(&id)))
            .await
        {
            tracing::warn!(image_id = %id, error = %cleanup, "cannot delete the failed upload");
        }
        return Err(e);
    }
    Ok(id)
}

async fn wait_active(
    cloud: &CloudApi,
    id: &str,
    md5: &str,
    timeout: Duration,
) -> Result<(), DriverError> {
    let began = Instant::now();
    loop {
        let image = cloud.image(id).await?;
        match image.status.as_str() {
            "active" => {
                if let Some(sum) = image.checksum.as_deref()
                    && !sum.eq_ignore_ascii_case(md5)
                {
                    return Err(DriverError::Fatal(format!(
                        "image {id}: Glance's checksum {sum} is not the file's {md5}"
                    )));
                }
                return Ok(());
            }
            "killed" | "deleted" | "deactivated" => {
                return Err(DriverError::Fatal(format!(
                    "image {id} became {} during upload",
                    image.status
                )));
            }
            _ => {}
        }
        if began.elapsed() >= timeout {
            return Err(DriverError::Transient(format!(
                "image {id} not active after {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
