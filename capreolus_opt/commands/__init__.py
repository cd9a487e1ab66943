"""The ``capreolus-opt`` sub-commands, one module each (``register(subparsers)`` + handlers)."""
