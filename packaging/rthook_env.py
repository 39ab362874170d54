# Runs first in the frozen cdigen. PyInstaller's loader puts its library directory in
# LD_LIBRARY_PATH (and its own _PYI_* variables) and re-executes itself; every child would
# inherit them: the runtime shim's runc or crun would load the bundle's libraries (liblzma,
# libz...) instead of the host's. The loader has read LD_LIBRARY_PATH already, so the
# environment is restored to what the caller gave.
import os

_original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
if _original is None:
    os.environ.pop("LD_LIBRARY_PATH", None)
else:
    os.environ["LD_LIBRARY_PATH"] = _original
for _name in [n for n in os.environ if n.startswith("_PYI_")]:
    del os.environ[_name]
