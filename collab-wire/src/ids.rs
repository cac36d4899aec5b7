//! Identifiers: sessions, participants, connections, users and sequence numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Length of a session id in characters: 16 random bytes in unpadded base64url.
const SESSION_ID_LEN: usize = 22;
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A session's id: 128 random bits written as 22 URL-safe characters.
///
/// Ids are unguessable so that a shared link (`?session=ID`) is the capability to
/// find the session; joining still goes through the server's authenticator.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// The id that these 16 bytes encode. Servers pass 16 random bytes;
    /// tests pass fixed ones for repeatable ids.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(base64url(&bytes))
    }

    /// Parses an id that came from outside (a URL, a frame).
    ///
    /// # Errors
    /// [`InvalidSessionId`] unless `s` is 22 base64url characters.
    pub fn parse(s: &str) -> Result<Self, InvalidSessionId> {
        let valid = s.len() == SESSION_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSessionId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `bytes` in unpadded URL-safe base64.
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(BASE64URL[((bits >> nbits) & 0x3f) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(BASE64URL[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out
}

/// The text given is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id: expected 22 URL-safe base64 characters")]
pub struct InvalidSessionId;

impl TryFrom<String> for SessionId {
    type Error = InvalidSessionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

/// A participant's id, stable for the life of the session: the same user who
/// reconnects or refreshes the page gets the same id back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u32);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One live connection (a WebSocket, a long-poll client) to a session.
///
/// Allocated by the driver; unique within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub u64);

/// A position in a session's event log. Every event, chat message included, gets
/// the next one, so one sequence gives everyone the same order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user as the host application knows them, as told by the server's authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl UserId {
    /// Wraps the host application's user id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_22_url_safe_chars_and_round_trip() {
        let id = SessionId::from_bytes(*b"0123456789abcdef");
        assert_eq!(id.as_str().len(), 22);
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
    }

    #[test]
    fn session_id_encoding_uses_every_bit() {
        assert_eq!(
            SessionId::from_bytes([0; 16]).as_str(),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            SessionId::from_bytes([0xff; 16]).as_str(),
            "_____________________w"
        );
        let a = SessionId::from_bytes([1; 16]);
        let mut other = [1; 16];
        other[15] = 2;
        assert_ne!(a, SessionId::from_bytes(other));
    }

    #[test]
    fn bad_session_ids_are_rejected() {
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAA/",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "../../etc/passwd/xxxxx",
        ] {
            assert_eq!(SessionId::parse(bad), Err(InvalidSessionId), "{bad}");
        }
        assert!(serde_json::from_str::<SessionId>("\"nope\"").is_err());
    }
}
