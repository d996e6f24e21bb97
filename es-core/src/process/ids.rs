//! The deterministic ids of what an instance does: its commands' ids and causation ids, and its
//! deadlines' ids, all derived from what triggered the handler ([`Trigger`]).

/// What made a handler run: an event of the log, or one of the instance's deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The event at this position.
    Event(u64),
    /// The deadline with this id ([`Trigger::deadline_id`]).
    Deadline(String),
}

/// Deadline ids longer than this are replaced by a hash (a chain of deadlines, each scheduled
/// by the previous one's handler, would otherwise grow one step per link).
const MAX_DEADLINE_ID: usize = 64;

impl Trigger {
    /// Appends the trigger's part of an id: the event's position, or the deadline's id (which
    /// always holds a `:`, so the two never meet).
    fn push(&self, out: &mut String) {
        match self {
            Trigger::Event(position) => push_decimal(out, *position),
            Trigger::Deadline(id) => out.push_str(id),
        }
    }

    /// The id of the `index`th command the handler sent:
    /// `{manager}/{key}/{trigger}/{index}` (see [`command_id`]).
    pub(crate) fn command_id(&self, manager: &str, key: &str, index: u32) -> String {
        // Written by hand rather than with `format!`: two ids per transfer, and the formatting
        // machinery cost about ten times as much as the copying.
        let mut id = String::with_capacity(manager.len() + key.len().min(128) + 40);
        id.push_str(manager);
        id.push('/');
        if key.len() > 128 {
            id.push_str(&format!("#{:016x}", fnv1a(key.as_bytes())));
        } else {
            id.push_str(key);
        }
        id.push('/');
        self.push(&mut id);
        id.push('/');
        push_decimal(&mut id, u64::from(index));
        id
    }

    /// The causation id of the handler's commands: `event@{position}` or `deadline@{id}`.
    pub(crate) fn causation_id(&self) -> String {
        let mut id = String::with_capacity(26);
        id.push_str(match self {
            Trigger::Event(_) => "event@",
            Trigger::Deadline(_) => "deadline@",
        });
        self.push(&mut id);
        id
    }

    /// The id of the `index`th deadline the handler scheduled: `{trigger}:{index}` (`7:0` for
    /// the first one scheduled by the event at 7, `7:0:0` for the first one its handler
    /// scheduled in turn); a longer id than 64 bytes is replaced by `#` and its FNV-1a hash.
    pub(crate) fn deadline_id(&self, index: u32) -> String {
        let mut id = String::with_capacity(24);
        self.push(&mut id);
        id.push(':');
        push_decimal(&mut id, u64::from(index));
        if id.len() > MAX_DEADLINE_ID {
            return format!("#{:016x}", fnv1a(id.as_bytes()));
        }
        id
    }
}

/// The id of the `index`th command that manager `manager`'s instance `key` sent while handling
/// the event at `position` (rejections of those commands continue the count).
///
/// `{manager}/{key}/{position}/{index}`; a key longer than 128 bytes is replaced by a stable
/// 64-bit FNV-1a hash of it, so the id stays within the store's limit. The commands of a
/// deadline's handler have the deadline's id (such as `7:0`) in place of the position.
pub fn command_id(manager: &str, key: &str, position: u64, index: u32) -> String {
    Trigger::Event(position).command_id(manager, key, index)
}

/// The causation id of the commands an event at `position` triggered: `event@{position}`.
/// (Those of a deadline's handler: `deadline@{id}`.)
pub fn causation_id(position: u64) -> String {
    Trigger::Event(position).causation_id()
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|d| char::from(*d)));
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::{Trigger, causation_id, command_id};

    #[test]
    fn command_ids_are_readable_and_long_keys_are_hashed_stably() {
        assert_eq!(command_id("transfers", "t-1", 7, 2), "transfers/t-1/7/2");
        assert_eq!(causation_id(7), "event@7");
        assert_eq!(causation_id(0), "event@0");
        assert_eq!(
            command_id("m", "k", u64::MAX, u32::MAX),
            "m/k/18446744073709551615/4294967295"
        );
        assert_eq!(command_id("m", "", 10, 0), "m//10/0");
        let long = "k".repeat(300);
        let id = command_id("transfers", &long, 7, 0);
        assert!(id.len() < 64, "{id}");
        assert_eq!(id, command_id("transfers", &long, 7, 0));
        // FNV-1a 64 of the key: stable across runs, builds and platforms.
        assert_eq!(id, "transfers/#1f2d4d02dcfcfcf1/7/0");
        assert_ne!(id, command_id("transfers", &"k".repeat(301), 7, 0));
    }

    #[test]
    fn deadline_ids_chain_and_stay_short() {
        let first = Trigger::Event(7).deadline_id(0);
        assert_eq!(first, "7:0");
        let deadline = Trigger::Deadline(first);
        assert_eq!(deadline.deadline_id(1), "7:0:1");
        assert_eq!(deadline.causation_id(), "deadline@7:0");
        assert_eq!(
            deadline.command_id("transfers", "t-1", 2),
            "transfers/t-1/7:0/2"
        );
        let mut id = Trigger::Event(u64::MAX).deadline_id(0);
        for _ in 0..100 {
            id = Trigger::Deadline(id).deadline_id(u32::MAX);
            assert!(id.len() <= 64 + 11, "{id}");
        }
        assert_ne!(
            Trigger::Deadline(id.clone()).deadline_id(0),
            Trigger::Deadline(id).deadline_id(1)
        );
    }
}
