"""Where the data comes from. ``SOURCES`` is the one table of ``data.source`` values: what each yields and which
``data.*`` keys it needs. Torch- and pandas-free, so ``sessionrec.params`` validates against it at no cost;
``sources.fetch.FETCHERS`` holds the function that fetches each.

- ``events``: monthly CSVs in the REES46 format, which ``filter_encode`` filters and ``split`` splits;
- ``fixed_splits``: a reference's own train / test examples (already filtered and split), rebuilt into events that
  carry their split; ``filter_encode`` and ``split`` keep them as given.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS, FIXED_SPLITS = "events", "fixed_splits"


@dataclass(frozen=True)
class Source:
    yields: str  # EVENTS or FIXED_SPLITS
    needs: tuple = ()  # data.* keys that must be set
    doc: str = ""


SOURCES = {
    "synthetic": Source(EVENTS, doc="the seeded generator of REES46-format months (data.synthetic)"),
    "local": Source(EVENTS, ("local_dir",), "monthly CSVs (.csv, .csv.gz, .zip) in data.local_dir"),
    "kaggle": Source(EVENTS, doc="the Kaggle REES46 dataset, with the official client and your token"),
    "splits": Source(FIXED_SPLITS, ("splits_dir",), "a reference's pre-split example files in data.splits_dir "
                                                    "(REES46 side information from data.local_dir, optional)"),
    "diginetica": Source(FIXED_SPLITS, ("local_dir",), "DIGINETICA train-item-views.csv in data.local_dir, through "
                                                       "the reference SR-GNN preprocessing"),
}
