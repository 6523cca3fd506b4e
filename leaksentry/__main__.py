from leaksentry.cli import main

main()
