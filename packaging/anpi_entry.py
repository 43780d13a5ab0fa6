"""Entry point of the one-file binary: the same `anpi` command line as `pip install`."""

from app.cli import main

if __name__ == "__main__":
    main()
