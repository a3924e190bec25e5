"""``python -m crunch``: the same as the ``crunch`` command."""

from crunch._entry import main

if __name__ == "__main__":
    main()
