"""The recommendation service: ``recommender`` (clicks -> top-k), ``sessions`` (bounded live sessions), ``app``
(FastAPI)."""
