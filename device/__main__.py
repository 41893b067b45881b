"""`python -m device ...` (and, through build.py, the zipapp's entry point)."""
from device.cli import main
from device.errors import exit_process

if __name__ == "__main__":
    exit_process(main())
