"""Redis: every key, every Lua script, the embedded server."""
