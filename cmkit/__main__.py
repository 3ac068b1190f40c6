from cmkit.cli import main

main()
