# The frozen cdigen's script: the console script's work, without its `re` import (bin/cdigen-runtime says why).
import sys

from cdigen.entry import main

sys.exit(main())
