"""The node agent's log: one line on stderr per event, `cdigen: ...`. A lasting condition (no
kubelet yet, an unwritable spec directory) is said once when it starts or changes and once
when it ends, never once per retry."""

import sys
import threading


class Log:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.conditions: dict[str, str] = {}
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            self.stream.write(f"cdigen: {text}\n")
            self.stream.flush()

    def set(self, key: str, text: str) -> None:
        """Condition `key` holds, as `text` says: logged unless it was already said."""
        if self.conditions.get(key) != text:
            self.conditions[key] = text
            self.say(text)

    def clear(self, key: str, text: str | None = None) -> None:
        """Condition `key` ended: `text` is logged if it held."""
        if self.conditions.pop(key, None) is not None and text:
            self.say(text)
