"""localbox as an MCP server: tools over the same services, served at /mcp or over stdio."""
