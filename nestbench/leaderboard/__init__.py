"""Leaderboards: the NEST card tables as data, rendered with our recorded results as markdown and plots.

``tables`` loads the reference tables, ``aggregate`` places records in cells (refusing convention
mismatches), ``render`` writes markdown, ``plots`` writes PNGs, ``build`` ties them together.
"""

from .aggregate import Refusal, place
from .build import RefusedResultsError, build_leaderboards, default_results, read_results
from .tables import Table, TableSpecError, load_tables

__all__ = [
    "Refusal",
    "RefusedResultsError",
    "Table",
    "TableSpecError",
    "build_leaderboards",
    "default_results",
    "load_tables",
    "place",
    "read_results",
]
