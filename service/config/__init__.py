"""The configuration: one function per section, typed sub-configs, one secret resolver."""
