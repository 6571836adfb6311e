//! Time as status, history and events write it.

use std::time::SystemTime;

/// RFC 3339, to the second, in UTC.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}
