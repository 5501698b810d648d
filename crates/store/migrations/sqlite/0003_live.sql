-- The live event log (every stream is a view over it), conversations and their messages, and
-- the per-agent context budget for conversation replies.

-- The last sequence number of each topic ("execution:<id>", "conversation:<id>",
-- "agent:<id>", "org:<id>"). Taking the next number locks the row until the event commits,
-- so a topic's events commit in sequence order and a reader never skips one.
CREATE TABLE stream_heads (
    topic TEXT PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL
);

CREATE TABLE stream_events (
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (topic, seq)
);
CREATE INDEX stream_events_org ON stream_events(org_id);

CREATE TABLE conversations (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id BLOB NOT NULL REFERENCES agents(id),
    channel_id BLOB,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_message_at TEXT
);
CREATE INDEX conversations_org ON conversations(org_id, id);
CREATE INDEX conversations_agent ON conversations(org_id, agent_id, id);

CREATE TABLE messages (
    id BLOB PRIMARY KEY NOT NULL,
    org_id BLOB NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    execution_id BLOB,
    -- The user message an assistant message answers.
    reply_to BLOB,
    client_msg_id TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    created_by BLOB,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);

CREATE INDEX executions_conversation ON executions(conversation_id, id) WHERE conversation_id IS NOT NULL;

ALTER TABLE agents ADD COLUMN max_context_tokens INTEGER;
