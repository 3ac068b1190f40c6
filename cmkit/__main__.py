from cmkit.cli import run

run()
