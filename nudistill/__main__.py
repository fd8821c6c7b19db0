"""`python -m nudistill` is the same as the `nudistill` command."""
import sys

from nudistill.cli import main

sys.exit(main())
