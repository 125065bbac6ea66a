"""``python -m torchspectral …`` (and ``torchrun … -m torchspectral audit … --distributed``): the command line."""

import sys

from torchspectral.audit.cli import main

if __name__ == "__main__":
    sys.exit(main())
