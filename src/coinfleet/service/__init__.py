"""Operations the entry points (CLI, API, UI, MCP) share: each takes values and returns records."""
