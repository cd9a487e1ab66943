"""The one error a bad gin config raises."""

from __future__ import annotations


class GinConfigError(ValueError):
    """A gin file or binding could not be parsed; the message names the file or binding."""
