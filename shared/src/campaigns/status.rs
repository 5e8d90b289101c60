//! The campaign status machine.
//!
//! ```text
//! draft ──schedule──▶ scheduled ──start──▶ running ──complete──▶ completed
//!   └───────────start───────────────────▶ │  ▲  │
//!                                    pause │  │ resume
//!                                          ▼  │
//!                                        paused ──complete──▶ completed
//! cancel: draft | scheduled | running | paused ──▶ cancelled
//! ```
//!
//! `completed` and `cancelled` are final. [`transition`] is the only place that knows the
//! table; the store applies its answer with a conditional `UPDATE`, so two racing
//! transitions cannot both succeed.

use std::fmt;

use serde::Serialize;

/// Where a campaign is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CampaignStatus)]
pub enum Status {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Draft,
        Status::Scheduled,
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Cancelled,
    ];

    /// The value stored in `campaigns.status` (and shown by the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the campaign's name, template, group and schedule may still change.
    pub fn is_editable(self) -> bool {
        matches!(self, Status::Draft | Status::Scheduled)
    }

    /// Whether the campaign may be (soft) deleted: never while it is sending.
    pub fn is_deletable(self) -> bool {
        self != Status::Running
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(raw: String) -> Result<Status, String> {
        Status::parse(&raw).ok_or_else(|| format!("unknown campaign status {raw:?}"))
    }
}

/// What is asked of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Start later: `POST .../start` when `scheduledAt` is in the future.
    Schedule,
    /// Start now: `POST .../start` otherwise, and the scheduler when a schedule comes due.
    Start,
    Pause,
    Resume,
    /// Every message is done (the campaign engine's to decide).
    Complete,
    Cancel,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Schedule,
        Action::Start,
        Action::Pause,
        Action::Resume,
        Action::Complete,
        Action::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Schedule => "schedule",
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Complete => "complete",
            Action::Cancel => "cancel",
        }
    }
}

/// `action` is not possible from `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from} campaign cannot {action}", action = .action.as_str())]
pub struct IllegalTransition {
    pub from: Status,
    pub action: Action,
}

/// The status `action` leads to from `from`, or why it cannot happen.
pub fn transition(from: Status, action: Action) -> Result<Status, IllegalTransition> {
    use Action as A;
    use Status as S;
    match (from, action) {
        (S::Draft, A::Schedule) => Ok(S::Scheduled),
        (S::Draft | S::Scheduled, A::Start) => Ok(S::Running),
        (S::Running, A::Pause) => Ok(S::Paused),
        (S::Paused, A::Resume) => Ok(S::Running),
        (S::Running | S::Paused, A::Complete) => Ok(S::Completed),
        (S::Draft | S::Scheduled | S::Running | S::Paused, A::Cancel) => Ok(S::Cancelled),
        (from, action) => Err(IllegalTransition { from, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Action as A;
    use Status as S;

    /// Every legal transition; any pair not listed here must be refused.
    const LEGAL: &[(Status, Action, Status)] = &[
        (S::Draft, A::Schedule, S::Scheduled),
        (S::Draft, A::Start, S::Running),
        (S::Draft, A::Cancel, S::Cancelled),
        (S::Scheduled, A::Start, S::Running),
        (S::Scheduled, A::Cancel, S::Cancelled),
        (S::Running, A::Pause, S::Paused),
        (S::Running, A::Complete, S::Completed),
        (S::Running, A::Cancel, S::Cancelled),
        (S::Paused, A::Resume, S::Running),
        (S::Paused, A::Complete, S::Completed),
        (S::Paused, A::Cancel, S::Cancelled),
    ];

    #[test]
    fn the_whole_table() {
        let mut legal = 0;
        for from in Status::ALL {
            for action in Action::ALL {
                let expected = LEGAL
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (transition(from, action), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{from} + {action:?}");
                        legal += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e, IllegalTransition { from, action });
                        assert!(e.to_string().contains(from.as_str()));
                    }
                    (got, want) => panic!("{from} + {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(legal, LEGAL.len());
    }

    #[test]
    fn final_states_are_final() {
        for from in [S::Completed, S::Cancelled] {
            for action in Action::ALL {
                assert!(transition(from, action).is_err(), "{from} + {action:?}");
            }
        }
    }

    #[test]
    fn no_transition_stays_put() {
        for from in Status::ALL {
            for action in Action::ALL {
                assert_ne!(transition(from, action), Ok(from), "{from} + {action:?}");
            }
        }
    }

    #[test]
    fn edits_and_deletes() {
        let editable: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_editable())
            .collect();
        assert_eq!(editable, [S::Draft, S::Scheduled]);
        let undeletable: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| !s.is_deletable())
            .collect();
        assert_eq!(undeletable, [S::Running]);
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::parse("Draft"), None);
    }
}
