"""Documents and semantic search: PostgreSQL + pgvector over asyncpg."""
