"""Reading runs side by side: the ``compare`` table, ``diff``, metric plots, seed groups with their
baseline tests, and paper tables (LaTeX, Markdown). Input:
:class:`~capreolus_opt.records.record.Run`
lists from :func:`capreolus_opt.records.load.load_runs`; nothing here writes a record.
"""
