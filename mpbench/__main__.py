from mpbench.cli.main import main

main()
