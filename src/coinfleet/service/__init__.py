"""The operations a user performs, one async function each, shared by the CLI, API, UI and MCP server.

Each function takes a pool or a connection (`Db`) and typed records from `service.schemas`, returns
records, and raises the errors of `coinfleet.errors`: `NotFound` (404), `InvalidRequest` (422),
`Conflict` (409). No asyncpg record leaves this package.
"""
