//! Quota in AWS terms (spec 2.10, 4.5): EC2 limits running instances by vCPUs per instance
//! family (one service-quota code per family group, on-demand and spot apart) and EBS by
//! storage and IOPS per volume type. A node's needs carry `instances`, `cores`, `ram` (for
//! the pool's `max-*` and tenant limits) plus the vCPUs under its family's code; the
//! provider's limits are the service-quota values of the codes its labels use.

use std::collections::BTreeMap;

use nodepool_driver::Quota;

/// Whether an instance is bought on demand or as spot capacity (separate vCPU quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Market {
    OnDemand,
    Spot,
}

/// What `DescribeInstanceTypes` says about one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTypeInfo {
    pub cores: i64,
    pub vcpus: i64,
    /// MiB.
    pub memory_mib: i64,
}

/// The family key of an instance type: the letters before the first digit (`t3.medium` ->
/// `t`, `inf2.xlarge` -> `inf`, `u-6tb1.metal` -> `u-`), as AWS groups its vCPU quotas.
pub fn instance_family_key(instance_type: &str) -> Option<&str> {
    let end = instance_type
        .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
        .unwrap_or(instance_type.len());
    let rest = &instance_type[end..];
    if end == 0 || !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(&instance_type[..end])
}

/// The EC2 service-quota code limiting the vCPUs of `instance_type` in `market`, if AWS has
/// one. (Codes from the EC2 service-quotas console: "Running On-Demand X instances" and
/// "All X Spot Instance Requests".)
pub fn instance_quota_code(instance_type: &str, market: Market) -> Option<&'static str> {
    let (on_demand, spot) = match instance_family_key(instance_type)? {
        "a" | "c" | "d" | "h" | "i" | "m" | "r" | "t" | "z" => ("L-1216C47A", "L-34B43A08"),
        "dl" => ("L-6E869C2A", "L-85EED4F7"),
        "f" => ("L-74FC7D96", "L-88CF9481"),
        "g" | "vt" => ("L-DB2E81BA", "L-3819A6DF"),
        "u-" => ("L-43DA4232", ""),
        "inf" => ("L-1945791B", "L-B5D1601B"),
        "p" => ("L-417A185B", "L-7212CCBC"),
        "x" => ("L-7295265B", "L-E3A00192"),
        "trn" => ("L-2C3B7624", "L-6B0D517C"),
        "hpc" => ("L-F7808C92", ""),
        _ => return None,
    };
    let code = match market {
        Market::OnDemand => on_demand,
        Market::Spot => spot,
    };
    (!code.is_empty()).then_some(code)
}

/// The EBS service-quota codes of a volume type: (IOPS code, storage code). Storage quotas
/// are in TiB, usage in GiB.
pub fn volume_quota_codes(volume_type: &str) -> (Option<&'static str>, Option<&'static str>) {
    match volume_type {
        "io1" => (Some("L-B3A130E6"), Some("L-FD252861")),
        "io2" => (Some("L-8D977E7E"), Some("L-09BD8365")),
        "sc1" => (None, Some("L-17AF77E8")),
        "gp2" => (None, Some("L-D18FCD1D")),
        "gp3" => (None, Some("L-7A658B76")),
        "standard" => (None, Some("L-9CF3C2EB")),
        "st1" => (None, Some("L-82ACEF56")),
        _ => (None, None),
    }
}

/// What one instance of this type needs: `instances: 1`, `cores`, `ram` and its vCPUs
/// under the family's code (AWS counts vCPUs, the pool's `max-cores` counts cores).
pub fn quota_for_instance_type(
    instance_type: &str,
    info: InstanceTypeInfo,
    market: Market,
) -> Quota {
    let mut quota = Quota::one_instance()
        .with("cores", info.cores as f64)
        .with("ram", info.memory_mib as f64);
    if let Some(code) = instance_quota_code(instance_type, market) {
        quota.set(code, info.vcpus as f64);
    }
    quota
}

/// What a volume of `volume_type` with `size_gib` and `iops` uses of the EBS quotas.
pub fn quota_for_volume(volume_type: &str, size_gib: Option<i64>, iops: Option<i64>) -> Quota {
    let (iops_code, storage_code) = volume_quota_codes(volume_type);
    let mut quota = Quota::zero();
    if let (Some(code), Some(iops)) = (iops_code, iops) {
        quota.set(code, iops as f64);
    }
    if let (Some(code), Some(size)) = (storage_code, size_gib) {
        quota.set(code, size as f64);
    }
    quota
}

/// The instance types and volume types a provider's labels use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaCodesInUse {
    pub instance_types: Vec<(String, Market)>,
    pub volume_types: Vec<String>,
}

/// The provider's limits from the account's service quotas (`code -> value`; EBS storage
/// values in TiB). Only the codes the labels use are limited; a code the account does not
/// report stays unlimited and is returned in the second list so the caller can say so.
pub fn limits_from_service_quotas(
    in_use: &QuotaCodesInUse,
    ec2: &BTreeMap<String, f64>,
    ebs: &BTreeMap<String, f64>,
) -> (Quota, Vec<String>) {
    let mut limits = Quota::unlimited();
    let mut unknown = Vec::new();
    for (instance_type, market) in &in_use.instance_types {
        let Some(code) = instance_quota_code(instance_type, *market) else {
            continue;
        };
        match ec2.get(code) {
            Some(value) => limits.set(code, *value),
            None if !unknown.iter().any(|c| c == code) => unknown.push(code.to_string()),
            None => {}
        }
    }
    for volume_type in &in_use.volume_types {
        let (iops_code, storage_code) = volume_quota_codes(volume_type);
        if let Some(code) = iops_code {
            match ebs.get(code) {
                Some(value) => limits.set(code, *value),
                None => unknown.push(code.to_string()),
            }
        }
        if let Some(code) = storage_code {
            match ebs.get(code) {
                // TiB limit, GiB usage.
                Some(value) => limits.set(code, *value * 1000.0),
                None => unknown.push(code.to_string()),
            }
        }
    }
    (limits, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_keys_are_the_letters_before_the_generation() {
        assert_eq!(instance_family_key("t3.medium"), Some("t"));
        assert_eq!(instance_family_key("inf2.xlarge"), Some("inf"));
        assert_eq!(instance_family_key("u-6tb1.metal"), Some("u-"));
        assert_eq!(instance_family_key("c6gn.large"), Some("c"));
        assert_eq!(instance_family_key("metal"), None);
        assert_eq!(instance_family_key(""), None);
    }

    #[test]
    fn quota_codes_by_family_and_market() {
        assert_eq!(
            instance_quota_code("t3.medium", Market::OnDemand),
            Some("L-1216C47A")
        );
        assert_eq!(
            instance_quota_code("t3.medium", Market::Spot),
            Some("L-34B43A08")
        );
        assert_eq!(
            instance_quota_code("p4d.24xlarge", Market::OnDemand),
            Some("L-417A185B")
        );
        assert_eq!(instance_quota_code("u-6tb1.metal", Market::Spot), None);
        assert_eq!(instance_quota_code("mac1.metal", Market::OnDemand), None);
    }

    #[test]
    fn instance_needs_count_cores_ram_and_family_vcpus() {
        let info = InstanceTypeInfo {
            cores: 1,
            vcpus: 2,
            memory_mib: 4096,
        };
        let quota = quota_for_instance_type("t3.medium", info, Market::OnDemand);
        assert_eq!(quota.get("instances"), 1.0);
        assert_eq!(quota.get("cores"), 1.0);
        assert_eq!(quota.get("ram"), 4096.0);
        assert_eq!(quota.get("L-1216C47A"), 2.0);
        assert_eq!(quota.get("L-34B43A08"), 0.0);
        let volume = quota_for_volume("io2", Some(100), Some(3000));
        assert_eq!(volume.get("L-8D977E7E"), 3000.0);
        assert_eq!(volume.get("L-09BD8365"), 100.0);
        assert_eq!(quota_for_volume("magnetic", Some(8), None), Quota::zero());
    }

    #[test]
    fn limits_take_only_used_codes_and_report_unknown_ones() {
        let in_use = QuotaCodesInUse {
            instance_types: vec![
                ("t3.medium".into(), Market::OnDemand),
                ("m5.large".into(), Market::OnDemand),
                ("g4dn.xlarge".into(), Market::Spot),
            ],
            volume_types: vec!["gp3".into()],
        };
        let ec2 = [
            ("L-1216C47A".to_string(), 64.0),
            ("L-417A185B".to_string(), 8.0),
        ]
        .into();
        let ebs = [("L-7A658B76".to_string(), 50.0)].into();
        let (limits, unknown) = limits_from_service_quotas(&in_use, &ec2, &ebs);
        assert_eq!(limits.get("L-1216C47A"), 64.0);
        // Not used by any label: not limited.
        assert!(limits.get("L-417A185B").is_infinite());
        assert_eq!(limits.get("L-7A658B76"), 50_000.0);
        assert!(limits.get("cores").is_infinite());
        assert_eq!(unknown, vec!["L-3819A6DF".to_string()]);
        // 30 t3.medium fit in 64 vCPUs, 33 do not.
        let need = quota_for_instance_type(
            "t3.medium",
            InstanceTypeInfo {
                cores: 1,
                vcpus: 2,
                memory_mib: 4096,
            },
            Market::OnDemand,
        );
        let mut used = Quota::zero();
        used.add_scaled(&need, 32.0);
        assert!(limits.subtract(&used).non_negative());
        used.add_assign(&need);
        assert!(!limits.subtract(&used).non_negative());
    }
}
