"""Where a run is stored: location parsing (no heavy imports) and, in :mod:`.sql`, the schema."""

from capreolus_opt.storage.locations import (
    EXPECTED,
    MASK,
    MONGO_DEFAULT_DB,
    MONGO_TIMEOUT_MS,
    Location,
    LocationError,
    mask_url,
    mask_urls,
    parse_location,
)

__all__ = [
    "EXPECTED",
    "MASK",
    "MONGO_DEFAULT_DB",
    "MONGO_TIMEOUT_MS",
    "Location",
    "LocationError",
    "mask_url",
    "mask_urls",
    "parse_location",
]
