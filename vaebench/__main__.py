"""`python -m vaebench ...` is the `vaebench` command."""

from .cli.commands import main

if __name__ == "__main__":
    main()
