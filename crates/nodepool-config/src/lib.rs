//! `nodepool.yaml`: parsing, validation and diffing (spec section 4).
//!
//! The pipeline is text -> `%(NODEPOOL_*)` substitution -> marked YAML tree ([`yaml`]) ->
//! raw structs ([`raw`], via [`decode`]) -> validated [`Config`] ([`validate`]). Each stage
//! collects every problem it finds with file, line, column and key path, so
//! `nodepool config-validate` and the daemons report all mistakes at once. The only I/O is
//! reading the two files.

mod config;
mod decode;
mod diagnostic;
mod diff;
pub mod raw;
mod validate;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

pub use config::*;
pub use decode::{FreeList, FreeMap, OneOrMany, ScalarText, StrMap};
pub use diagnostic::{At, ConfigErrors, Diagnostic, Severity, Sp};
pub use diff::{Changes, ConfigDiff, diff};

use decode::Decode;
use diagnostic::Collector;

/// Environment variables visible to `%(NODEPOOL_*)` substitution.
pub type Env = BTreeMap<String, String>;

/// A validated configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Replaces every `%(NODEPOOL_X)` with the value of `NODEPOOL_X`, as Nodepool does; other
/// variables and unknown names are left as written.
pub fn substitute_env(text: &str, env: &Env) -> String {
    let mut out = text.to_string();
    for (name, value) in env.iter().filter(|(k, _)| k.starts_with("NODEPOOL_")) {
        out = out.replace(&format!("%({name})"), value);
    }
    out
}

/// Collects the `NODEPOOL_*` variables of this process's environment.
pub fn nodepool_env() -> Env {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("NODEPOOL_"))
        .collect()
}

/// Loads, merges the secure file into, and validates a configuration.
pub fn load_config(path: &Path, secure: Option<&Path>, env: &Env) -> Result<Loaded, ConfigErrors> {
    let text = read(path)?;
    let secure_text = match secure {
        Some(secure_path) => Some((secure_path, read(secure_path)?)),
        None => None,
    };
    parse_config(
        path,
        &text,
        secure_text.as_ref().map(|(p, t)| (*p, t.as_str())),
        env,
    )
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key_path: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })
}

/// Parses and validates configuration text; `secure` is the secure file's path and text.
/// Never panics, whatever the input.
pub fn parse_config(
    path: &Path,
    text: &str,
    secure: Option<(&Path, &str)>,
    env: &Env,
) -> Result<Loaded, ConfigErrors> {
    let mut cx = Collector::new(path);
    let raw = read_raw::<raw::RawConfig>(&mut cx, text, env, false);
    let secure_parts = secure.map(|(secure_path, secure_text)| {
        let mut secure_cx = Collector::for_secrets(secure_path);
        let raw_secure = read_raw::<raw::RawSecure>(&mut secure_cx, secure_text, env, true);
        (secure_cx, raw_secure)
    });
    let mut config = raw
        .as_ref()
        .and_then(|raw| validate::validate(raw, &mut cx));

    let mut diagnostics = cx.diagnostics;
    if let Some((mut secure_cx, raw_secure)) = secure_parts {
        if let Some(raw_secure) = raw_secure {
            let zookeeper = validate::zookeeper_parts(
                raw_secure.zookeeper_servers.as_ref(),
                raw_secure.zookeeper_tls.as_ref(),
                None,
                &mut secure_cx,
            );
            let diskimage_env = raw_secure
                .diskimages
                .iter()
                .flat_map(|d| d.value.iter())
                .filter_map(|d| {
                    let name = validate::required(&mut secure_cx, &d.name, &d.at, "name")?.clone();
                    let env = d
                        .env_vars
                        .as_ref()
                        .map(|e| {
                            e.value
                                .0
                                .iter()
                                .map(|(k, v)| (k.clone(), v.value.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some((name, env))
                })
                .collect();
            if let (Some(raw), Some(config)) = (raw.as_ref(), config.as_mut()) {
                // Problems in the main file were reported above.
                let mut already_reported = Collector::new(path);
                let main_zookeeper = validate::zookeeper_parts(
                    raw.zookeeper_servers.as_ref(),
                    raw.zookeeper_tls.as_ref(),
                    raw.zookeeper_timeout.as_ref(),
                    &mut already_reported,
                );
                let abstract_diskimages = raw
                    .diskimages
                    .iter()
                    .flat_map(|d| d.value.iter())
                    .filter(|d| d.abstract_.as_ref().is_some_and(|a| a.value))
                    .filter_map(|d| d.name.as_ref().map(|n| n.value.clone()))
                    .collect();
                let parts = validate::SecureParts {
                    main_zookeeper,
                    zookeeper,
                    diskimage_env,
                    abstract_diskimages,
                };
                validate::apply_secure(config, parts, &mut secure_cx);
            }
        }
        if secure_cx.has_errors() {
            config = None;
        }
        diagnostics.extend(secure_cx.diagnostics);
    }
    match config {
        Some(config) if !diagnostics.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            config,
            warnings: diagnostics,
        }),
        _ => Err(ConfigErrors(diagnostics)),
    }
}

/// Text -> substituted -> YAML -> raw struct, recording problems in `cx`.
fn read_raw<T: Decode + Default>(
    cx: &mut Collector,
    text: &str,
    env: &Env,
    empty_ok: bool,
) -> Option<T> {
    let text = substitute_env(text, env);
    let document = match yaml::parse(&text) {
        Ok(document) => document,
        Err(problem) => {
            cx.error(
                &At {
                    path: String::new(),
                    mark: problem.mark,
                },
                problem.message,
            );
            return None;
        }
    };
    for warning in document.warnings {
        cx.warn(
            &At {
                path: String::new(),
                mark: warning.mark,
            },
            warning.message,
        );
    }
    match document.root {
        None if empty_ok => Some(T::default()),
        None => {
            cx.error(&At::default(), "the configuration file is empty");
            None
        }
        Some(root) => T::decode(
            &root,
            &At {
                path: String::new(),
                mark: root.mark,
            },
            cx,
        ),
    }
}
