def __getattr__(name):  # lazy: `import scan_bridge` stays cheap; `from .downstream import wait_for_fresh_scan` on first use
    if name in ("wait_for_fresh_scan", "StaleScanError"):
        from . import downstream

        return getattr(downstream, name)
    raise AttributeError(f"module 'scan_bridge' has no attribute {name!r}")
