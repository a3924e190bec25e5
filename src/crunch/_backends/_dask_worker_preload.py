"""Imported by each worker process of dask mode's local cluster as it starts (a Dask preload
module), and by nothing else.

The local cluster's worker processes are started by their nannies, inside crunch's process, with
the stop signals blocked (``crunch._backends.dask``); here, before the worker does anything, the
process leaves crunch's process group and drops a signal held meanwhile (``_groups``). So a
signal sent to crunch's whole group (a terminal's Ctrl-C, ``timeout``, systemd) reaches crunch
alone, which stops the run its own way: the items in flight get their grace period.
"""

from crunch._backends._groups import leave_crunch_group

leave_crunch_group()
