-- Providers, agents (with their version history), tasks, executions, the step journal,
-- agent log lines and idempotency keys.

CREATE TABLE providers (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    base_url TEXT,
    -- The API key and headers, encrypted (AEAD) under the instance's master key.
    secret BYTEA,
    has_api_key BOOLEAN NOT NULL DEFAULT FALSE,
    header_names JSONB NOT NULL DEFAULT '[]',
    default_model TEXT,
    prices JSONB NOT NULL DEFAULT '{}',
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX providers_org ON providers(org_id, id);

CREATE TABLE agents (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    autonomy TEXT NOT NULL,
    framework TEXT NOT NULL DEFAULT 'agentry',
    provider_id UUID REFERENCES providers(id),
    model TEXT,
    fallbacks JSONB NOT NULL DEFAULT '[]',
    instructions TEXT NOT NULL DEFAULT '',
    temperature DOUBLE PRECISION,
    max_output_tokens INTEGER,
    tools JSONB NOT NULL DEFAULT '[]',
    config JSONB NOT NULL DEFAULT '{}',
    max_retries INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    max_steps INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX agents_org ON agents(org_id, id);
CREATE INDEX agents_provider ON agents(provider_id);

CREATE TABLE agent_versions (
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    spec JSONB NOT NULL,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE tasks (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    input JSONB NOT NULL DEFAULT '{}',
    output JSONB,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    agent_id UUID REFERENCES agents(id),
    assigned_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    due_at TIMESTAMPTZ,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX tasks_org ON tasks(org_id, id);
CREATE INDEX tasks_agent ON tasks(org_id, agent_id, id);

CREATE TABLE executions (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents(id),
    agent_version INTEGER NOT NULL,
    task_id UUID REFERENCES tasks(id),
    conversation_id UUID,
    status TEXT NOT NULL,
    input JSONB NOT NULL,
    output JSONB,
    error JSONB,
    attempt INTEGER NOT NULL DEFAULT 1,
    model TEXT,
    provider_id UUID,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT,
    confidence DOUBLE PRECISION,
    timeout_seconds INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    run_after TIMESTAMPTZ NOT NULL,
    lease_owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    duration_ms BIGINT
);
CREATE INDEX executions_org ON executions(org_id, id);
CREATE INDEX executions_agent ON executions(org_id, agent_id, id);
CREATE INDEX executions_task ON executions(org_id, task_id, id);
CREATE INDEX executions_pending ON executions(priority DESC, id) WHERE status = 'pending';
CREATE INDEX executions_running ON executions(lease_owner) WHERE status IN ('running', 'awaiting_approval');
CREATE INDEX executions_org_running ON executions(org_id) WHERE status IN ('running', 'awaiting_approval');

CREATE TABLE execution_steps (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    execution_id UUID NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input JSONB NOT NULL,
    output JSONB,
    error JSONB,
    attempts JSONB NOT NULL DEFAULT '[]',
    model TEXT,
    provider_id UUID,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    duration_ms BIGINT,
    UNIQUE (execution_id, idx)
);

CREATE TABLE agent_logs (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    execution_id UUID,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_logs_agent ON agent_logs(org_id, agent_id, id);

CREATE TABLE idempotency_keys (
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, key)
);
