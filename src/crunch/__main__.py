"""``python -m crunch``: the same as the ``crunch`` command."""

from crunch.cli import main

if __name__ == "__main__":
    main()
