"""The recommend app's one error type: what a caller did wrong, said so they can fix it."""
from __future__ import annotations


class RecommendError(ValueError):
    """Bad input to the recommender; ``detail`` is shown to the caller (HTTP 400)."""

    def __init__(self, detail: str, status: int = 400, errors: list | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.errors = errors or []
