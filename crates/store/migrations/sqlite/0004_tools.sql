-- Tools and orchestration: executions started by other executions, agents' structured output
-- and sealed tool secrets, approval deadlines, and MCP servers.

ALTER TABLE executions ADD COLUMN parent_execution_id BLOB REFERENCES executions(id);
CREATE INDEX executions_parent ON executions(parent_execution_id) WHERE parent_execution_id IS NOT NULL;

ALTER TABLE agents ADD COLUMN output_schema TEXT;
-- Secret header values of the agent's HTTP tools, encrypted (AEAD) under the master key:
-- a JSON map {"<tool>": {"<header>": "<value>"}}. The tools list itself holds no secret.
ALTER TABLE agents ADD COLUMN tool_secrets BLOB;

-- When an approval step stops waiting for an answer.
ALTER TABLE execution_steps ADD COLUMN expires_at TEXT;
CREATE INDEX execution_steps_awaiting ON execution_steps(expires_at) WHERE status = 'awaiting';

CREATE TABLE mcp_servers (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    transport TEXT NOT NULL,
    url TEXT,
    command TEXT,
    args TEXT NOT NULL DEFAULT '[]',
    -- Headers (Streamable HTTP) or environment (stdio), encrypted like provider keys.
    secret BLOB,
    header_names TEXT NOT NULL DEFAULT '[]',
    env_names TEXT NOT NULL DEFAULT '[]',
    timeout_seconds INTEGER NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX mcp_servers_org ON mcp_servers(org_id, id);
