from mdl.cli.main import main

main()
