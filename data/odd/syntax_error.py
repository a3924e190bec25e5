"""This module does not parse: pyast fails on line 6."""

import os


def broken(path:
    return os.path.basename(path)
