-- Tools and orchestration: executions started by other executions, agents' structured output
-- and sealed tool secrets, approval deadlines, and MCP servers.

ALTER TABLE executions ADD COLUMN parent_execution_id UUID REFERENCES executions(id);
CREATE INDEX executions_parent ON executions(parent_execution_id) WHERE parent_execution_id IS NOT NULL;

ALTER TABLE agents ADD COLUMN output_schema JSONB;
-- Secret header values of the agent's HTTP tools, encrypted (AEAD) under the master key:
-- a JSON map {"<tool>": {"<header>": "<value>"}}. The tools list itself holds no secret.
ALTER TABLE agents ADD COLUMN tool_secrets BYTEA;

-- When an approval step stops waiting for an answer.
ALTER TABLE execution_steps ADD COLUMN expires_at TIMESTAMPTZ;
CREATE INDEX execution_steps_awaiting ON execution_steps(expires_at) WHERE status = 'awaiting';

CREATE TABLE mcp_servers (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    transport TEXT NOT NULL,
    url TEXT,
    command TEXT,
    args JSONB NOT NULL DEFAULT '[]',
    -- Headers (Streamable HTTP) or environment (stdio), encrypted like provider keys.
    secret BYTEA,
    header_names JSONB NOT NULL DEFAULT '[]',
    env_names JSONB NOT NULL DEFAULT '[]',
    timeout_seconds INTEGER NOT NULL,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX mcp_servers_org ON mcp_servers(org_id, id);
