import sys

from kernsim.cli import main

sys.exit(main())
