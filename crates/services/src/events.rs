//! Reading the audit log of an org.

use agentry_core::Role;
use agentry_store::events::{EventFilter, EventScope};
use agentry_store::{Event, Page, PageRequest};
use uuid::Uuid;

use crate::{OrgCtx, ServiceError, ServiceResult, Services};

impl Services {
    pub async fn list_events(
        &self,
        ctx: &OrgCtx,
        f: &EventFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Event>> {
        ctx.require(Role::Viewer)?;
        Ok(self
            .store
            .list_events(EventScope::Org(ctx.org_id), f, page)
            .await?)
    }

    pub async fn get_event(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Event> {
        ctx.require(Role::Viewer)?;
        self.store
            .event(EventScope::Org(ctx.org_id), id)
            .await?
            .ok_or(ServiceError::NotFound("event not found"))
    }
}
