"""`python -m device ...` (and the zipapp's entry point)."""
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["_child"]:  # the per-model child process: keep its imports minimal
        from device.child import child_main
        sys.exit(child_main())
    from device.cli import main
    sys.exit(main())
