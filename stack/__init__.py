"""Local orchestration around the engines: start/stop the CPU stack, the demo, Prometheus, model building.

Why a package apart from ``engines/``: an engine folder says what an engine *is* (its
``EngineSpec``); this package *runs* them, in any combination, from the registry. Only
``stack.process`` is shared with the load generator (its selftest starts a synthetic server),
so that module imports nothing but the standard library and httpx.
"""
