-- Documents of a namespace (grocery items, recipes, ...) with their vectors, of the served
-- model's dimension (serve_app/store/db.py puts it in for __DIMENSIONS__ when it migrates).
-- The HNSW index is created by the store after the migrations, with m and ef_construction from
-- the settings (its name carries them, so a change rebuilds it).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    namespace  text        NOT NULL,
    id         text        NOT NULL,
    text       text        NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    embedding  vector(__DIMENSIONS__) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, id)
);
