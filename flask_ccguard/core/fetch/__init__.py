"""Outbound HTTP for verification: the session and its limits, discovery, the HTTP cache, client authentication."""
