import sys

from nanodictate.cli import main

sys.exit(main())
