//! Who caused a change: recorded on every event (`actor`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A member (by the token's `sub`), an API key (by its id, never its secret), or Herald's
/// own work (by the function doing it: `sender`, `scheduler`, `provider-callback`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Actor {
    User { sub: String },
    ApiKey { id: Uuid },
    System { function: String },
}

impl Actor {
    pub fn system(function: &str) -> Actor {
        Actor::System {
            function: function.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_serialise_as_the_design_says() {
        let key = Uuid::nil();
        let cases = [
            (
                Actor::User {
                    sub: "alice".into(),
                },
                r#"{"type":"user","sub":"alice"}"#.to_owned(),
            ),
            (
                Actor::ApiKey { id: key },
                format!(r#"{{"type":"apiKey","id":"{key}"}}"#),
            ),
            (
                Actor::system("sender"),
                r#"{"type":"system","function":"sender"}"#.to_owned(),
            ),
        ];
        for (actor, json) in cases {
            assert_eq!(serde_json::to_string(&actor).unwrap(), json);
            assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), actor);
        }
    }
}
