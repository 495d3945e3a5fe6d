"""localbox's egress proxy: mitmproxy with an addon that applies each sandbox's allowlist."""
