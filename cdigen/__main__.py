import sys

from cdigen.entry import main

sys.exit(main())
