"""Sub-commands of ``capreolus-opt`` that live in their own modules (``register(subparsers)``)."""
