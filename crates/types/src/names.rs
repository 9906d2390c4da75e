//! Name validators for tenants, databases and collections (Chroma's rules and messages).

use std::net::IpAddr;

/// Tenant names need at least three characters; nothing else is checked.
///
/// # Errors
/// Chroma's length message.
pub fn validate_tenant_name(name: &str) -> Result<(), String> {
    if name.chars().count() < 3 {
        return Err(format!(
            "Validation error: name: Validation error: length [{{\"min\": Number(3), \"value\": String({name:?})}}]"
        ));
    }
    Ok(())
}

/// Database names follow the collection name rules.
///
/// # Errors
/// The validator text, without a prefix.
pub fn validate_database_name(name: &str) -> Result<(), String> {
    validate_collection_name(name)
}

fn plain_name(name: &str) -> Result<(), String> {
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
        return Err(format!(
            "Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: {name}"
        ));
    }
    if name.contains("..") {
        return Err(format!(
            "Expected a name that does not contains two consecutive periods (..). Got {name}"
        ));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "Expected a name that is not a valid ip address. Got {name}"
        ));
    }
    Ok(())
}

/// Chroma's collection name validator (3–512 of `[a-zA-Z0-9._-]`, alphanumeric ends, no `..`,
/// not an IP address; one `+` splits a topology prefix, both halves valid).
///
/// # Errors
/// The validator text, without a `Validation error: name:` prefix.
pub fn validate_collection_name(name: &str) -> Result<(), String> {
    match name.matches('+').count() {
        0 => plain_name(name),
        1 => {
            let (topology, rest) = name.split_once('+').expect("one '+' is present");
            plain_name(topology)?;
            plain_name(rest)?;
            if name.len() > 512 {
                return Err(format!(
                    "Expected a name containing 3-512 characters. Got: {}",
                    name.len()
                ));
            }
            Ok(())
        }
        _ => {
            Err("Expected a name to contain at most one topology:  Got two `+` characters.".into())
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
            validate_collection_name("db").expect_err("short"),
            "Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: db"
        );
    }

    #[test]
    fn tenant_names_need_three_chars() {
        assert!(validate_tenant_name("a b").is_ok());
        assert_eq!(
            validate_tenant_name("t1").expect_err("short"),
            "Validation error: name: Validation error: length [{\"min\": Number(3), \"value\": String(\"t1\")}]"
        );
    }
}
