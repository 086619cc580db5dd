"""The base of every scenario section: unknown fields are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base for all scenario sections: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
