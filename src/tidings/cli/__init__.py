"""The ``tidings`` command line: thin — parse, call the library, render."""
