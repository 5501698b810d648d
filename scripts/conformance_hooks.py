# Schemathesis hooks for scripts/conformance.sh.
#
# Schemathesis's `positive_data_acceptance` check fails any schema-valid request that gets a
# 4xx other than 401/403/404/409/429. The OpenAPI document states every rule of a single field
# that JSON Schema can state (lengths, ranges, enumerations, patterns; see
# crates/api/src/openapi.rs), but some refusals hang on things a schema cannot know: stored
# state (does the agent exist, is the password right, was this cursor issued), the
# installation (are stdio MCP servers turned on) or another field (an HTTP MCP server takes no
# `command`). This check replaces that one: a schema-valid request may be refused only with a
# 422 whose every field error is one of those listed below for its operation, by field and by
# the start of its message. Anything else fails, as it did.
import json

import schemathesis

# The reason each entry is beyond the schema is in its comment.
ANY = {
    # Opaque: only a cursor the server issued, for the same sort and filters, is one.
    "cursor": ["is not a valid cursor", "was made for another sort order"],
}
AGENT_REF = {"agent_id": ["no such agent in this organization"]}
AGENT_FIELDS = {
    # Stored state: the provider and MCP servers named must belong to the organization.
    "provider_id": ["no such provider in this organization"],
    "fallbacks": ["no provider "],
    # Each declaration's own rules (names unique and not a built-in's, URL templates, input
    # schemas, MCP server ids) go beyond what one schema for every kind can state.
    "tools": ["tools[", "two tools are named", "at most 64 tools"],
    # Any JSON Schema the server can compile; the schema only says it is an object schema.
    "output_schema": ["not a valid JSON Schema", "must be a JSON Schema of type object"],
    # Serialized size, not a count of properties.
    "config": ["must be at most 64 KiB"],
}
MCP_FIELDS = {
    # Which fields a server takes depends on its transport; stdio servers depend on the
    # installation (AGENTRY_MCP_STDIO); URLs must pass the egress rules.
    "transport": ["stdio servers are turned off", "cannot be changed"],
    "command": ["is for stdio servers", "is required"],
    "args": ["is for stdio servers"],
    "env": ["is for stdio servers"],
    "url": ["is for streamable_http servers", "is required", "must be an http:// or https:// URL"],
    "headers": ["is for streamable_http servers"],
}
PROVIDER_FIELDS = {
    # An echo provider takes no base_url; a provider's kind is fixed once created.
    "base_url": ["echo answers locally"],
    "kind": ["cannot be changed"],
}
TASK_FIELDS = {**AGENT_REF, "input": ["must be at most 256 KiB"]}
SETTINGS = {"settings": ["must be at most 16 KiB"]}

BEYOND_SCHEMA = {
    "POST /api/v1/agents": AGENT_FIELDS,
    "PUT /api/v1/agents/{id}": AGENT_FIELDS,
    "PATCH /api/v1/agents/{id}": AGENT_FIELDS,
    "POST /api/v1/mcp-servers": MCP_FIELDS,
    "PUT /api/v1/mcp-servers/{id}": MCP_FIELDS,
    "PATCH /api/v1/mcp-servers/{id}": MCP_FIELDS,
    "POST /api/v1/providers": PROVIDER_FIELDS,
    "PUT /api/v1/providers/{id}": PROVIDER_FIELDS,
    "PATCH /api/v1/providers/{id}": PROVIDER_FIELDS,
    # Stored state: the provider has no default model and the body names none.
    "POST /api/v1/providers/{id}/test": {"model": ["is required when the provider has no default_model"]},
    "POST /api/v1/tasks": TASK_FIELDS,
    "PUT /api/v1/tasks/{id}": TASK_FIELDS,
    "PATCH /api/v1/tasks/{id}": TASK_FIELDS,
    "POST /api/v1/tasks/{id}/assign": AGENT_REF,
    "POST /api/v1/conversations": AGENT_REF,
    "PUT /api/v1/conversations/{id}/assign": AGENT_REF,
    "POST /api/v1/executions": {
        **AGENT_REF,
        "task_id": ["no such task in this organization"],
        # Serialized size.
        "input": ["must be at most"],
    },
    # The clock: an expiry must be in the future.
    "POST /api/v1/api-keys": {"expires_at": ["must be in the future"]},
    # Stored state: the password and the one-time tokens.
    "POST /api/v1/auth/password": {"current_password": ["is incorrect"]},
    "POST /api/v1/auth/password/reset": {"token": ["is invalid, used or expired"]},
    "POST /api/v1/invitations/accept": {"token": ["has expired"]},
    "PATCH /api/v1/users/me": SETTINGS,
    "PUT /api/v1/users/me": SETTINGS,
    "PATCH /api/v1/orgs/{id}": SETTINGS,
    "PUT /api/v1/orgs/{id}": SETTINGS,
}

ACCEPTED = {401, 403, 404, 409, 429}


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx, response, case):
    """A schema-valid request is accepted, or refused only for a reason the schema cannot state."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    # A case whose other parts were generated to be invalid is not a valid request.
    if not all(c.mode.is_positive for c in meta.components.values()):
        return None
    status = response.status_code
    if status < 400 or status in ACCEPTED or status >= 500:
        return None
    allowed = {**ANY, **BEYOND_SCHEMA.get(case.operation.label, {})}
    fields = {}
    if status == 422:
        try:
            fields = response.json()["error"]["details"]["fields"]
        except (ValueError, KeyError, TypeError):
            fields = {}
    if fields and all(
        messages and all(any(m.startswith(p) for p in allowed.get(name, [])) for m in messages)
        for name, messages in fields.items()
    ):
        return None
    raise AssertionError(
        f"Schema-valid request rejected with {status}: {response.text[:500]}"
    )
