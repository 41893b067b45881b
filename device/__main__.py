"""`python -m device ...` (and, through build.py, the zipapp's entry point)."""
import sys

from device.cli import main

if __name__ == "__main__":
    sys.exit(main())
