//! A message's delivery status, which only ever moves forward:
//!
//! ```text
//! queued → sending → sent → delivered → read
//!    └────────┴────────┴──→ failed
//!    └────────┴──→ cancelled (the campaign was cancelled before it went out)
//! ```
//!
//! Steps may be skipped (a provider may report `delivered` without `sent`), but a report
//! that would move a message backwards or sideways (a late `sent` after `delivered`, a
//! second `delivered`, anything after `failed`) is ignored. `failed` is possible until the
//! message is delivered.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Position on the way to `read`; `None` for `failed`, which is off that way.
    fn rank(self) -> Option<u8> {
        match self {
            MessageStatus::Queued => Some(0),
            MessageStatus::Sending => Some(1),
            MessageStatus::Sent => Some(2),
            MessageStatus::Delivered => Some(3),
            MessageStatus::Read => Some(4),
            MessageStatus::Failed | MessageStatus::Cancelled => None,
        }
    }

    /// Whether a message in this status has got at least as far as `stage`.
    fn reached(self, stage: MessageStatus) -> bool {
        matches!((self.rank(), stage.rank()), (Some(s), Some(t)) if s >= t)
    }

    /// The statuses a message may move to `self` from (for a conditional `UPDATE`).
    pub fn sources(self) -> Vec<MessageStatus> {
        MessageStatus::ALL
            .into_iter()
            .filter(|from| advance(*from, self).is_ok())
            .collect()
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for MessageStatus {
    type Error = String;
    fn try_from(raw: String) -> Result<MessageStatus, String> {
        MessageStatus::parse(&raw).ok_or_else(|| format!("unknown message status {raw:?}"))
    }
}

/// Why a status report is not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("the message is already {0}")]
    Same(MessageStatus),
    #[error("the message is already {from}, which is past {to}")]
    Backwards {
        from: MessageStatus,
        to: MessageStatus,
    },
    #[error("the message has failed; failed is final")]
    AfterFailure,
    #[error("the message was cancelled; cancelled is final")]
    AfterCancel,
    #[error("the message is already {0}; only a message not yet sent can be cancelled")]
    TooLateToCancel(MessageStatus),
    #[error("the message is already {0}; only a message not yet delivered can fail")]
    TooLateToFail(MessageStatus),
}

/// Whether a message in `from` may move to `to`.
pub fn advance(from: MessageStatus, to: MessageStatus) -> Result<(), Ignored> {
    use MessageStatus as S;
    match (from, to) {
        (S::Cancelled, S::Cancelled) => Err(Ignored::Same(S::Cancelled)),
        (S::Cancelled, _) => Err(Ignored::AfterCancel),
        (S::Queued | S::Sending, S::Cancelled) => Ok(()),
        (_, S::Cancelled) => Err(Ignored::TooLateToCancel(from)),
        (S::Failed, S::Failed) => Err(Ignored::Same(S::Failed)),
        (S::Failed, _) => Err(Ignored::AfterFailure),
        (S::Queued | S::Sending | S::Sent, S::Failed) => Ok(()),
        (_, S::Failed) => Err(Ignored::TooLateToFail(from)),
        _ if from == to => Err(Ignored::Same(from)),
        _ if to.rank() > from.rank() => Ok(()),
        _ => Err(Ignored::Backwards { from, to }),
    }
}

/// How a campaign's counters change when one of its messages moves from `from` to `to`.
/// `sent`, `delivered` and `read` count messages that have got at least that far (a message
/// reported `delivered` without `sent` counts as both); `failed` counts failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterDelta {
    pub sent: i32,
    pub delivered: i32,
    pub read: i32,
    pub failed: i32,
}

impl CounterDelta {
    pub fn between(from: MessageStatus, to: MessageStatus) -> CounterDelta {
        let step = |stage| i32::from(to.reached(stage) && !from.reached(stage));
        CounterDelta {
            sent: step(MessageStatus::Sent),
            delivered: step(MessageStatus::Delivered),
            read: step(MessageStatus::Read),
            failed: i32::from(to == MessageStatus::Failed && from != MessageStatus::Failed),
        }
    }

    pub fn is_zero(self) -> bool {
        self == CounterDelta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use MessageStatus as S;

    /// Every applied move; any other pair must be ignored.
    const APPLIED: &[(MessageStatus, MessageStatus)] = &[
        (S::Queued, S::Sending),
        (S::Queued, S::Sent),
        (S::Queued, S::Delivered),
        (S::Queued, S::Read),
        (S::Queued, S::Failed),
        (S::Queued, S::Cancelled),
        (S::Sending, S::Sent),
        (S::Sending, S::Delivered),
        (S::Sending, S::Read),
        (S::Sending, S::Failed),
        (S::Sending, S::Cancelled),
        (S::Sent, S::Delivered),
        (S::Sent, S::Read),
        (S::Sent, S::Failed),
        (S::Delivered, S::Read),
    ];

    #[test]
    fn the_whole_table() {
        for from in MessageStatus::ALL {
            for to in MessageStatus::ALL {
                let expected = APPLIED.contains(&(from, to));
                let got = advance(from, to);
                assert_eq!(got.is_ok(), expected, "{from} → {to}: {got:?}");
                if from == to {
                    assert_eq!(got, Err(Ignored::Same(from)));
                }
            }
        }
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            advance(S::Delivered, S::Sent).unwrap_err().to_string(),
            "the message is already delivered, which is past sent"
        );
        assert_eq!(
            advance(S::Read, S::Failed).unwrap_err().to_string(),
            "the message is already read; only a message not yet delivered can fail"
        );
        assert_eq!(
            advance(S::Failed, S::Sent).unwrap_err(),
            Ignored::AfterFailure
        );
    }

    #[test]
    fn sources_match_the_table() {
        for to in MessageStatus::ALL {
            let want: Vec<_> = APPLIED
                .iter()
                .filter(|(_, t)| *t == to)
                .map(|(f, _)| *f)
                .collect();
            assert_eq!(to.sources(), want, "{to}");
        }
        assert!(S::Queued.sources().is_empty());
    }

    #[test]
    fn counters_follow_the_furthest_stage() {
        let d = |sent, delivered, read, failed| CounterDelta {
            sent,
            delivered,
            read,
            failed,
        };
        assert_eq!(CounterDelta::between(S::Queued, S::Sending), d(0, 0, 0, 0));
        assert_eq!(CounterDelta::between(S::Sending, S::Sent), d(1, 0, 0, 0));
        assert_eq!(
            CounterDelta::between(S::Queued, S::Delivered),
            d(1, 1, 0, 0)
        );
        assert_eq!(CounterDelta::between(S::Sent, S::Read), d(0, 1, 1, 0));
        assert_eq!(CounterDelta::between(S::Delivered, S::Read), d(0, 0, 1, 0));
        assert_eq!(CounterDelta::between(S::Sent, S::Failed), d(0, 0, 0, 1));
        assert_eq!(CounterDelta::between(S::Queued, S::Failed), d(0, 0, 0, 1));
        assert!(CounterDelta::between(S::Queued, S::Sending).is_zero());
    }

    #[test]
    fn any_applied_path_counts_each_stage_once() {
        // Walk every applied path from queued: no stage is counted twice, and a message
        // that did not fail ends counted exactly as its final status says.
        fn walk(at: MessageStatus, total: CounterDelta) {
            for n in [total.sent, total.delivered, total.read, total.failed] {
                assert!((0..=1).contains(&n), "ending at {at}: {total:?}");
            }
            if at != S::Failed {
                assert_eq!(
                    total,
                    CounterDelta::between(S::Queued, at),
                    "ending at {at}"
                );
            } else {
                assert_eq!(total.failed, 1);
            }
            for to in MessageStatus::ALL {
                if advance(at, to).is_ok() {
                    let step = CounterDelta::between(at, to);
                    walk(
                        to,
                        CounterDelta {
                            sent: total.sent + step.sent,
                            delivered: total.delivered + step.delivered,
                            read: total.read + step.read,
                            failed: total.failed + step.failed,
                        },
                    );
                }
            }
        }
        walk(S::Queued, CounterDelta::default());
    }
}
