-- Providers, agents (with their version history), tasks, executions, the step journal,
-- agent log lines and idempotency keys.

CREATE TABLE providers (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    base_url TEXT,
    -- The API key and headers, encrypted (AEAD) under the instance's master key.
    secret BLOB,
    has_api_key INTEGER NOT NULL DEFAULT 0,
    header_names TEXT NOT NULL DEFAULT '[]',
    default_model TEXT,
    prices TEXT NOT NULL DEFAULT '{}',
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX providers_org ON providers(org_id, id);

CREATE TABLE agents (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    autonomy TEXT NOT NULL,
    framework TEXT NOT NULL DEFAULT 'agentry',
    provider_id BLOB REFERENCES providers(id),
    model TEXT,
    fallbacks TEXT NOT NULL DEFAULT '[]',
    instructions TEXT NOT NULL DEFAULT '',
    temperature REAL,
    max_output_tokens INTEGER,
    tools TEXT NOT NULL DEFAULT '[]',
    config TEXT NOT NULL DEFAULT '{}',
    max_retries INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    max_steps INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX agents_org ON agents(org_id, id);
CREATE INDEX agents_provider ON agents(provider_id);

CREATE TABLE agent_versions (
    agent_id BLOB NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE tasks (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    input TEXT NOT NULL DEFAULT '{}',
    output TEXT,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    agent_id BLOB REFERENCES agents(id),
    assigned_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    due_at TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX tasks_org ON tasks(org_id, id);
CREATE INDEX tasks_agent ON tasks(org_id, agent_id, id);

CREATE TABLE executions (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES agents(id),
    agent_version INTEGER NOT NULL,
    task_id BLOB REFERENCES tasks(id),
    conversation_id BLOB,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    model TEXT,
    provider_id BLOB,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER,
    confidence REAL,
    timeout_seconds INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    run_after TEXT NOT NULL,
    lease_owner TEXT,
    lease_expires_at TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    duration_ms INTEGER
);
CREATE INDEX executions_org ON executions(org_id, id);
CREATE INDEX executions_agent ON executions(org_id, agent_id, id);
CREATE INDEX executions_task ON executions(org_id, task_id, id);
CREATE INDEX executions_pending ON executions(priority DESC, id) WHERE status = 'pending';
CREATE INDEX executions_running ON executions(lease_owner) WHERE status IN ('running', 'awaiting_approval');
CREATE INDEX executions_org_running ON executions(org_id) WHERE status IN ('running', 'awaiting_approval');

CREATE TABLE execution_steps (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    execution_id BLOB NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    attempts TEXT NOT NULL DEFAULT '[]',
    model TEXT,
    provider_id BLOB,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    duration_ms INTEGER,
    UNIQUE (execution_id, idx)
);

CREATE TABLE agent_logs (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    execution_id BLOB,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX agent_logs_agent ON agent_logs(org_id, agent_id, id);

CREATE TABLE idempotency_keys (
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, key)
);
