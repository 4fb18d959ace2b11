import sys

try:
    from retrievalkit.cli.app import main
except KeyboardInterrupt:  # Ctrl-C while the command line is still loading
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

main()
