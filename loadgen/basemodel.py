"""The one pydantic base of every profile section: unknown keys are errors, not silently ignored.

Why: a typo in a profile (``concurency: 8``) must fail before the first request, naming the
field, instead of running a different test than the one the user wrote.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
