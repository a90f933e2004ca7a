"""REST API v1: clients, mailings, their control and statistics (DRF + drf-spectacular)."""
