import sys

from modvault.cli import main

sys.exit(main())
