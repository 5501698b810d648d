//! Providers: an org's connections to LLM vendors. Credentials are sealed at rest and never
//! leave the service in a response.

use std::collections::BTreeMap;
use std::time::Instant;

use agentry_core::id::new_id_at;
use agentry_core::{FieldErrors, Role, text};
use agentry_providers::{ChatRequest, Endpoint, Kind, Message, Price};
use agentry_store::Json;
use agentry_store::{Page, PageRequest, Provider};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Audit, EventActor};
use crate::{OrgCtx, ServiceError, ServiceResult, Services};

const NOT_FOUND: ServiceError = ServiceError::NotFound("provider not found");

/// What a create or update may set; left-out fields stay as they are. An empty `base_url`,
/// `api_key` or `default_model` clears it.
#[derive(Debug, Default, Clone)]
pub struct ProviderInput {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub default_model: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub prices: Option<BTreeMap<String, Price>>,
}

/// The sealed part of a provider.
#[derive(Default, Serialize, Deserialize)]
struct Secret {
    api_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The outcome of `POST /providers/{id}/test`.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderTest {
    pub ok: bool,
    pub latency_ms: u64,
    pub model: Option<String>,
    pub error: Option<String>,
}

impl Services {
    pub async fn create_provider(
        &self,
        ctx: &OrgCtx,
        input: ProviderInput,
    ) -> ServiceResult<Provider> {
        ctx.require(Role::Admin)?;
        let mut errors = FieldErrors::new();
        let kind = match input.kind.as_deref() {
            None => {
                errors.add("kind", "is required");
                None
            }
            Some(k) => errors.check(
                "kind",
                Kind::parse(k).ok_or("must be openai, anthropic or echo"),
            ),
        };
        if input.name.is_none() {
            errors.add("name", "is required");
        }
        let (id, now) = new_id_at();
        let mut p = Provider {
            id,
            org_id: ctx.org_id,
            name: String::new(),
            kind: kind.unwrap_or(Kind::Echo).as_str().into(),
            base_url: None,
            secret: None,
            has_api_key: false,
            header_names: Json(vec![]),
            default_model: None,
            prices: Json(json!({})),
            created_by: ctx.actor.acting_user(),
            created_at: now,
            updated_at: now,
        };
        self.apply_provider_input(&mut p, Secret::default(), input, errors)?;
        let p = self.store.create_provider(&p).await.map_err(|e| {
            conflict_or(e, "provider_name_taken", "a provider with this name exists")
        })?;
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "provider.created",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"provider_id": p.id, "name": p.name, "kind": p.kind}),
            meta: &ctx.meta,
        })
        .await;
        Ok(p)
    }

    pub async fn update_provider(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        input: ProviderInput,
    ) -> ServiceResult<Provider> {
        ctx.require(Role::Admin)?;
        let mut p = self
            .store
            .provider(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let mut errors = FieldErrors::new();
        if input.kind.as_deref().is_some_and(|k| k != p.kind) {
            errors.add("kind", "cannot be changed; create another provider");
        }
        let secret = self.open_secret(&p)?;
        p.updated_at = Utc::now();
        self.apply_provider_input(&mut p, secret, input, errors)?;
        let p = self
            .store
            .update_provider(&p)
            .await
            .map_err(|e| conflict_or(e, "provider_name_taken", "a provider with this name exists"))?
            .ok_or(NOT_FOUND)?;
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "provider.updated",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"provider_id": p.id}),
            meta: &ctx.meta,
        })
        .await;
        Ok(p)
    }

    /// Validates `input` into `p` (collecting every bad field) and seals the secret part.
    fn apply_provider_input(
        &self,
        p: &mut Provider,
        mut secret: Secret,
        input: ProviderInput,
        mut errors: FieldErrors,
    ) -> ServiceResult<()> {
        let kind = Kind::parse(&p.kind).unwrap_or(Kind::Echo);
        if let Some(name) = &input.name
            && let Some(n) = errors.check("name", text::parse_line(name, 100))
        {
            p.name = n;
        }
        if let Some(url) = input.base_url {
            if url.is_empty() {
                p.base_url = None;
            } else if kind == Kind::Echo {
                errors.add("base_url", "echo answers locally and takes no base_url");
            } else if url.chars().count() > 2048
                || !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                errors.add("base_url", "must be an http:// or https:// URL");
            } else {
                p.base_url = Some(url.trim_end_matches('/').to_string());
            }
        }
        if let Some(key) = input.api_key {
            if key.chars().count() > 4096 || key.contains(['\r', '\n']) {
                errors.add("api_key", "must be one line of at most 4096 characters");
            }
            secret.api_key = (!key.is_empty()).then_some(key);
        }
        if let Some(model) = input.default_model {
            if model.chars().count() > 200 || model.contains(char::is_control) {
                errors.add("default_model", "must be at most 200 characters");
            }
            p.default_model = (!model.is_empty()).then_some(model);
        }
        if let Some(headers) = input.headers {
            if headers.len() > 20 {
                errors.add("headers", "at most 20 headers");
            }
            for (k, v) in &headers {
                let name_ok = !k.is_empty()
                    && k.len() <= 100
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !name_ok {
                    errors.add("headers", format!("{k:?} is not a valid header name"));
                }
                if v.chars().count() > 4096 || v.contains(['\r', '\n']) {
                    errors.add("headers", format!("the value of {k:?} must be one line"));
                }
            }
            secret.headers = headers;
        }
        if let Some(prices) = input.prices {
            if prices.len() > 500 {
                errors.add("prices", "at most 500 models");
            }
            const MAX: u64 = 1_000_000_000_000;
            for (model, price) in &prices {
                if model.is_empty() || model.chars().count() > 200 {
                    errors.add("prices", "model names must be 1 to 200 characters");
                }
                if price.input > MAX
                    || price.output > MAX
                    || price.cached_input.is_some_and(|c| c > MAX)
                {
                    errors.add("prices", format!("the price of {model:?} is too large"));
                }
            }
            p.prices = Json(serde_json::to_value(prices).unwrap_or_default());
        }
        errors.into_result()?;
        p.has_api_key = secret.api_key.is_some();
        p.header_names = Json(secret.headers.keys().cloned().collect());
        p.secret = self.seal_json(
            &secret,
            secret.api_key.is_none() && secret.headers.is_empty(),
        )?;
        Ok(())
    }

    fn open_secret(&self, p: &Provider) -> ServiceResult<Secret> {
        self.open_json(p.secret.as_deref())
    }

    /// How to call a provider, with its credentials in the clear (for the runtime only).
    pub fn endpoint(&self, p: &Provider) -> ServiceResult<Endpoint> {
        let secret = self.open_secret(p)?;
        Ok(Endpoint {
            kind: Kind::parse(&p.kind)
                .ok_or_else(|| ServiceError::Internal(format!("unknown kind {}", p.kind)))?,
            base_url: p.base_url.clone(),
            api_key: secret.api_key,
            headers: secret.headers.into_iter().collect(),
        })
    }

    /// The price of `model` on `p`: the provider's own table first, then the built-in one.
    pub fn price(&self, p: &Provider, model: &str) -> Option<Price> {
        p.prices
            .0
            .get(model)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .or_else(|| agentry_providers::prices::builtin(Kind::parse(&p.kind)?, model))
    }

    pub async fn get_provider(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<Provider> {
        self.store.provider(ctx.org_id, id).await?.ok_or(NOT_FOUND)
    }

    pub async fn list_providers(
        &self,
        ctx: &OrgCtx,
        page: PageRequest,
    ) -> ServiceResult<Page<Provider>> {
        Ok(self.store.list_providers(ctx.org_id, page).await?)
    }

    pub async fn delete_provider(&self, ctx: &OrgCtx, id: Uuid) -> ServiceResult<()> {
        ctx.require(Role::Admin)?;
        self.store
            .provider(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        if self.store.provider_users(ctx.org_id, id).await? > 0 {
            return Err(ServiceError::Conflict {
                code: "provider_in_use",
                message: "agents use this provider; point them elsewhere first",
            });
        }
        if !self.store.delete_provider(ctx.org_id, id).await? {
            return Err(NOT_FOUND);
        }
        self.record(Audit {
            org_id: Some(ctx.org_id),
            kind: "provider.deleted",
            category: "info",
            actor: EventActor::Actor(ctx.actor),
            user_id: None,
            data: json!({"provider_id": id}),
            meta: &ctx.meta,
        })
        .await;
        Ok(())
    }

    /// Makes one tiny real call (a few output tokens) to see that the provider answers.
    pub async fn test_provider(
        &self,
        ctx: &OrgCtx,
        id: Uuid,
        model: Option<String>,
    ) -> ServiceResult<ProviderTest> {
        ctx.require(Role::Admin)?;
        let p = self
            .store
            .provider(ctx.org_id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let Some(model) = model.or(p.default_model.clone()) else {
            return Err(ServiceError::field(
                "model",
                "is required when the provider has no default_model",
            ));
        };
        let endpoint = self.endpoint(&p)?;
        let req = ChatRequest {
            model: model.clone(),
            messages: vec![Message::user("Reply with the word ok.")],
            max_output_tokens: Some(5),
            ..ChatRequest::default()
        };
        let started = Instant::now();
        let result = self.llm.chat(&endpoint, &req, None).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        Ok(match result {
            Ok(r) => ProviderTest {
                ok: true,
                latency_ms,
                model: Some(if r.model.is_empty() { model } else { r.model }),
                error: None,
            },
            Err(e) => ProviderTest {
                ok: false,
                latency_ms,
                model: Some(model),
                error: Some(e.to_string()),
            },
        })
    }
}

/// Maps a unique violation to a specific conflict code.
pub(crate) fn conflict_or(
    e: agentry_store::StoreError,
    code: &'static str,
    message: &'static str,
) -> ServiceError {
    match e {
        agentry_store::StoreError::Conflict(_) => ServiceError::Conflict { code, message },
        other => other.into(),
    }
}
