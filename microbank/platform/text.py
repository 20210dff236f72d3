"""Text fields as clients may send them."""

from __future__ import annotations

import msgspec

# No control characters (NUL above all, which PostgreSQL cannot store) in names, emails,
# descriptions or passwords: add to a field as Annotated[str, msgspec.Meta(...), NO_CONTROL_CHARACTERS].
NO_CONTROL_CHARACTERS = msgspec.Meta(
    pattern=r"^[^\x00-\x1f\x7f]*$", description="printable text, no control characters"
)
