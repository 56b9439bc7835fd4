//! A flow's state: where it is in its definition tree and what it has gathered so far.
//! States are immutable snapshots stored in the state store under their token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::def::{Authentication, Channel, FlowDef, FlowKind, OtpForm, StepDef};
use super::otp::Purpose;
use crate::model::{
    Authenticator, AuthenticatorKind, Identity, LoginIdType, PasswordHistoryEntry, RecoveryCode,
    VerifiedClaim,
};

/// One level of the position: the step index in the current list, and the branch chosen
/// in that step once an input selected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub index: usize,
    pub branch: Option<usize>,
}

/// A login ID identified in this flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identified {
    pub step_name: Option<String>,
    pub login_id_type: LoginIdType,
    pub login_id_key: String,
    pub original: String,
    pub normalized: String,
    pub unique_key: String,
}

/// Why a `change_password` step after an authenticate step must run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordUse {
    pub step_name: Option<String>,
    pub authenticator_id: String,
    /// `policy` or `expiry` when the user must change it.
    pub force_change_reason: Option<String>,
}

/// An OOB OTP branch chosen in an `authenticate` or `create_authenticator` step, waiting
/// for its channel, code or link approval (`action.authentication` is set meanwhile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpChoice {
    /// Position of the step it belongs to; a choice elsewhere is stale.
    pub cursor: Vec<Frame>,
    pub branch: usize,
    pub authentication: Authentication,
    pub purpose: Purpose,
    /// Normalized email address or E.164 number.
    pub target: String,
    /// Channels offered; `channel` is chosen among them (at once when only one).
    pub channels: Vec<Channel>,
    pub channel: Option<Channel>,
    pub form: OtpForm,
    /// Login: the authenticator (or `oob:<target>` for a primary login ID) being proven.
    pub used_id: String,
    /// `create_authenticator`: the kind of the authenticator made once the code is right.
    pub creates: Option<AuthenticatorKind>,
}

/// A `secondary_totp` branch chosen in a `create_authenticator` step, waiting for the first
/// code from the user's app (`create_totp_data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpSetup {
    /// Position of the step it belongs to; a setup elsewhere is stale.
    pub cursor: Vec<Frame>,
    pub branch: usize,
    /// The new secret sealed for the user (`totp::seal_context`), exactly as the
    /// authenticator stores it: states live in a shared store too.
    pub sealed_secret: String,
}

/// Recovery codes generated on entering a `view_recovery_code` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCodeSetup {
    pub cursor: Vec<Frame>,
    /// The codes, comma-separated, sealed for the user: re-reading the state shows them
    /// again, so they cannot be kept as hashes only until finish.
    pub sealed_codes: String,
}

/// Durable writes computed during the flow, applied in one transaction at finish.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingWrites {
    pub identities: Vec<Identity>,
    pub authenticators: Vec<Authenticator>,
    /// `(authenticator id, new data)`: password changes and rehashes.
    pub authenticator_updates: Vec<(String, serde_json::Value)>,
    pub password_history: Vec<PasswordHistoryEntry>,
    pub verified_claims: Vec<VerifiedClaim>,
    #[serde(default)]
    pub recovery_codes: Vec<RecoveryCode>,
    /// Ids of recovery codes used to log in.
    #[serde(default)]
    pub consumed_recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    pub flow_id: String,
    /// Kind and name of the flow now running (a `signup_login` flow switches).
    pub kind: FlowKind,
    pub name: String,
    /// Position; empty once the flow has run to its end.
    pub cursor: Vec<Frame>,
    /// The user signing in, or the id of the user being created.
    pub user_id: Option<String>,
    pub is_new_user: bool,
    pub identified: Vec<Identified>,
    pub used_authenticator_ids: Vec<String>,
    pub used_primary_password: bool,
    pub password_uses: Vec<PasswordUse>,
    pub amr: Vec<String>,
    pub pending: PendingWrites,
    /// Position of the step that last sent a code, so re-evaluating it sends no other.
    pub code_sent_at: Option<Vec<Frame>>,
    /// `x_ref` of the OAuth session this flow completes, if any.
    pub oauth_x_ref: Option<String>,
    pub issued_at: DateTime<Utc>,
    #[serde(default)]
    pub otp: Option<OtpChoice>,
    /// Account recovery flows: the login ID, its user (if any) and the destination.
    #[serde(default)]
    pub recovery: Option<super::recovery::RecoveryState>,
    /// A secondary authentication asked for a device token (issued at finish).
    #[serde(default)]
    pub device_token_requested: bool,
    /// WebSocket channel of this flow's login links, made with the first link.
    #[serde(default)]
    pub ws_channel: Option<String>,
    /// The channel chosen in the verify step at this position (phone with several).
    #[serde(default)]
    pub verify_channel: Option<(Vec<Frame>, Channel)>,
    #[serde(default)]
    pub totp_setup: Option<TotpSetup>,
    #[serde(default)]
    pub recovery_setup: Option<RecoveryCodeSetup>,
}

impl FlowState {
    pub fn new(flow_id: String, flow: &FlowDef, now: DateTime<Utc>) -> Self {
        FlowState {
            flow_id,
            kind: flow.kind,
            name: flow.name.clone(),
            cursor: start_cursor(flow),
            user_id: None,
            is_new_user: false,
            identified: Vec::new(),
            used_authenticator_ids: Vec::new(),
            used_primary_password: false,
            password_uses: Vec::new(),
            amr: Vec::new(),
            pending: PendingWrites::default(),
            code_sent_at: None,
            oauth_x_ref: None,
            issued_at: now,
            otp: None,
            recovery: None,
            device_token_requested: false,
            ws_channel: None,
            verify_channel: None,
            totp_setup: None,
            recovery_setup: None,
        }
    }

    pub fn is_at_end(&self) -> bool {
        self.cursor.is_empty()
    }

    /// Restart at the top of another flow (signup_login switching), keeping the flow id.
    pub fn switch_to(&mut self, flow: &FlowDef) {
        self.kind = flow.kind;
        self.name = flow.name.clone();
        self.cursor = start_cursor(flow);
    }

    /// The OOB choice of the current step, if one is in progress.
    pub fn active_otp(&self) -> Option<&OtpChoice> {
        self.otp.as_ref().filter(|c| c.cursor == self.cursor)
    }

    /// The TOTP enrolment of the current step, if one is in progress.
    pub fn active_totp_setup(&self) -> Option<&TotpSetup> {
        self.totp_setup.as_ref().filter(|s| s.cursor == self.cursor)
    }

    /// The recovery codes of the current `view_recovery_code` step, once generated.
    pub fn active_recovery_setup(&self) -> Option<&RecoveryCodeSetup> {
        self.recovery_setup
            .as_ref()
            .filter(|s| s.cursor == self.cursor)
    }

    pub fn identified_in_step(&self, step_name: &str) -> Option<&Identified> {
        self.identified
            .iter()
            .rev()
            .find(|i| i.step_name.as_deref() == Some(step_name))
    }
}

fn start_cursor(flow: &FlowDef) -> Vec<Frame> {
    if flow.steps.is_empty() {
        Vec::new()
    } else {
        vec![Frame {
            index: 0,
            branch: None,
        }]
    }
}

/// The step list that holds the step at cursor depth `depth` (0 = the flow's own list).
fn list_at<'a>(flow: &'a FlowDef, cursor: &[Frame], depth: usize) -> &'a [StepDef] {
    let mut list: &[StepDef] = &flow.steps;
    for frame in &cursor[..depth] {
        let step = &list[frame.index];
        let branch = frame.branch.expect("an outer frame has a chosen branch");
        list = &step.branches[branch].steps;
    }
    list
}

/// The step the cursor points at.
pub fn current_step<'a>(flow: &'a FlowDef, cursor: &[Frame]) -> Option<&'a StepDef> {
    let last = cursor.last()?;
    list_at(flow, cursor, cursor.len() - 1).get(last.index)
}

/// Complete the current step, having chosen `branch` (or none: the step had no branches
/// or was skipped, in which case its nested steps are skipped too), and move on: into the
/// branch's nested steps first, then to the next step of the enclosing lists.
pub fn complete_step(flow: &FlowDef, cursor: &mut Vec<Frame>, branch: Option<usize>) {
    let Some(step) = current_step(flow, cursor) else {
        return;
    };
    let descend = branch
        .and_then(|b| step.branches.get(b))
        .is_some_and(|b| !b.steps.is_empty());
    if let Some(last) = cursor.last_mut() {
        last.branch = branch;
    }
    if descend {
        cursor.push(Frame {
            index: 0,
            branch: None,
        });
        return;
    }
    while let Some(depth) = cursor.len().checked_sub(1) {
        let len = list_at(flow, cursor, depth).len();
        let last = cursor.last_mut().expect("non-empty");
        last.index += 1;
        last.branch = None;
        if last.index < len {
            return;
        }
        cursor.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::def::*;

    fn step(t: StepType, branches: Vec<BranchDef>) -> StepDef {
        let mut s = StepDef::new(t);
        s.branches = branches;
        s
    }

    fn branch(a: Authentication, steps: Vec<StepDef>) -> BranchDef {
        let mut b = BranchDef::new(BranchOption::Authentication(a));
        b.steps = steps;
        b
    }

    #[test]
    fn walks_nested_steps_then_outer_siblings() {
        let flow = FlowDef {
            kind: FlowKind::Login,
            name: "default".into(),
            steps: vec![
                step(
                    StepType::Authenticate,
                    vec![
                        branch(Authentication::PrimaryPassword, vec![]),
                        branch(
                            Authentication::SecondaryPassword,
                            vec![step(StepType::CheckAccountStatus, vec![])],
                        ),
                    ],
                ),
                step(StepType::TerminateOtherSessions, vec![]),
            ],
        };
        let mut cursor = vec![Frame {
            index: 0,
            branch: None,
        }];
        complete_step(&flow, &mut cursor, Some(1));
        assert_eq!(
            current_step(&flow, &cursor).unwrap().step_type,
            StepType::CheckAccountStatus
        );
        complete_step(&flow, &mut cursor, None);
        assert_eq!(
            current_step(&flow, &cursor).unwrap().step_type,
            StepType::TerminateOtherSessions
        );
        complete_step(&flow, &mut cursor, None);
        assert!(cursor.is_empty());

        let mut other = vec![Frame {
            index: 0,
            branch: None,
        }];
        complete_step(&flow, &mut other, Some(0));
        assert_eq!(
            current_step(&flow, &other).unwrap().step_type,
            StepType::TerminateOtherSessions
        );
    }
}
