"""`python -m pgiam`."""

from pgiam.entry import main

main()
