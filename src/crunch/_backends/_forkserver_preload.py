"""Imported by the forkserver as it starts (a preload module), and by nothing else.

The server leaves crunch's process group (see ``_groups``), so the workers it forks are never
in it, and it loads once what every worker runs, so that no worker imports it again after its
fork: ``crunch._worker``, the pool's own worker loop (``concurrent.futures.process``), and what
a worker unpickles as it starts (the locks of the pool's queues, the shared memory of the slot
table). A test lists what this may load (tests/test_imports.py).
"""

from crunch._backends._groups import leave_crunch_group

leave_crunch_group()

import concurrent.futures.process  # noqa: E402, F401 - preloaded for the workers
import multiprocessing.popen_forkserver  # noqa: E402
import multiprocessing.sharedctypes  # noqa: E402
import multiprocessing.synchronize  # noqa: E402, F401

import crunch._worker  # noqa: E402, F401
