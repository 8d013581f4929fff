//! Who can be reached on which channel: one bit set per channel and address state, kept
//! by contact writes, so that the reach of a rule and a campaign's audience are counted
//! from bits, with no contact read.

use crate::bits::Bits;

/// The state of a contact's address on one channel, as campaigns decide it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Address {
    /// No address on this channel.
    #[default]
    None,
    Subscribed,
    Unsubscribed,
    /// E-mail only: the address bounced.
    Bounced,
}

/// A contact's addresses, as the store's effective statuses give them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Channels {
    pub email: Address,
    pub sms: Address,
    /// At least one push token.
    pub push: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
    Push,
}

/// How many contacts of a set can be sent to on each channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReachCounts {
    pub email: u64,
    pub sms: u64,
    pub push: u64,
}

/// A set of contacts split by whether a channel reaches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reachable {
    /// The contacts a message on the channel goes to.
    pub recipients: Bits,
    pub no_address: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
}

/// The bit sets: per channel, one per address state (no address is what none holds).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Reach {
    email: [Bits; 3],
    sms: [Bits; 3],
    push: Bits,
}

fn state_index(a: Address) -> Option<usize> {
    match a {
        Address::None => None,
        Address::Subscribed => Some(0),
        Address::Unsubscribed => Some(1),
        Address::Bounced => Some(2),
    }
}

fn assign(sets: &mut [Bits; 3], slot: u32, a: Address) {
    let want = state_index(a);
    for (i, set) in sets.iter_mut().enumerate() {
        if want == Some(i) {
            set.set(slot);
        } else if set.get(slot) {
            set.clear(slot);
        }
    }
}

impl Reach {
    pub fn set(&mut self, slot: u32, channels: &Channels) {
        assign(&mut self.email, slot, channels.email);
        assign(&mut self.sms, slot, channels.sms);
        if channels.push {
            self.push.set(slot);
        } else if self.push.get(slot) {
            self.push.clear(slot);
        }
    }

    pub fn clear(&mut self, slot: u32) {
        self.set(slot, &Channels::default());
    }

    pub fn get(&self, slot: u32) -> Channels {
        let state = |sets: &[Bits; 3]| {
            [Address::Subscribed, Address::Unsubscribed, Address::Bounced]
                .into_iter()
                .zip(sets)
                .find(|(_, s)| s.get(slot))
                .map_or(Address::None, |(a, _)| a)
        };
        Channels {
            email: state(&self.email),
            sms: state(&self.sms),
            push: self.push.get(slot),
        }
    }

    fn subscribed(&self, channel: Channel) -> &Bits {
        match channel {
            Channel::Email => &self.email[0],
            Channel::Sms => &self.sms[0],
            Channel::Push => &self.push,
        }
    }

    /// How many of `set` each channel reaches.
    pub fn counts(&self, set: &Bits) -> ReachCounts {
        ReachCounts {
            email: set.and_count(self.subscribed(Channel::Email)),
            sms: set.and_count(self.subscribed(Channel::Sms)),
            push: set.and_count(self.subscribed(Channel::Push)),
        }
    }

    /// `set` split for a message on `channel`.
    pub fn split(&self, set: &Bits, channel: Channel) -> Reachable {
        let mut recipients = set.clone();
        recipients.and_with(self.subscribed(channel));
        let (unsubscribed, bounced) = match channel {
            Channel::Email => (set.and_count(&self.email[1]), set.and_count(&self.email[2])),
            Channel::Sms => (set.and_count(&self.sms[1]), set.and_count(&self.sms[2])),
            Channel::Push => (0, 0),
        };
        let reached = recipients.count();
        Reachable {
            no_address: set.count() - reached - unsubscribed - bounced,
            recipients,
            unsubscribed,
            bounced,
        }
    }

    pub fn shrink(&mut self) {
        for b in self.email.iter_mut().chain(self.sms.iter_mut()) {
            b.shrink();
        }
        self.push.shrink();
    }

    pub fn heap_bytes(&self) -> usize {
        self.email
            .iter()
            .chain(&self.sms)
            .chain(std::iter::once(&self.push))
            .map(Bits::heap_bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each contact lands in exactly one bucket per channel, whatever its history.
    #[test]
    fn a_set_splits_into_recipients_and_exclusions_by_reason() {
        let mut reach = Reach::default();
        let states = [
            Address::None,
            Address::Subscribed,
            Address::Unsubscribed,
            Address::Bounced,
        ];
        let mut model = Vec::new();
        for slot in 0..200u32 {
            // Every contact changes state once, so stale bits would show.
            let first = Channels {
                email: states[(slot as usize) % 4],
                sms: states[(slot as usize / 4) % 3],
                push: slot % 3 == 0,
            };
            reach.set(slot, &first);
            let now = Channels {
                email: states[(slot as usize * 7) % 4],
                sms: states[(slot as usize * 5) % 3],
                push: slot % 5 == 0,
            };
            reach.set(slot, &now);
            model.push(now);
        }
        reach.clear(7);
        model[7] = Channels::default();
        let mut set = Bits::new(200);
        for slot in (0..200).step_by(3) {
            set.set(slot);
        }
        let in_set = || (0..200u32).step_by(3).map(|s| model[s as usize]);
        let email = reach.split(&set, Channel::Email);
        let count = |f: &dyn Fn(&Channels) -> bool| in_set().filter(|c| f(c)).count() as u64;
        assert_eq!(
            email.recipients.count(),
            count(&|c| c.email == Address::Subscribed)
        );
        assert_eq!(
            email.unsubscribed,
            count(&|c| c.email == Address::Unsubscribed)
        );
        assert_eq!(email.bounced, count(&|c| c.email == Address::Bounced));
        assert_eq!(email.no_address, count(&|c| c.email == Address::None));
        let push = reach.split(&set, Channel::Push);
        assert_eq!(push.recipients.count(), count(&|c| c.push));
        assert_eq!(push.no_address, count(&|c| !c.push));
        assert_eq!(
            reach.counts(&set),
            ReachCounts {
                email: count(&|c| c.email == Address::Subscribed),
                sms: count(&|c| c.sms == Address::Subscribed),
                push: count(&|c| c.push),
            }
        );
        for slot in 0..200u32 {
            assert_eq!(reach.get(slot), model[slot as usize], "slot {slot}");
        }
    }
}
