//! Roles within a tenant.

use std::str::FromStr;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

/// What a handler is about to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Tenant administration: members, provider, performance stats.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Read => true,
            Access::Write => self != Role::Viewer,
            Access::Admin => matches!(self, Role::Owner | Role::Admin),
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_reads_only() {
        assert!(Role::Viewer.allows(Access::Read));
        assert!(!Role::Viewer.allows(Access::Write));
        assert!(!Role::Member.allows(Access::Admin));
        assert!(Role::Admin.allows(Access::Admin));
    }
}
