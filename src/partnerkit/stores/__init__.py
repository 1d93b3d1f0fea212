"""Persistence adapters: MemoryStore, SQLiteStore and PostgresStore, one module each."""
