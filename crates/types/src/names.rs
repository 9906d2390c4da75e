//! Name validators for tenants, databases and collections (Chroma's rules and messages).

use std::net::IpAddr;

/// A name that breaks Chroma's rules; the message is Chroma's validator text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A tenant name of fewer than three characters.
    #[error("Validation error: name: Validation error: length [{{\"min\": Number(3), \"value\": String({0:?})}}]")]
    TenantTooShort(String),
    /// Length outside 3–512, a character outside `[a-zA-Z0-9._-]`, or a non-alphanumeric end.
    #[error("Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: {0}")]
    Shape(String),
    #[error("Expected a name that does not contains two consecutive periods (..). Got {0}")]
    DoublePeriod(String),
    #[error("Expected a name that is not a valid ip address. Got {0}")]
    IpAddress(String),
    /// A `topology+name` longer than 512 bytes (the length).
    #[error("Expected a name containing 3-512 characters. Got: {0}")]
    TooLong(usize),
    #[error("Expected a name to contain at most one topology:  Got two `+` characters.")]
    TwoTopologies,
}

/// Tenant names need at least three characters; nothing else is checked.
///
/// # Errors
/// [`NameError::TenantTooShort`].
pub fn validate_tenant_name(name: &str) -> Result<(), NameError> {
    if name.chars().count() < 3 {
        return Err(NameError::TenantTooShort(name.to_owned()));
    }
    Ok(())
}

/// Database names follow the collection name rules.
///
/// # Errors
/// As [`validate_collection_name`].
pub fn validate_database_name(name: &str) -> Result<(), NameError> {
    validate_collection_name(name)
}

fn plain_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let ok_len = (3..=512).contains(&bytes.len());
    let ok_chars = bytes
        .iter()
        .all(|&b| alnum(b) || b == b'.' || b == b'_' || b == b'-');
    if !ok_len
        || !ok_chars
        || !bytes.first().is_some_and(|&b| alnum(b))
        || !bytes.last().is_some_and(|&b| alnum(b))
    {
        return Err(NameError::Shape(name.to_owned()));
    }
    if name.contains("..") {
        return Err(NameError::DoublePeriod(name.to_owned()));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(NameError::IpAddress(name.to_owned()));
    }
    Ok(())
}

/// Chroma's collection name validator (3–512 of `[a-zA-Z0-9._-]`, alphanumeric ends, no `..`,
/// not an IP address; one `+` splits a topology prefix, both halves valid).
///
/// # Errors
/// The rule broken; its message is the validator text, without a `Validation error: name:`
/// prefix.
pub fn validate_collection_name(name: &str) -> Result<(), NameError> {
    match name.split_once('+') {
        None => plain_name(name),
        Some((_, rest)) if rest.contains('+') => Err(NameError::TwoTopologies),
        Some((topology, rest)) => {
            plain_name(topology)?;
            plain_name(rest)?;
            if name.len() > 512 {
                return Err(NameError::TooLong(name.len()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_follow_chroma_rules() {
        for ok in ["abc", "a.b-c_d", "A1z", "abc+def", &"a".repeat(512)] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a..b",
            "192.168.0.1",
            "été",
            "ab+cd",
            "a+b+c",
            "a b c",
            &"a".repeat(513),
        ] {
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_collection_name("db").expect_err("short").to_string(),
            "Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: db"
        );
        assert_eq!(
            validate_collection_name("a+b+c"),
            Err(NameError::TwoTopologies)
        );
    }

    #[test]
    fn tenant_names_need_three_chars() {
        assert!(validate_tenant_name("a b").is_ok());
        assert_eq!(
            validate_tenant_name("t1").expect_err("short").to_string(),
            "Validation error: name: Validation error: length [{\"min\": Number(3), \"value\": String(\"t1\")}]"
        );
    }
}
