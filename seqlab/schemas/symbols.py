"""What a symbol may be, and whether a file's own symbol column agrees with the one asked for.

A symbol is a warehouse key and also a folder name (Great Expectations data docs, price
snapshots), so it is held to one rule wherever it enters: the CLI, ``IngestOptions`` and the
flows' parameters all call ``check_symbol``. Case is kept as given: the warehouse matches
symbols exactly, and upper-casing here alone would split one series into two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Letters, digits, '.', '_' and '-', starting with a letter or digit: no path separators,
# no '..' on its own, no leading '-' that a command line would read as a flag.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SYMBOL = re.compile(SYMBOL_PATTERN)
# Quote currencies a file may name after its asset (ETH/USD, ETH-USD, ETHUSD all hold ETH).
_USD_SUFFIXES = ("-USD", "USD")
_QUALIFIER_SEPARATORS = ("-", "_", ".")


class SymbolError(ValueError):
    """A symbol that breaks SYMBOL_PATTERN; the message says what is allowed."""


def check_symbol(symbol: str) -> str:
    """``symbol`` unchanged when it fits SYMBOL_PATTERN, else SymbolError."""
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise SymbolError(
            f"symbol {symbol!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. ETH, ETH-USD, ETH-SYNTHETIC)"
        )
    return symbol


def _asset_names(file_symbol: str) -> set[str]:
    """The names a file's symbol cell stands for: ``ETH/USD`` -> {``ETH-USD``, ``ETH``}."""
    name = file_symbol.strip().upper().replace("/", "-")
    names = {name}
    for suffix in _USD_SUFFIXES:
        # Three letters at least stay: TUSD and BUSD are assets, not T or B priced in USD.
        if name.endswith(suffix) and len(name) - len(suffix) >= 3:
            names.add(name[: -len(suffix)])
    return names


def symbol_agrees(file_symbol: str, requested: str) -> bool:
    """Whether prices a file labels ``file_symbol`` may be stored under ``requested``.

    They may when the two name the same asset (ETH, ``ETH/USD``, ``eth-usd``), or when
    ``requested`` qualifies the file's name (``ETH-GEMINI`` for a file of ``ETH``): a
    storage key of its own for one source. A more general name is refused: a file of
    ``ETH-SYNTHETIC`` is not ``ETH``.
    """
    wanted = requested.strip().upper()
    for name in _asset_names(file_symbol):
        if wanted == name or any(wanted.startswith(name + sep) for sep in _QUALIFIER_SEPARATORS):
            return True
    return False


def disagreeing_symbols(found: Iterable[str], requested: str) -> list[str]:
    """The file's symbols (sorted) that do not agree with ``requested``."""
    return sorted({s for s in found if not symbol_agrees(s, requested)})
