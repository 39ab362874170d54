"""JSON as cdigen reads it everywhere (specs, config.json, the hook's OCI state): RFC 8259, and
only what can be written back and handed to the kernel unchanged.

Refused, with a one-line ValueError:
* NaN, Infinity, -Infinity, and numbers too large for a double (`1e999` would become
  `Infinity` when written back): not JSON, and Go's encoding/json and runc refuse them;
* integers of more than 4,300 digits (Python's int-string limit; no field holds one);
* strings with a lone UTF-16 surrogate (`"\\ud800"`: no UTF-8 form, so it cannot be written
  back) or a NUL character (no path, argument or environment entry can carry one);
* nesting deeper than the parser's recursion allows.

Parsing runs json's own C scanner directly when there is one: importing the `json` package
compiles its regular expressions (and imports `re`), about 20 ms per process on the project's
VM, more than the runtime shim's whole pass-through budget (docs/benchmarks.md). A document the
scanner does not accept whole is handed to `json.loads`, so every error is json's own message.
"""

MAX_INT_DIGITS = 4300
_WHITESPACE = " \t\n\r"  # RFC 8259's, as json.decoder skips it
_INFINITY = float("inf")


class NestedTooDeeply(ValueError):
    pass


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if abs(value) == _INFINITY:
        raise ValueError(f"number {text[:20]}{'...' if len(text) > 20 else ''} is too large for JSON readers")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def check_string(text: str) -> str:
    """`text`, or ValueError when it holds a NUL or a lone surrogate."""
    if "\0" in text:
        raise ValueError(f"a string holds a NUL character: {text[:40]!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"a string holds a lone UTF-16 surrogate: {text[:40]!r}") from None
    return text


def _check_strings(doc) -> None:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_string(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def deeper_than(doc, limit: int) -> bool:
    """True when `doc` nests lists/objects more than `limit` levels deep (iteratively: a deep
    document must not exhaust the recursion of whatever walks it next, copy.deepcopy or a diff)."""
    stack = [(doc, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class _Decoder:
    """The attributes json's C scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    parse_constant = staticmethod(_reject_constant)
    parse_float = staticmethod(_parse_float)
    parse_int = staticmethod(_parse_int)

    def __init__(self, object_pairs_hook) -> None:
        self.object_pairs_hook = object_pairs_hook


def _scan(data: str, object_pairs_hook):
    """What json.loads(data, ...) with the hooks above returns, when json's C scanner takes
    `data` whole; else json.loads itself, for its error message."""
    try:
        from _json import make_scanner
    except ImportError:  # a Python built without the accelerator
        make_scanner = None
    if make_scanner is not None:
        start = len(data) - len(data.lstrip(_WHITESPACE))
        try:
            doc, end = make_scanner(_Decoder(object_pairs_hook))(data, start)
            if not data[end:].strip(_WHITESPACE):
                return doc
        except RecursionError:
            raise
        except Exception:  # StopIteration, ValueError; SystemError when the scanner words an
            pass  # error while json.decoder is not imported: json.loads below says what is wrong
    import json

    return json.loads(
        data,
        parse_constant=_reject_constant,
        parse_float=_parse_float,
        parse_int=_parse_int,
        object_pairs_hook=object_pairs_hook,
    )


def loads(data: str | bytes, object_pairs_hook=None):
    """json.loads with the refusals above; ValueError (one-line reason) for anything else that
    is not JSON."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    try:
        doc = _scan(data, object_pairs_hook)
    except RecursionError:
        raise NestedTooDeeply("nested too deeply") from None
    if "\\u" in data:  # only escapes can make a lone surrogate or a NUL (a raw one is refused)
        _check_strings(doc)
    return doc
