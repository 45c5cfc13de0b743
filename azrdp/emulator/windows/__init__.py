"""A model of the Windows state behind the emulator's Run Command (see state.py for what it holds
and the Windows reactions it implements, each with its measured source).

    machine = image.load(guest, now)       # a scenario's `guest` object over the healthy image
    facts = collector.collect(machine, 3389)  # what collector.ps1 would print
    executor.execute(machine, run_id, token)  # what executor.ps1 would do with a plan

The model never imports azrdp.checks or azrdp.repairs: it executes primitive operations and
renders facts, and knows nothing of findings (a test keeps it that way).
"""
