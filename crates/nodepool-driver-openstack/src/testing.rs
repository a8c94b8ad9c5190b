//! Test support against the local OpenStack of `scripts/openstack/` (Keystone, Glance,
//! Placement, Nova with the fake virt driver, Neutron; loopback only): start it when it is
//! not running, and give each test its own project and user so listings, leaks and quotas of
//! parallel tests never meet.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::client::{OpenStackClient, Service};
use crate::clouds::{CloudConfig, Credentials, TlsVerify};

/// The admin password and Keystone of the local cloud (`scripts/openstack/common.sh`).
pub const PASSWORD: &str = "secret";
pub const AUTH_URL: &str = "http://127.0.0.1:5000/v3";
pub const REGION: &str = "RegionOne";
/// A public qcow2 image every test project can boot.
pub const TEST_IMAGE: &str = "np-test-image";
/// Flavors `start.sh` creates: 512 MB / 1 vCPU and 2048 MB / 1 vCPU.
pub const TINY: &str = "m1.tiny";
pub const SMALL: &str = "m1.small";

/// The `scripts/openstack` folder of this repository.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openstack")
}

/// Runs `scripts/openstack/ensure.sh` once per process: installs (first time only) and
/// starts the cloud unless it answers already. Blocking; minutes on a fresh machine.
pub fn ensure_cloud() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let began = std::time::Instant::now();
        let output = std::process::Command::new("bash")
            .arg(scripts_dir().join("ensure.sh"))
            .output()
            .map_err(|e| format!("cannot run ensure.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "ensure.sh failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        eprintln!(
            "local OpenStack ready after {:.1} s",
            began.elapsed().as_secs_f64()
        );
        Ok(())
    })
    .clone()
}

fn password_cloud(name: &str, user: &str, password: &str, project: &str) -> CloudConfig {
    CloudConfig {
        name: name.to_string(),
        auth_url: AUTH_URL.to_string(),
        credentials: Credentials::Password {
            user: json!({"name": user, "domain": {"id": "default"}}),
            password: password.to_string(),
            project: Some(json!({"name": project, "domain": {"id": "default"}})),
        },
        region: Some(REGION.to_string()),
        interface: "public".to_string(),
        image_format: "qcow2".to_string(),
        private: false,
        force_ipv4: false,
        tls: TlsVerify::System,
    }
}

/// The admin of the local cloud.
pub fn admin_client() -> Result<OpenStackClient, String> {
    OpenStackClient::new(password_cloud("np-admin", "admin", PASSWORD, "admin"), 0.0)
        .map_err(|e| e.to_string())
}

/// A project of its own for one test, with a user that has the admin role in it (so it may
/// boot on the external `public` network).
#[derive(Clone)]
pub struct TestProject {
    pub project_name: String,
    pub project_id: String,
    pub user_name: String,
    pub user_id: String,
    pub password: String,
}

/// The password stays out of test output like any other (a habit, not a secret here).
impl std::fmt::Debug for TestProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProject")
            .field("project_name", &self.project_name)
            .field("project_id", &self.project_id)
            .field("user_name", &self.user_name)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

fn text(value: &Value, pointer: &str) -> Result<String, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no {pointer} in {value}"))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos % 0xffff_ffff)
}

impl TestProject {
    /// Creates the project and its user.
    pub async fn create(prefix: &str) -> Result<TestProject, String> {
        let admin = admin_client()?;
        let project_name = unique(prefix);
        let e = |e: nodepool_driver::DriverError| e.to_string();
        let project = admin
            .post(
                Service::Identity,
                "/projects",
                &json!({"project": {"name": project_name, "domain_id": "default"}}),
            )
            .await
            .map_err(e)?;
        let project_id = text(&project, "/project/id")?;
        let user_name = format!("{project_name}-user");
        let user = admin
            .post(
                Service::Identity,
                "/users",
                &json!({"user": {"name": user_name, "domain_id": "default",
                    "password": PASSWORD, "default_project_id": project_id}}),
            )
            .await
            .map_err(e)?;
        let user_id = text(&user, "/user/id")?;
        let roles = admin
            .get(Service::Identity, "/roles?name=admin")
            .await
            .map_err(e)?;
        let role_id = text(&roles, "/roles/0/id")?;
        admin
            .request(
                Service::Identity,
                reqwest::Method::PUT,
                &format!("/projects/{project_id}/users/{user_id}/roles/{role_id}"),
                None,
            )
            .await
            .map_err(e)?;
        Ok(TestProject {
            project_name,
            project_id,
            user_name,
            user_id,
            password: PASSWORD.to_string(),
        })
    }

    pub fn cloud(&self, name: &str) -> CloudConfig {
        password_cloud(name, &self.user_name, &self.password, &self.project_name)
    }

    pub fn client(&self) -> Result<OpenStackClient, String> {
        OpenStackClient::new(self.cloud("np-test"), 0.0).map_err(|e| e.to_string())
    }

    /// A clouds.yaml entry named `cloud` for this project's user.
    pub fn clouds_yaml_entry(&self, cloud: &str) -> String {
        format!(
            "  {cloud}:\n    region_name: {REGION}\n    auth:\n      auth_url: {AUTH_URL}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: Default\n      project_domain_name: Default\n",
            self.user_name, self.password, self.project_name
        )
    }

    /// Writes `dir/clouds.yaml` with this project as `cloud`.
    pub fn write_clouds_yaml(&self, dir: &Path, cloud: &str) -> Result<PathBuf, String> {
        let path = dir.join("clouds.yaml");
        std::fs::write(&path, format!("clouds:\n{}", self.clouds_yaml_entry(cloud)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Sets the project's compute quota (e.g. `{"instances": 2}`) as the admin.
    pub async fn set_compute_quota(&self, quota: &Value) -> Result<(), String> {
        admin_client()?
            .put(
                Service::Compute,
                &format!("/os-quota-sets/{}", self.project_id),
                &json!({ "quota_set": quota }),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Deletes every server of the project (best effort), for the end of a test.
    pub async fn delete_servers(&self) -> Result<(), String> {
        let client = self.client()?;
        let body = client
            .get(Service::Compute, "/servers")
            .await
            .map_err(|e| e.to_string())?;
        for server in body
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(id) = server.get("id").and_then(Value::as_str) {
                let _ = client
                    .delete(Service::Compute, &format!("/servers/{id}"))
                    .await;
            }
        }
        Ok(())
    }
}

/// Makes a small qcow2 file (`qemu-img create -f qcow2`).
pub fn make_qcow2(path: &Path, size: &str) -> Result<(), String> {
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .status()
        .map_err(|e| format!("cannot run qemu-img: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("qemu-img failed: {status}"))
    }
}

/// The id of the public test image, uploading it the first time.
pub async fn ensure_test_image() -> Result<String, String> {
    static LOCK: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);
    let mut slot = LOCK.lock().await;
    if let Some(id) = slot.as_ref() {
        return Ok(id.clone());
    }
    let admin = admin_client()?;
    let e = |e: nodepool_driver::DriverError| e.to_string();
    let found = admin
        .get(
            Service::Image,
            &format!("/images?name={TEST_IMAGE}&status=active"),
        )
        .await
        .map_err(e)?;
    let id = match found.pointer("/images/0/id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let dir = std::env::temp_dir().join(unique("np-test-image"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let file = dir.join("image.qcow2");
            make_qcow2(&file, "64M")?;
            let created = admin
                .post(
                    Service::Image,
                    "/images",
                    &json!({"name": TEST_IMAGE, "disk_format": "qcow2",
                        "container_format": "bare", "visibility": "public"}),
                )
                .await
                .map_err(e)?;
            let id = text(&created, "/id")?;
            admin
                .put_file(
                    Service::Image,
                    &format!("/images/{id}/file"),
                    &file,
                    std::time::Duration::from_secs(120),
                )
                .await
                .map_err(e)?;
            let _ = std::fs::remove_dir_all(&dir);
            id
        }
    };
    *slot = Some(id.clone());
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_project_never_shows_its_password_in_debug_output() {
        let project = TestProject {
            project_name: "p".into(),
            project_id: "pid".into(),
            user_name: "u".into(),
            user_id: "uid".into(),
            password: "pw-s3cret".into(),
        };
        let shown = format!("{project:?} {project:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("uid"), "{shown}");
    }
}
