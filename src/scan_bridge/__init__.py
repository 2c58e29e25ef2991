"""scan-bridge: Arrow scan files from a watched folder into Hazelcast, kept alive by a Prefect daemon.

Two processes and the operator's tools; the modules group by name (docs/architecture.md has the map):

* the bridge (``python -m scan_bridge.service``): ``service``, ``watcher``, ``folder_poller``,
  ``discovery``, ``scanfile``, ``read_guard``, ``sink``, ``hzcall``, ``logs``, ``log_record``, ``runfiles``;
* the daemon (the flow ``scan_bridge.daemon_flow:scan_bridge_daemon_flow``): ``daemon_*``,
  ``supervisor``, ``bridge_process``, ``bridge_output``, ``restart_policy``, ``health*``,
  ``metrics``, ``prefect_server``, ``run_processes``, ``parent_death``, ``child_stop``;
* the operator's tools: ``control`` (behind ``deploy.py``), ``alerts``, ``local``, ``localcluster``,
  ``simulate``, ``webhook_receiver``; for consumers: ``downstream``;
* facts every part shares: ``names``, ``settings``, ``health_status``, ``document``, ``ordering``.
"""


def __getattr__(name):  # lazy: `import scan_bridge` stays cheap; `from .downstream import wait_for_fresh_scan` on first use
    if name in ("wait_for_fresh_scan", "StaleScanError"):
        from . import downstream

        return getattr(downstream, name)
    raise AttributeError(f"module 'scan_bridge' has no attribute {name!r}")
