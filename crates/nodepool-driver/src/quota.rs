//! Quota arithmetic (spec 2.10): a map from resource name to amount.

use std::collections::BTreeMap;

/// Amounts of resources (`instances`, `cores`, `ram` in MiB, `volumes`, `volume-gb`, driver
/// extras). A resource not in the map has the `default` amount: 0 for usage and needs,
/// infinity for limits, so "no limit set" needs no special case.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    values: BTreeMap<String, f64>,
    default: f64,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota::zero()
    }
}

impl Quota {
    /// Nothing used or needed.
    pub fn zero() -> Quota {
        Quota {
            values: BTreeMap::new(),
            default: 0.0,
        }
    }

    /// No limit on anything.
    pub fn unlimited() -> Quota {
        Quota {
            values: BTreeMap::new(),
            default: f64::INFINITY,
        }
    }

    /// One instance and nothing else: what a node needs when the driver knows no better.
    pub fn one_instance() -> Quota {
        Quota::zero().with("instances", 1.0)
    }

    pub fn with(mut self, resource: &str, amount: f64) -> Quota {
        self.values.insert(resource.to_string(), amount);
        self
    }

    pub fn set(&mut self, resource: &str, amount: f64) {
        self.values.insert(resource.to_string(), amount);
    }

    pub fn get(&self, resource: &str) -> f64 {
        self.values.get(resource).copied().unwrap_or(self.default)
    }

    /// The resources named explicitly.
    pub fn resources(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    fn combine(&self, other: &Quota, op: impl Fn(f64, f64) -> f64) -> Quota {
        let mut values = BTreeMap::new();
        for key in self.values.keys().chain(other.values.keys()) {
            values.insert(key.clone(), op(self.get(key), other.get(key)));
        }
        Quota {
            values,
            default: op(self.default, other.default),
        }
    }

    pub fn add(&self, other: &Quota) -> Quota {
        self.combine(other, |a, b| a + b)
    }

    /// `self += factor * other`, in place (sums over many nodes allocate nothing per node).
    pub fn add_scaled(&mut self, other: &Quota, factor: f64) {
        for (key, value) in &other.values {
            let current = self.get(key);
            match self.values.get_mut(key) {
                Some(v) => *v += value * factor,
                None => {
                    self.values.insert(key.clone(), current + value * factor);
                }
            }
        }
        self.default += other.default * factor;
    }

    /// `self += other`, in place.
    pub fn add_assign(&mut self, other: &Quota) {
        self.add_scaled(other, 1.0);
    }

    /// Adds a node's `resources` JSON in place; values [`resource_amount`] rejects are
    /// ignored.
    pub fn add_json(&mut self, map: &serde_json::Map<String, serde_json::Value>) {
        self.add_json_scaled(map, 1.0);
    }

    /// `self += factor * resources` for a node's `resources` JSON (-1 takes a node out of a
    /// sum); values [`resource_amount`] rejects are ignored.
    pub fn add_json_scaled(
        &mut self,
        map: &serde_json::Map<String, serde_json::Value>,
        factor: f64,
    ) {
        for (key, value) in map {
            let Some(n) = resource_amount(value) else {
                continue;
            };
            match self.values.get_mut(key.as_str()) {
                Some(v) => *v += n * factor,
                None => {
                    let base = self.default;
                    self.values.insert(key.clone(), base + n * factor);
                }
            }
        }
    }

    /// `self - other`; infinity minus anything finite stays infinite.
    pub fn subtract(&self, other: &Quota) -> Quota {
        self.combine(other, |a, b| if a.is_infinite() { a } else { a - b })
    }

    /// Whether no resource is negative.
    pub fn non_negative(&self) -> bool {
        self.default >= 0.0 && self.values.values().all(|v| *v >= 0.0)
    }

    /// Limits from a pool's `max-servers` and `max-*` settings; unset ones are unlimited.
    pub fn limits(max_servers: Option<i64>, max_resources: &BTreeMap<String, i64>) -> Quota {
        let mut quota = Quota::unlimited();
        if let Some(max) = max_servers {
            quota.set("instances", max as f64);
        }
        for (resource, amount) in max_resources {
            quota.set(resource, *amount as f64);
        }
        quota
    }

    /// The node-record form (`resources`): explicit resources as JSON numbers, integers
    /// where the amount is whole.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| {
                let value = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    serde_json::Value::from(*v as i64)
                } else {
                    serde_json::Value::from(*v)
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// Reads a node's `resources`; values [`resource_amount`] rejects are ignored.
    pub fn from_json(map: &serde_json::Map<String, serde_json::Value>) -> Quota {
        let mut quota = Quota::zero();
        for (k, v) in map {
            if let Some(n) = resource_amount(v) {
                quota.set(k, n);
            }
        }
        quota
    }
}

/// An amount of a resource as a node record states it, if it may enter a quota sum: a
/// finite, non-negative number. A record is written by anyone with store access; a negative
/// or huge figure must not hide usage or make a pool look full for ever.
pub fn resource_amount(value: &serde_json::Value) -> Option<f64> {
    value
        .as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0 && *n <= MAX_RESOURCE_AMOUNT)
}

/// The largest amount a node record may state for one resource (2^53: beyond it an `f64`
/// no longer counts in ones, and no machine has that many cores or MiB).
const MAX_RESOURCE_AMOUNT: f64 = 9_007_199_254_740_992.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_non_negative_amounts_enter_sums() {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"cores": -64, "ram": 1e300, "instances": 1, "gpus": "2", "disk": 1.5}"#,
        )
        .unwrap_or_default();
        let mut used = Quota::zero();
        used.add_json(&map);
        assert_eq!(used.get("cores"), 0.0, "a negative figure hides no usage");
        assert_eq!(used.get("ram"), 0.0, "an absurd figure fills no pool");
        assert_eq!(used.get("gpus"), 0.0);
        assert_eq!(used.get("instances"), 1.0);
        assert_eq!(used.get("disk"), 1.5);
        assert_eq!(Quota::from_json(&map).get("cores"), 0.0);
    }

    #[test]
    fn limits_minus_usage_keeps_unset_limits_infinite() {
        let limits = Quota::limits(Some(2), &BTreeMap::from([("cores".to_string(), 8)]));
        let used = Quota::one_instance().with("cores", 4.0).with("ram", 8192.0);
        let left = limits.subtract(&used).subtract(&used);
        assert_eq!(left.get("instances"), 0.0);
        assert_eq!(left.get("cores"), 0.0);
        assert!(left.get("ram").is_infinite());
        assert!(left.non_negative());
        assert!(!left.subtract(&used).non_negative());
    }

    #[test]
    fn zero_defaults_add_up() {
        let a = Quota::one_instance();
        let b = Quota::zero().with("cores", 2.0);
        let sum = a.add(&b);
        assert_eq!(sum.get("instances"), 1.0);
        assert_eq!(sum.get("cores"), 2.0);
        assert_eq!(sum.get("ram"), 0.0);
        assert!(sum.non_negative());
    }

    #[test]
    fn in_place_sums_match_allocating_ones() {
        let a = Quota::one_instance().with("cores", 4.0);
        let b = Quota::zero().with("ram", 8192.0).with("cores", 2.0);
        let mut c = a.clone();
        c.add_assign(&b);
        assert_eq!(c, a.add(&b));
        let mut d = Quota::zero();
        d.add_scaled(&a, 3.0);
        assert_eq!(d.get("instances"), 3.0);
        assert_eq!(d.get("cores"), 12.0);
        let mut e = a.clone();
        e.add_json(&b.to_json());
        assert_eq!(e, a.add(&b));
    }

    #[test]
    fn json_round_trip_writes_integers() {
        let q = Quota::one_instance().with("ram", 8192.0).with("cores", 0.5);
        let json = q.to_json();
        assert_eq!(json["instances"], serde_json::json!(1));
        assert_eq!(json["cores"], serde_json::json!(0.5));
        assert_eq!(Quota::from_json(&json), q);
    }
}
