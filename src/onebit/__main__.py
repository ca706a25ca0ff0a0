"""`python -m onebit` (also what `torchrun -m onebit` runs)."""

from onebit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
