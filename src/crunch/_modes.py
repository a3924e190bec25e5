"""The modes a run can take, defined once: the command's ``--mode`` choices, ``RunConfig``'s
``mode`` and ``crunch bench`` read them from here (README, "Modes")."""

MODES: tuple[str, ...] = ("sync", "thread", "async", "process", "dask")
