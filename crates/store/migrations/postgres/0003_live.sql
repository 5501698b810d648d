-- The live event log (every stream is a view over it), conversations and their messages, and
-- the per-agent context budget for conversation replies.

-- The last sequence number of each topic ("execution:<id>", "conversation:<id>",
-- "agent:<id>", "org:<id>"). Taking the next number locks the row until the event commits,
-- so a topic's events commit in sequence order and a reader never skips one.
CREATE TABLE stream_heads (
    topic TEXT PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL
);

CREATE TABLE stream_events (
    topic TEXT NOT NULL,
    seq BIGINT NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, seq)
);
CREATE INDEX stream_events_org ON stream_events(org_id);

CREATE TABLE conversations (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents(id),
    channel_id UUID,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    last_message_at TIMESTAMPTZ
);
CREATE INDEX conversations_org ON conversations(org_id, id);
CREATE INDEX conversations_agent ON conversations(org_id, agent_id, id);

CREATE TABLE messages (
    id UUID PRIMARY KEY NOT NULL,
    org_id UUID NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    execution_id UUID,
    -- The user message an assistant message answers.
    reply_to UUID,
    client_msg_id TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);

CREATE INDEX executions_conversation ON executions(conversation_id, id) WHERE conversation_id IS NOT NULL;

ALTER TABLE agents ADD COLUMN max_context_tokens INTEGER;
