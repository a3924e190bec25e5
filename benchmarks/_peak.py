"""Run the crunch command in this process and write its peak RSS (KiB) and CPU seconds to a file.

    python benchmarks/_peak.py PEAKFILE process --jsonl ... (the arguments of ``crunch``)

Workers are children of a forkserver, so this process's own peak is the parent's alone.
"""

from __future__ import annotations

import resource
import sys

from crunch._cli import main

if __name__ == "__main__":
    peak_file, args = sys.argv[1], sys.argv[2:]
    try:
        main(args, prog_name="crunch")
    finally:
        with open(peak_file, "w") as f:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
