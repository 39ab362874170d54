"""Hypothesis helpers: how many examples a property test draws, and damaging a valid document
in one place."""

import os

from hypothesis import strategies as st

THOROUGH = os.environ.get("CDIGEN_THOROUGH") == "1"


def examples(thorough: int) -> int:
    """max_examples of a costly property test: `thorough` with CDIGEN_THOROUGH=1, a quarter in
    the everyday run, which must stay within the suite's two minutes."""
    return thorough if THOROUGH else max(thorough // 4, 50)


def mutate(doc, data, values: st.SearchStrategy, keys: list[str], deeper: int = 1, depth: int = 0):
    """Replace, delete or add (under one of `keys`) one value somewhere in `doc` (JSON-like,
    changed in place where it is a container); returns the new document. At each level the
    change goes one level deeper with odds `deeper`:1."""
    if isinstance(doc, dict) and doc and depth < 6 and data.draw(st.sampled_from([True] * deeper + [False])):
        key = data.draw(st.sampled_from(sorted(doc)))
        doc[key] = mutate(doc[key], data, values, keys, deeper, depth + 1)
        return doc
    if isinstance(doc, list) and doc and depth < 6 and data.draw(st.sampled_from([True] * deeper + [False])):
        i = data.draw(st.integers(0, len(doc) - 1))
        doc[i] = mutate(doc[i], data, values, keys, deeper, depth + 1)
        return doc
    action = data.draw(st.sampled_from(["replace", "add", "delete"]))
    if action == "add" and isinstance(doc, dict):
        doc[data.draw(st.sampled_from(keys))] = data.draw(values)
        return doc
    if action == "delete" and isinstance(doc, (dict, list)) and doc:
        if isinstance(doc, dict):
            del doc[data.draw(st.sampled_from(sorted(doc)))]
        else:
            del doc[data.draw(st.integers(0, len(doc) - 1))]
        return doc
    return data.draw(values)
