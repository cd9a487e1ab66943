"""Sub-commands of ``capreolus-opt`` that have a module of their own (``register(subparsers)``)."""
