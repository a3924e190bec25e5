"""Imported by the forkserver as it starts (a preload module), and by nothing else.

The server leaves crunch's process group (see ``_groups``), so the workers it forks are never
in it, and it loads ``crunch._worker`` once, so that each worker does not import it again.
"""

from crunch.backends._groups import leave_crunch_group

leave_crunch_group()

import crunch._worker  # noqa: E402, F401 - preloaded for the workers
