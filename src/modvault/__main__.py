from modvault.cli import run

run()
