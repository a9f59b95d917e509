"""Operations shared by the CLI, API, UI and MCP server."""
