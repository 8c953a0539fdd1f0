"""The gallery: the store of people and templates (SQLite or PostgreSQL), its vector index, copies and re-embedding."""
