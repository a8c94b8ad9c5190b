//! Every znode path Nodepool uses (spec 1.2). Nothing outside this crate builds paths.

use nodepool_model::{BuildId, NodeId, RequestId, UploadId};

pub const ROOT: &str = "/nodepool";
pub const NODES: &str = "/nodepool/nodes";
pub const REQUESTS: &str = "/nodepool/requests";
pub const REQUEST_LOCKS: &str = "/nodepool/requests-lock";
pub const IMAGES: &str = "/nodepool/images";
pub const COMPONENTS: &str = "/nodepool/components";
pub const STATS_ELECTION: &str = "/nodepool/elections/stats";

pub fn node(id: NodeId) -> String {
    format!("{NODES}/{id}")
}

/// Whether `path` is a node's lock directory or one of its contenders (`.../lock` or
/// `.../lock/<contender>`), whose data no reader of the node cache needs.
pub fn is_node_lock(path: &str) -> bool {
    let mut segments = path.rsplit('/');
    let last = segments.next();
    let parent = segments.next();
    path.starts_with(NODES) && (last == Some("lock") || parent == Some("lock"))
}

pub fn node_lock(id: NodeId) -> String {
    format!("{NODES}/{id}/lock")
}

pub fn request(id: &RequestId) -> String {
    format!("{REQUESTS}/{id}")
}

/// Not under the request, so deleting a request does not break its lock holder.
pub fn request_lock(id: &RequestId) -> String {
    format!("{REQUEST_LOCKS}/{id}")
}

pub fn image(image: &str) -> String {
    format!("{IMAGES}/{image}")
}

pub fn image_pause(image: &str) -> String {
    format!("{IMAGES}/{image}/pause")
}

pub fn image_build_request(image: &str) -> String {
    format!("{IMAGES}/{image}/request-build")
}

pub fn builds(image: &str) -> String {
    format!("{IMAGES}/{image}/builds")
}

/// Held by a builder for the whole build of an image.
pub fn image_build_lock(image: &str) -> String {
    format!("{IMAGES}/{image}/builds/lock")
}

pub fn build(image: &str, build: &BuildId) -> String {
    format!("{IMAGES}/{image}/builds/{build}")
}

pub fn build_lock(image: &str, build: &BuildId) -> String {
    format!("{IMAGES}/{image}/builds/{build}/lock")
}

pub fn build_providers(image: &str, build: &BuildId) -> String {
    format!("{IMAGES}/{image}/builds/{build}/providers")
}

pub fn uploads(image: &str, build: &BuildId, provider: &str) -> String {
    format!("{IMAGES}/{image}/builds/{build}/providers/{provider}/images")
}

/// Held during an upload of a build to a provider.
pub fn upload_lock(image: &str, build: &BuildId, provider: &str) -> String {
    format!("{}/lock", uploads(image, build, provider))
}

pub fn upload(image: &str, build: &BuildId, provider: &str, upload: UploadId) -> String {
    format!("{}/{upload}", uploads(image, build, provider))
}

pub fn upload_number_lock(
    image: &str,
    build: &BuildId,
    provider: &str,
    upload_id: UploadId,
) -> String {
    format!("{}/lock", upload(image, build, provider, upload_id))
}

pub fn component_dir(kind: &str) -> String {
    format!("{COMPONENTS}/{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_locks_are_told_from_nodes() {
        let id = NodeId::new(7);
        assert!(is_node_lock(&node_lock(id)));
        assert!(is_node_lock(&format!(
            "{}/abc__lock__0000000001",
            node_lock(id)
        )));
        assert!(!is_node_lock(&node(id)));
        assert!(!is_node_lock(&format!("{REQUESTS}/lock/x")));
    }
}
