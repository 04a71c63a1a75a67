"""The canonical price columns by name, without polars (feature sets and grid checks need the
names only; ``seqlab.schemas.canonical`` gives them their types)."""

from __future__ import annotations

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "market_cap")
# Kept from sources that report it: traded volume in the base currency (ETH). ``volume``
# is always quote-currency (USD) volume; a source giving only base volume leaves it NULL
# rather than inventing a USD figure.
EXTRA_COLUMNS: tuple[str, ...] = ("volume_base",)
CANONICAL_COLUMNS: tuple[str, ...] = ("symbol", "date", *PRICE_COLUMNS, *EXTRA_COLUMNS)
