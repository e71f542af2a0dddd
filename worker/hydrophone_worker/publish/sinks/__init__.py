"""Destinations of the outbox: `local` files (default) and `azure` (Blob + CosmosDB)."""
