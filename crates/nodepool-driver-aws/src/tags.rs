//! Tags: how nodepool finds its own things in an AWS account.

use std::collections::BTreeMap;

use nodepool_driver::Metadata;
use serde_json::{Map, Value};

/// The tags of an instance (and its volumes): the label's `tags`, then its filled
/// `dynamic-tags`, then the nodepool metadata (which wins over a label tag of the same key,
/// so leak detection cannot be defeated by configuration), then `Name=<hostname>` as the
/// console shows it.
pub fn instance_tags(
    label_tags: &Map<String, Value>,
    dynamic_tags: &BTreeMap<String, String>,
    metadata: &Metadata,
    hostname: &str,
) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = label_tags
        .iter()
        .map(|(k, v)| (k.clone(), tag_value(v)))
        .collect();
    tags.extend(dynamic_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags.insert("Name".into(), hostname.into());
    tags
}

/// A YAML tag value as AWS stores it: strings as they are, anything else as its JSON text
/// (as Python's `str()` would for numbers; booleans as `True`/`False` like Nodepool).
pub fn tag_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Image and snapshot tags: the upload's metadata with the diskimage's `tags` (`meta`).
pub fn image_tags(metadata: &Metadata) -> BTreeMap<String, String> {
    metadata.clone()
}

/// `[{Key, Value}]` as the EC2 SDK type.
pub fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// EC2 tags as a map; tags without a key are skipped.
pub fn ec2_tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> Metadata {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// The S3 `Tagging` header: URL-encoded `key=value&...`.
pub fn s3_tagging(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` escaping of one component.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instance_tags_put_dynamic_over_label_tags_metadata_over_both_and_name_last() {
        let label_tags =
            json!({"team": "ci", "nodepool_node_id": "evil", "count": 3, "on": true, "Name": "x"});
        let Value::Object(label_tags) = label_tags else {
            panic!("object")
        };
        let metadata: Metadata = [
            ("nodepool_node_id".to_string(), "0000000042".to_string()),
            ("nodepool_pool_name".to_string(), "main".to_string()),
            ("nodepool_provider_name".to_string(), "ec2".to_string()),
        ]
        .into();
        let dynamic: BTreeMap<String, String> = [
            ("team".to_string(), "tenant-a".to_string()),
            ("event".to_string(), "e1".to_string()),
            ("nodepool_pool_name".to_string(), "spoof".to_string()),
        ]
        .into();
        let tags = instance_tags(&label_tags, &dynamic, &metadata, "np0000000042");
        assert_eq!(tags["nodepool_node_id"], "0000000042");
        assert_eq!(tags["nodepool_pool_name"], "main");
        assert_eq!(tags["Name"], "np0000000042");
        assert_eq!(tags["team"], "tenant-a");
        assert_eq!(tags["event"], "e1");
        assert_eq!(tags["count"], "3");
        assert_eq!(tags["on"], "True");
        assert_eq!(tags.len(), 8);
    }

    #[test]
    fn tag_lists_round_trip_and_s3_tagging_is_url_encoded() {
        let tags: BTreeMap<String, String> = [
            ("a b".to_string(), "x&y=z".to_string()),
            ("nodepool_build_id".to_string(), "abc".to_string()),
        ]
        .into();
        assert_eq!(ec2_tag_map(&ec2_tags(&tags)), tags);
        assert_eq!(s3_tagging(&tags), "a+b=x%26y%3Dz&nodepool_build_id=abc");
    }
}
