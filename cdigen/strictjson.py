"""JSON as cdigen reads it everywhere (specs, config.json, the hook's OCI state): RFC 8259 only.

Python's `json` accepts NaN, Infinity and -Infinity, which are not JSON: Go's encoding/json
(every container engine) and runc refuse them, so a document holding them is invalid input
here too, never something to read now and write back broken later.
"""

import json


class NestedTooDeeply(ValueError):
    pass


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads(data: str | bytes, object_pairs_hook=None):
    """json.loads without NaN/Infinity; ValueError (with a one-line reason) for anything that
    is not JSON, nesting too deep for the parser included."""
    try:
        return json.loads(data, parse_constant=_reject_constant, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise NestedTooDeeply("nested too deeply") from None
