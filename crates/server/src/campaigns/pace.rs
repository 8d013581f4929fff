//! A messages-per-second limit: each message gets the next free slot, one interval
//! after the previous one's, and waits for it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    pub fn per_second(n: u32) -> Self {
        Pace {
            interval: Duration::from_secs(1) / n.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this message's slot.
    pub async fn wait(&self) {
        let slot = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eleven_messages_at_a_hundred_a_second_span_at_least_a_tenth_of_a_second() {
        let pace = Pace::per_second(100);
        let start = Instant::now();
        for _ in 0..11 {
            pace.wait().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
