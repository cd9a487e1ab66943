"""Tracked runs as records: the facts every layer shares (process exit codes in
:mod:`.exit_codes`, run statuses in :mod:`.status`, the stored record's keys and typed reading in
:mod:`.schema`) and the read side (the normalized :class:`.record.Run`, and
:func:`.load.load_runs` over FileStorage folders, SQL databases and MongoDB). Nothing here
imports TensorFlow, gin or Sacred."""
