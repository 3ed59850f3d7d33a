import sys

from kovr.cli import main

sys.exit(main())
