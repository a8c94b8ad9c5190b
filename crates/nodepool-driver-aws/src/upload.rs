//! Image upload (spec 4.5 `import-method`): EBS direct (`StartSnapshot`, `PutSnapshotBlock`,
//! `CompleteSnapshot`, then `RegisterImage`), or through S3 with `ImportSnapshot` (then
//! `RegisterImage`) or `ImportImage`. Every snapshot and AMI made carries the upload's
//! metadata as tags, so leak cleanup finds an interrupted upload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, EbsBlockDevice, ImageDiskContainer, ImdsSupportValues,
    ResourceType, SnapshotDiskContainer, TagSpecification, UserBucket, VolumeType,
};
use base64::Engine;
use nodepool_config::AwsDiskImage;
use nodepool_driver::{DriverError, ImageUploadSpec};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::cloud::AwsCloud;
use crate::errors::sdk_error;
use crate::tags::{ec2_tags, image_tags, s3_tagging};

/// EBS direct blocks are 512 KiB.
pub const EBS_BLOCK_SIZE: usize = 512 * 1024;
/// `PutSnapshotBlock` calls in flight (Nodepool uses ten threads).
const EBS_CONCURRENCY: usize = 8;
/// Files larger than this go to S3 in parts (one `PutObject` takes at most 5 GiB).
const MULTIPART_THRESHOLD: u64 = 1024 * 1024 * 1024;
const MULTIPART_PART_SIZE: u64 = 64 * 1024 * 1024;
/// Between looks at an import task (Nodepool: 30 s).
const IMPORT_POLL: Duration = Duration::from_secs(15);
const GIB: u64 = 1024 * 1024 * 1024;

/// GiB needed to hold `bytes` (at least one).
pub fn size_in_gib(bytes: u64) -> i64 {
    bytes.div_ceil(GIB).max(1) as i64
}

/// A block as EBS direct wants it: padded with zeros to the block size, with the base64
/// SHA-256 of the padded data. `None` for an all-zero block: EBS reads unwritten blocks of
/// a new snapshot as zeros, so sparse images upload only their data.
pub fn ebs_block(mut data: Vec<u8>) -> Option<(Vec<u8>, String)> {
    if data.iter().all(|b| *b == 0) {
        return None;
    }
    data.resize(EBS_BLOCK_SIZE, 0);
    let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
    Some((data, checksum))
}

/// When an upload must be done by, from `image-import-timeout`.
fn deadline(timeout: Option<u64>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + Duration::from_secs(t))
}

fn check_deadline(deadline: Option<Instant>, what: &str) -> Result<(), DriverError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(DriverError::Transient(format!(
            "{what}: image-import-timeout passed"
        ))),
        _ => Ok(()),
    }
}

/// Uploads `spec` by the diskimage's import method and returns the AMI id.
pub async fn upload_image(
    cloud: &AwsCloud,
    image: &AwsDiskImage,
    bucket: Option<&str>,
    timeout: Option<u64>,
    spec: &ImageUploadSpec,
) -> Result<String, DriverError> {
    let tags = image_tags(&spec.metadata);
    let deadline = deadline(timeout);
    match image.import_method.as_str() {
        "ebs-direct" => {
            let (snapshot_id, size) = ebs_direct_snapshot(cloud, spec, &tags, deadline).await?;
            let volume_size = image.volume_size.unwrap_or(size).max(size);
            match register_image(
                cloud,
                image,
                &spec.external_name,
                &tags,
                volume_size,
                &snapshot_id,
            )
            .await
            {
                Ok(id) => Ok(id),
                Err(e) => {
                    discard_snapshot(cloud, &snapshot_id).await;
                    Err(e)
                }
            }
        }
        "snapshot" | "image" => {
            if image.import_method == "image" && image.imds_support.as_deref() == Some("v2.0") {
                return Err(DriverError::Fatal(
                    "IMDSv2 requires 'snapshot' import method".into(),
                ));
            }
            let bucket = bucket.ok_or_else(|| {
                DriverError::Fatal(format!(
                    "import-method {} needs the provider's object-storage bucket-name",
                    image.import_method
                ))
            })?;
            let key = format!("{}.{}", spec.external_name, spec.format);
            put_file(cloud, bucket, &key, spec, &tags).await?;
            let result = if image.import_method == "snapshot" {
                import_snapshot(cloud, image, bucket, &key, spec, &tags, deadline).await
            } else {
                import_image(cloud, image, bucket, &key, spec, &tags, deadline).await
            };
            // The object is only the vehicle of the import; it goes whatever happened.
            let s3 = &cloud.clients().await.s3;
            cloud.mutating().await;
            if let Err(e) = s3.delete_object().bucket(bucket).key(&key).send().await {
                tracing::warn!(bucket, key, error = %sdk_error("DeleteObject", e), "cannot delete the uploaded image object; leak cleanup will");
            }
            result
        }
        other => Err(DriverError::Fatal(format!(
            "Unknown image import method {other}"
        ))),
    }
}

/// Writes the image file into a new snapshot block by block; returns the snapshot id and
/// its size in GiB.
async fn ebs_direct_snapshot(
    cloud: &AwsCloud,
    spec: &ImageUploadSpec,
    tags: &BTreeMap<String, String>,
    deadline: Option<Instant>,
) -> Result<(String, i64), DriverError> {
    let ebs = cloud.clients().await.ebs.clone();
    let file_size = tokio::fs::metadata(&spec.path)
        .await
        .map_err(|e| DriverError::Fatal(format!("cannot read {}: {e}", spec.path.display())))?
        .len();
    let size = size_in_gib(file_size);
    let ebs_tags = tags
        .iter()
        .map(|(k, v)| aws_sdk_ebs::types::Tag::builder().key(k).value(v).build())
        .collect::<Vec<_>>();
    cloud.mutating().await;
    let started = ebs
        .start_snapshot()
        .volume_size(size)
        .set_tags(Some(ebs_tags))
        .description(&spec.external_name)
        // Makes a retried StartSnapshot return the same snapshot.
        .client_token(format!("{}-{}", spec.external_name, file_size))
        .send()
        .await
        .map_err(|e| sdk_error("StartSnapshot", e))?;
    let snapshot_id = started
        .snapshot_id()
        .ok_or_else(|| DriverError::Fatal("StartSnapshot: no snapshot id in the reply".into()))?
        .to_string();
    tracing::debug!(image = %spec.image_name, snapshot_id, size_gib = size, "started EBS snapshot");
    match write_blocks(cloud, &ebs, &snapshot_id, spec, deadline).await {
        Ok(count) => match complete_snapshot(cloud, &ebs, &snapshot_id, count, deadline).await {
            Ok(()) => Ok((snapshot_id, size)),
            Err(e) => {
                discard_snapshot(cloud, &snapshot_id).await;
                Err(e)
            }
        },
        Err(e) => {
            discard_snapshot(cloud, &snapshot_id).await;
            Err(e)
        }
    }
}

/// Puts every non-zero block, a few at a time; returns how many were written.
async fn write_blocks(
    cloud: &AwsCloud,
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    spec: &ImageUploadSpec,
    deadline: Option<Instant>,
) -> Result<i32, DriverError> {
    let mut file = tokio::fs::File::open(&spec.path)
        .await
        .map_err(|e| DriverError::Fatal(format!("cannot open {}: {e}", spec.path.display())))?;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut written = 0i32;
    let mut index = 0i32;
    loop {
        let mut data = Vec::with_capacity(EBS_BLOCK_SIZE);
        let read = (&mut file)
            .take(EBS_BLOCK_SIZE as u64)
            .read_to_end(&mut data)
            .await
            .map_err(|e| DriverError::Fatal(format!("cannot read {}: {e}", spec.path.display())))?;
        if read == 0 {
            break;
        }
        if let Some((block, checksum)) = ebs_block(data) {
            check_deadline(deadline, "PutSnapshotBlock")?;
            while in_flight.len() >= EBS_CONCURRENCY {
                join_one(&mut in_flight).await?;
            }
            let request = ebs
                .put_snapshot_block()
                .snapshot_id(snapshot_id)
                .block_index(index)
                .data_length(EBS_BLOCK_SIZE as i32)
                .checksum(checksum.clone())
                .checksum_algorithm(aws_sdk_ebs::types::ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .block_data(aws_sdk_ebs::primitives::ByteStream::from(block));
            in_flight.spawn(async move {
                let reply = request
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutSnapshotBlock", e))?;
                if reply.checksum() != Some(checksum.as_str()) {
                    return Err(DriverError::Fatal(format!(
                        "PutSnapshotBlock: checksums do not match for block {index}: sent {checksum}, got {:?}",
                        reply.checksum()
                    )));
                }
                Ok(())
            });
            written += 1;
        }
        index += 1;
        if read < EBS_BLOCK_SIZE {
            break;
        }
    }
    while !in_flight.is_empty() {
        join_one(&mut in_flight).await?;
    }
    // Reads are not rate limited per block (AWS allows 1000 puts a second); one token for
    // the batch keeps the provider's pace for whoever calls next.
    cloud.mutating().await;
    Ok(written)
}

async fn join_one(
    set: &mut tokio::task::JoinSet<Result<(), DriverError>>,
) -> Result<(), DriverError> {
    match set.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(DriverError::Fatal(format!("block upload task failed: {e}"))),
        None => Ok(()),
    }
}

async fn complete_snapshot(
    cloud: &AwsCloud,
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    count: i32,
    deadline: Option<Instant>,
) -> Result<(), DriverError> {
    loop {
        cloud.mutating().await;
        let reply = ebs
            .complete_snapshot()
            .snapshot_id(snapshot_id)
            .changed_blocks_count(count)
            .send()
            .await
            .map_err(|e| sdk_error("CompleteSnapshot", e))?;
        match reply.status().map(|s| s.as_str()) {
            Some("completed") => return Ok(()),
            Some("error") => {
                return Err(DriverError::Fatal(format!(
                    "CompleteSnapshot: snapshot {snapshot_id} in error state"
                )));
            }
            _ => {
                check_deadline(deadline, "CompleteSnapshot")?;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Deletes a snapshot of a failed upload; a failure is logged (leak cleanup finds it by
/// its tags).
async fn discard_snapshot(cloud: &AwsCloud, snapshot_id: &str) {
    if let Err(e) = cloud.delete_snapshot(snapshot_id).await {
        tracing::warn!(snapshot_id, error = %e, "cannot delete the snapshot of a failed upload");
    }
}

/// `RegisterImage` of a snapshot as an HVM AMI booting from `/dev/sda1`.
async fn register_image(
    cloud: &AwsCloud,
    image: &AwsDiskImage,
    name: &str,
    tags: &BTreeMap<String, String>,
    volume_size: i64,
    snapshot_id: &str,
) -> Result<String, DriverError> {
    let mut ebs = EbsBlockDevice::builder()
        .delete_on_termination(true)
        .snapshot_id(snapshot_id)
        .volume_size(volume_size as i32)
        .volume_type(VolumeType::from(image.volume_type.as_str()));
    if let Some(iops) = image.iops {
        ebs = ebs.iops(iops as i32);
    }
    if let Some(throughput) = image.throughput {
        ebs = ebs.throughput(throughput as i32);
    }
    let ec2 = cloud.ec2().await;
    let mut request = ec2
        .register_image()
        .architecture(ArchitectureValues::from(image.architecture.as_str()))
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sda1")
                .ebs(ebs.build())
                .build(),
        )
        .root_device_name("/dev/sda1")
        .virtualization_type("hvm")
        .ena_support(image.ena_support)
        .name(name)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .set_tags(Some(ec2_tags(tags)))
                .build(),
        );
    if image.imds_support.as_deref() == Some("v2.0") {
        request = request.imds_support(ImdsSupportValues::V20);
    }
    cloud.mutating().await;
    let reply = request
        .send()
        .await
        .map_err(|e| sdk_error("RegisterImage", e))?;
    let id = reply
        .image_id()
        .ok_or_else(|| DriverError::Fatal("RegisterImage: no image id in the reply".into()))?;
    // Tag again: some AWS-compatible endpoints (moto among them) ignore RegisterImage's
    // tag specifications, and an untagged AMI would escape leak cleanup.
    tag(cloud, id, tags).await;
    tracing::info!(image = name, image_id = id, snapshot_id, "registered AMI");
    Ok(id.to_string())
}

/// Puts the image file into the bucket with the upload's tags.
async fn put_file(
    cloud: &AwsCloud,
    bucket: &str,
    key: &str,
    spec: &ImageUploadSpec,
    tags: &BTreeMap<String, String>,
) -> Result<(), DriverError> {
    use aws_sdk_s3::primitives::ByteStream;
    let s3 = cloud.clients().await.s3.clone();
    let size = tokio::fs::metadata(&spec.path)
        .await
        .map_err(|e| DriverError::Fatal(format!("cannot read {}: {e}", spec.path.display())))?
        .len();
    let tagging = s3_tagging(tags);
    let stream_error = |e: aws_sdk_s3::primitives::ByteStreamError| {
        DriverError::Fatal(format!("cannot read {}: {e}", spec.path.display()))
    };
    cloud.mutating().await;
    if size <= MULTIPART_THRESHOLD {
        let body = ByteStream::from_path(&spec.path)
            .await
            .map_err(stream_error)?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .tagging(tagging)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", e))?;
        return Ok(());
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| sdk_error("CreateMultipartUpload", e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| DriverError::Fatal("CreateMultipartUpload: no upload id".into()))?
        .to_string();
    let mut parts = Vec::new();
    let mut offset = 0u64;
    let mut number = 1i32;
    let result: Result<(), DriverError> = async {
        while offset < size {
            let length = MULTIPART_PART_SIZE.min(size - offset);
            let body = ByteStream::read_from()
                .path(&spec.path)
                .offset(offset)
                .length(aws_sdk_s3::primitives::Length::Exact(length))
                .build()
                .await
                .map_err(stream_error)?;
            let part = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| sdk_error("UploadPart", e))?;
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            offset += length;
            number += 1;
        }
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", e))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

/// Retries a start-import call while AWS says too many imports run
/// (`ResourceCountLimitExceeded`), until the deadline.
fn import_busy(error: &DriverError) -> bool {
    matches!(error, DriverError::Quota(text) if text.contains("ResourceCountLimitExceeded"))
}

/// `ImportSnapshot` from the bucket, then `RegisterImage`.
async fn import_snapshot(
    cloud: &AwsCloud,
    image: &AwsDiskImage,
    bucket: &str,
    key: &str,
    spec: &ImageUploadSpec,
    tags: &BTreeMap<String, String>,
    deadline: Option<Instant>,
) -> Result<String, DriverError> {
    let ec2 = cloud.ec2().await;
    let task_id = loop {
        cloud.mutating().await;
        let reply = ec2
            .import_snapshot()
            .disk_container(
                SnapshotDiskContainer::builder()
                    .format(&spec.format)
                    .user_bucket(UserBucket::builder().s3_bucket(bucket).s3_key(key).build())
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::ImportSnapshotTask)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("ImportSnapshot", e));
        match reply {
            Ok(reply) => {
                break reply
                    .import_task_id()
                    .ok_or_else(|| DriverError::Fatal("ImportSnapshot: no task id".into()))?
                    .to_string();
            }
            Err(e) if import_busy(&e) && deadline.is_none_or(|d| Instant::now() < d) => {
                tracing::warn!(error = %e, "AWS is busy importing; will retry");
                tokio::time::sleep(IMPORT_POLL).await;
            }
            Err(e) => return Err(e),
        }
    };
    let snapshot_id = loop {
        tokio::time::sleep(IMPORT_POLL).await;
        cloud.reading().await;
        let reply = ec2
            .describe_import_snapshot_tasks()
            .import_task_ids(&task_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImportSnapshotTasks", e))?;
        let Some(detail) = reply
            .import_snapshot_tasks()
            .first()
            .and_then(|t| t.snapshot_task_detail())
        else {
            continue;
        };
        match detail.status().map(str::to_ascii_lowercase).as_deref() {
            Some("completed") => {
                break detail.snapshot_id().map(str::to_string).ok_or_else(|| {
                    DriverError::Fatal(format!(
                        "import task {task_id} completed without a snapshot"
                    ))
                })?;
            }
            Some("deleted") | Some("deleting") => {
                return Err(DriverError::Fatal(format!(
                    "Error uploading image: import task {task_id}: {}",
                    detail.status_message().unwrap_or("deleted")
                )));
            }
            _ => check_deadline(deadline, "ImportSnapshot")?,
        }
    };
    // The imported snapshot does not inherit the task's tags.
    tag(cloud, &snapshot_id, tags).await;
    let snapshot_size = cloud
        .list_snapshot(&snapshot_id)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.volume_size())
        .map(i64::from)
        .unwrap_or(1);
    let volume_size = image.volume_size.unwrap_or(snapshot_size);
    register_image(
        cloud,
        image,
        &spec.external_name,
        tags,
        volume_size,
        &snapshot_id,
    )
    .await
}

/// `ImportImage` from the bucket; the AMI and its snapshot are tagged afterwards.
async fn import_image(
    cloud: &AwsCloud,
    image: &AwsDiskImage,
    bucket: &str,
    key: &str,
    spec: &ImageUploadSpec,
    tags: &BTreeMap<String, String>,
    deadline: Option<Instant>,
) -> Result<String, DriverError> {
    let ec2 = cloud.ec2().await;
    let task_id = loop {
        cloud.mutating().await;
        let reply = ec2
            .import_image()
            .architecture(&image.architecture)
            .disk_containers(
                ImageDiskContainer::builder()
                    .format(&spec.format)
                    .user_bucket(UserBucket::builder().s3_bucket(bucket).s3_key(key).build())
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::ImportImageTask)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("ImportImage", e));
        match reply {
            Ok(reply) => {
                break reply
                    .import_task_id()
                    .ok_or_else(|| DriverError::Fatal("ImportImage: no task id".into()))?
                    .to_string();
            }
            Err(e) if import_busy(&e) && deadline.is_none_or(|d| Instant::now() < d) => {
                tracing::warn!(error = %e, "AWS is busy importing; will retry");
                tokio::time::sleep(IMPORT_POLL).await;
            }
            Err(e) => return Err(e),
        }
    };
    let (image_id, snapshot_id) = loop {
        tokio::time::sleep(IMPORT_POLL).await;
        cloud.reading().await;
        let reply = ec2
            .describe_import_image_tasks()
            .import_task_ids(&task_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImportImageTasks", e))?;
        let Some(task) = reply.import_image_tasks().first() else {
            continue;
        };
        match task.status().map(str::to_ascii_lowercase).as_deref() {
            Some("completed") => {
                let image_id = task.image_id().map(str::to_string).ok_or_else(|| {
                    DriverError::Fatal(format!("import task {task_id} completed without an AMI"))
                })?;
                let snapshot_id = task
                    .snapshot_details()
                    .first()
                    .and_then(|d| d.snapshot_id())
                    .map(str::to_string);
                break (image_id, snapshot_id);
            }
            Some("deleted") | Some("deleting") => {
                return Err(DriverError::Fatal(format!(
                    "Error uploading image: import task {task_id}: {}",
                    task.status_message().unwrap_or("deleted")
                )));
            }
            _ => check_deadline(deadline, "ImportImage")?,
        }
    };
    tag(cloud, &image_id, tags).await;
    if let Some(snapshot_id) = snapshot_id {
        tag(cloud, &snapshot_id, tags).await;
    }
    Ok(image_id)
}

/// `CreateTags`; a failure is logged (the resource then looks unmanaged, as in Nodepool).
async fn tag(cloud: &AwsCloud, resource: &str, tags: &BTreeMap<String, String>) {
    let ec2 = cloud.ec2().await;
    cloud.mutating().await;
    if let Err(e) = ec2
        .create_tags()
        .resources(resource)
        .set_tags(Some(ec2_tags(tags)))
        .send()
        .await
    {
        tracing::warn!(resource, error = %sdk_error("CreateTags", e), "cannot tag imported resource");
    }
}

/// Deregisters an AMI and deletes its snapshots.
pub async fn delete_image(cloud: &AwsCloud, image_id: &str) -> Result<(), DriverError> {
    let image = match cloud.image(image_id).await {
        Ok(image) => image,
        Err(DriverError::NotFound(message)) => {
            tracing::warn!(image_id, "AMI not found when deleting it");
            return Err(DriverError::NotFound(message));
        }
        Err(e) => return Err(e),
    };
    let mut snapshots: Vec<String> = image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect();
    // Also the snapshots tagged as the same upload: an endpoint that copies the snapshot
    // on RegisterImage (moto does) leaves ours unreferenced by the AMI.
    let image_tags = crate::tags::ec2_tag_map(image.tags());
    if let Some(upload) = upload_key(&image_tags) {
        for snapshot in cloud.list_snapshots().await? {
            let Some(id) = snapshot.snapshot_id() else {
                continue;
            };
            if upload_key(&crate::tags::ec2_tag_map(snapshot.tags())) == Some(upload)
                && !snapshots.iter().any(|s| s == id)
            {
                snapshots.push(id.to_string());
            }
        }
    }
    cloud.deregister_image(image_id).await?;
    for snapshot_id in snapshots {
        match cloud.delete_snapshot(&snapshot_id).await {
            Ok(()) | Err(DriverError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The provider, build and upload an image or snapshot was tagged with, if all are there.
fn upload_key(tags: &nodepool_driver::Metadata) -> Option<(&str, &str, &str)> {
    use nodepool_driver::metadata_keys::{BUILD_ID, PROVIDER_NAME, UPLOAD_ID};
    Some((
        tags.get(PROVIDER_NAME)?.as_str(),
        tags.get(BUILD_ID)?.as_str(),
        tags.get(UPLOAD_ID)?.as_str(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_padded_and_zero_blocks_skipped() {
        assert_eq!(ebs_block(vec![0; 1000]), None);
        let (block, checksum) = ebs_block(b"hello".to_vec()).expect("data block");
        assert_eq!(block.len(), EBS_BLOCK_SIZE);
        assert_eq!(&block[..5], b"hello");
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&block));
        assert_eq!(checksum, expected);
    }

    #[test]
    fn sizes_round_up_to_whole_gib() {
        assert_eq!(size_in_gib(0), 1);
        assert_eq!(size_in_gib(1), 1);
        assert_eq!(size_in_gib(GIB), 1);
        assert_eq!(size_in_gib(GIB + 1), 2);
    }
}
