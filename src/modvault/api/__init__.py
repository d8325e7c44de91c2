"""The JSON/HTTP admin API under /api/v1/ (publishing, blocks)."""
