//! Request body parsing in the error format of the spec.
//!
//! axum's own `Json` answers with plain-text rejections; ours names the path of the
//! offending value and tells malformed JSON (400) from JSON that breaks the contract (422).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted: room for a batch of 10,000 events with properties.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The raw body, for handlers that parse it themselves (see [`parse_json_fast`]), with
/// the same rejections as [`ApiJson`].
pub struct ApiBytes(pub Bytes);

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    }
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// Parses a body as `Fast` straight from the bytes when it can, else as `Slow` through
/// [`parse_json`]. For batch endpoints on the ingest path: a typed parse of the bytes
/// costs a fraction of building a `serde_json::Value` tree, walking it for NUL and then
/// converting each item. Any doubt sends the body down the slow path, which gives the
/// exact answer and error paths: a body that does not fit `Fast` (a mistake, a duplicate
/// key), or one that spells `\u0000` anywhere (it may be a NUL, which the slow path
/// reports with its path; a raw NUL byte is not JSON and fails the fast parse).
pub fn parse_json_fast<Fast, Slow>(bytes: &[u8]) -> Result<Result<Fast, Slow>, ApiError>
where
    Fast: DeserializeOwned,
    Slow: DeserializeOwned,
{
    if memchr::memmem::find(bytes, br"\u0000").is_none()
        && let Ok(fast) = serde_json::from_slice::<Fast>(bytes)
    {
        return Ok(Ok(fast));
    }
    parse_json(bytes).map(Err)
}

/// Parses a JSON body, reporting the path of the first value that does not fit `T`.
///
/// The syntax is checked whole first: a streaming parse would report an unknown key
/// (422) in a body that is not even JSON (400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
    let mut nul = Vec::new();
    find_nul(&value, "", &mut nul);
    if !nul.is_empty() {
        return Err(ApiError::Validation(nul));
    }
    parse_value(value, "body").map_err(|issue| ApiError::Validation(vec![issue]))
}

/// No text segmentd stores may hold U+0000: PostgreSQL's text type cannot, and a value
/// one backend keeps and the other refuses would break "both backends behave the same".
fn find_nul(value: &serde_json::Value, path: &str, out: &mut Vec<segmentd_rules::Issue>) {
    use serde_json::Value as J;
    let here = |p: &str| {
        if p.is_empty() {
            "body".to_owned()
        } else {
            p.to_owned()
        }
    };
    match value {
        J::String(s) if s.contains('\0') => out.push(segmentd_rules::Issue::new(
            here(path),
            "text must not contain the NUL character (U+0000)",
        )),
        J::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_nul(v, &format!("{path}[{i}]"), out);
            }
        }
        J::Object(map) => {
            for (k, v) in map {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    out.push(segmentd_rules::Issue::new(
                        here(path),
                        "keys must not contain the NUL character (U+0000)",
                    ));
                }
                find_nul(v, &sub, out);
            }
        }
        _ => {}
    }
}

/// Parses one JSON value (an item of a batch) as `T`, with paths under `prefix`.
pub fn parse_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, segmentd_rules::Issue> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let sub = err.path().to_string();
        // The body's own keys are named bare (`rule.any[0]`), items of a batch under
        // their batch path (`contacts[3].email`).
        let path = match (sub.as_str(), prefix) {
            (".", _) => prefix.to_owned(),
            (_, "body") => sub,
            _ => format!("{prefix}.{sub}"),
        };
        segmentd_rules::Issue::new(path, strip_position(&err.into_inner().to_string()))
    })
}

/// serde_json appends "at line 1 column 40"; the path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Refuses a batch body whose list under `key` holds more than `max` items, counting
/// them without building them and stopping at item `max + 1`: a body of millions of
/// tiny items costs a scan of its first `max + 1`, never their parse into values (a 60 MB
/// body of `[]`s would otherwise take seconds and gigabytes before its refusal). An empty
/// `key` counts a body that is itself the list. A body of another shape passes, for the
/// full parse to report.
pub fn check_batch_len(bytes: &[u8], key: &'static str, max: usize) -> Result<(), ApiError> {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// The error that says the list is too long (any other error is left to the parse).
    const TOO_MANY: &str = "segmentd: too many items";

    struct Count(usize);
    impl<'de> DeserializeSeed<'de> for Count {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Count {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
                if n > self.0 {
                    return Err(de::Error::custom(TOO_MANY));
                }
            }
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(())
        }
    }
    struct Body(&'static str, usize);
    impl<'de> Visitor<'de> for Body {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        /// A body that is itself the list (`key` is then empty).
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            if self.0.is_empty() {
                Count(self.1).visit_seq(seq)
            } else {
                Ok(())
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 {
                    map.next_value_seed(Count(self.1))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde::Deserializer::deserialize_any(&mut de, Body(key, max)) {
        Err(e) if e.to_string().starts_with(TOO_MANY) => Err(ApiError::validation(
            key,
            format!("expected at most {max} items in one batch; the list has more"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod batch_len_tests {
    use super::*;

    #[test]
    fn lists_are_counted_only_up_to_the_limit() {
        let many = format!("{{\"contacts\":[{}[]]}}", "[],".repeat(2_000_000));
        let cases: [(&str, bool); 7] = [
            (r#"{"contacts": [1, 2, 3]}"#, true),
            (r#"{"contacts": [1, 2, 3, 4]}"#, false),
            (r#"{"other": [1, 2, 3, 4], "contacts": []}"#, true),
            ("not json", true),
            (r#"{"contacts": "x"}"#, true),
            (&many, false),
            (r#"[1, 2, 3, 4]"#, true),
        ];
        for (body, ok) in cases {
            assert_eq!(
                check_batch_len(body.as_bytes(), "contacts", 3).is_ok(),
                ok,
                "{}",
                &body[..body.len().min(60)]
            );
        }
        // A body that is itself the list.
        assert!(check_batch_len(b"[1, 2, 3]", "", 3).is_ok());
        assert!(check_batch_len(b"[1, 2, 3, 4]", "", 3).is_err());
    }
}
