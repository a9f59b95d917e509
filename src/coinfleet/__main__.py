"""`python -m coinfleet` runs the CLI."""

from coinfleet.cli.main import main

main()
