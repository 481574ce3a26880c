//! librdkafka properties from `-X key=value` and `-F FILE`, and keeping
//! their secrets out of everything kuniq prints.
//!
//! A property whose key names a secret ([`is_secret`]: passwords, keys,
//! tokens, client secrets) is never shown: its `Debug` prints
//! `key=[redacted]`, and errors about properties go through [`redact`],
//! which blanks every secret value of the run wherever it appears. The
//! value still reaches librdkafka unchanged.

use std::fmt;
use std::path::Path;

/// Stands in for a secret in anything kuniq prints.
pub const REDACTED: &str = "[redacted]";

/// One librdkafka property as the user wrote it, `key=value` (or, for a
/// malformed `-X`, whatever was given; [`super::client_config`] refuses it).
///
/// Its `Debug` hides the value of secret keys, so a config struct holding
/// properties can be debug-printed safely.
#[derive(Clone, PartialEq, Eq)]
pub struct Property(String);

impl Property {
    /// The key (trimmed), or the whole text when there is no `=`.
    pub fn key(&self) -> &str {
        self.0.split_once('=').map_or(self.0.as_str(), |(k, _)| k).trim()
    }

    /// The value (trimmed); None when there is no `=`.
    pub fn value(&self) -> Option<&str> {
        self.0.split_once('=').map(|(_, v)| v.trim())
    }

    /// True when the value must never be printed.
    pub fn is_secret(&self) -> bool {
        is_secret(self.key())
    }

    /// The property for messages: `key=value`, or `key=[redacted]`.
    pub fn shown(&self) -> String {
        match self.value() {
            Some(_) if self.is_secret() => format!("{}={REDACTED}", self.key()),
            _ => self.0.clone(),
        }
    }
}

impl From<String> for Property {
    fn from(text: String) -> Property {
        Property(text)
    }
}

impl From<&str> for Property {
    fn from(text: &str) -> Property {
        Property(text.to_string())
    }
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// True for keys whose values are secrets: any key that mentions a
/// password, secret, token, key or credential (`sasl.password`,
/// `ssl.key.password`, `ssl.key.pem`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`...), and `sasl.oauthbearer.config`,
/// which may carry one. Paths such as `ssl.key.location` are hidden too:
/// hiding a harmless value costs less than showing a secret.
pub fn is_secret(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    ["password", "secret", "token", "key", "credential", "sasl.oauthbearer.config"]
        .iter()
        .any(|word| key.contains(word))
}

/// `text` with every secret value of `properties` replaced by
/// [`REDACTED`], for messages that may quote a value (librdkafka's
/// "Invalid value ..." errors do).
pub fn redact(text: &str, properties: &[Property]) -> String {
    let mut text = text.to_string();
    let mut secrets: Vec<&str> =
        properties.iter().filter(|p| p.is_secret()).filter_map(Property::value).filter(|v| !v.is_empty()).collect();
    // Longest first, so a secret that contains another is blanked whole.
    secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for secret in secrets {
        text = text.replace(secret, REDACTED);
    }
    text
}

/// How a malformed `-X` argument (one without `=`) is named in errors:
/// quoted when it looks like a property key, otherwise not shown, since it
/// may be a secret typed in the wrong place.
pub fn describe_malformed(text: &str) -> String {
    let looks_like_key =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if looks_like_key && !is_secret(text) {
        format!("'{text}'")
    } else if looks_like_key {
        format!("'{text}' (a secret's key: give -X {text}=VALUE, or put it in a -F file)")
    } else {
        "an argument without '=' (not shown: it may be a secret)".to_string()
    }
}

/// Reads a properties file (`-F`), as kcat's `-F`: one `key=value` per
/// line; blank lines and lines starting with `#` or `!` are skipped;
/// spaces around keys and values are trimmed. Errors name the file and the
/// line number, never the line, which may hold a secret.
pub fn read_file(path: &Path) -> Result<Vec<Property>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the Kafka config file '{}': {e}", path.display()))?;
    parse_file(&text).map_err(|line| {
        format!("Kafka config file '{}', line {line}: expected key=value (a librdkafka property)", path.display())
    })
}

/// The properties in a config file's text; Err(line number) for a line
/// that is not `key=value`.
fn parse_file(text: &str) -> Result<Vec<Property>, usize> {
    let mut properties = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        match line.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() => properties.push(Property::from(line)),
            _ => return Err(n + 1),
        }
    }
    Ok(properties)
}

/// The secrets in raw command-line arguments: the values of secret `-X`
/// properties, and the argument after a secret key given without `=`
/// (`-X sasl.password hunter2`, where the parser then complains about the
/// unexpected `hunter2`). Used to clean the parser's own error messages.
pub fn secrets_in_args(args: &[String]) -> Vec<Property> {
    let mut secrets = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let x = match args[i].as_str() {
            "-X" => {
                i += 1;
                args.get(i).map(String::as_str)
            }
            arg => arg.strip_prefix("-X").map(|rest| rest.strip_prefix('=').unwrap_or(rest)),
        };
        i += 1;
        let Some(pair) = x.map(Property::from) else {
            continue;
        };
        if !pair.is_secret() {
            continue;
        }
        match pair.value() {
            Some(_) => secrets.push(pair),
            None => {
                if let Some(next) = args.get(i) {
                    secrets.push(Property(format!("{}={next}", pair.key())));
                }
            }
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "ssl.ca.location", "fetch.wait.max.ms", "client.id"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn debug_hides_secret_values() {
        let props: Vec<Property> = vec!["sasl.password=hunter2".into(), "sasl.username=kuniq".into()];
        let shown = format!("{props:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password=[redacted]") && shown.contains("sasl.username=kuniq"), "{shown}");
    }

    #[test]
    fn redact_blanks_every_secret_value() {
        let props: Vec<Property> =
            vec!["sasl.password=hunter2".into(), "ssl.key.password=hunter22".into(), "client.id=hunter".into()];
        let text = redact("Invalid value \"hunter22\" and hunter2 for client hunter", &props);
        assert_eq!(text, "Invalid value \"[redacted]\" and [redacted] for client hunter");
    }

    #[test]
    fn malformed_arguments_are_quoted_only_when_they_look_like_keys() {
        assert_eq!(describe_malformed("fetch.wait.max.ms"), "'fetch.wait.max.ms'");
        assert!(!describe_malformed("Hunter2!").contains("Hunter2"));
        assert!(describe_malformed("sasl.password").contains("-F"));
    }

    #[test]
    fn config_files() {
        let text = "# SASL\n\n  sasl.username = kuniq \n! also a comment\nsasl.password=a=b\n";
        let props = parse_file(text).unwrap();
        assert_eq!(
            props.iter().map(|p| (p.key(), p.value())).collect::<Vec<_>>(),
            [("sasl.username", Some("kuniq")), ("sasl.password", Some("a=b"))]
        );
        assert_eq!(parse_file("a=1\nhunter2\n"), Err(2));
        assert_eq!(parse_file("=hunter2\n"), Err(1));
    }

    #[test]
    fn secrets_are_found_in_raw_arguments() {
        let args: Vec<String> =
            ["count", "-X", "sasl.password=s1", "-Xssl.key.password=s2", "-X", "sasl.password", "s3"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let secrets: Vec<_> = secrets_in_args(&args).iter().map(|p| p.value().unwrap().to_string()).collect();
        assert_eq!(secrets, ["s1", "s2", "s3"]);
        assert!(secrets_in_args(&["-X".into(), "client.id=x".into()]).is_empty());
    }
}
