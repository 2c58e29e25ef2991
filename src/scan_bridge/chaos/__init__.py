"""The chaos and soak harness: the real member, daemon and bridge under seeded faults, with a referee.

    python -m scan_bridge.chaos                                  # the CI run: every fault once, ~2 min
    python -m scan_bridge.chaos --profile long --duration 3600 --seed 7 --report chaos.md

Modules: :mod:`.plan` (fault kinds, profiles, the seeded order), :mod:`.scanner` (the realistic
folder and the ledger of what was written), :mod:`.referee` (an independent Hazelcast client that
judges history and latest), :mod:`.processes` (the daemon and the process sweep), :mod:`.harness`
(the run), :mod:`.report` (figures, markdown and JSON), :mod:`.hostile` (files the bridge rejects).
What it checks and the published figures: docs/reliability.md.
"""
