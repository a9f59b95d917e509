"""lanes: one per model, claim → features → runner → rules → store."""
