"""The ``serve-app`` command line: ``main.py`` lists the commands, one module each."""
