-- The journal's one table: a submission per (tenant, client_request_id), followed under a lease.
CREATE TABLE submissions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL DEFAULT '',  -- a keyed hash naming a caller; '' is the single tenant
    request_key   text NOT NULL,             -- the client_request_id (or one the server made up)
    fingerprint   text NOT NULL,
    state         text NOT NULL,
    task_id       text UNIQUE,
    status        text,
    progress      double precision,
    model         text,
    prompt        text,
    request_json  jsonb NOT NULL,
    credits       double precision,
    result_urls   jsonb NOT NULL DEFAULT '[]',
    saved_paths   jsonb NOT NULL DEFAULT '[]',
    save_error    text,
    error_code    text,
    error_message text,
    created_at    double precision NOT NULL,  -- seconds since the epoch, as the recording process saw them
    updated_at    double precision NOT NULL,
    finished      boolean NOT NULL DEFAULT false,
    output_dir    text,
    lease_owner   text,                       -- the process that follows the task
    lease_until   timestamptz,                -- the database's clock, not a replica's: theirs may differ
    CONSTRAINT submissions_request_key_per_tenant UNIQUE (tenant, request_key)
);

CREATE INDEX submissions_unfinished ON submissions (created_at) WHERE NOT finished;
CREATE INDEX submissions_tenant_created ON submissions (tenant, created_at DESC);
CREATE INDEX submissions_fingerprint ON submissions (tenant, fingerprint, created_at);
CREATE INDEX submissions_leases ON submissions (lease_owner) WHERE NOT finished;
