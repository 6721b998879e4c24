-- Documents of a namespace (grocery items, recipes, ...) with their all-MiniLM-L6-v2 vectors.
-- The HNSW index is created by the store after the migrations, with m and ef_construction from
-- the settings (its name carries them, so a change rebuilds it).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    namespace  text        NOT NULL,
    id         text        NOT NULL,
    text       text        NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    embedding  vector(384) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, id)
);
