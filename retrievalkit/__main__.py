from retrievalkit.cli.app import main

main()
