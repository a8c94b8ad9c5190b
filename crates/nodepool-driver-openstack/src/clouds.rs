//! `clouds.yaml` lookup as openstacksdk does it: the first existing file of
//! `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`, `~/.config/openstack/clouds.yaml` and
//! `/etc/openstack/clouds.yaml` (`.yml` too), with `secure.yaml` from the same places merged
//! over it, then one cloud by name and its region.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// How the driver logs in to Keystone v3.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        /// `{"id": ..}` or `{"name": .., "domain": {..}}` as Keystone takes it.
        user: Value,
        password: String,
        /// The project scope, as Keystone takes it; `None` asks for an unscoped token.
        project: Option<Value>,
    },
    ApplicationCredential {
        /// `{"id": .., "secret": ..}` or `{"name": .., "user": {..}, "secret": ..}`.
        credential: Value,
    },
}

/// Secrets stay out of logs and panics.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { user, project, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("project", project)
                .finish_non_exhaustive(),
            Credentials::ApplicationCredential { .. } => {
                f.write_str("ApplicationCredential { .. }")
            }
        }
    }
}

/// One cloud of `clouds.yaml`, resolved to what the driver needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    /// The name under `clouds:` (reported as the nodes' `cloud`).
    pub name: String,
    /// The Keystone v3 base URL, always ending in `/v3`.
    pub auth_url: String,
    pub credentials: Credentials,
    pub region: Option<String>,
    /// The catalog interface: `public` unless `interface`/`endpoint_type` says otherwise.
    pub interface: String,
    /// `image_format`: what the builder uploads (`qcow2` by default, as openstacksdk).
    pub image_format: String,
    /// `private: true`: servers are reached on their private address.
    pub private: bool,
    /// `force_ipv4: true`: never use an IPv6 interface address.
    pub force_ipv4: bool,
    /// How server certificates are checked (`verify`, `cacert`, `insecure`).
    pub tls: TlsVerify,
}

/// How the client checks the cloud's TLS certificates, decided by [`tls_verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    /// Against the built-in Mozilla roots (as requests does with certifi).
    System,
    /// Against the certificates of this PEM bundle only (requests' `verify=<path>`).
    Bundle {
        path: PathBuf,
        /// The key it came from (`cacert` or `verify`), for error messages.
        key: &'static str,
    },
    /// No checks at all (`verify: false` or `insecure: true`).
    Off {
        /// A `cacert` that is set but not used, named in the warning.
        ignored_cacert: Option<PathBuf>,
    },
}

/// `verify`, `cacert` and `insecure` as openstacksdk's `get_requests_verify_args` reads them:
/// `insecure: true` wins, then `verify: false`; with checks on, `cacert` wins over `verify`,
/// and a string `verify` is a CA bundle path (requests takes it so). `cacert` has `~`
/// expanded (with `home`), a string `verify` does not (requests does not either).
///
/// Stricter than openstacksdk where it would fail open: a `verify` that is neither a
/// boolean nor a non-empty string (a number, a list, null, "") is an error here, where
/// Python's truthiness would turn checks off for `0`, `""` or null. Whether a path exists
/// is for the client to find out when it reads the bundle.
pub fn tls_verify(
    cloud: &str,
    insecure: Option<&Value>,
    verify: Option<&Value>,
    cacert: Option<&Value>,
    home: Option<&Path>,
) -> Result<TlsVerify, String> {
    // openstacksdk's `get_boolean`: a boolean, or a string that is "true" in any case.
    let insecure = match insecure {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(other) => {
            return Err(format!(
                "cloud {cloud}: insecure must be true or false, not {other}"
            ));
        }
    };
    // `None`: checks on; `Some(path)`: checks on against that bundle.
    let verify_path = match verify {
        None | Some(Value::Bool(true)) => None,
        Some(Value::Bool(false)) => {
            return Ok(TlsVerify::Off {
                ignored_cacert: cacert_path(cloud, cacert, home)?,
            });
        }
        Some(Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
        Some(other) => {
            return Err(format!(
                "cloud {cloud}: verify must be true, false or the path of a CA bundle, not {other}"
            ));
        }
    };
    let cacert = cacert_path(cloud, cacert, home)?;
    if insecure {
        return Ok(TlsVerify::Off {
            ignored_cacert: cacert,
        });
    }
    Ok(match (cacert, verify_path) {
        (Some(path), _) => TlsVerify::Bundle {
            path,
            key: "cacert",
        },
        (None, Some(path)) => TlsVerify::Bundle {
            path,
            key: "verify",
        },
        (None, None) => TlsVerify::System,
    })
}

/// `cacert` as a path; `""` or null is no cacert, as in openstacksdk (checks stay on).
fn cacert_path(
    cloud: &str,
    cacert: Option<&Value>,
    home: Option<&Path>,
) -> Result<Option<PathBuf>, String> {
    match cacert {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(expand_user(s, home))),
        Some(other) => Err(format!(
            "cloud {cloud}: cacert must be the path of a CA bundle, not {other}"
        )),
    }
}

/// `~` and `~/...` with the home directory, as Python's `os.path.expanduser` (no `~user`).
fn expand_user(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

/// Where openstacksdk looks for `name` (`clouds`/`secure`), in order.
pub fn candidate_files(
    stem: &str,
    env_file: Option<PathBuf>,
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
    xdg_config: Option<PathBuf>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    out.extend(env_file);
    let user_dir = xdg_config
        .or_else(|| home.map(|h| h.join(".config")))
        .map(|c| c.join("openstack"));
    let dirs = [cwd, user_dir, Some(PathBuf::from("/etc/openstack"))];
    for dir in dirs.into_iter().flatten() {
        for ext in ["yaml", "yml"] {
            out.push(dir.join(format!("{stem}.{ext}")));
        }
    }
    out
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads the cloud `cloud` from the default places (or `clouds_file` when given, as tests
/// do), with `region` (the provider's `region-name`) overriding the file's.
pub fn load_cloud(
    cloud: &str,
    region: Option<&str>,
    clouds_file: Option<&Path>,
) -> Result<CloudConfig, String> {
    let cwd = std::env::current_dir().ok();
    let home = env_path("HOME");
    let xdg = env_path("XDG_CONFIG_HOME");
    let clouds_candidates = match clouds_file {
        Some(path) => vec![path.to_path_buf()],
        None => candidate_files(
            "clouds",
            env_path("OS_CLIENT_CONFIG_FILE"),
            cwd.clone(),
            home.clone(),
            xdg.clone(),
        ),
    };
    let Some(clouds_path) = clouds_candidates.iter().find(|p| p.is_file()) else {
        return Err(format!(
            "no clouds.yaml found (looked at {})",
            clouds_candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let clouds = read_yaml(clouds_path)?;
    let secure_candidates = match clouds_file {
        Some(path) => vec![path.with_file_name("secure.yaml")],
        None => candidate_files("secure", env_path("OS_CLIENT_SECURE_FILE"), cwd, home, xdg),
    };
    let secure = match secure_candidates.iter().find(|p| p.is_file()) {
        Some(path) => Some(read_yaml(path)?),
        None => None,
    };
    cloud_from_documents(cloud, region, &clouds, secure.as_ref())
        .map_err(|e| format!("{}: {e}", clouds_path.display()))
}

fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    yaml_to_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses YAML text into JSON values the way openstacksdk's `yaml.safe_load` reads it
/// (YAML 1.1: `verify: no` is a boolean, not the string "no"), with the configuration
/// loader's limits on depth and alias expansion. Mapping keys that are not strings use
/// their text.
pub fn yaml_to_json(text: &str) -> Result<Value, String> {
    let document = nodepool_config::yaml::parse(text)
        .map_err(|problem| format!("{}: {}", problem.mark, problem.message))?;
    Ok(document
        .root
        .as_ref()
        .map(nodepool_config::yaml::Node::to_json)
        .unwrap_or(Value::Null))
}

/// `over` merged into `base`, mappings recursively (how secure.yaml completes clouds.yaml).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn text(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match map.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn boolean(map: &Map<String, Value>, key: &str, default: bool) -> bool {
    match map.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => default,
    }
}

/// An id-or-name reference with a domain, as Keystone's JSON wants it.
fn named(id: Option<String>, name: Option<String>, domain: Option<Value>) -> Option<Value> {
    match (id, name) {
        (Some(id), _) => Some(serde_json::json!({ "id": id })),
        (None, Some(name)) => {
            let mut v = serde_json::json!({ "name": name });
            if let (Some(domain), Some(obj)) = (domain, v.as_object_mut()) {
                obj.insert("domain".into(), domain);
            }
            Some(v)
        }
        (None, None) => None,
    }
}

fn domain(auth: &Map<String, Value>, id_key: &str, name_key: &str) -> Option<Value> {
    // openstacksdk lets `domain_id`/`domain_name` stand in for the user and project domains.
    if let Some(id) = text(auth, &[id_key, "domain_id"]) {
        return Some(serde_json::json!({ "id": id }));
    }
    text(auth, &[name_key, "domain_name"]).map(|name| serde_json::json!({ "name": name }))
}

/// Resolves one cloud from parsed `clouds.yaml` (and `secure.yaml`) documents.
pub fn cloud_from_documents(
    cloud: &str,
    region: Option<&str>,
    clouds: &Value,
    secure: Option<&Value>,
) -> Result<CloudConfig, String> {
    let mut entry = clouds
        .get("clouds")
        .and_then(|c| c.get(cloud))
        .cloned()
        .ok_or_else(|| format!("cloud {cloud} is not defined"))?;
    if let Some(extra) = secure
        .and_then(|s| s.get("clouds"))
        .and_then(|c| c.get(cloud))
    {
        merge(&mut entry, extra);
    }
    let Value::Object(entry) = entry else {
        return Err(format!("cloud {cloud} is not a mapping"));
    };
    // Auth keys may sit in `auth:` or (older files) at the cloud's top level.
    let mut auth = entry.clone();
    if let Some(Value::Object(inner)) = entry.get("auth") {
        for (k, v) in inner {
            auth.insert(k.clone(), v.clone());
        }
    }
    let auth_url =
        text(&auth, &["auth_url"]).ok_or_else(|| format!("cloud {cloud} has no auth_url"))?;
    let auth_type = text(&entry, &["auth_type"]).unwrap_or_else(|| "password".into());
    let user_domain = domain(&auth, "user_domain_id", "user_domain_name")
        .or_else(|| Some(serde_json::json!({ "id": "default" })));
    let user = named(
        text(&auth, &["user_id"]),
        text(&auth, &["username", "user_name"]),
        user_domain,
    );
    let credentials = match auth_type.as_str() {
        "password" | "v3password" => {
            let user = user.ok_or_else(|| format!("cloud {cloud} has no username"))?;
            let password = text(&auth, &["password"])
                .ok_or_else(|| format!("cloud {cloud} has no password"))?;
            let project_domain = domain(&auth, "project_domain_id", "project_domain_name")
                .or_else(|| Some(serde_json::json!({ "id": "default" })));
            let project = named(
                text(&auth, &["project_id", "tenant_id"]),
                text(&auth, &["project_name", "tenant_name"]),
                project_domain,
            );
            Credentials::Password {
                user,
                password,
                project,
            }
        }
        "v3applicationcredential" | "applicationcredential" | "application_credential" => {
            let secret = text(&auth, &["application_credential_secret"])
                .ok_or_else(|| format!("cloud {cloud} has no application_credential_secret"))?;
            let mut credential = match (
                text(&auth, &["application_credential_id"]),
                text(&auth, &["application_credential_name"]),
            ) {
                (Some(id), _) => serde_json::json!({ "id": id }),
                (None, Some(name)) => {
                    let user = user.ok_or_else(|| {
                        format!("cloud {cloud}: an application credential name needs a user")
                    })?;
                    serde_json::json!({ "name": name, "user": user })
                }
                (None, None) => {
                    return Err(format!(
                        "cloud {cloud} has no application_credential_id or _name"
                    ));
                }
            };
            if let Some(obj) = credential.as_object_mut() {
                obj.insert("secret".into(), Value::String(secret));
            }
            Credentials::ApplicationCredential { credential }
        }
        other => return Err(format!("cloud {cloud}: auth_type {other} is not supported")),
    };
    let region = region
        .map(str::to_string)
        .or_else(|| text(&entry, &["region_name"]))
        .or_else(|| match entry.get("regions") {
            Some(Value::Array(regions)) => regions.first().and_then(|r| match r {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => text(o, &["name"]),
                _ => None,
            }),
            _ => None,
        });
    let interface = text(&entry, &["interface", "endpoint_type"])
        .map(|i| i.trim_end_matches("URL").to_ascii_lowercase())
        .unwrap_or_else(|| "public".into());
    let tls = tls_verify(
        cloud,
        entry.get("insecure"),
        entry.get("verify"),
        entry.get("cacert"),
        env_path("HOME").as_deref(),
    )?;
    Ok(CloudConfig {
        name: cloud.to_string(),
        auth_url: keystone_v3(&auth_url),
        credentials,
        region,
        interface,
        image_format: text(&entry, &["image_format"]).unwrap_or_else(|| "qcow2".into()),
        private: boolean(&entry, "private", false),
        force_ipv4: boolean(&entry, "force_ipv4", false),
        tls,
    })
}

/// The v3 base of an `auth_url` given with or without the version.
pub fn keystone_v3(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Value {
        yaml_to_json(text).expect("yaml")
    }

    #[test]
    fn password_cloud_with_secure_file_and_first_region() {
        let clouds = docs(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: https://ks.example/\n      username: np\n      project_name: ci\n      user_domain_name: Users\n    regions:\n      - name: R1\n      - R2\n    interface: internalURL\n    image_format: raw\n",
        );
        let secure = docs("clouds:\n  mycloud:\n    auth:\n      password: s3cret\n");
        let c = cloud_from_documents("mycloud", None, &clouds, Some(&secure)).expect("cloud");
        assert_eq!(c.auth_url, "https://ks.example/v3");
        assert_eq!(c.region.as_deref(), Some("R1"));
        assert_eq!(c.interface, "internal");
        assert_eq!(c.image_format, "raw");
        assert_eq!(
            c.credentials,
            Credentials::Password {
                user: serde_json::json!({"name": "np", "domain": {"name": "Users"}}),
                password: "s3cret".into(),
                project: Some(serde_json::json!({"name": "ci", "domain": {"id": "default"}})),
            }
        );
        let c = cloud_from_documents("mycloud", Some("R2"), &clouds, Some(&secure)).expect("cloud");
        assert_eq!(c.region.as_deref(), Some("R2"));
        assert!(!format!("{:?}", c.credentials).contains("s3cret"));
    }

    #[test]
    fn application_credential_by_id() {
        let clouds = docs(
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    region_name: RegionOne\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      application_credential_id: abc\n      application_credential_secret: xyz\n",
        );
        let c = cloud_from_documents("ac", None, &clouds, None).expect("cloud");
        assert_eq!(
            c.credentials,
            Credentials::ApplicationCredential {
                credential: serde_json::json!({"id": "abc", "secret": "xyz"})
            }
        );
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, "public");
    }

    #[test]
    fn missing_cloud_and_missing_password_are_errors() {
        let clouds =
            docs("clouds:\n  a:\n    auth:\n      auth_url: http://x\n      username: u\n");
        assert!(cloud_from_documents("b", None, &clouds, None).is_err());
        assert!(
            cloud_from_documents("a", None, &clouds, None)
                .expect_err("no password")
                .contains("password")
        );
    }

    fn tls(
        insecure: Option<Value>,
        verify: Option<Value>,
        cacert: Option<Value>,
    ) -> Result<TlsVerify, String> {
        tls_verify(
            "c",
            insecure.as_ref(),
            verify.as_ref(),
            cacert.as_ref(),
            Some(Path::new("/home/u")),
        )
    }

    fn bundle(path: &str, key: &'static str) -> Result<TlsVerify, String> {
        Ok(TlsVerify::Bundle {
            path: PathBuf::from(path),
            key,
        })
    }

    #[test]
    fn verify_and_cacert_as_openstacksdk_reads_them() {
        use serde_json::json;
        let off = |cacert: Option<&str>| {
            Ok(TlsVerify::Off {
                ignored_cacert: cacert.map(PathBuf::from),
            })
        };
        // Checks are on unless switched off; a bundle path replaces the built-in roots.
        assert_eq!(tls(None, None, None), Ok(TlsVerify::System));
        assert_eq!(tls(None, Some(json!(true)), None), Ok(TlsVerify::System));
        assert_eq!(
            tls(None, None, Some(json!("/ca.pem"))),
            bundle("/ca.pem", "cacert")
        );
        assert_eq!(
            tls(None, Some(json!("/v.pem")), None),
            bundle("/v.pem", "verify")
        );
        // cacert wins over a true or path verify.
        assert_eq!(
            tls(None, Some(json!(true)), Some(json!("/ca.pem"))),
            bundle("/ca.pem", "cacert")
        );
        assert_eq!(
            tls(None, Some(json!("/v.pem")), Some(json!("/ca.pem"))),
            bundle("/ca.pem", "cacert")
        );
        // verify: false and insecure: true win over cacert (which the warning names).
        assert_eq!(tls(None, Some(json!(false)), None), off(None));
        assert_eq!(
            tls(None, Some(json!(false)), Some(json!("/ca.pem"))),
            off(Some("/ca.pem"))
        );
        assert_eq!(
            tls(Some(json!(true)), Some(json!(true)), Some(json!("/ca.pem"))),
            off(Some("/ca.pem"))
        );
        // insecure is openstacksdk's get_boolean: only a true bool or "true" in any case.
        assert_eq!(tls(Some(json!("TRUE")), None, None), off(None));
        assert_eq!(tls(Some(json!("yes")), None, None), Ok(TlsVerify::System));
        assert_eq!(tls(Some(json!(false)), None, None), Ok(TlsVerify::System));
        // `~` in cacert is the home directory (os.path.expanduser); not in verify.
        assert_eq!(
            tls(None, None, Some(json!("~/ca.pem"))),
            bundle("/home/u/ca.pem", "cacert")
        );
        assert_eq!(
            tls(None, Some(json!("~/v.pem")), None),
            bundle("~/v.pem", "verify")
        );
        // An empty or null cacert is no cacert (checks stay on).
        assert_eq!(tls(None, None, Some(json!(""))), Ok(TlsVerify::System));
        assert_eq!(tls(None, None, Some(Value::Null)), Ok(TlsVerify::System));
        // Anything else is an error naming the cloud, never "off" (Python's truthiness
        // would turn checks off for 0, "" and null).
        for verify in [
            json!(0),
            json!(1),
            json!(""),
            Value::Null,
            json!(["/a"]),
            json!({"a": 1}),
        ] {
            let err = tls(None, Some(verify.clone()), None).expect_err("refused");
            assert!(err.contains("cloud c: verify must be"), "{verify}: {err}");
        }
        for cacert in [json!(5), json!(true), json!(["/a"])] {
            let err = tls(None, None, Some(cacert.clone())).expect_err("refused");
            assert!(err.contains("cloud c: cacert must be"), "{cacert}: {err}");
        }
        let err = tls(Some(json!(1)), None, None).expect_err("refused");
        assert!(err.contains("cloud c: insecure must be"), "{err}");
    }

    #[test]
    fn clouds_yaml_booleans_are_yaml_1_1_and_secure_yaml_completes_tls() {
        let cloud = |extra: &str| {
            docs(&format!(
                "clouds:\n  c:\n{extra}    auth:\n      auth_url: https://ks\n      username: u\n      password: p\n"
            ))
        };
        let tls_of = |clouds: &Value, secure: Option<&Value>| {
            cloud_from_documents("c", None, clouds, secure).map(|c| c.tls)
        };
        for off in ["no", "off", "false", "No", "OFF"] {
            assert_eq!(
                tls_of(&cloud(&format!("    verify: {off}\n")), None),
                Ok(TlsVerify::Off {
                    ignored_cacert: None
                }),
                "{off}"
            );
        }
        assert_eq!(
            tls_of(&cloud("    verify: yes\n"), None),
            Ok(TlsVerify::System)
        );
        // Quoted, or an unknown word, it is a path (that the client must find).
        assert_eq!(
            tls_of(&cloud("    verify: \"no\"\n"), None),
            bundle("no", "verify")
        );
        assert_eq!(
            tls_of(&cloud("    verify: maybe\n"), None),
            bundle("maybe", "verify")
        );
        assert!(
            tls_of(&cloud("    verify: 0\n"), None)
                .expect_err("a number")
                .contains("verify must be")
        );
        // secure.yaml merged over clouds.yaml: its cacert, and its verify: false, count.
        let secure = docs("clouds:\n  c:\n    cacert: /etc/ca.pem\n");
        assert_eq!(
            tls_of(&cloud("    verify: true\n"), Some(&secure)),
            bundle("/etc/ca.pem", "cacert")
        );
        let secure = docs("clouds:\n  c:\n    verify: false\n");
        assert_eq!(
            tls_of(&cloud("    cacert: /etc/ca.pem\n"), Some(&secure)),
            Ok(TlsVerify::Off {
                ignored_cacert: Some(PathBuf::from("/etc/ca.pem"))
            })
        );
    }

    #[test]
    fn a_cloud_config_never_shows_secrets_in_debug_output() {
        let clouds = docs(
            "clouds:\n  p:\n    auth:\n      auth_url: https://ks\n      username: u\n      password: pw-s3cret\n  a:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: https://ks\n      application_credential_id: abc\n      application_credential_secret: ac-s3cret\n",
        );
        for name in ["p", "a"] {
            let c = cloud_from_documents(name, None, &clouds, None).expect("cloud");
            let shown = format!("{c:?} {c:#?}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn lookup_order_follows_openstacksdk() {
        let files = candidate_files(
            "clouds",
            Some("/env/c.yaml".into()),
            Some("/cwd".into()),
            Some("/home/u".into()),
            None,
        );
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/env/c.yaml",
                "/cwd/clouds.yaml",
                "/cwd/clouds.yml",
                "/home/u/.config/openstack/clouds.yaml",
                "/home/u/.config/openstack/clouds.yml",
                "/etc/openstack/clouds.yaml",
                "/etc/openstack/clouds.yml",
            ]
        );
    }
}
