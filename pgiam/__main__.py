"""`python -m pgiam`."""

from pgiam.cli import main_exit

main_exit()
