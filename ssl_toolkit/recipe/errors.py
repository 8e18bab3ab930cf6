"""The one error type of recipe loading and validation."""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe that cannot be used, with the file and key path that are at fault."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        if key is not None and len(key) > 120:
            key = key[:100] + "..."
        self.file, self.key, self.message = file, key, message
        where = ": ".join(p for p in (file, f"key '{key}'" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)
