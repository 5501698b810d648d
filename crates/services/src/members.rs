//! Members of an org and invitations for people who have no account yet.

use agentry_core::id::new_id_at;
use agentry_core::{Email, FieldErrors, Role};
use agentry_store::orgs::MemberChange;
use agentry_store::{Invitation, Member, Page, PageRequest, StoreError};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::{OrgCtx, Principal, ServiceError, ServiceResult, Services, tokens};

const LAST_OWNER: ServiceError = ServiceError::Conflict {
    code: "last_owner",
    message: "an organization must keep at least one owner",
};
const MEMBER_NOT_FOUND: ServiceError = ServiceError::NotFound("member not found");

/// What adding someone by email did.
#[derive(Debug)]
pub enum Added {
    Member(Member),
    /// No account has that email yet: an invitation was made. The token is returned once so
    /// an admin without mail set up can pass it on.
    Invited {
        invitation: Invitation,
        token: String,
    },
}

/// Only owners may grant ownership; nobody may grant more than they have.
fn check_grant(ctx: &OrgCtx, role: Role) -> ServiceResult<()> {
    if !ctx.role.allows(role) {
        return Err(ServiceError::Forbidden(
            "cannot grant a role higher than your own",
        ));
    }
    Ok(())
}

impl Services {
    pub async fn list_members(
        &self,
        p: &Principal,
        org_id: Uuid,
        page: PageRequest,
    ) -> ServiceResult<Page<Member>> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Viewer)?;
        Ok(self.store.list_members(org_id, page).await?)
    }

    pub async fn add_member(
        &self,
        p: &Principal,
        org_id: Uuid,
        email: &str,
        role: &str,
    ) -> ServiceResult<Added> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Admin)?;
        let mut errors = FieldErrors::new();
        let email = errors.check("email", Email::parse(email));
        let role = errors.check("role", Role::parse(role));
        errors.into_result()?;
        let (Some(email), Some(role)) = (email, role) else {
            return Err(ServiceError::Internal("validated fields missing".into()));
        };
        check_grant(&ctx, role)?;
        let now = Utc::now();
        if let Some(user) = self.store.user_by_email(email.as_str()).await? {
            let member = match self.store.add_member(org_id, user.id, role, now).await {
                Err(StoreError::Conflict(_)) => {
                    return Err(ServiceError::Conflict {
                        code: "already_member",
                        message: "this user is already a member",
                    });
                }
                other => other?,
            };
            self.record(Audit {
                org_id: Some(org_id),
                kind: "member.added",
                category: "info",
                actor: EventActor::Actor(ctx.actor),
                user_id: Some(user.id),
                data: json!({"email": user.email, "role": role}),
                meta: &ctx.meta,
            })
            .await;
            return Ok(Added::Member(member));
        }
        let token = tokens::opaque_token()?;
        let (id, now) = new_id_at();
        let invited_by = ctx.actor.acting_user();
        let invitation = self
            .store
            .create_invitation(
                id,
                org_id,
                email.as_str(),
                role,
                &tokens::hash_secret(&token),
                invited_by,
                now,
                now + self.settings.invitation_ttl,
            )
            .await?;
        self.record(Audit {
            org_id: Some(org_id),
            kind: "member.invited",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"email": invitation.email, "role": role, "invitation_id": invitation.id}),
            meta: &ctx.meta,
        })
        .await;
        let org_name = self
            .store
            .org(org_id)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        let body = format!(
            "You have been invited to join {org_name} on Agentry as {role}.\r\n\r\n\
             Create an account with this email address, then accept with the token:\r\n\r\n{token}\r\n"
        );
        self.mailer
            .send(
                invitation.email.as_str(),
                "You are invited to Agentry",
                &body,
                &token,
            )
            .await;
        Ok(Added::Invited { invitation, token })
    }

    pub async fn update_member(
        &self,
        p: &Principal,
        org_id: Uuid,
        user_id: Uuid,
        role: &str,
    ) -> ServiceResult<Member> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Admin)?;
        let role = Role::parse(role).map_err(|e| ServiceError::field("role", &e))?;
        let current = self
            .store
            .member(org_id, user_id)
            .await?
            .ok_or(MEMBER_NOT_FOUND)?;
        check_grant(&ctx, role)?;
        if current.role == Role::Owner && ctx.role != Role::Owner {
            return Err(ServiceError::Forbidden(
                "only an owner can change an owner's role",
            ));
        }
        match self
            .store
            .set_member_role(org_id, user_id, role, Utc::now())
            .await?
        {
            MemberChange::Done(()) => {}
            MemberChange::NotFound => return Err(MEMBER_NOT_FOUND),
            MemberChange::LastOwner => return Err(LAST_OWNER),
        }
        self.record(Audit {
            org_id: Some(org_id),
            kind: "member.role_changed",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: Some(user_id),
            data: json!({"from": current.role, "to": role}),
            meta: &ctx.meta,
        })
        .await;
        self.store
            .member(org_id, user_id)
            .await?
            .ok_or(MEMBER_NOT_FOUND)
    }

    /// Removes a member. Anyone may leave; removing others takes admin, and an owner.
    pub async fn remove_member(
        &self,
        p: &Principal,
        org_id: Uuid,
        user_id: Uuid,
    ) -> ServiceResult<()> {
        let ctx = self.org_ctx(p, org_id).await?;
        let leaving = ctx.actor.user_id() == Some(user_id);
        if !leaving {
            ctx.require(Role::Admin)?;
        }
        let current = self
            .store
            .member(org_id, user_id)
            .await?
            .ok_or(MEMBER_NOT_FOUND)?;
        if !leaving && current.role == Role::Owner && ctx.role != Role::Owner {
            return Err(ServiceError::Forbidden("only an owner can remove an owner"));
        }
        match self.store.remove_member(org_id, user_id).await? {
            MemberChange::Done(()) => {}
            MemberChange::NotFound => return Err(MEMBER_NOT_FOUND),
            MemberChange::LastOwner => return Err(LAST_OWNER),
        }
        self.record(Audit {
            org_id: Some(org_id),
            kind: "member.removed",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: Some(user_id),
            data: json!({"email": current.email, "role": current.role, "left": leaving}),
            meta: &ctx.meta,
        })
        .await;
        Ok(())
    }

    pub async fn list_invitations(
        &self,
        p: &Principal,
        org_id: Uuid,
        page: PageRequest,
    ) -> ServiceResult<Page<Invitation>> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Admin)?;
        Ok(self.store.list_invitations(org_id, page).await?)
    }

    pub async fn delete_invitation(
        &self,
        p: &Principal,
        org_id: Uuid,
        id: Uuid,
    ) -> ServiceResult<()> {
        let ctx = self.org_ctx(p, org_id).await?;
        ctx.require(Role::Admin)?;
        let inv = self
            .store
            .delete_invitation(org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("invitation not found"))?;
        self.record(Audit {
            org_id: Some(org_id),
            kind: "member.invitation_revoked",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"email": inv.email, "invitation_id": inv.id}),
            meta: &ctx.meta,
        })
        .await;
        Ok(())
    }

    /// Joins the org of an invitation made out to the caller's email.
    pub async fn accept_invitation(&self, p: &Principal, token: &str) -> ServiceResult<Member> {
        const NOT_FOUND: ServiceError = ServiceError::NotFound("invitation not found");
        let (user_id, _) = p.user()?;
        if token.is_empty() {
            return Err(ServiceError::field("token", "must not be empty"));
        }
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(ServiceError::Unauthorized("unknown user"))?;
        let inv = self
            .store
            .invitation_by_token(&tokens::hash_secret(token))
            .await?
            .ok_or(NOT_FOUND)?;
        if inv.email != user.email {
            return Err(NOT_FOUND);
        }
        let now = Utc::now();
        if inv.expires_at <= now {
            return Err(ServiceError::field("token", "has expired"));
        }
        if !self.store.accept_invitation(inv.id, user_id, now).await? {
            return Err(ServiceError::Conflict {
                code: "already_member",
                message: "you are already a member",
            });
        }
        self.record(Audit {
            org_id: Some(inv.org_id),
            kind: "member.added",
            category: "info",
            actor: EventActor::Actor(p.actor),
            user_id: Some(user_id),
            data: json!({"email": user.email, "role": inv.role, "invitation_id": inv.id}),
            meta: &p.meta,
        })
        .await;
        self.store
            .member(inv.org_id, user_id)
            .await?
            .ok_or(MEMBER_NOT_FOUND)
    }
}
